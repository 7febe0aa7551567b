/**
 * Campaigns shared by workers, from the command line: `campaign start --store postgres://…`
 * defines a campaign in PostgreSQL (and works on it unless `--detach`), `campaign work`
 * joins as a worker until the campaigns it serves are complete, `campaign status --store`
 * and `campaign export` read them. Tenants (`--tenants a,b`) each have their own settings,
 * `MDE_<NAME>_<SETTING>` (see `tenantSettings`), so their own credentials and budgets.
 */
import { Command, Options } from "@effect/cli"
import { FileSystem } from "@effect/platform"
import {
  Config,
  ConfigProvider,
  Context,
  Duration,
  Effect,
  Layer,
  Option,
  Redacted,
  type Scope
} from "effect"
import type { Campaign, DefenderError } from "../mod.ts"
import { CampaignStore, DefenderClient } from "../mod.ts"
import { CampaignPostgres } from "../postgres.ts"
import { type CampaignFailed, type CampaignNotRun, CampaignUsage, failOn } from "./campaignErrors.ts"
import { countsText, outcomeOf } from "./campaignView.ts"
import { FileError } from "./download.ts"
import { type Format, formatOption } from "./format.ts"

/** Every way a shared-campaign command fails (besides its client's own error). */
export type SharedError =
  | CampaignUsage
  | CampaignFailed
  | CampaignNotRun
  | FileError
  | DefenderError
  | CampaignStore.CampaignStoreError

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/** `--store` / `MDE_CAMPAIGN_STORE`: the PostgreSQL URL (never echoed: it may hold a password). */
export const storeOption: Options.Options<Option.Option<Redacted.Redacted>> = Options.redacted("store").pipe(
  Options.withFallbackConfig(Config.redacted("MDE_CAMPAIGN_STORE")),
  Options.optional,
  Options.withDescription("a PostgreSQL URL (postgres://…): the campaign is shared by workers (env MDE_CAMPAIGN_STORE)")
)

/** `--results` / `MDE_CAMPAIGN_RESULTS`: the folder every worker writes results to. */
export const resultsOption: Options.Options<string> = Options.text("results").pipe(
  Options.withFallbackConfig(Config.string("MDE_CAMPAIGN_RESULTS")),
  Options.withDefault("mde-campaigns"),
  Options.withDescription(
    "with --store: the shared folder results go to, <results>/<campaign>/ (default mde-campaigns; env MDE_CAMPAIGN_RESULTS)"
  )
)

/** `--tenants` / `MDE_TENANTS`: the tenants served, each configured by `MDE_<NAME>_*`. */
export const tenantsOption: Options.Options<Option.Option<string>> = Options.text("tenants").pipe(
  Options.withFallbackConfig(Config.string("MDE_TENANTS")),
  Options.optional,
  Options.withDescription("with --store: the tenants, a,b,… (each set by MDE_<NAME>_API_URL, _TENANT_ID, …; env MDE_TENANTS)")
)

/** `--claim-expiry` / `MDE_CLAIM_EXPIRY`: how long a dead worker's machines wait before another takes them. */
export const claimExpiryOption: Options.Options<string> = Options.text("claim-expiry").pipe(
  Options.withFallbackConfig(Config.string("MDE_CLAIM_EXPIRY")),
  Options.withDefault("60s"),
  Options.withDescription("with --store: how long a worker's claim on a machine lasts, so how soon a dead worker's machines move on (default 60s)")
)

/** `--detach`: `start --store` defines the campaign and exits, for workers to run it. */
export const detachOption: Options.Options<boolean> = Options.boolean("detach").pipe(
  Options.withDescription("with --store: define the campaign, print its id and exit (workers run it: campaign work)")
)

/** `--campaign`: the campaign of the store. */
export const campaignIdOption: Options.Options<string> = Options.text("campaign").pipe(
  Options.withDescription("the campaign's id in the store (cmp-…)")
)

// ---------------------------------------------------------------------------
// Tenants
// ---------------------------------------------------------------------------

/**
 * The settings every tenant shares unless it sets its own: never a credential (`MDE_TOKEN`,
 * `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`) nor `MDE_API_URL`.
 */
const SHARED = [
  "MDE_CLOUD",
  "MDE_SCOPE",
  "AZURE_AUTHORITY_HOST",
  "MDE_REDIS_URL",
  "MDE_REDIS_FALLBACK",
  "MDE_REDIS_OUTAGE_WAIT",
  "MDE_RATE_LIMITS",
  "MDE_RUN_RATE_LIMITS",
  "MDE_MACHINE_ACTION_RATE_LIMITS",
  "MDE_DOWNLOAD_HOSTS",
  "MDE_TIMEOUT",
  "MDE_BODY_DEADLINE",
  "MDE_MAX_TRANSCRIPT_BYTES"
] as const

