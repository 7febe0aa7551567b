/**
 * The machine-action endpoints: get (`GET /api/machineactions/{id}`), run live
 * response (`POST /api/machines/{id}/runliveresponse`) and cancel
 * (`POST /api/machineactions/{id}/cancel`).
 *
 * @internal
 */
import { HttpClientRequest } from "@effect/platform"
import { Effect, Either } from "effect"
import type { RunRequest } from "../../DefenderClient.ts"
import { ActiveSessionExists, type DefenderError, HttpError, InvalidArgument } from "../../DefenderError.ts"
import * as MachineAction from "../../MachineAction.ts"
import { machineAction } from "./answers.ts"
import { checkActionId, checkMachineId } from "./arguments.ts"
import { apiCall } from "./authorizedCall.ts"
import type { ClientContext } from "./context.ts"

const actionUrl = (ctx: ClientContext, id: string) =>
  `${ctx.cloud.apiBaseUrl}/api/machineactions/${encodeURIComponent(id)}`

/** @internal `DefenderClient.getMachineAction`. */
export const getMachineAction = (
  ctx: ClientContext
): (machineActionId: string) => Effect.Effect<MachineAction.MachineAction, DefenderError> =>
  Effect.fn("DefenderClient.getMachineAction")(function*(machineActionId: string) {
    const id = yield* checkActionId(machineActionId)
    yield* Effect.annotateCurrentSpan("mde.machine_action_id", id)
    const url = actionUrl(ctx, id)
    const answer = yield* apiCall(ctx, HttpClientRequest.get(url), `machine action ${id}`, "machineActions")
    return yield* machineAction(answer, { method: "GET", url })
  })

/**
 * Run calls for the same machine go one at a time within one client, so two fibers
 * never race each other into ActiveRequestAlreadyExists.
 */
const makeMachineLocks = () => {
  const locks = new Map<string, Effect.Semaphore>()
  return (machineId: string) => {
    let lock = locks.get(machineId)
    if (lock === undefined) {
      lock = Effect.unsafeMakeSemaphore(1)
      locks.set(machineId, lock)
    }
    return lock.withPermits(1)
  }
}

const isActiveRequest = (e: DefenderError): e is HttpError =>
  e._tag === "HttpError" && e.status === 400 && e.code === "ActiveRequestAlreadyExists"

/** @internal `DefenderClient.runLiveResponse`: one call, retried only on a 429. */
export const runLiveResponse = (
  ctx: ClientContext
): (request: RunRequest) => Effect.Effect<MachineAction.MachineAction, DefenderError> => {
  const machineLock = makeMachineLocks()
  return Effect.fn("DefenderClient.runLiveResponse")(function*(request: RunRequest) {
    const machineId = yield* checkMachineId(request.machineId)
    const body = MachineAction.toRequestBody(request.commands, request.comment)
    if (Either.isLeft(body)) return yield* new InvalidArgument({ argument: "commands", detail: body.left })
    yield* Effect.annotateCurrentSpan("mde.machine_id", machineId)
    const url = `${ctx.cloud.apiBaseUrl}/api/machines/${encodeURIComponent(machineId)}/runliveresponse`
    const answer = yield* apiCall(
      ctx,
      HttpClientRequest.post(url).pipe(HttpClientRequest.bodyUnsafeJson(body.right)),
      `machine ${machineId}`,
      "run"
    ).pipe(
      machineLock(machineId),
      Effect.catchIf(isActiveRequest, (e) =>
        Effect.fail(new ActiveSessionExists({ machineId, ...(e.target === undefined ? {} : { target: e.target }) })))
    )
    const action = yield* machineAction(answer, { method: "POST", url })
    yield* Effect.annotateCurrentSpan("mde.machine_action_id", action.id)
    return action
  })
}

/** @internal `DefenderClient.cancelMachineAction`. */
export const cancelMachineAction = (
  ctx: ClientContext
): (machineActionId: string, comment: string) => Effect.Effect<MachineAction.MachineAction, DefenderError> =>
  Effect.fn("DefenderClient.cancelMachineAction")(function*(machineActionId: string, comment: string) {
    const id = yield* checkActionId(machineActionId)
    yield* Effect.annotateCurrentSpan("mde.machine_action_id", id)
    const url = `${actionUrl(ctx, id)}/cancel`
    const answer = yield* apiCall(
      ctx,
      HttpClientRequest.post(url).pipe(HttpClientRequest.bodyUnsafeJson({ Comment: comment })),
      `machine action ${id}`,
      "machineActions",
      // Cancelling twice does no harm, so a cancel is retried like a read.
      true
    )
    return yield* machineAction(answer, { method: "POST", url })
  })
