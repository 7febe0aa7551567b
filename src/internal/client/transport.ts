/**
 * The pieces of one HTTP exchange that API calls and downloads share: a time
 * limit per attempt, a bounded read of an error body, and the server's wait.
 *
 * @internal
 */
import type { HttpClientResponse } from "@effect/platform"
import { Clock, Duration, Effect, Option, Stream } from "effect"
import { type DefenderError, HttpError } from "../../DefenderError.ts"
import { DEFAULT_MAX_RETRY_AFTER_MILLIS, parseRetryAfter } from "../retryAfter.ts"

/** @internal Limits one attempt in time; a timeout is a (retryable) transport failure. */
export const timed = (timeout: Duration.Duration, method: string, url: string, attempts: number) =>
<A>(self: Effect.Effect<A, DefenderError>): Effect.Effect<A, DefenderError> =>
  Effect.timeoutFail(self, {
    duration: timeout,
    onTimeout: () =>
      HttpError.transport({ method, url, attempts, detail: `no answer within ${Duration.format(timeout)}` })
  })

const MAX_ERROR_BODY = 64 * 1024

/** @internal Reads at most about 64 KiB of an error body, as text; never fails. */
export const readErrorText = (response: HttpClientResponse.HttpClientResponse): Effect.Effect<string> =>
  Effect.suspend(() => {
    const decoder = new TextDecoder()
    return response.stream.pipe(
      Stream.runFoldWhile(
        "",
        (text) => text.length < MAX_ERROR_BODY,
        (text, chunk) => text + decoder.decode(chunk, { stream: true })
      ),
      Effect.orElseSucceed(() => "")
    )
  })

/** @internal The wait a response's `Retry-After` (or `retry-after-ms`…) asks for. */
export const retryAfterOf = (response: HttpClientResponse.HttpClientResponse): Effect.Effect<number | undefined> =>
  Effect.map(Clock.currentTimeMillis, (now) =>
    Option.getOrUndefined(parseRetryAfter(response.headers, now, DEFAULT_MAX_RETRY_AFTER_MILLIS)))
