/**
 * The campaign loop, and `Campaign.start` / `resume` / `summary` over it. The loop runs in
 * its own fiber, feeding a queue the returned stream reads: every tick adopts, polls,
 * collects, submits and applies the deadline (each in its file), then reports `Progress`;
 * it ends with `Completed` once every machine finished or never ran, or with `Interrupted`
 * once a drain left nothing alive. Interrupting the stream interrupts the loop, whose
 * finalizer sends every alive action its one cancel (within 30 seconds in all), records
 * what the answers say, then `Interrupted`.
 *
 * @internal
 */
import type { FileSystem } from "@effect/platform"
import { Effect, Exit, Queue, Stream, Take } from "effect"
import type { RunOptions, Summary, Update } from "../../Campaign.ts"
import type { Campaign, CampaignDefinition, CampaignState } from "../../CampaignStore.ts"
import { CampaignStore } from "../../CampaignStore.ts"
import type { Definition } from "../../Campaign.ts"
import { DefenderClient } from "../../DefenderClient.ts"
import type { DefenderError } from "../../DefenderError.ts"
import { adopt } from "./adopt.ts"
import { type Ctx, aliveCount, allDone, inPhase, now, record } from "./context.ts"
import { passDeadline } from "./deadline.ts"
import { commentFor, makeDefinition } from "./definition.ts"
import type { CampaignStoreError } from "./error.ts"
import { cancelOnce } from "./observe.ts"
import { poll, settle } from "./poll.ts"
import { submit } from "./submit.ts"
import { resolveTargets } from "./targets.ts"

type E = DefenderError | CampaignStoreError
type R = DefenderClient | CampaignStore | FileSystem.FileSystem

/** @internal How many machines ended which way, from a state. */
export const summarize = (definition: CampaignDefinition, state: CampaignState): Summary => {
  const counts = { Succeeded: 0, Failed: 0, TimeOut: 0, Cancelled: 0, NotRun: 0 }
  for (const m of state.machines.values()) {
    if (m.phase._tag === "Finished") counts[m.phase.entry.status]++
    if (m.phase._tag === "NotRun") counts.NotRun++
  }
  return {
    campaignId: definition.campaignId,
    succeeded: counts.Succeeded,
    failed: counts.Failed,
    timedOut: counts.TimeOut,
    cancelled: counts.Cancelled,
    notRun: counts.NotRun,
    total: state.targets?.length ?? 0
  }
}

const nextRunAt = (ctx: Ctx, at: number): number | undefined => {
  let next: number | undefined
  for (const m of inPhase(ctx, "Waiting")) {
    const t = Math.max(at, m.phase.retryAt ?? at)
    next = next === undefined ? t : Math.min(next, t)
  }
  return next
}

/** @internal One round over the machines of `ctx`: adopt, poll, collect, submit, the deadline (also a shared campaign's worker's). */
export const advance = (ctx: Ctx): Effect.Effect<void, E, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    yield* adopt(ctx)
    yield* poll(ctx)
    yield* settle(ctx)
    yield* submit(ctx)
    yield* passDeadline(ctx)
  })

const tick = (ctx: Ctx): Effect.Effect<void, E, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    yield* advance(ctx)
    const at = yield* now
    yield* ctx.emit({
      _tag: "Progress",
      state: ctx.state,
      alive: aliveCount(ctx),
      maxSessions: ctx.definition.options.maxSessions,
      nextRunAt: nextRunAt(ctx, at),
      at
    })
  })

const idle = (ctx: Ctx): boolean =>
  ctx.state.counts.Alive + ctx.state.counts.Submitting + ctx.state.counts.Collecting + ctx.state.counts.Ended === 0

const complete = (ctx: Ctx): Effect.Effect<void, CampaignStoreError> =>
  Effect.gen(function*() {
    if (!ctx.state.completed) yield* record(ctx, { _tag: "Completed", at: yield* now })
    yield* ctx.emit({ _tag: "Completed", summary: summarize(ctx.definition, ctx.state) })
  })

