/**
 * What the engine does with an action it was told about (by a poll or a cancel's answer):
 * an ended one is `ActionEnded` (then its results are collected, or its manifest line is
 * written); one this run cancelled before it ever started is `PendingTimedOut`, its machine
 * tried again later; one still alive is left for the next poll. And the one cancel an
 * action may get from the engine.
 *
 * @internal
 */
import type { FileSystem } from "@effect/platform"
import { Effect } from "effect"
import type { EndStatus } from "../../CampaignStore.ts"
import { isFinal, type MachineAction } from "../../MachineAction.ts"
import { collect } from "./collect.ts"
import { type Ctx, finish, neverStarted, now, outcomesOf, record } from "./context.ts"
import type { CampaignStoreError } from "./error.ts"

/** @internal When a machine whose pending action was cancelled is tried again. */
export const retryDelay = (ctx: Ctx): number => Math.max(ctx.definition.options.interval, ctx.definition.options.pendingTimeout)

/** @internal What the engine does about one machine's action; `collectNow` false leaves collecting to a resume. */
export type ActionStep<A> = (
  ctx: Ctx,
  machineId: string,
  about: A,
  collectNow?: boolean
) => Effect.Effect<void, CampaignStoreError, FileSystem.FileSystem>

/** @internal Records what `action` (of alive machine `machineId`) says, collecting when it succeeded (unless `collectNow` is false: a resume will). */
export const observe: ActionStep<MachineAction> = (ctx, machineId, action, collectNow = true) =>
  Effect.gen(function*() {
    const machine = ctx.state.machines.get(machineId)
    if (machine?.phase._tag !== "Alive" || machine.phase.machineActionId !== action.id || !isFinal(action.status)) return
    const at = yield* now
    if (ctx.cancelled.has(action.id) && neverStarted(action, at)) {
      yield* record(ctx, { _tag: "PendingTimedOut", machineId, machineActionId: action.id, retryAt: at + retryDelay(ctx), at })
      return
    }
    const status = action.status as EndStatus
    yield* record(ctx, { _tag: "ActionEnded", machineId, machineActionId: action.id, status, commands: outcomesOf(action), at })
    if (status !== "Succeeded") yield* finish(ctx, machineId)
    else if (collectNow) yield* collect(ctx, machineId)
  })

/**
 * @internal Sends the one cancel the engine gives an action (none if it had it) and records
 * the answer. A refused cancel (the action ended meanwhile) is left to the next poll.
 */
export const cancelOnce: ActionStep<string> = (ctx, machineId, machineActionId, collectNow = true) =>
  Effect.gen(function*() {
    if (ctx.cancelled.has(machineActionId)) return
    ctx.cancelled.add(machineActionId)
    const answer = yield* Effect.either(ctx.client.cancelMachineAction(machineActionId, ctx.comment))
    if (answer._tag === "Left") {
      // Defender refuses the cancel of an action that has ended meanwhile (400 InvalidRequest,
      // "Machine action is already …"): a race, not a fault; the next poll records how it ended.
      const ended = answer.left._tag === "HttpError" && answer.left.status === 400
      const log = ended ? Effect.logDebug : Effect.logWarning
      yield* log(`campaign: cancel of action ${machineActionId}: ${ended ? "it had already ended" : answer.left._tag}`)
      return
    }
    yield* observe(ctx, machineId, answer.right, collectNow)
  })