/** A tenant's setting `MDE_<NAME>_<SETTING>` stands for this name (the app registration's are Azure's). */
const plainName = (setting: string): string =>
  ["TENANT_ID", "CLIENT_ID", "CLIENT_SECRET", "AUTHORITY_HOST"].includes(setting) ? `AZURE_${setting}` : `MDE_${setting}`

/**
 * A tenant's settings under the names the library reads: its own `MDE_<NAME>_<SETTING>`
 * first (`MDE_CONTOSO_CLIENT_SECRET` is its `AZURE_CLIENT_SECRET`, `MDE_CONTOSO_TOKEN` its
 * `MDE_TOKEN`), then the shared settings, and a Redis budget key of its own
 * (`<MDE_REDIS_KEY or mde-live-response>:<tenant>`), so tenants never share a budget.
 */
export const tenantSettings = (tenant: string, env: Record<string, string | undefined>): Map<string, string> => {
  const prefix = `MDE_${CampaignPostgres.tenantKey(tenant).toUpperCase()}_`
  const map = new Map<string, string>()
  for (const name of SHARED) {
    const v = env[name]
    if (v !== undefined) map.set(name, v)
  }
  map.set("MDE_REDIS_KEY", `${env.MDE_REDIS_KEY ?? "mde-live-response"}:${tenant}`)
  for (const [k, v] of Object.entries(env)) {
    if (k.startsWith(prefix) && v !== undefined) map.set(plainName(k.slice(prefix.length)), v)
  }
  return map
}

/** The tenants of `--tenants` (`default`, set by the plain settings, when none), checked. */
const tenantsOf = (text: Option.Option<string>): Effect.Effect<Tenants, CampaignUsage> => {
  if (Option.isNone(text)) return Effect.succeed({ names: ["default"], explicit: false })
  const names = [...new Set(text.value.split(",").map((s) => s.trim()).filter((s) => s !== ""))]
  const bad = names.find((n) => !/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/.test(n))
  if (bad !== undefined) return Effect.fail(new CampaignUsage(`--tenants: "${bad}" is not a tenant name (letters, digits, _ and -)`))
  if (names.length === 0) return Effect.fail(new CampaignUsage("--tenants is empty"))
  return Effect.succeed({ names, explicit: true })
}

/** The tenants served; `explicit` when named by `--tenants` (each then read from `MDE_<NAME>_*`). */
interface Tenants {
  readonly names: ReadonlyArray<string>
  readonly explicit: boolean
}

/** Each tenant's client: the CLI's configured stack, read from the tenant's settings (`default`: the plain ones). */
const clientsOf = <E>(
  tenants: Tenants,
  client: Layer.Layer<DefenderClient.DefenderClient, E>
): Effect.Effect<Map<string, DefenderClient.DefenderClient>, E, Scope.Scope> =>
  Effect.gen(function*() {
    const clients = new Map<string, DefenderClient.DefenderClient>()
    for (const tenant of tenants.names) {
      const layer = tenants.explicit
        ? Layer.provide(client, Layer.setConfigProvider(ConfigProvider.fromMap(tenantSettings(tenant, process.env))))
        : client
      const built = yield* Layer.build(layer)
      clients.set(tenant, Context.get(built, DefenderClient.DefenderClient))
    }
    return clients
  })

/**
 * Whether every API the tenants point at is on this machine (a served simulator or a fake):
 * `--interval`'s floor protects a real tenant's quota, not a local one.
 */
const servedLocally = (tenants: Tenants): boolean =>
  tenants.names.every((t) => {
    const url = tenants.explicit ? tenantSettings(t, process.env).get("MDE_API_URL") : process.env.MDE_API_URL
    if (url === undefined) return false
    try {
      return ["127.0.0.1", "localhost", "[::1]"].includes(new URL(url).hostname)
    } catch {
      return false
    }
  })

// ---------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------

