/**
 * A worker of shared campaigns: for every campaign it serves and every tenant of it that it
 * has a client for, a loop of its own (so that one tenant's 3,000 machines never wait behind
 * another's budget: each tenant moves at its own pace). Each round it takes the tenant's
 * watch jobs and as many submit jobs as the tenant's sessions leave room for, loads those
 * machines from PostgreSQL, runs the engine's own round over them (`advance`: adopt, poll,
 * collect, submit, deadline — every step through the store's checked transactions), queues
 * each machine's next job in its lane and completes the fetched ones. A conflict (another
 * worker moved a machine first, the session cap reached meanwhile) or a database outage
 * ends the round, not the worker: the next round starts from the tables again.
 *
 * @internal
 */
import { FileSystem } from "@effect/platform"
import { Clock, Effect } from "effect"
import type { Summary, Update } from "../../Campaign.ts"
import type { CampaignState, CampaignStore, MachinePhase, ManifestEntry } from "../../CampaignStore.ts"
import type { DefenderClient } from "../../DefenderClient.ts"
import type { DefenderError } from "../../DefenderError.ts"
import type { Ctx } from "./context.ts"
import { commentFor } from "./definition.ts"
import { advance } from "./engine.ts"
import { type CampaignStoreError, storeError } from "./error.ts"
import { type Folder, resultsOf } from "./folderStore.ts"
import { under } from "./paths.ts"
import type { PgStore, PhaseCounts, SharedCampaign } from "./pgStore.ts"
import { type Fetched, type Lane, laneOf } from "./queue.ts"

/** The most jobs of a lane one round takes (one list call polls 100 actions). */
const BATCH = 100

/** @internal What a worker is given. */
export interface WorkOptions {
  /** The shared folder results go to (`<results>/<campaignId>/results/…`). */
  readonly results: string
  /** Only this campaign; every unfinished one in the store otherwise. */
  readonly campaignId?: string | undefined
  /** The tenants it serves, each with its own client (credentials, budgets). */
  readonly tenants: ReadonlyMap<string, DefenderClient>
  /** Told of each machine that finished (or never ran) through this worker. */
  readonly onUpdate?: ((campaignId: string, update: Update) => Effect.Effect<void>) | undefined
}

/** A round ends, not the worker, on a conflict with another worker or a database outage. */
const passing = (e: CampaignStoreError | DefenderError): boolean =>
  e._tag === "CampaignStoreError" && (e.reason === "InvalidEvent" || e.reason === "Database")

/** The engine's context over the fetched machines: their states, the tenant's counts, appends through PostgreSQL. */
const contextFor = (
  pg: PgStore,
  campaign: SharedCampaign,
  folder: Pick<Folder, "fs" | "at">,
  client: DefenderClient,
  base: { readonly targets: ReadonlyArray<string>; readonly counts: PhaseCounts; readonly cancelled: Set<string> },
  machines: CampaignState["machines"],
  order: ReadonlyArray<string>,
  emit: (update: Update) => Effect.Effect<void>
): Ctx => {
  const state: CampaignState = {
    campaignId: campaign.definition.campaignId,
    targets: base.targets,
    machines,
    counts: { ...base.counts },
    interruptions: 0,
    completed: false,
    events: 0
  }
  const notHere = Effect.fail(storeError("NotFound", "a worker of a shared campaign opens no campaign of its own"))
  // Its appends read and replace `ctx.state`, as the folder store's answers do for the engine.
  const store: CampaignStore = {
    create: () => notHere,
    open: notHere,
    manifest: pg.manifest(campaign.definition.campaignId),
    append: (event) =>
      Effect.map(pg.append(campaign, event), ({ after, before }) => {
        const was: MachinePhase["_tag"] = ctx.state.machines.get(after.machineId)?.phase._tag ?? before.phase._tag
        const counts = { ...ctx.state.counts }
        counts[was]--
        counts[after.phase._tag]++
        const next = new Map(ctx.state.machines)
        next.set(after.machineId, after)
        return { ...ctx.state, machines: next, counts }
      }),
    ...resultsOf(folder)
  }
  const ctx: Ctx = {
    client,
    store,
    definition: campaign.definition,
    comment: commentFor(campaign.definition),
    emit,
    state,
    order,
    draining: false,
    cancelled: base.cancelled
  }
  return ctx
}

/**
 * One round over the fetched jobs: the engine's steps, then each machine's next job, then the
 * fetched ones done. Whether it started a session (a machine of the submit lane left Waiting).
 */
const round = (
  pg: PgStore,
  campaign: SharedCampaign,
  tenant: string,
  jobs: ReadonlyArray<Fetched>,
  makeCtx: (machines: CampaignState["machines"], order: ReadonlyArray<string>) => Ctx,
  rank: ReadonlyMap<string, number>
): Effect.Effect<boolean, CampaignStoreError | DefenderError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const id = campaign.definition.campaignId
    const ids = [...new Set(jobs.map((j) => j.machineId))].sort((a, b) => (rank.get(a) ?? 0) - (rank.get(b) ?? 0))
    const ctx = makeCtx(yield* pg.machines(id, ids), ids)
    yield* advance(ctx).pipe(
      Effect.catchIf(passing, (e) => Effect.logDebug(`campaign ${id}, tenant ${tenant}: round ended early: ${e.message}`))
    )
    // From the tables, not the round's view: another worker may have moved a machine meanwhile.
    const now = yield* Clock.currentTimeMillis
    const next: Record<Lane, Array<{ machineId: string; startAfter: number }>> = { submit: [], watch: [] }
    const after = yield* pg.machines(id, ids)
    const started = jobs.some((j) => j.lane === "submit" && after.get(j.machineId)?.phase._tag !== "Waiting")
    for (const [machineId, m] of after) {
      const lane = laneOf(m.phase)
      if (lane === undefined) continue
      const startAfter = m.phase._tag === "Waiting"
        ? Math.max(now, m.phase.retryAt ?? now)
        : now + campaign.definition.options.interval
      next[lane].push({ machineId, startAfter })
    }
    for (const lane of ["submit", "watch"] as const) {
      yield* pg.queue.send(campaign, tenant, lane, next[lane])
      yield* pg.queue.complete(campaign, tenant, lane, jobs.filter((j) => j.lane === lane).map((j) => j.id))
    }
    return started
  })

