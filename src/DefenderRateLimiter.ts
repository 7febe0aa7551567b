/**
 * The `DefenderRateLimiter` service: one rate budget shared by every fiber
 * that calls the Defender API through the same layer. Callers wait for a
 * permit instead of failing, and a 429 holds every caller until its
 * `Retry-After` has passed, so one 429 never becomes fifty.
 *
 * The default budget is Defender's documented quota for the live response
 * result endpoint: 100 calls per rolling minute and 1500 per rolling hour,
 * both at once.
 *
 * @example
 * ```ts
 * import { DefenderRateLimiter } from "@mde/live-response"
 *
 * const limiter = DefenderRateLimiter.layer({ limits: [{ limit: 50, window: "1 minute" }] })
 * ```
 *
 * @module
 * @since 0.1.0
 */
import { Clock, Config, ConfigError, Context, Deferred, Duration, Effect, Either, Exit, FiberId, Layer } from "effect"

/**
 * At most `limit` calls in any rolling `window`.
 *
 * @since 0.1.0
 */
export interface RateLimit {
  readonly limit: number
  readonly window: Duration.DurationInput
}

/**
 * The shared rate budget.
 *
 * @since 0.1.0
 */
export interface DefenderRateLimiter {
  /**
   * Runs `call` once it is allowed by every limit (and by any pause). The call counts
   * in the windows from the moment it ends — the latest it can have reached the API —
   * so network delay can never squeeze more than a limit's calls into the API's window.
   */
  readonly withPermit: <A, E, R>(call: Effect.Effect<A, E, R>, bucket?: Bucket) => Effect.Effect<A, E, R>
  /** Holds every caller of a bucket until `duration` from now has passed (on a 429 with `Retry-After`). */
  readonly pause: (duration: Duration.DurationInput, bucket?: Bucket) => Effect.Effect<void>
  /** How many callers are waiting for a permit right now, in all buckets (for progress displays). */
  readonly waiting: Effect.Effect<number>
}

/**
 * The separate budgets Defender keeps: the result-link endpoint (`results`, the
 * default), get/cancel machine action (`machineActions`), and run live response
 * (`run`).
 *
 * @since 0.1.0
 */
export type Bucket = "results" | "machineActions" | "run"

/**
 * The `DefenderRateLimiter` service tag.
 *
 * @since 0.1.0
 */
export const DefenderRateLimiter: Context.Tag<DefenderRateLimiter, DefenderRateLimiter> = Context.GenericTag<
  DefenderRateLimiter
>("mde-live-response/DefenderRateLimiter")

/**
 * Defender's quota for the result endpoint: 100 calls per minute and 1500 per hour.
 *
 * @since 0.1.0
 */
export const DEFAULT_LIMITS: ReadonlyArray<RateLimit> = [
  { limit: 100, window: Duration.minutes(1) },
  { limit: 1500, window: Duration.hours(1) }
]

/**
 * Defender's quota for run live response: 10 calls per minute.
 *
 * @since 0.1.0
 */
export const DEFAULT_RUN_LIMITS: ReadonlyArray<RateLimit> = [{ limit: 10, window: Duration.minutes(1) }]

/**
 * Options of the in-memory limiter.
 *
 * @since 0.1.0
 */
export interface Options {
  /** The result endpoint's limits, all applied at once; default `DEFAULT_LIMITS`. An empty list means no limit. */
  readonly limits?: ReadonlyArray<RateLimit> | undefined
  /** The machine-action endpoints' limits; default `DEFAULT_LIMITS`. */
  readonly machineActionLimits?: ReadonlyArray<RateLimit> | undefined
  /** Run live response's limits; default `DEFAULT_RUN_LIMITS`. */
  readonly runLimits?: ReadonlyArray<RateLimit> | undefined
  /** Added to every window for extra caution (e.g. against clock drift); default 0. */
  readonly margin?: Duration.DurationInput | undefined
}

/**
 * A mutual-exclusion lock that hands itself to waiters in arrival order (Effect's
 * `Semaphore` lets a newcomer take a just-released permit before the woken waiter).
 */
