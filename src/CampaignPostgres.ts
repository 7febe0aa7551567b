/**
 * Campaigns shared by several workers on several hosts: the journal, the machines' states
 * and the manifest in PostgreSQL tables (through `@effect/sql-pg`, created by `@effect/sql`'s
 * migrator), the work queue on pg-boss (one job per campaign and machine, claims that expire
 * when a worker dies), the results in one folder every worker can write. Each tenant of a
 * campaign has its own client (credentials and budgets); a worker serves each tenant in a
 * loop of its own, so one tenant's 3,000 machines never wait behind another's 20.
 *
 * Import it from `mde-live-response/postgres`: it needs the optional peer dependencies
 * `@effect/sql`, `@effect/sql-pg` and `pg-boss` (10.x), which the main entry never loads.
 *
 * @example
 * ```ts
 * import { NodeFileSystem } from "@effect/platform-node"
 * import { Effect, Redacted } from "effect"
 * import { CampaignStore, DefenderClient } from "mde-live-response"
 * import { CampaignPostgres } from "mde-live-response/postgres"
 *
 * // Defines a campaign on two machines of one tenant, then works on it until it is done.
 * const program = Effect.gen(function*() {
 *   const client = yield* DefenderClient.DefenderClient
 *   const store = yield* CampaignPostgres.make(Redacted.make("postgres://mde@127.0.0.1/mde"))
 *   const definition = yield* CampaignStore.makeDefinition({
 *     commands: [{ type: "RunScript", scriptName: "triage.ps1" }],
 *     comment: "triage",
 *     targets: { _tag: "Machines", machineIds: ["m1", "m2"] }
 *   })
 *   yield* store.create(definition, [{ tenant: "contoso", machineId: "m1" }, { tenant: "contoso", machineId: "m2" }], 60_000)
 *   return yield* CampaignPostgres.work(store, {
 *     results: "/shared/campaigns",
 *     campaignId: definition.campaignId,
 *     tenants: new Map([["contoso", client]])
 *   })
 * })
 * program.pipe(Effect.scoped, Effect.provide(DefenderClient.layerConfig()), Effect.provide(NodeFileSystem.layer))
 * ```
 *
 * @module
 * @since 0.1.0
 */
import type { FileSystem } from "@effect/platform"
import { Array as Arr, Chunk, Duration, Effect, Layer, Redacted, type Scope, Stream } from "effect"
import type { Summary } from "./Campaign.ts"
import type { CampaignStoreError, ManifestEntry } from "./CampaignStore.ts"
import type { DefenderClient } from "./DefenderClient.ts"
import type { DefenderError } from "./DefenderError.ts"
import { entryLine } from "./internal/campaign/journal.ts"
import * as pgStore from "./internal/campaign/pgStore.ts"
import * as queue from "./internal/campaign/queue.ts"
import { byRecency } from "./internal/campaign/targets.ts"
import * as worker from "./internal/campaign/worker.ts"

/**
 * A machine of a shared campaign and the tenant it belongs to.
 *
 * @since 0.1.0
 * @category models
 */
export type Target = pgStore.Target

/**
 * A campaign as the store holds it: its definition, its tenants, its claim expiry (ms).
 *
 * @since 0.1.0
 * @category models
 */
export type SharedCampaign = pgStore.SharedCampaign

/**
 * The shared store: `create` a campaign, read `campaigns`, `counts` and the `manifest`;
 * `append` is one transaction that checks the event with the journal's rules under the
 * machine's row lock (and the tenant's session cap under an advisory lock), writes it, the
 * machine's new state and its next job.
 *
 * @since 0.1.0
 * @category models
 */
export type Store = pgStore.PgStore

/**
 * What a worker is given: the results folder, the campaign (every unfinished one when
 * none), each tenant's client.
 *
 * @since 0.1.0
 * @category models
 */
export type WorkOptions = worker.WorkOptions

/**
 * The store on the PostgreSQL at `url`: its tables migrated (`mlr_*`, `mlr_migrations`),
 * pg-boss started (its own `pgboss` schema), both closed with the scope. `maintenance` is how
 * often pg-boss puts expired claims back (default 1 s): a dead worker's machines wait for it.
 * Errors never hold the URL (it may hold a password).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  url: Redacted.Redacted,
  options: { readonly maintenance?: Duration.DurationInput | undefined } = {}
): Effect.Effect<Store, CampaignStoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const jobs = yield* queue.makeQueue(Redacted.value(url), Duration.toMillis(options.maintenance ?? "1 second"))
    const sql = yield* Layer.build(pgStore.layerSql(url))
    return yield* pgStore.makePgStore(jobs).pipe(Effect.provide(sql))
  })

/**
 * Works as one of the campaign's workers until every campaign it serves is complete; each
 * campaign's summary. Results go to `<results>/<campaignId>/results/…`. Interrupted, it
 * only stops: its claims expire and another worker continues.
 *
 * @since 0.1.0
 * @category workers
 */
export const work: (
  store: Store,
  options: WorkOptions
) => Effect.Effect<Array<Summary>, CampaignStoreError | DefenderError, FileSystem.FileSystem> = worker.work

/**
 * A campaign's summary from the store's counts and manifest.
 *
 * @since 0.1.0
 * @category reading
 */
export const summary = (store: Store, campaignId: string): Effect.Effect<Summary, CampaignStoreError> =>
  Effect.gen(function*() {
    const counts = yield* store.counts(campaignId)
    const total = Object.values(counts).reduce((a, b) => a + b, 0)
    return worker.summaryOf(campaignId, total, yield* store.manifest(campaignId))
  })

/**
 * The campaign's manifest as `manifest.jsonl` text: the folder store's lines, byte for byte.
 *
 * @since 0.1.0
 * @category reading
 */
export const manifestText = (entries: ReadonlyArray<ManifestEntry>): string => entries.map(entryLine).join("")

/**
 * The targets of a machines query in each tenant, most recently seen first (the order the
 * folder engine submits in).
 *
 * @since 0.1.0
 * @category constructors
 */
export const queryTargets = (
  filter: string,
  clients: ReadonlyMap<string, DefenderClient>
): Effect.Effect<Array<Target>, DefenderError> =>
  Effect.map(
    Effect.forEach(clients, ([tenant, client]) =>
      Effect.map(
        Stream.runCollect(client.listMachines({ filter })),
        (found) => byRecency(Chunk.toArray(found)).map((m): Target => ({ tenant, machineId: m.id }))
      )),
    Arr.flatten
  )

/**
 * A tenant's name as it appears in setting names and queue names: lower case, other
 * characters than a–z and 0–9 as `_` (`MDE_<NAME>_*` is its upper case).
 *
 * @since 0.1.0
 * @category tenants
 */
export const tenantKey: (tenant: string) => string = queue.tenantKey
