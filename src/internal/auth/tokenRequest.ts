/**
 * One token request with the client-credentials grant: the form, the reading of
 * Entra ID's answer (token, `expires_in`, `refresh_in`, `AADSTS` errors), and the
 * bounded retry of a flaky or throttling endpoint that honours `Retry-After`.
 *
 * @internal
 */
import { HttpClient, HttpClientRequest } from "@effect/platform"
import type { HttpClientResponse } from "@effect/platform"
import { Clock, Duration, Effect, Option, Redacted, Schedule, Schema } from "effect"
import type { ClientSecretOptions, IssuedToken } from "../../DefenderAuth.ts"
import * as DefenderCloud from "../../DefenderCloud.ts"
import { AuthenticationError } from "../../DefenderError.ts"
import { noRedirects } from "../noRedirects.ts"
import { clean, unreachable } from "./credentialError.ts"
import { parseRetryAfter } from "../retryAfter.ts"

/** @internal How long one attempt may take (sending, answer, body): 30 seconds. */
export const REQUEST_TIMEOUT: Duration.Duration = Duration.seconds(30)

/** @internal Attempts of one token request: the first and two retries. */
export const ATTEMPTS = 3

/**
 * @internal The longest wait between two attempts, whatever `Retry-After` asks: 30 seconds,
 * so a token request ends within about 3 × 30 s of answers and 2 × 30 s of waits.
 */
export const MAX_RETRY_WAIT_MILLIS = 30_000

/** An attempt's failure, with the wait the endpoint asked for before the next one. */
interface Failed {
  readonly error: AuthenticationError
  readonly retryAfterMillis: number | undefined
}

const failed = (error: AuthenticationError, retryAfterMillis?: number): Failed => ({ error, retryAfterMillis })

const TokenErrorBody = Schema.Struct({
  error: Schema.optional(Schema.String),
  error_description: Schema.optional(Schema.String),
  error_codes: Schema.optional(Schema.Array(Schema.Number)),
  trace_id: Schema.optional(Schema.String),
  correlation_id: Schema.optional(Schema.String)
})
const decodeTokenError = Schema.decodeUnknownOption(TokenErrorBody)

/** A positive, finite number of seconds, as a number or a plain decimal string; else `undefined`. */
const seconds = (value: unknown): number | undefined => {
  const n = typeof value === "number"
    ? value
    : typeof value === "string" && /^\s*\d+(?:\.\d+)?\s*$/.test(value)
    ? Number(value)
    : Number.NaN
  return Number.isFinite(n) && n > 0 ? n : undefined
}

const shown = (value: unknown): string =>
  value === undefined ? "none" : (JSON.stringify(value) ?? typeof value).slice(0, 40)

/**
 * @internal Reads a 2xx answer: the token, its expiry and (MSAL's `refresh_in`) when to
 * refresh it, or what is wrong with the answer (never the token itself).
 */
export const readTokenAnswer = (body: unknown, now: number): IssuedToken | string => {
  const answer: Record<string, unknown> = typeof body === "object" && body !== null ? body as Record<string, unknown> : {}
  const token = answer["access_token"]
  if (typeof token !== "string" || token === "") return "the token endpoint's answer holds no access_token"
  const expiresIn = seconds(answer["expires_in"])
  if (expiresIn === undefined) {
    return `the token endpoint's answer holds an access_token but no usable expires_in (got ${shown(answer["expires_in"])})`
  }
  const expiresAt = now + expiresIn * 1000
  const refreshIn = seconds(answer["refresh_in"])
  const refreshAt = refreshIn === undefined ? undefined : now + refreshIn * 1000
  return {
    token: Redacted.make(token),
    expiresAt,
    ...(refreshAt !== undefined && refreshAt < expiresAt ? { refreshAt } : {})
  }
}

