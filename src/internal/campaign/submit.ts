/**
 * Starting sessions: while fewer than `maxSessions` actions are alive (Pending and unknown
 * submits count), the campaign is not draining and the deadline has not passed, the waiting
 * machines whose `retryAt` has come are submitted in target order. `Submitting` is journaled
 * (durable) before the run call is sent; its answer decides: 201 `Submitted`; another
 * session on the machine `SubmitRefused` `Busy`; a 429 after the client's retries (the
 * session cap) `CapReached`; an unknown machine, a refusal
 * (403, another 4xx) or a bad argument `NotRun`; a transport error or a 5xx may have created
 * the action, so the machine stays `Submitting` for the adopt step. One tick submits for at
 * most one `interval` (the run budget makes calls wait), so that polls keep their pace.
 *
 * @internal
 */
import { Effect, type Either, Fiber, Option } from "effect"
import type { MachineAction } from "../../MachineAction.ts"
import type { DefenderError } from "../../DefenderError.ts"
import { type Ctx, aliveCount, inPhase, now, notRun, record } from "./context.ts"
import type { CampaignStoreError } from "./error.ts"

type Decision =
  | { readonly _tag: "Refused"; readonly reason: "Busy" | "CapReached" | "Throttled"; readonly wait: number }
  | { readonly _tag: "NotRun"; readonly error: { readonly _tag: string; readonly message: string } }
  | { readonly _tag: "Unknown" }
  | { readonly _tag: "Fatal" }

/** @internal What a failed run call means for its machine. */
export const decide = (e: DefenderError, interval: number): Decision => {
  switch (e._tag) {
    case "ActiveSessionExists":
      return { _tag: "Refused", reason: "Busy", wait: Math.max(interval, 60_000) }
    case "Throttled":
      // The client keeps run calls inside the run budget, so a 429 it could not retry away is
      // the tenant's session cap (the API answers both with the same code); only a 429 the
      // client's budget itself raised would be Throttled, and it waits instead.
      return { _tag: "Refused", reason: "CapReached", wait: Math.max(interval, e.retryAfterMillis ?? 0) }
    case "NotFound":
      return { _tag: "NotRun", error: { _tag: "UnknownMachine", message: e.message } }
    case "PermissionDenied":
    case "InvalidArgument":
      return { _tag: "NotRun", error: { _tag: e._tag, message: e.message } }
    case "AuthenticationError":
      return { _tag: "Fatal" }
    case "HttpError":
      return e.reason === "Status" && e.status !== undefined && e.status >= 400 && e.status < 500 &&
          e.status !== 408 && e.status !== 429
        ? { _tag: "NotRun", error: { _tag: e.code ?? "HttpError", message: e.message } }
        : { _tag: "Unknown" }
    default:
      return { _tag: "Unknown" }
  }
}

type Answer = Either.Either<MachineAction, DefenderError>

/** Records what the run call answered. */
const recordAnswer = (ctx: Ctx, machineId: string, answer: Answer): Effect.Effect<void, CampaignStoreError | DefenderError> =>
  Effect.gen(function*() {
    const at = yield* now
    if (answer._tag === "Right") {
      return yield* record(ctx, { _tag: "Submitted", machineId, machineActionId: answer.right.id, at })
    }
    const decision = decide(answer.left, ctx.definition.options.interval)
    switch (decision._tag) {
      case "Refused":
        return yield* record(ctx, { _tag: "SubmitRefused", machineId, reason: decision.reason, retryAt: at + decision.wait, at })
      case "NotRun":
        return yield* notRun(ctx, machineId, decision.error)
      case "Fatal":
        return yield* Effect.fail(answer.left)
      case "Unknown":
        yield* Effect.logWarning(`campaign: submit on machine ${machineId} has an unknown outcome (${answer.left._tag}); adopting next tick`)
    }
  })

/**
 * How long an interruption waits for a submit in flight. A run call the service has received
 * creates an action whether or not anyone reads the answer: interrupted mid-call, the action
 * would run with nobody to cancel it, its id known only after a resume's adopt. So an
 * interruption first waits (up to this long) for the answer and records it; the
 * interruption's cancels then include its action. Unanswered by then, the call is stopped and
 * the machine stays `Submitting` for the adopt step.
 */
const SUBMIT_WAIT = "30 seconds"

const onInterruptedSubmit = (ctx: Ctx, machineId: string, call: Fiber.RuntimeFiber<Answer>): Effect.Effect<void> =>
  Effect.interruptible(Fiber.join(call)).pipe(
    Effect.timeoutOption(SUBMIT_WAIT),
    Effect.flatMap(Option.match({
      onNone: () =>
        Effect.zipRight(
          Fiber.interrupt(call),
          Effect.logWarning(`campaign: submit on machine ${machineId} unanswered ${SUBMIT_WAIT} after the interruption; adopted on resume`)
        ),
      onSome: (answer) => recordAnswer(ctx, machineId, answer)
    })),
    Effect.catchAll((e) => Effect.logWarning(`campaign: recording the submit on machine ${machineId}: ${e._tag}`))
  )

/** Submits one machine; fails only on the store or a credential that cannot work. */
const submitOne = (ctx: Ctx, machineId: string, attempt: number): Effect.Effect<void, CampaignStoreError | DefenderError> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      yield* record(ctx, { _tag: "Submitting", machineId, attempt, at: yield* now })
      const request = { machineId, commands: ctx.definition.commands, comment: ctx.comment }
      // A fiber of its own, so that an interruption of this one does not stop the call in flight.
      const call = yield* Effect.forkDaemon(Effect.either(ctx.client.runLiveResponse(request)))
      const answer = yield* restore(Fiber.join(call)).pipe(Effect.onInterrupt(() => onInterruptedSubmit(ctx, machineId, call)))
      yield* recordAnswer(ctx, machineId, answer)
    })
  )

/** @internal Submits what the limits allow this tick. */
export const submit = (ctx: Ctx): Effect.Effect<void, CampaignStoreError | DefenderError> =>
  Effect.gen(function*() {
    const { deadline, interval, maxSessions } = ctx.definition.options
    const started = yield* now
    for (const m of inPhase(ctx, "Waiting")) {
      const at = yield* now
      if (ctx.draining || at >= deadline || aliveCount(ctx) >= maxSessions || at - started >= interval) return
      // A machine refused (busy, cap) since the tick began is skipped by its new retryAt.
      const current = ctx.state.machines.get(m.machineId)
      if (current?.phase._tag !== "Waiting" || (current.phase.retryAt ?? 0) > at) continue
      yield* submitOne(ctx, m.machineId, current.attempts + 1)
    }
  })