/** A tenant's part of a campaign, until every one of its machines is finished or never ran. */
const serveTenant = (
  pg: PgStore,
  campaign: SharedCampaign,
  tenant: string,
  client: DefenderClient,
  options: WorkOptions
): Effect.Effect<void, CampaignStoreError | DefenderError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const { definition } = campaign
    const id = definition.campaignId
    const root = under(options.results, id)
    const folder = { fs, at: (file: string) => under(root, file) }
    const targets = yield* pg.targets(id, tenant)
    const rank = new Map(targets.map((t, i) => [t, i]))
    const cancelled = new Set<string>()
    const emit = (update: Update) => options.onUpdate?.(id, update) ?? Effect.void
    yield* pg.queue.ensure(campaign, tenant)
    while (true) {
      const once = Effect.gen(function*() {
        const counts = yield* pg.counts(id, tenant)
        if (counts.Finished + counts.NotRun >= targets.length) return "done" as const
        const at = yield* Clock.currentTimeMillis
        const room = at >= definition.options.deadline
          ? BATCH
          : Math.min(BATCH, definition.options.maxSessions - counts.Alive - counts.Submitting)
        const jobs = [
          ...(yield* pg.queue.fetch(campaign, tenant, "watch", BATCH)),
          ...(yield* pg.queue.fetch(campaign, tenant, "submit", room))
        ]
        if (jobs.length === 0) return "wait" as const
        const base = { targets, counts, cancelled }
        const started = yield* round(pg, campaign, tenant, jobs, (machines, order) =>
          contextFor(pg, campaign, folder, client, base, machines, order, emit), rank)
        // A round that started sessions goes on at once: the engine's submit step stops after one
        // interval, and sleeping another would leave the run budget idle half the time (one
        // worker then ran at half its tenant's budget). Refused machines come back only at
        // their retryAt, polls at their interval: the next fetch takes nothing early.
        return started ? "again" as const : "wait" as const
      })
      const next = yield* once.pipe(
        Effect.catchIf(passing, (e) =>
          Effect.as(Effect.logWarning(`campaign ${id}, tenant ${tenant}: ${e.message}; trying again`), "wait" as const))
      )
      if (next === "done") return
      if (next === "wait") yield* Effect.sleep(definition.options.interval)
    }
  })

/** @internal How many machines ended which way, from a manifest. */
export const summaryOf = (campaignId: string, total: number, manifest: ReadonlyArray<ManifestEntry>): Summary => {
  const n = (status: ManifestEntry["status"]) => manifest.filter((e) => e.status === status).length
  return {
    campaignId,
    succeeded: n("Succeeded"),
    failed: n("Failed"),
    timedOut: n("TimeOut"),
    cancelled: n("Cancelled"),
    notRun: n("NotRun"),
    total
  }
}

/** One campaign: its tenants this worker serves, then the wait for the others' to finish. */
const serveCampaign = (
  pg: PgStore,
  campaign: SharedCampaign,
  options: WorkOptions
): Effect.Effect<Summary, CampaignStoreError | DefenderError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const id = campaign.definition.campaignId
    const mine = campaign.tenants.filter((t) => options.tenants.has(t))
    if (mine.length < campaign.tenants.length) {
      const others = campaign.tenants.filter((t) => !options.tenants.has(t))
      yield* Effect.logWarning(`campaign ${id}: this worker has no client for tenant(s) ${others.join(", ")}; others must serve them`)
    }
    yield* Effect.forEach(mine, (t) => serveTenant(pg, campaign, t, options.tenants.get(t)!, options), {
      concurrency: "unbounded",
      discard: true
    })
    while (!(yield* pg.complete(id).pipe(Effect.catchIf(passing, () => Effect.succeed(false))))) {
      yield* Effect.sleep(campaign.definition.options.interval)
    }
    const counts = yield* pg.counts(id)
    const total = Object.values(counts).reduce((a, b) => a + b, 0)
    return summaryOf(id, total, yield* pg.manifest(id))
  })

/** @internal Serves the store's unfinished campaigns (or `options.campaignId`) until each is complete. */
export const work = (
  pg: PgStore,
  options: WorkOptions
): Effect.Effect<Array<Summary>, CampaignStoreError | DefenderError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const served = options.campaignId === undefined
      ? (yield* pg.campaigns).filter((c) => !c.completed)
      : [yield* pg.campaign(options.campaignId)]
    return yield* Effect.forEach(served, (c) => serveCampaign(pg, c, options), { concurrency: "unbounded" })
  })