/** The store on `url` for `use`, closed after it. */
const withStore = <A, E, R>(
  url: Redacted.Redacted,
  maintenance: Duration.Duration,
  use: (pg: CampaignPostgres.Store) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | CampaignStore.CampaignStoreError, Exclude<R, Scope.Scope>> =>
  Effect.scoped(Effect.flatMap(CampaignPostgres.make(url, { maintenance }), use))

/** A worker's maintenance pace: often enough for short claims, one cheap query a second at most. */
const WORKER_MAINTENANCE = Duration.seconds(1)

/** The targets of a definition, each with its tenant: `--machines` lines `<tenant>/<id>` (or bare ids for one tenant), or the query in each tenant. */
const targetsFor = (
  definition: Campaign.Definition,
  tenants: ReadonlyArray<string>,
  clients: ReadonlyMap<string, DefenderClient.DefenderClient>
): Effect.Effect<Array<CampaignPostgres.Target>, CampaignUsage | DefenderError> =>
  Effect.gen(function*() {
    if (definition.targets._tag === "Query") return yield* CampaignPostgres.queryTargets(definition.targets.filter, clients)
    const targets: Array<CampaignPostgres.Target> = []
    for (const line of definition.targets.machineIds) {
      const slash = line.indexOf("/")
      const tenant = slash < 0 ? (tenants.length === 1 ? tenants[0]! : undefined) : line.slice(0, slash)
      if (tenant === undefined) {
        return yield* Effect.fail(new CampaignUsage(`machine ${line}: give its tenant (<tenant>/<id>) with several --tenants`))
      }
      if (!tenants.includes(tenant)) {
        return yield* Effect.fail(new CampaignUsage(`machine ${line}: tenant ${tenant} is not in --tenants`))
      }
      targets.push({ tenant, machineId: slash < 0 ? line : line.slice(slash + 1) })
    }
    return targets
  })

/** Works until the campaign(s) are complete; the exit follows the machines' outcome as `campaign start`'s does. */
const workOn = (
  pg: CampaignPostgres.Store,
  results: string,
  format: Format,
  clients: ReadonlyMap<string, DefenderClient.DefenderClient>,
  campaignId: string | undefined
): Effect.Effect<void, SharedError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const summaries = yield* CampaignPostgres.work(pg, { results, campaignId, tenants: clients })
    for (const s of summaries) {
      process.stderr.write(`${s.campaignId}: ${countsText(s)}; results in ${results}/${s.campaignId}\n`)
      if (format === "json") process.stdout.write(`${JSON.stringify(s)}\n`)
    }
    for (const s of summaries) {
      yield* failOn(outcomeOf(s, `${results}/${s.campaignId}`, `campaign export --campaign ${s.campaignId} writes its manifest`))
    }
  })

// ---------------------------------------------------------------------------
// The commands
// ---------------------------------------------------------------------------

/** What `campaign start --store` is given besides the definition. */
export interface StartSharedParams {
  readonly store: Redacted.Redacted
  readonly results: string
  readonly tenants: Option.Option<string>
  readonly claimExpiry: string
  readonly detach: boolean
  readonly format: Format
}

/**
 * `campaign start --store`: defines the campaign in the store, prints its id, and works on it
 * unless `detach`. `definitionOf(local)` reads the options; `local` when every tenant's API
 * is on this machine (the interval's floor is then the simulator's).
 */
export const startShared = <E, F>(
  params: StartSharedParams,
  definitionOf: (local: boolean) => Effect.Effect<Campaign.Definition, F, FileSystem.FileSystem>,
  client: Layer.Layer<DefenderClient.DefenderClient, E>
): Effect.Effect<void, SharedError | E | F, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const tenants = yield* tenantsOf(params.tenants)
    const claimExpiry = yield* parseDuration("claim-expiry", params.claimExpiry)
    const definition = yield* definitionOf(servedLocally(tenants))
    const maintenance = Duration.clamp(Duration.divide(claimExpiry, 2).pipe(Option.getOrElse(() => WORKER_MAINTENANCE)), {
      minimum: WORKER_MAINTENANCE,
      maximum: Duration.seconds(30)
    })
    yield* withStore(params.store, maintenance, (pg) =>
      Effect.gen(function*() {
        const clients = yield* clientsOf(tenants, client)
        const targets = yield* targetsFor(definition, tenants.names, clients)
        if (targets.length === 0) return yield* Effect.fail(new CampaignUsage("the campaign has no machine"))
        const made = yield* CampaignStore.makeDefinition({
          ...definition,
          targets: definition.targets._tag === "Query"
            ? definition.targets
            : { _tag: "Machines", machineIds: targets.map((t) => t.machineId) }
        })
        yield* pg.create(made, targets, Duration.toMillis(claimExpiry))
        const id = made.campaignId
        const folder = `${params.results}/${id}`
        process.stdout.write(params.format === "json" ? `${JSON.stringify({ campaignId: id, results: folder })}\n` : `${id}\n`)
        if (params.detach) return
        yield* workOn(pg, params.results, params.format, clients, id)
      }))
  })