const loop = (ctx: Ctx): Effect.Effect<void, E, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    while (true) {
      yield* tick(ctx)
      if (allDone(ctx)) return yield* complete(ctx)
      if (ctx.draining && idle(ctx)) return yield* record(ctx, { _tag: "Interrupted", at: yield* now })
      yield* Effect.sleep(ctx.definition.options.interval)
    }
  })

/** The second Ctrl-C: one cancel per alive action, what the answers say recorded, then `Interrupted`. */
const cancelAlive = (ctx: Ctx): Effect.Effect<void, never, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    for (const m of inPhase(ctx, "Alive")) yield* cancelOnce(ctx, m.machineId, m.phase.machineActionId, false)
    yield* record(ctx, { _tag: "Interrupted", at: yield* now })
  }).pipe(
    Effect.timeout("30 seconds"),
    Effect.catchAll((e) => Effect.logWarning(`campaign: while cancelling the alive actions: ${e._tag}`))
  )

const runCampaign = (
  load: Effect.Effect<{ readonly campaign: Campaign; readonly resumed: boolean }, E, R>,
  options: RunOptions | undefined,
  emit: (update: Update) => Effect.Effect<void>
): Effect.Effect<void, E, R> =>
  Effect.gen(function*() {
    const client = yield* DefenderClient
    const store = yield* CampaignStore
    const { campaign, resumed } = yield* load
    const ctx: Ctx = {
      client,
      store,
      definition: campaign.definition,
      comment: commentFor(campaign.definition),
      emit,
      state: campaign.state,
      order: campaign.state.targets ?? [],
      draining: false,
      cancelled: new Set()
    }
    if (options?.drain !== undefined) {
      yield* Effect.fork(Effect.andThen(options.drain, () => (ctx.draining = true)))
    }
    const run = Effect.gen(function*() {
      if (!ctx.state.completed) yield* resolveTargets(ctx)
      yield* emit({ _tag: "Started", campaignId: ctx.definition.campaignId, targets: ctx.order.length, resumed })
      if (ctx.state.completed) return yield* complete(ctx)
      yield* loop(ctx)
    })
    yield* Effect.onInterrupt(run, () => cancelAlive(ctx))
  })

const updates = (
  load: Effect.Effect<{ readonly campaign: Campaign; readonly resumed: boolean }, E, R>,
  options: RunOptions | undefined
): Stream.Stream<Update, E, R> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const queue = yield* Queue.unbounded<Take.Take<Update, E>>()
    const emit = (update: Update) => Effect.asVoid(Queue.offer(queue, Take.of(update)))
    yield* Effect.forkScoped(
      runCampaign(load, options, emit).pipe(
        Effect.exit,
        Effect.flatMap((exit) => Queue.offer(queue, Exit.isSuccess(exit) ? Take.end : Take.failCause(exit.cause)))
      )
    )
    return Stream.flattenTake(Stream.fromQueue(queue))
  }))

/** @internal `Campaign.start`. */
export const start = (definition: Definition, options?: RunOptions): Stream.Stream<Update, E, R> =>
  updates(
    Effect.gen(function*() {
      const store = yield* CampaignStore
      const made = yield* makeDefinition(definition)
      return { campaign: yield* store.create(made), resumed: false }
    }),
    options
  )

/** @internal `Campaign.resume`. */
export const resume = (options?: RunOptions): Stream.Stream<Update, E, R> =>
  updates(Effect.map(Effect.flatMap(CampaignStore, (s) => s.open), (campaign) => ({ campaign, resumed: true })), options)

/** @internal `Campaign.summary`. */
export const summary: Effect.Effect<Summary, CampaignStoreError, CampaignStore> = Effect.flatMap(
  CampaignStore,
  (store) => Effect.map(store.open, (c) => summarize(c.definition, c.state))
)

