/**
 * What every step of the campaign engine shares: the client, the store, the definition,
 * the replayed state (refreshed by every append), the submit order, the drain flag and
 * the actions a cancel was sent for in this run (so that none gets two).
 *
 * @internal
 */
import { Clock, Effect, Option } from "effect"
import type { Update } from "../../Campaign.ts"
import type {
  CampaignDefinition,
  CampaignEvent,
  CampaignState,
  CampaignStore,
  CommandOutcome,
  MachinePhase,
  MachineState
} from "../../CampaignStore.ts"
import type { DefenderClient } from "../../DefenderClient.ts"
import type { MachineAction } from "../../MachineAction.ts"
import type { CampaignStoreError } from "./error.ts"
import { entryFor } from "./replay.ts"

/** @internal The engine's shared, mutable context (one run, one fiber). */
export interface Ctx {
  readonly client: DefenderClient
  readonly store: CampaignStore
  readonly definition: CampaignDefinition
  /** The Comment every action carries (`commentFor(definition)`). */
  readonly comment: string
  readonly emit: (update: Update) => Effect.Effect<void>
  state: CampaignState
  /** The machines in submit order (most recently seen first). */
  order: ReadonlyArray<string>
  draining: boolean
  /** Action ids a cancel was sent for in this run: one cancel each. */
  readonly cancelled: Set<string>
}

/** @internal Appends `event` (durable when it returns) and keeps the new state. */
export const record = (ctx: Ctx, event: CampaignEvent): Effect.Effect<CampaignState, CampaignStoreError> =>
  Effect.map(ctx.store.append(event), (state) => {
    ctx.state = state
    return state
  })

/** @internal The clock's time, epoch milliseconds. */
export const now: Effect.Effect<number> = Clock.currentTimeMillis

/** @internal The machines in a phase, in submit order. */
export const inPhase = <T extends MachinePhase["_tag"]>(
  ctx: Ctx,
  tag: T
): Array<MachineState & { readonly phase: Extract<MachinePhase, { readonly _tag: T }> }> =>
  ctx.order.flatMap((id) => {
    const m = ctx.state.machines.get(id)
    return m !== undefined && m.phase._tag === tag
      ? [m as MachineState & { readonly phase: Extract<MachinePhase, { readonly _tag: T }> }]
      : []
  })

/** @internal Actions alive or of unknown outcome: what counts against `maxSessions`. */
export const aliveCount = (ctx: Ctx): number => ctx.state.counts.Alive + ctx.state.counts.Submitting

/** @internal Every machine finished or never ran. */
export const allDone = (ctx: Ctx): boolean =>
  ctx.state.targets !== undefined &&
  ctx.state.counts.Finished + ctx.state.counts.NotRun === ctx.state.targets.length

/** @internal Each command of an action as the journal records it. */
export const outcomesOf = (action: MachineAction): Array<CommandOutcome> =>
  action.commands.map((c) => ({ index: c.index, type: c.command.type, status: c.commandStatus, errors: c.errors }))

/**
 * @internal Whether a cancelled action never ran: every command still `Created` (or unknown)
 * and none with a start time before `at` (the simulator, like some answers, dates a command
 * that was never started with its planned start).
 */
export const neverStarted = (action: MachineAction, at: number): boolean =>
  action.status === "Cancelled" &&
  action.commands.every((c) =>
    (c.commandStatus === "Created" || c.commandStatus === "Unknown") &&
    (c.startTime === undefined || !(Date.parse(c.startTime) <= at))
  )

/** @internal Writes a machine's manifest line (`MachineFinished`) and reports it. */
export const finish = (ctx: Ctx, machineId: string): Effect.Effect<void, CampaignStoreError> =>
  Effect.gen(function*() {
    const machine = ctx.state.machines.get(machineId)
    const entry = machine === undefined ? Option.none() : entryFor(machine)
    if (Option.isNone(entry)) return
    yield* record(ctx, { _tag: "MachineFinished", entry: entry.value, at: yield* now })
    yield* ctx.emit({ _tag: "MachineFinished", entry: entry.value })
  })

/** @internal Records a machine that never ran and reports its manifest line. */
export const notRun = (
  ctx: Ctx,
  machineId: string,
  error: { readonly _tag: string; readonly message: string }
): Effect.Effect<void, CampaignStoreError> =>
  Effect.gen(function*() {
    yield* record(ctx, { _tag: "NotRun", machineId, error, at: yield* now })
    yield* ctx.emit({ _tag: "MachineFinished", entry: { machineId, status: "NotRun", commands: [], error } })
  })