/** A non-2xx answer as the error it is: throttling and 5xx are worth another attempt, a refusal is not. */
const refusal = (
  response: HttpClientResponse.HttpClientResponse,
  body: Option.Option<unknown>,
  now: number,
  scrub: (text: string) => string
): Failed => {
  const status = response.status
  if (status === 429 || status >= 500) {
    const wait = Option.getOrUndefined(parseRetryAfter(response.headers, now, MAX_RETRY_WAIT_MILLIS))
    const what = status === 429 ? "is throttling token requests" : "answered"
    return failed(unreachable(`the token endpoint ${what} (HTTP ${status})`, status), wait)
  }
  const error = Option.flatMap(body, decodeTokenError)
  if (Option.isNone(error)) return failed(unreachable(`the token endpoint answered HTTP ${status}`, status))
  const e = error.value
  return failed(
    new AuthenticationError({
      reason: "TokenRequestFailed",
      status,
      errorCodes: e.error_codes ?? [],
      // Whatever Entra ID echoes (the secret, a token, an assertion) stays out of the error.
      ...(e.error === undefined ? {} : { error: clean(scrub(e.error)) }),
      ...(e.error_description === undefined ? {} : { description: clean(scrub(e.error_description)) }),
      ...(e.trace_id === undefined ? {} : { traceId: clean(e.trace_id) }),
      ...(e.correlation_id === undefined ? {} : { correlationId: clean(e.correlation_id) })
    })
  )
}

const attempt = (options: ClientSecretOptions): Effect.Effect<IssuedToken, Failed, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const cloud = options.cloud ?? DefenderCloud.commercial
    const secret = Redacted.value(options.clientSecret)
    // The secret must not survive in anything we return, even if Entra ID echoes it.
    const scrub = (text: string) => secret === "" ? text : text.split(secret).join("<redacted>")
    const url = `${cloud.authorityHost}/${encodeURIComponent(options.tenantId)}/oauth2/v2.0/token`
    const request = HttpClientRequest.post(url).pipe(
      HttpClientRequest.acceptJson,
      HttpClientRequest.bodyUrlParams({
        grant_type: "client_credentials",
        client_id: options.clientId,
        client_secret: secret,
        scope: cloud.scope
      })
    )
    const response = yield* client.execute(request).pipe(
      Effect.mapError((e) => failed(unreachable(`the token request could not be sent (${e.reason})`))),
      // The body holds the secret: a 307/308 would send it to wherever the redirect points.
      noRedirects
    )
    if (response.status >= 300 && response.status < 400) {
      // Not retried: a redirect is the configuration's doing, not a flaky endpoint.
      return yield* Effect.fail(failed(
        new AuthenticationError({
          reason: "TokenRequestFailed",
          status: response.status,
          errorCodes: [],
          error:
            "it answered with a redirect, which is never followed (the request holds the secret): check AZURE_AUTHORITY_HOST"
        })
      ))
    }
    const body = yield* response.json.pipe(Effect.option)
    const now = yield* Clock.currentTimeMillis
    if (response.status < 200 || response.status >= 300) return yield* Effect.fail(refusal(response, body, now, scrub))
    const issued = readTokenAnswer(Option.getOrUndefined(body), now)
    return typeof issued === "string" ? yield* Effect.fail(failed(unreachable(issued, response.status))) : issued
  }).pipe(
    Effect.timeoutFail({
      duration: REQUEST_TIMEOUT,
      onTimeout: () => failed(unreachable(`no answer within ${Duration.format(REQUEST_TIMEOUT)}`))
    })
  )

// Backoff when the endpoint names no wait; its Retry-After (capped) replaces it when it does.
const retrySchedule: Schedule.Schedule<unknown, Failed> = Schedule.exponential("500 millis").pipe(
  Schedule.intersect(Schedule.recurs(ATTEMPTS - 1)),
  Schedule.intersect(Schedule.identity<Failed>()),
  Schedule.whileInput((f: Failed) => f.error.reason === "TokenEndpointUnreachable"),
  Schedule.modifyDelay(([, f], delay) => f.retryAfterMillis === undefined ? delay : Duration.millis(f.retryAfterMillis))
)

/** @internal Requests one token; a flaky or throttling endpoint is retried, a refusal never is. */
export const requestToken = (
  options: ClientSecretOptions
): Effect.Effect<IssuedToken, AuthenticationError, HttpClient.HttpClient> =>
  Effect.suspend(() => {
    // A cloud built in code is checked like configuration: the secret never goes over plain http.
    const host = DefenderCloud.validateBaseUrl((options.cloud ?? DefenderCloud.commercial).authorityHost)
    return host._tag === "Left"
      ? Effect.fail(
        new AuthenticationError({
          reason: "TokenRequestFailed",
          errorCodes: [],
          error: `the client secret is never sent to an insecure login host: ${host.left} (AZURE_AUTHORITY_HOST or the cloud)`
        })
      )
      : attempt(options).pipe(Effect.retry(retrySchedule), Effect.mapError((f) => f.error))
  }).pipe(Effect.withSpan("DefenderAuth.requestToken", { attributes: { "mde.tenant_id": options.tenantId } }))
