/**
 * When the client retries, and how long it waits: the user's schedule, cut short
 * by the errors that are not worth a retry, with a server's `Retry-After` in place
 * of the schedule's own wait.
 *
 * @internal
 */
import { Duration, Effect, Ref, Schedule } from "effect"
import type { DefenderError } from "../../DefenderError.ts"

const RETRYABLE_STATUS: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504])

/** @internal Throttling, 408/429/500/502/503/504 and transport failures. */
export const isRetryable = (error: DefenderError): boolean =>
  error._tag === "Throttled" ||
  (error._tag === "HttpError" &&
    (error.reason === "Transport" ||
      (error.reason === "Status" && error.status !== undefined && RETRYABLE_STATUS.has(error.status))))

/** The wait a server asked for, on the errors that can carry one. */
const serverWait = (error: DefenderError): number | undefined =>
  error._tag === "Throttled" || error._tag === "HttpError" ? error.retryAfterMillis : undefined

/** @internal `schedule` while `retryable`, with the server's Retry-After winning over its wait. */
export const retryPolicy = (
  schedule: Schedule.Schedule<unknown, DefenderError>,
  retryable: (error: DefenderError) => boolean = isRetryable
): Schedule.Schedule<unknown, DefenderError> =>
  Schedule.intersect(schedule, Schedule.identity<DefenderError>()).pipe(
    Schedule.whileInput(retryable),
    Schedule.modifyDelay(([, error], delay) => {
      const wait = serverWait(error)
      return wait === undefined ? delay : Duration.millis(wait)
    }),
    Schedule.onDecision(([, error], decision) =>
      decision._tag === "Continue"
        ? Effect.logDebug(`mde-live-response: retrying after ${error._tag}: ${error.message}`)
        : Effect.void
    )
  )

/** @internal Runs `attempt(n)` on `schedule`; `n` counts the attempts from 1. */
export const retrying = <A>(
  attempt: (n: number) => Effect.Effect<A, DefenderError>,
  schedule: Schedule.Schedule<unknown, DefenderError>
): Effect.Effect<A, DefenderError> =>
  Effect.flatMap(Ref.make(0), (counter) => {
    const once: Effect.Effect<A, DefenderError> = Effect.flatMap(Ref.updateAndGet(counter, (n) => n + 1), attempt)
    return Effect.retry(once, schedule)
  })
