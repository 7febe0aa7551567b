/**
 * One request, end to end: latency, routing to the token endpoint, storage or the API, the
 * injected faults, and the entry in the received log.
 *
 * @internal
 */
import { Clock, Duration, Effect } from "effect"
import type { Fault } from "../DefenderSimulator.ts"
import { type Routed, routeApi } from "./api.ts"
import { damageDownload, faultAnswer, latency, rollAnswerFault } from "./faults.ts"
import { openidConfiguration, tokenEndpoint } from "./login.ts"
import { safeDecode } from "./responses.ts"
import type { Call, State } from "./state.ts"
import { blobEndpoint } from "./storage.ts"

/** @internal Answers one request on the calling fiber's `Clock`; a dropped connection is `undefined`. */
export const handle = (state: State, request: Request): Effect.Effect<Response | undefined> =>
  Effect.gen(function*() {
    const wait = latency(state.faults)
    if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
    const now = yield* Clock.currentTimeMillis
    const url = new URL(request.url)
    const requestId = crypto.randomUUID()
    const { answer, endpoint } = route({ state, request, url, now, requestId })
    const headers: Record<string, string> = {}
    request.headers.forEach((value, key) => {
      headers[key] = value
    })
    const fault = rollAnswerFault(state, endpoint)
    const injected: Array<Fault> = fault === undefined ? [] : [fault]
    let response = fault === "drop"
      ? undefined
      : fault !== undefined
      ? faultAnswer(state, fault, requestId)
      : yield* answer
    if (response !== undefined && endpoint === "blob" && response.ok) {
      response = yield* damageDownload(state, response, injected)
    }
    // Every answer carries the service's time, as Microsoft's do (and node:http would add the
    // real clock's when served): the simulated clock, shifted by `clockOffset`.
    if (response !== undefined && !response.headers.has("date")) {
      response.headers.set("date", new Date(now + state.settings.clockOffset).toUTCString())
    }
    state.received.push({
      endpoint,
      method: request.method,
      url: request.url,
      headers,
      at: now,
      status: response?.status ?? 0,
      faults: injected
    })
    return response
  })

/** The token endpoint, storage, or the API. */
const route = (call: Call): Routed => {
  const path = call.url.pathname
  const login = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(path)
  if (login !== null && call.request.method === "POST") {
    return { endpoint: "token", answer: tokenEndpoint(call, safeDecode(login[1]!)) }
  }
  // MSAL (`@azure/identity`) reads the tenant's metadata before it logs in; counted as "token".
  const metadata = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/.exec(path)
  if (metadata !== null && call.request.method === "GET") {
    return { endpoint: "token", answer: openidConfiguration(call, safeDecode(metadata[1]!)) }
  }
  if (path.startsWith("/blob/") && call.request.method === "GET") {
    return { endpoint: "blob", answer: Effect.succeed(blobEndpoint(call)) }
  }
  return routeApi(call)
}