const makeFifoLock = () => {
  let held = false
  const waiters: Array<Deferred.Deferred<void>> = []
  const release = () => {
    const next = waiters.shift()
    if (next === undefined) held = false
    else Deferred.unsafeDone(next, Exit.void)
  }
  const take = Effect.suspend(() => {
    if (!held) {
      held = true
      return Effect.void
    }
    const ticket = Deferred.unsafeMake<void>(FiberId.none)
    waiters.push(ticket)
    return Effect.onInterrupt(Deferred.await(ticket), () =>
      Effect.sync(() => {
        const at = waiters.indexOf(ticket)
        // Still queued: leave the queue; already handed the lock: pass it on.
        if (at >= 0) waiters.splice(at, 1)
        else release()
      }))
  })
  return <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(restore(take), Effect.ensuring(restore(self), Effect.sync(release)))
    )
}

/**
 * Builds an in-memory limiter: a sliding log per limit, so no rolling window
 * ever holds more than its limit, and a single queue so waiting callers are
 * served in turn.
 *
 * @since 0.1.0
 */
export const make = (options?: Options): Effect.Effect<DefenderRateLimiter> =>
  Effect.sync(() => {
    const margin = options?.margin === undefined ? 0 : Duration.toMillis(Duration.decode(options.margin))
    const buckets: Record<Bucket, ReturnType<typeof makeBucket>> = {
      results: makeBucket(options?.limits ?? DEFAULT_LIMITS, margin),
      machineActions: makeBucket(options?.machineActionLimits ?? DEFAULT_LIMITS, margin),
      run: makeBucket(options?.runLimits ?? DEFAULT_RUN_LIMITS, margin)
    }
    return DefenderRateLimiter.of({
      withPermit: (call, bucket = "results") => buckets[bucket].withPermit(call),
      pause: (duration, bucket = "results") => buckets[bucket].pause(duration),
      waiting: Effect.sync(() => buckets.results.waiters() + buckets.machineActions.waiters() + buckets.run.waiters())
    })
  })

/** One budget: its windows, its pause and its queue. */
const makeBucket = (limits: ReadonlyArray<RateLimit>, margin: number) => {
    // One permit's time in the windows: when it was granted, then when its call ended.
    interface Stamp {
      time: number
      ended: boolean
    }
    const windows = limits.map((l) => {
      if (!Number.isInteger(l.limit) || l.limit < 1) {
        throw new RangeError(`rate limit must be a positive integer, got ${l.limit}`)
      }
      const millis = Duration.toMillis(Duration.decode(l.window))
      if (!(millis > 0) || !Number.isFinite(millis)) {
        throw new RangeError("rate limit window must be a positive, finite duration")
      }
      // The stamps of the last `limit` permits, in the order they were granted.
      return { limit: l.limit, millis: millis + margin, stamps: [] as Array<Stamp> }
    })
    let pausedUntil = 0
    // One waiter at a time: the head of the queue sleeps until its permit is due,
    // the others wait behind it in arrival order, so nobody spins or jumps the queue.
    const lock = makeFifoLock()

    const waitMillis = (now: number): number => {
      let wait = pausedUntil - now
      for (const w of windows) {
        if (w.stamps.length >= w.limit) {
          // A new call may start once one of the last `limit` calls has left the window.
          // A call still in flight may reach the API at any moment: it cannot leave the window yet.
          let oldest = Infinity
          for (const stamp of w.stamps) oldest = Math.min(oldest, stamp.ended ? stamp.time : now)
          wait = Math.max(wait, oldest + w.millis - now)
        }
      }
      return wait
    }

    const take = (now: number): Stamp => {
      const stamp: Stamp = { time: now, ended: false }
      for (const w of windows) {
        if (w.stamps.length >= w.limit) {
          // Drop the call that has left the window — the earliest to have ended, which is
          // not always the earliest granted (a slow call ends after faster later ones).
          let drop = 0
          for (let i = 1; i < w.stamps.length; i++) {
            const a = w.stamps[i]!
            const b = w.stamps[drop]!
            if ((a.ended ? a.time : Infinity) < (b.ended ? b.time : Infinity)) drop = i
          }
          w.stamps.splice(drop, 1)
        }
        w.stamps.push(stamp)
      }
      return stamp
    }

    // Re-checked after every sleep: a 429 may have extended the pause, and calls that
    // ended meanwhile have moved their stamps later.
    const waitForPermit: Effect.Effect<Stamp> = Effect.gen(function*() {
      while (true) {
        const now = yield* Clock.currentTimeMillis
        const wait = waitMillis(now)
        if (wait <= 0) return take(now)
        yield* Effect.sleep(Duration.millis(wait))
      }
    })

    let waiters = 0
    // Without limits only a pause can hold a caller, and nothing needs queueing.
    const queued = windows.length === 0 ? waitForPermit : lock(waitForPermit)
    const acquire = Effect.acquireUseRelease(
      Effect.sync(() => waiters++),
      () => queued,
      () => Effect.sync(() => waiters--)
    ).pipe(Effect.withSpan("DefenderRateLimiter.acquire"))

    const withPermit = <A, E, R>(call: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.flatMap(acquire, (stamp) =>
        Effect.ensuring(
          call,
          Effect.map(Clock.currentTimeMillis, (now) => {
            stamp.time = Math.max(stamp.time, now)
            stamp.ended = true
          })
        ))

    const pause = (duration: Duration.DurationInput) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        pausedUntil = Math.max(pausedUntil, now + Duration.toMillis(Duration.decode(duration)))
      })

    return { withPermit, pause, waiters: () => waiters }
}

