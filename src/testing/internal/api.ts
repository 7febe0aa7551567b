/**
 * The Defender API's routes: which path and method is which endpoint, the bearer token check
 * (401) and the quotas (429) in front of each, then the endpoint's answer.
 *
 * @internal
 */
import { Effect } from "effect"
import type { Endpoint } from "../DefenderSimulator.ts"
import { authorized, missingPermission } from "./login.ts"
import { deleteLibraryFile, listLibraryFiles, uploadLibraryFile } from "./library.ts"
import { cancel, getMachineAction, listMachineActions, resultLink, runLiveResponse } from "./machineActions.ts"
import { listMachines } from "./machines.ts"
import { type Quota, throttled } from "./quota.ts"
import { odata, safeDecode } from "./responses.ts"
import type { Call } from "./state.ts"

/**
 * @internal A request's endpoint and its answer. The answer is an effect so the token and the
 * quota are checked (and a call counted) when the request is routed, before any fault is rolled.
 */
export interface Routed {
  readonly endpoint: Endpoint
  readonly answer: Effect.Effect<Response>
}

/** @internal Routes a request under `/api/` (or anything else: `unknown`, 404). */
export const routeApi = (call: Call): Routed => {
  const { now, request, requestId, state } = call
  const path = call.url.pathname
  const api = (endpoint: Endpoint, quota: Quota | undefined, answer: () => Effect.Effect<Response>): Routed => {
    if (!authorized(call)) {
      return {
        endpoint,
        answer: Effect.succeed(odata(401, "Unauthorized", "Authorization token is missing, invalid or expired", requestId))
      }
    }
    const missing = missingPermission(call, endpoint)
    if (missing !== undefined) {
      const message = `The application does not have any of the required application permissions (${
        missing.join(", ")
      }) to access the resource.`
      return { endpoint, answer: Effect.succeed(odata(403, "Forbidden", message, requestId)) }
    }
    const wait = quota === undefined ? 0 : quota(now)
    return { endpoint, answer: wait > 0 ? Effect.succeed(throttled(state.faults, wait, requestId)) : answer() }
  }
  const link = /^\/api\/machineactions\/([^/]+)\/GetLiveResponseResultDownloadLink\(index=(\d+)\)$/.exec(path)
  if (link !== null && request.method === "GET") {
    // Signed now, not when the answer runs: the link exists even if the answer is then dropped.
    return api("getResultLink", state.quotas.results, () =>
      Effect.succeed(resultLink(call, safeDecode(link[1]!), Number(link[2]))))
  }
  const cancelled = /^\/api\/machineactions\/([^/]+)\/cancel$/.exec(path)
  if (cancelled !== null && request.method === "POST") {
    return api("cancel", state.quotas.actions, () => cancel(call, safeDecode(cancelled[1]!)))
  }
  const get = /^\/api\/machineactions\/([^/]+)$/.exec(path)
  if (get !== null && request.method === "GET") {
    return api("getMachineAction", state.quotas.actions, () =>
      Effect.sync(() => getMachineAction(call, safeDecode(get[1]!))))
  }
  if (path === "/api/machineactions" && request.method === "GET") {
    return api("listMachineActions", state.quotas.actions, () => Effect.sync(() => listMachineActions(call)))
  }
  if (path === "/api/machines" && request.method === "GET") {
    return api("listMachines", state.quotas.machines, () => Effect.sync(() => listMachines(call)))
  }
  if (path === "/api/libraryfiles" && request.method === "POST") {
    return api("uploadLibraryFile", state.quotas.actions, () => uploadLibraryFile(call))
  }
  if (path === "/api/libraryfiles" && request.method === "GET") {
    return api("listLibraryFiles", state.quotas.actions, () => Effect.sync(() => listLibraryFiles(call)))
  }
  const library = /^\/api\/libraryfiles\/([^/]+)$/.exec(path)
  if (library !== null && request.method === "DELETE") {
    return api("deleteLibraryFile", state.quotas.actions, () =>
      Effect.sync(() => deleteLibraryFile(call, safeDecode(library[1]!))))
  }
  const run = /^\/api\/machines\/([^/]+)\/runliveresponse$/.exec(path)
  if (run !== null && request.method === "POST") {
    return api("runLiveResponse", state.quotas.runs, () =>
      runLiveResponse(call, safeDecode(run[1]!)))
  }
  return {
    endpoint: "unknown",
    answer: Effect.succeed(odata(404, "ResourceNotFound", `No such endpoint: ${request.method} ${path}`, requestId))
  }
}
