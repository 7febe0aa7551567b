/**
 * One authorised call to the Defender API, in its order of operations: a token,
 * then a permit from the rate budget, then the request (timed); a 401 drops the
 * token and repeats the call once with a new one; a non-2xx answer becomes its
 * typed error; the whole is retried on the policy.
 *
 * @internal
 */
import { HttpClientRequest, type HttpClientResponse } from "@effect/platform"
import { Effect } from "effect"
import { AuthenticationError, type DefenderError, HttpError, InvalidArgument } from "../../DefenderError.ts"
import type { Bucket } from "../../DefenderRateLimiter.ts"
import { type ApiErrorInfo, apiErrorInfo, apiFailure } from "./apiFailure.ts"
import type { ClientContext } from "./context.ts"
import { retrying } from "./retry.ts"
import { timed } from "./transport.ts"

/** @internal A 2xx answer's body, read in full, with what the error of a bad body needs. */
export interface ApiAnswer {
  readonly text: string
  readonly status: number
  readonly attempts: number
}

/**
 * One attempt with a token, a permit, the request and `handle` of its answer (only these
 * last two are timed), and one repeat with a new token after a 401.
 */
const sendAuthorized = <A>(
  ctx: ClientContext,
  request: HttpClientRequest.HttpClientRequest,
  attempts: number,
  bucket: Bucket,
  handle: (response: HttpClientResponse.HttpClientResponse) => Effect.Effect<A, DefenderError>
): Effect.Effect<A, DefenderError> =>
  Effect.gen(function*() {
    for (let renewed = false;; renewed = true) {
      // The token first: the permit is taken right before the request goes out, so a
      // slow token request cannot bunch up calls beyond the rolling window; the call
      // counts in the window from when its answer is in (see DefenderRateLimiter).
      const token = yield* ctx.auth.token
      const outcome = yield* ctx.limiter.withPermit(
        ctx.http.execute(HttpClientRequest.bearerToken(request, token)).pipe(
          Effect.mapError((e) => HttpError.fromRequestError(e, { method: request.method, url: request.url, attempts })),
          Effect.flatMap((response): Effect.Effect<
            { readonly value: A } | { readonly unauthorized: ApiErrorInfo },
            DefenderError
          > =>
            response.status === 401
              ? Effect.map(apiErrorInfo(response), (info) => ({ unauthorized: info }))
              : Effect.map(handle(response), (value) => ({ value }))
          ),
          timed(ctx.timeout, request.method, request.url, attempts)
        ),
        bucket
      )
      if ("value" in outcome) return outcome.value
      // No other token to be had, on the first try: the token was given as is (MDE_TOKEN).
      const staticToken = !renewed && !(yield* ctx.auth.invalidate(token))
      if (renewed || staticToken) {
        const description = outcome.unauthorized.apiMessage
        return yield* new AuthenticationError({
          reason: "Unauthorized",
          status: 401,
          errorCodes: [],
          ...(description === undefined ? {} : { description }),
          ...(staticToken ? { staticToken } : {})
        })
      }
    }
  })

/**
 * @internal One API call, retried (a POST only on a 429, unless `idempotent`); its body
 * as text, or the typed error of a non-2xx answer.
 */
export const apiCall = (
  ctx: ClientContext,
  request: HttpClientRequest.HttpClientRequest,
  resource: string,
  bucket: Bucket = "results",
  idempotent: boolean = request.method === "GET"
): Effect.Effect<ApiAnswer, DefenderError> =>
  // A cloud built in code is checked like configuration (once, in make), before a token is asked for.
  ctx.cloudProblem !== undefined
    ? Effect.fail(new InvalidArgument({ argument: "cloud.apiBaseUrl", detail: ctx.cloudProblem }))
    : retried(ctx, request, resource, bucket, idempotent)

const retried = (
  ctx: ClientContext,
  request: HttpClientRequest.HttpClientRequest,
  resource: string,
  bucket: Bucket,
  idempotent: boolean
): Effect.Effect<ApiAnswer, DefenderError> =>
  retrying(
    (attempts) =>
      sendAuthorized(ctx, request.pipe(HttpClientRequest.acceptJson), attempts, bucket, (response) =>
        response.status < 200 || response.status >= 300
          ? apiFailure(ctx.limiter, response, request, resource, attempts, bucket)
          // Read inside the attempt, so a connection lost mid-body is retried too.
          : Effect.map(
            Effect.mapError(
              response.text,
              (e) => HttpError.fromRequestError(e, { method: request.method, url: request.url, attempts })
            ),
            (text) => ({ text, status: response.status, attempts })
          )),
    idempotent ? ctx.readPolicy : ctx.postPolicy
  )
