/**
 * Machine actions as the Defender API serves them: run live response (which creates one, on the
 * schedule of `sessions.ts`), get, list, cancel, the result download link, and an action's JSON
 * at a moment of its lifecycle.
 *
 * @internal
 */
import { Effect } from "effect"
import type { CommandSpec } from "../DefenderSimulator.ts"
import { jsonObject, misCased, misCasedAnswer } from "./bodies.ts"
import { fileContent, transcriptFor } from "./content.ts"
import { listAnswer } from "./paging.ts"
import { json, odata } from "./responses.ts"
import { refuseRun, type Schedule, schedule } from "./sessions.ts"
import { type Call, putBlob, type SimAction, type State, statusAt } from "./state.ts"
import { signLink } from "./storage.ts"

/** @internal A machine action as the API answers it at `now`. */
export const actionJson = (action: SimAction, now: number): Record<string, unknown> => {
  const status = statusAt(action, now)
  const iso = (t: number) => new Date(t).toISOString()
  return {
    "@odata.context": "https://api.security.microsoft.com/api/$metadata#MachineActions/$entity",
    id: action.id,
    type: "LiveResponse",
    title: null,
    requestor: "simulator@contoso.example",
    requestorComment: action.comment,
    status,
    machineId: action.machineId,
    computerDnsName: action.computerDnsName ?? `${action.machineId}.contoso.example`,
    creationDateTimeUtc: iso(action.createdAt),
    lastUpdateDateTimeUtc: iso(Math.min(now, action.endsAt)),
    commands: action.commands.map((c, index) => {
      const done = status === "Succeeded" || (status === "Failed" && index > 0)
      return {
        index,
        startTime: status === "Pending" || action.expired === true ? null : iso(action.startsAt),
        endTime: done ? iso(action.endsAt) : null,
        commandStatus: status === "Succeeded"
          ? "Completed"
          : status === "Failed" && index === 0
          ? "Failed"
          : status === "Pending"
          ? "Created"
          : status === "InProgress"
          ? "InProgress"
          : "Created",
        errors: status === "Failed" && index === 0 ? c.errors : [],
        command: { type: c.spec.type, params: c.spec.params }
      }
    })
  }
}

/** @internal Answers `GET /api/machineactions/{id}`: 404 for an unknown action, or one not yet visible. */
export const getMachineAction = ({ now, requestId, state }: Call, id: string): Response => {
  const action = state.actions.get(id)
  return action === undefined || now < action.createdAt + state.settings.visibleAfter
    ? odata(404, "ResourceNotFound", "Machine action was not found", requestId)
    : json(200, actionJson(action, now))
}

const CANCEL_FIELDS: ReadonlyArray<string> = ["Comment"]

/**
 * @internal Answers `POST /api/machineactions/{id}/cancel` (body `{"Comment": "…"}`): only a
 * `Pending` or `InProgress` action can be.
 */
export const cancel = ({ now, request, requestId, state }: Call, id: string): Effect.Effect<Response> =>
  Effect.map(Effect.promise(() => request.text()), (text): Response => {
    const action = state.actions.get(id)
    if (action === undefined) return odata(404, "ResourceNotFound", "Machine action was not found", requestId)
    const body = jsonObject(text) ?? {}
    const wrong = misCased(Object.keys(body), CANCEL_FIELDS)
    if (wrong !== undefined) return misCasedAnswer(wrong, CANCEL_FIELDS, requestId)
    const status = statusAt(action, now)
    if (status !== "Pending" && status !== "InProgress") {
      return odata(400, "InvalidRequest", `Machine action is already ${status}`, requestId)
    }
    if (typeof body.Comment !== "string") return odata(400, "InvalidRequestBody", "Comment is required", requestId)
    action.cancelledAt = now
    return json(200, actionJson(action, now))
  })

/** @internal Answers `GET .../GetLiveResponseResultDownloadLink(index=N)`: a SAS link once the action succeeded. */
export const resultLink = ({ now, requestId, state }: Call, id: string, index: number): Response => {
  const action = state.actions.get(id)
  if (action === undefined) return odata(404, "ResourceNotFound", `Machine action ${id} was not found`, requestId)
  const command = action.commands[index]
  if (command === undefined) {
    return odata(404, "ResourceNotFound", `Machine action ${id} has no command at index ${index}`, requestId)
  }
  if (statusAt(action, now) !== "Succeeded" || command.blob === undefined) {
    return odata(404, "ResourceNotFound", `Command ${index} of machine action ${id} has no result`, requestId)
  }
  const url = signLink(state, id, command.blob, now)
  return json(200, { "@odata.context": "https://api.security.microsoft.com/api/$metadata#Edm.String", value: url })
}

