/**
 * A non-2xx answer of the Defender API as its typed error: redirects refused,
 * 403 `PermissionDenied`, 404 `NotFound`, 429 `Throttled` (pausing the whole
 * budget first), anything else an `HttpError` keeping the API's `code` and `target`.
 *
 * @internal
 */
import type { HttpClientRequest, HttpClientResponse } from "@effect/platform"
import { Duration, Effect, Option, Schema } from "effect"
import { HttpError, NotFound, PermissionDenied, Throttled } from "../../DefenderError.ts"
import type { Bucket, DefenderRateLimiter } from "../../DefenderRateLimiter.ts"
import { redactText } from "../url.ts"
import { readErrorText, retryAfterOf } from "./transport.ts"

const ODataError = Schema.parseJson(Schema.Struct({
  error: Schema.Struct({
    code: Schema.optional(Schema.String),
    message: Schema.optional(Schema.String),
    target: Schema.optional(Schema.String)
  })
}))
const decodeODataError = Schema.decodeUnknownOption(ODataError)

/** @internal What an OData error body said: its code, request id and (redacted) message. */
export interface ApiErrorInfo {
  readonly code?: string
  readonly target?: string
  readonly apiMessage?: string
}

/** @internal Reads an API error body; one that is not an OData error says nothing. */
export const apiErrorInfo = (response: HttpClientResponse.HttpClientResponse): Effect.Effect<ApiErrorInfo> =>
  Effect.map(readErrorText(response), (text) =>
    Option.match(decodeODataError(text), {
      onNone: () => ({}),
      onSome: ({ error }) => ({
        ...(error.code === undefined ? {} : { code: error.code }),
        ...(error.target === undefined ? {} : { target: error.target }),
        ...(error.message === undefined ? {} : { apiMessage: redactText(error.message).slice(0, 500) })
      })
    }))

/** Only the target's origin is shown, never its path or query. */
const redirectTarget = (response: HttpClientResponse.HttpClientResponse, requestUrl: string): string => {
  try {
    return new URL(response.headers["location"] ?? "", requestUrl).origin
  } catch {
    return "another address"
  }
}

/** @internal Turns a non-2xx API answer into its typed error. */
export const apiFailure = (
  limiter: DefenderRateLimiter,
  response: HttpClientResponse.HttpClientResponse,
  request: HttpClientRequest.HttpClientRequest,
  resource: string,
  attempts: number,
  bucket: Bucket
): Effect.Effect<never, HttpError | NotFound | PermissionDenied | Throttled> =>
  Effect.gen(function*() {
    const about = { method: request.method, url: request.url, attempts, status: response.status }
    if (response.status >= 300 && response.status < 400) {
      // Not followed (see noRedirects).
      return yield* HttpError.status({
        ...about,
        detail: `a redirect to ${
          redirectTarget(response, request.url)
        } was refused: the Defender API does not redirect, check the API base URL`
      })
    }
    const retryAfter = yield* retryAfterOf(response)
    // Every caller of this budget waits, not only the one that was told to, and at
    // once: before this answer's body has even been read.
    if (response.status === 429 && retryAfter !== undefined) {
      yield* limiter.pause(Duration.millis(retryAfter), bucket)
    }
    const info = yield* apiErrorInfo(response)
    const ids = {
      ...(info.code === undefined ? {} : { code: info.code }),
      ...(info.target === undefined ? {} : { target: info.target })
    }
    const wait = retryAfter === undefined ? {} : { retryAfterMillis: retryAfter }
    switch (response.status) {
      case 403:
        return yield* new PermissionDenied(info)
      case 404:
        return yield* new NotFound({ resource, ...info })
      case 429:
        return yield* new Throttled({ attempts, ...wait, ...ids })
      default:
        return yield* HttpError.status({
          ...about,
          ...wait,
          ...ids,
          ...(info.apiMessage === undefined ? {} : { detail: info.apiMessage })
        })
    }
  })
