/**
 * Defender's quotas: sliding-log windows, as Defender counts calls, and the 429 a call over
 * its quota gets.
 *
 * @internal
 */
import { Duration } from "effect"
import type { RateLimit } from "../../DefenderRateLimiter.ts"
import type { Faults } from "../DefenderSimulator.ts"
import { odata } from "./responses.ts"

/** @internal Counts a call at `now`: 0 when it is allowed (and counted), else the milliseconds until it would be. */
export type Quota = (now: number) => number

/** @internal A quota of sliding-log windows, one per limit; a call must fit in all of them. */
export const makeWindows = (limits: ReadonlyArray<RateLimit>): Quota => {
  const windows = limits.map((l) => ({
    limit: l.limit,
    millis: Duration.toMillis(Duration.decode(l.window)),
    granted: [] as Array<number>
  }))
  return (now) => {
    let wait = 0
    for (const w of windows) {
      while (w.granted.length > 0 && w.granted[0]! <= now - w.millis) w.granted.shift()
      if (w.granted.length >= w.limit) wait = Math.max(wait, w.granted[0]! + w.millis - now)
    }
    if (wait > 0) return wait
    for (const w of windows) w.granted.push(now)
    return 0
  }
}

/** @internal The 429 `TooManyRequests`, with a `Retry-After` of `wait` in whole seconds unless `omitRetryAfter`. */
export const throttled = (faults: Faults | undefined, wait: number, requestId: string): Response =>
  odata(
    429,
    "TooManyRequests",
    "Rate limit is exceeded. Try again later.",
    requestId,
    faults?.omitRetryAfter === true ? {} : { "retry-after": String(Math.max(1, Math.ceil(wait / 1000))) }
  )