const RUN_FIELDS: ReadonlyArray<string> = ["Commands", "Comment"]
const COMMAND_FIELDS: ReadonlyArray<string> = ["type", "params", "key", "value"]

/** A command's or a parameter's name spelt in another case than the API's (`Type`, `Params`, `Key`…). */
const misCasedCommand = (commands: unknown): string | undefined => {
  if (!Array.isArray(commands)) return undefined
  for (const command of commands) {
    if (typeof command !== "object" || command === null) continue
    const wrong = misCased(Object.keys(command), COMMAND_FIELDS) ??
      (Array.isArray(command.params)
        ? command.params.map((p: unknown) => (typeof p === "object" && p !== null ? misCased(Object.keys(p), COMMAND_FIELDS) : undefined))
          .find((w: string | undefined) => w !== undefined)
        : undefined)
    if (wrong !== undefined) return wrong
  }
  return undefined
}

/**
 * @internal Answers `POST /api/machines/{id}/runliveresponse`: a new action, one at a time per
 * machine and at most the session cap at once (see `sessions.ts` for who may start one and
 * when it runs). A `Failed` action has no results after its failed command.
 */
export const runLiveResponse = (call: Call, machineId: string): Effect.Effect<Response> =>
  Effect.map(Effect.promise(() => call.request.text()), (text): Response => {
    const { now, requestId, state } = call
    const body = jsonObject(text)
    if (body === undefined) return odata(400, "InvalidRequestBody", "The request body must be a JSON object", requestId)
    const wrong = misCased(Object.keys(body), RUN_FIELDS) ?? misCasedCommand(body.Commands)
    if (wrong !== undefined) return misCasedAnswer(wrong, [...RUN_FIELDS, ...COMMAND_FIELDS], requestId)
    const commands = Array.isArray(body.Commands) ? body.Commands : undefined
    const valid = commands !== undefined && commands.length > 0 && commands.every((c: any) =>
      (c?.type === "RunScript" || c?.type === "GetFile" || c?.type === "PutFile") && Array.isArray(c.params) &&
      c.params.every((p: any) => typeof p?.key === "string" && typeof p?.value === "string")
    )
    if (!valid || typeof body.Comment !== "string") {
      return odata(400, "InvalidRequestBody", "Commands (type, params) and Comment are required", requestId)
    }
    const refused = refuseRun(call, machineId)
    if (refused !== undefined) return refused
    const action = newAction(state, commands as Array<CommandSpec>, machineId, body.Comment, now)
    state.actions.set(action.id, action)
    return json(201, actionJson(action, now))
  })

/** A new action running `specs`, its results already in storage (they are linked only once it succeeded). */
const newAction = (
  state: State,
  specs: ReadonlyArray<CommandSpec>,
  machineId: string,
  comment: string,
  now: number
): SimAction => {
  const machine = state.settings.machines?.get(machineId)
  const when: Schedule = schedule(state, machine, specs, now)
  const action: SimAction = {
    id: crypto.randomUUID(),
    machineId,
    comment,
    createdAt: now,
    ...when,
    computerDnsName: machine?.properties?.computerDnsName,
    cancelledAt: undefined,
    commands: []
  }
  let failed = false
  for (const spec of specs) {
    const param = (key: string) => spec.params.find((p) => p.key === key)?.value ?? ""
    let result: Uint8Array | undefined
    if (!failed && spec.type === "RunScript") {
      result = transcriptFor(param("ScriptName"), param("Args"), state.sequence)
    }
    if (!failed && spec.type === "GetFile") result = fileContent(param("Path"), 64 * 1024)
    if (when.outcome === "Failed") failed = true
    action.commands.push({
      spec,
      blob: result === undefined || failed ? undefined : putBlob(state, result, "application/octet-stream"),
      errors: failed ? ["Script execution failed"] : []
    })
  }
  return action
}

/** @internal The properties `$filter` may name on the machine actions list. */
export const ACTION_FIELDS: ReadonlySet<string> = new Set([
  "id",
  "machineId",
  "computerDnsName",
  "status",
  "type",
  "requestor",
  "requestorComment",
  "creationDateTimeUtc",
  "lastUpdateDateTimeUtc"
])

/** @internal Answers `GET /api/machineactions` (`$filter`, `$top`, `$skip`, `@odata.nextLink`), newest first. */
export const listMachineActions = (call: Call): Response => {
  const { now, state } = call
  const visible = [...state.actions.values()]
    .filter((a) => now >= a.createdAt + state.settings.visibleAfter)
    .sort((a, b) => b.createdAt - a.createdAt)
  return listAnswer(call, {
    context: "https://api.security.microsoft.com/api/$metadata#MachineActions",
    fields: ACTION_FIELDS,
    items: visible.map((a) => {
      const { "@odata.context": _, ...item } = actionJson(a, now)
      return item
    })
  })
}
