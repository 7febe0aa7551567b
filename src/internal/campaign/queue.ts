/**
 * The work queue of shared campaigns, on pg-boss 10 (a PostgreSQL job engine; see
 * docs/design.md for why it and not a coordinator of our own). Each campaign and tenant has
 * two `stately` queues — lanes: `submit` holds the machines waiting for a session, `watch` the
 * ones with an action alive, of unknown outcome or with results to save. One job per machine
 * and lane (the singleton key is the machine id; `stately` keeps one queued and one active),
 * so a worker fetches only what it can act on: all the watch jobs it can poll, and as many
 * submit jobs as the tenant's sessions leave room for. A job is short: the worker does one
 * step for its machine and queues the next; a worker that dies leaves its jobs active until
 * they expire (`claimExpiry`), when pg-boss's maintenance puts them back (a retry) and
 * another worker takes them. pg-boss has no heartbeat in 10.x: a step that takes longer than
 * the expiry may run twice, which the store's rules make harmless.
 *
 * @internal
 */
import { Effect, type Scope } from "effect"
import PgBoss from "pg-boss"
import type { MachinePhase } from "../../CampaignStore.ts"
import { type CampaignStoreError, storeError } from "./error.ts"

/** @internal A machine's lane: `undefined` once it is finished. */
export type Lane = "submit" | "watch"

/** @internal A job to queue: the machine, and when it may start (epoch ms). */
export interface Job {
  readonly machineId: string
  readonly startAfter: number
}

/** @internal A job a worker fetched. */
export interface Fetched {
  readonly id: string
  readonly lane: Lane
  readonly machineId: string
}

/** @internal pg-boss's way to run its statements on a connection of ours (a transaction's). */
export interface Db {
  readonly executeSql: (text: string, values: Array<unknown>) => Promise<{ rows: Array<any> }>
}

/** @internal What the queue needs to know of a campaign. */
export interface QueueCampaign {
  readonly definition: { readonly campaignId: string }
  readonly claimExpiry: number
}

/** @internal The queue. */
export interface Queue {
  readonly ensure: (campaign: QueueCampaign, tenant: string) => Effect.Effect<void, CampaignStoreError>
  readonly send: (
    campaign: QueueCampaign,
    tenant: string,
    lane: Lane,
    jobs: ReadonlyArray<Job>,
    db?: Db
  ) => Effect.Effect<void, CampaignStoreError>
  readonly fetch: (
    campaign: QueueCampaign,
    tenant: string,
    lane: Lane,
    n: number
  ) => Effect.Effect<Array<Fetched>, CampaignStoreError>
  readonly complete: (
    campaign: QueueCampaign,
    tenant: string,
    lane: Lane,
    ids: ReadonlyArray<string>
  ) => Effect.Effect<void, CampaignStoreError>
}

/** @internal The lane of a machine in `phase`. */
export const laneOf = (phase: MachinePhase): Lane | undefined =>
  phase._tag === "Waiting" ? "submit" : phase._tag === "Finished" || phase._tag === "NotRun" ? undefined : "watch"

/** @internal A tenant's name as it goes into queue names and variables: letters, digits and `_`. */
export const tenantKey = (tenant: string): string => tenant.toLowerCase().replace(/[^a-z0-9]/g, "_")

const nameOf = (campaign: QueueCampaign, tenant: string, lane: Lane): string =>
  `mlr-${campaign.definition.campaignId}-${tenantKey(tenant)}-${lane}`

const queueError = (e: unknown): CampaignStoreError =>
  storeError("Database", `work queue: ${(e instanceof Error ? e.message : String(e)).replace(/postgres(ql)?:\/\/\S+/g, "postgres://…").slice(0, 300)}`)

const call = <A>(f: () => Promise<A>): Effect.Effect<A, CampaignStoreError> => Effect.tryPromise({ try: f, catch: queueError })

const expirySeconds = (campaign: QueueCampaign): number => Math.max(1, Math.ceil(campaign.claimExpiry / 1000))

/**
 * @internal A started pg-boss on `url` (its schema migrated; no cron), stopped when the scope
 * closes. Its maintenance, which puts expired jobs back, runs every `maintenance` ms.
 */
export const makeQueue = (
  url: string,
  maintenance: number
): Effect.Effect<Queue, CampaignStoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const boss = new PgBoss({
      connectionString: url,
      schedule: false,
      supervise: true,
      maintenanceIntervalSeconds: Math.max(1, Math.round(maintenance / 1000)),
      max: 3,
      application_name: "mde-live-response"
    })
    // Maintenance and fetch errors (e.g. PostgreSQL restarting) come here; the next round tries again.
    boss.on("error", (e) => Effect.runFork(Effect.logDebug(`work queue: ${queueError(e).detail}`)))
    yield* Effect.acquireRelease(
      call(() => boss.start()).pipe(Effect.retry({ times: 3 })),
      () => Effect.promise(() => boss.stop({ graceful: false, wait: true }).catch(() => undefined))
    )
    const known = new Set<string>()
    const ensure: Queue["ensure"] = (campaign, tenant) =>
      Effect.forEach(["submit", "watch"] as const, (lane) => {
        const name = nameOf(campaign, tenant, lane)
        if (known.has(name)) return Effect.void
        return call(async () => {
          if ((await boss.getQueue(name)) === null) {
            await boss.createQueue(name, {
              name,
              policy: "stately",
              // An expired claim is a retry: a worker's death must never use up a machine's job.
              retryLimit: 1_000_000,
              retryDelay: 0,
              expireInSeconds: expirySeconds(campaign)
            })
          }
          known.add(name)
        })
      }, { discard: true })
    return {
      ensure,
      send: (campaign, tenant, lane, jobs, db) =>
        jobs.length === 0 ? Effect.void : call(() =>
          boss.insert(
            jobs.map((j) => ({
              name: nameOf(campaign, tenant, lane),
              data: { machineId: j.machineId },
              singletonKey: j.machineId,
              startAfter: new Date(j.startAfter),
              expireInSeconds: expirySeconds(campaign),
              retryLimit: 1_000_000,
              retryDelay: 0
            })),
            db === undefined ? {} : { db }
          )
        ),
      fetch: (campaign, tenant, lane, n) =>
        n <= 0 ? Effect.succeed([]) : Effect.map(
          call(() => boss.fetch<{ machineId: string }>(nameOf(campaign, tenant, lane), { batchSize: n })),
          (jobs) => (jobs ?? []).map((j) => ({ id: j.id, lane, machineId: j.data.machineId }))
        ),
      complete: (campaign, tenant, lane, ids) =>
        ids.length === 0 ? Effect.void : call(() => boss.complete(nameOf(campaign, tenant, lane), [...ids]))
    }
  })
