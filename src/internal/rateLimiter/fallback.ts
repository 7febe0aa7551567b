/**
 * The limiter over a shared budget: its buckets on Redis, this process's in-memory
 * budget beside them for a 429's pause and, with `fallback: "memory"`, for the
 * calls made while Redis cannot be reached.
 *
 * @internal
 */
import { Effect } from "effect"
import type { RateLimiterUnavailable } from "../../DefenderError.ts"
import type { Bucket, DefenderRateLimiter } from "../../DefenderRateLimiter.ts"
import { type BucketLimiter, waitersIn } from "./bucket.ts"

/**
 * The limiter of `makeRedis`: `shared` decides, `local` holds this process's pauses
 * and, if `fallback` is `"memory"`, stands in while `shared` is unreachable.
 *
 * @internal
 */
export const withFallback = (
  shared: Record<Bucket, BucketLimiter<RateLimiterUnavailable>>,
  local: DefenderRateLimiter,
  fallback: "none" | "memory" | undefined
): DefenderRateLimiter => {
  const state = { degraded: false }
  const degrade = (error: RateLimiterUnavailable) =>
    Effect.suspend(() => {
      if (state.degraded) return Effect.void
      state.degraded = true
      return Effect.logWarning(
        `mde-live-response: the shared rate budget is unreachable (${error.detail}); ` +
          "this process uses its own in-memory budget until it is back"
      )
    })
  const recovered = Effect.suspend(() => {
    if (!state.degraded) return Effect.void
    state.degraded = false
    return Effect.logWarning("mde-live-response: the shared rate budget is reachable again")
  })

  const withPermit = <A, E, R>(call: Effect.Effect<A, E, R>, bucket: Bucket = "results") =>
    Effect.suspend(() => {
      let started = false
      const permitted = shared[bucket].withPermit(Effect.suspend(() => {
        started = true
        return Effect.zipRight(recovered, call)
      }))
      if (fallback !== "memory") return permitted
      // Only a store failure before the call falls back: the call's own errors pass through.
      return Effect.catchIf(
        permitted,
        (_: E | RateLimiterUnavailable): _ is RateLimiterUnavailable => !started,
        (error) => Effect.zipRight(degrade(error), local.withPermit(call, bucket))
      )
    })

  return {
    withPermit,
    // Held here too, so this process honours its own 429 even if Redis is unreachable.
    pause: (duration, bucket = "results") =>
      Effect.zipRight(
        local.pause(duration, bucket),
        shared[bucket].pause(duration).pipe(
          Effect.catchAll((error) => Effect.logDebug(`mde-live-response: could not share a pause: ${error.detail}`))
        )
      ),
    waiting: Effect.map(local.waiting, (inMemory) => waitersIn(shared) + inMemory)
  }
}