/** `--claim-expiry`'s text as a duration (read as `MDE_TIMEOUT` is), at least a second. */
const parseDuration = (flag: string, text: string): Effect.Effect<Duration.Duration, CampaignUsage> =>
  Effect.withConfigProvider(DefenderClient.config.timeout, ConfigProvider.fromMap(new Map([["MDE_TIMEOUT", text]]))).pipe(
    Effect.filterOrFail((d) => Duration.greaterThanOrEqualTo(d, Duration.seconds(1)), () => undefined),
    Effect.mapError(() => new CampaignUsage(`--${flag} must be a duration of at least 1s (30s, 10m or "2 minutes"), got: ${text}`))
  )

/** Fails with a usage error without a store. */
const needStore = (store: Option.Option<Redacted.Redacted>): Effect.Effect<Redacted.Redacted, CampaignUsage> =>
  Option.match(store, {
    onNone: () => Effect.fail(new CampaignUsage("give --store postgres://… (or set MDE_CAMPAIGN_STORE)")),
    onSome: Effect.succeed
  })

/** `campaign work`'s options. */
export interface WorkParams {
  readonly store: Option.Option<Redacted.Redacted>
  readonly results: string
  readonly tenants: Option.Option<string>
  readonly campaign: Option.Option<string>
  readonly format: Format
}

/** `campaign work`: joins the store's campaigns (or `--campaign`) as a worker until they are complete. */
export const workCommand = <E>(
  client: Layer.Layer<DefenderClient.DefenderClient, E>
): Command.Command<"work", FileSystem.FileSystem, SharedError | E, WorkParams> =>
  Command.make(
    "work",
    {
      store: storeOption,
      results: resultsOption,
      tenants: tenantsOption,
      campaign: campaignIdOption.pipe(Options.optional),
      format: formatOption
    },
    (p) =>
      Effect.gen(function*() {
        const store = yield* needStore(p.store)
        const tenants = yield* tenantsOf(p.tenants)
        yield* withStore(store, WORKER_MAINTENANCE, (pg) =>
          Effect.flatMap(
            clientsOf(tenants, client),
            (clients) => workOn(pg, p.results, p.format, clients, Option.getOrUndefined(p.campaign))
          ))
      })
  ).pipe(Command.withDescription("join the store's campaigns as a worker until they are complete (--store)"))

/** `campaign export`'s options. */
export interface ExportParams {
  readonly store: Option.Option<Redacted.Redacted>
  readonly campaign: string
  readonly out: Option.Option<string>
}

/** `campaign export`: the store campaign's manifest.jsonl, the folder store's lines. */
export const exportCommand: Command.Command<"export", FileSystem.FileSystem, SharedError, ExportParams> = Command.make(
  "export",
  {
    store: storeOption,
    campaign: campaignIdOption,
    out: Options.text("out").pipe(Options.optional, Options.withDescription("the manifest file to write; - or none: stdout"))
  },
  (p) =>
    Effect.gen(function*() {
      const store = yield* needStore(p.store)
      const text = yield* withStore(store, WORKER_MAINTENANCE, (pg) =>
        Effect.map(pg.manifest(p.campaign), CampaignPostgres.manifestText))
      if (Option.isNone(p.out) || p.out.value === "-") return yield* Effect.sync(() => process.stdout.write(text))
      const out = p.out.value
      const fs = yield* FileSystem.FileSystem
      yield* fs.writeFileString(out, text).pipe(Effect.mapError((e) => new FileError(`cannot write ${out}: ${e.message}`)))
    })
).pipe(Command.withDescription("write a store campaign's manifest.jsonl (--store, --campaign)"))

/** `campaign status --store --campaign <id>`: the campaign's counts from the tables. */
export const statusShared = (
  store: Redacted.Redacted,
  campaignId: Option.Option<string>,
  format: Format
): Effect.Effect<void, SharedError> =>
  Effect.gen(function*() {
    if (Option.isNone(campaignId)) return yield* Effect.fail(new CampaignUsage("with --store, give --campaign <id>"))
    const id = campaignId.value
    yield* withStore(store, WORKER_MAINTENANCE, (pg) =>
      Effect.gen(function*() {
        const campaign = yield* pg.campaign(id)
        const counts = yield* pg.counts(id)
        const summary = yield* CampaignPostgres.summary(pg, id)
        const status = {
          ...summary,
          completed: campaign.completed,
          tenants: campaign.tenants,
          waiting: counts.Waiting,
          alive: counts.Alive + counts.Submitting,
          collecting: counts.Collecting + counts.Ended
        }
        process.stdout.write(
          format === "json"
            ? `${JSON.stringify(status)}\n`
            : `${id}: ${countsText(summary)}${campaign.completed ? ", completed" : ""}\n`
        )
      }))
  })