/**
 * An in-memory limiter shared by every fiber that uses this layer.
 *
 * @since 0.1.0
 */
export const layer = (options?: Options): Layer.Layer<DefenderRateLimiter> =>
  Layer.effect(DefenderRateLimiter, make(options))

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/**
 * Parses a limit list such as `100/1m,1500/1h` (units `ms`, `s`, `m`, `h`; a
 * missing number means 1, as in `100/m`). `none` or an empty text means no limit.
 *
 * @since 0.1.0
 */
export const parseLimits = (text: string): Either.Either<ReadonlyArray<RateLimit>, string> => {
  const trimmed = text.trim()
  if (trimmed === "" || trimmed.toLowerCase() === "none") return Either.right([])
  const limits: Array<RateLimit> = []
  for (const part of trimmed.split(",")) {
    const match = /^\s*(\d+)\s*\/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h)\s*$/i.exec(part)
    if (match === null) {
      return Either.left(`"${part.trim()}" is not a rate limit: write calls/window, e.g. 100/1m,1500/1h`)
    }
    const limit = Number(match[1])
    const millis = Number(match[2] ?? "1") * UNITS[match[3]!.toLowerCase()]!
    if (limit < 1 || !(millis > 0)) {
      return Either.left(`"${part.trim()}" must have a positive limit and window`)
    }
    limits.push({ limit, window: Duration.millis(millis) })
  }
  return Either.right(limits)
}

/**
 * Reads the limits from `MDE_RATE_LIMITS` (default `100/1m,1500/1h`).
 *
 * @since 0.1.0
 */
export const config: Config.Config<ReadonlyArray<RateLimit>> = Config.string("MDE_RATE_LIMITS").pipe(
  Config.withDefault("100/1m,1500/1h"),
  Config.mapOrFail((text) =>
    Either.mapLeft(parseLimits(text), (message) => ConfigError.InvalidData(["MDE_RATE_LIMITS"], message))
  )
)

/**
 * An in-memory limiter whose limits come from `MDE_RATE_LIMITS`.
 *
 * @since 0.1.0
 */
export const layerConfig = (): Layer.Layer<DefenderRateLimiter, ConfigError.ConfigError> =>
  Layer.effect(
    DefenderRateLimiter,
    Effect.flatMap(Config.all({ limits: config, runLimits: runConfig }), (limits) => make(limits))
  )

/**
 * Reads run live response's limits from `MDE_RUN_RATE_LIMITS` (default `10/1m`).
 *
 * @since 0.1.0
 */
export const runConfig: Config.Config<ReadonlyArray<RateLimit>> = Config.string("MDE_RUN_RATE_LIMITS").pipe(
  Config.withDefault("10/1m"),
  Config.mapOrFail((text) =>
    Either.mapLeft(parseLimits(text), (message) => ConfigError.InvalidData(["MDE_RUN_RATE_LIMITS"], message))
  )
)
