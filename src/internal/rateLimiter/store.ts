/**
 * What the rate-limit algorithm needs from where a budget is kept: one bucket's
 * sliding logs and pause, read and stamped in one atomic step. The queue, the wait
 * loop and the permit's life (`bucket.ts`) are written once over it; the memory
 * store (`memoryStore.ts`) keeps the logs in this process, the Redis store
 * (`redisStore.ts`) in Redis, shared by every process with the same key.
 *
 * @internal
 */
import { Duration, type Effect } from "effect"
import type { RateLimiterUnavailable } from "../../DefenderError.ts"
import type { RateLimit } from "../../DefenderRateLimiter.ts"

/**
 * One limit of a bucket: at most `limit` calls in any rolling `millis`.
 *
 * @internal
 */
export interface WindowSpec {
  readonly limit: number
  readonly millis: number
}

/**
 * One bucket's budget. A permit is stamped in flight when granted, so it cannot
 * leave a window while its call may still reach the API, and re-stamped with the
 * time its call ended; a full window frees the slot of the call that ended first.
 * Fails only where the budget is kept out of process (`RateLimiterUnavailable`).
 *
 * @internal
 */
export interface Store<E extends RateLimiterUnavailable = never> {
  /** 0 when the permit `permitId` is granted (and stamped at `now`), else the milliseconds to wait before asking again. */
  readonly acquire: (now: number, permitId: string) => Effect.Effect<number, E>
  /** Re-stamps a granted permit with the time its call ended. */
  readonly release: (permitId: string, now: number) => Effect.Effect<void, E>
  /** Holds every permit until `until`; extends a pause, never shortens it. */
  readonly pause: (until: number, now: number) => Effect.Effect<void, E>
}

/**
 * Checks a bucket's limits and turns them into windows in milliseconds (margin included).
 *
 * @internal
 */
export const windowsOf = (limits: ReadonlyArray<RateLimit>, margin: number): Array<WindowSpec> =>
  limits.map((l) => {
    if (!Number.isInteger(l.limit) || l.limit < 1) {
      throw new RangeError(`rate limit must be a positive integer, got ${l.limit}`)
    }
    const millis = Duration.toMillis(Duration.decode(l.window))
    if (!(millis > 0) || !Number.isFinite(millis)) {
      throw new RangeError("rate limit window must be a positive, finite duration")
    }
    return { limit: l.limit, millis: millis + margin }
  })
