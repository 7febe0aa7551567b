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
 * // One budget for every worker process, kept in Redis:
 * const shared = DefenderRateLimiter.layerRedis({ url: "redis://127.0.0.1:6379" })
 * ```
 *
 * @module
 * @since 0.1.0
 */
import { Clock, Config, ConfigError, Context, Deferred, Duration, Effect, Either, Exit, FiberId, Layer, Option, Redacted, type Scope } from "effect"
import type { RateLimiterUnavailable } from "./DefenderError.ts"
import { parseShortDuration } from "./internal/duration.ts"
import { connect, type RedisBudget, type WindowSpec } from "./internal/redisBudget.ts"

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
   * Fails with `RateLimiterUnavailable`, without running `call`, when a shared budget's
   * store cannot be reached.
   */
  readonly withPermit: <A, E, R>(
    call: Effect.Effect<A, E, R>,
    bucket?: Bucket
  ) => Effect.Effect<A, E | RateLimiterUnavailable, R>
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
 * Waiting for it can always be interrupted, even inside an uninterruptible region.
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
    return Effect.onInterrupt(Effect.interruptible(Deferred.await(ticket)), () =>
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
    const margin = marginOf(options)
    const buckets: Record<Bucket, MemoryBucket> = {
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

const marginOf = (options: Options | undefined): number =>
  options?.margin === undefined ? 0 : Duration.toMillis(Duration.decode(options.margin))

/** Checks a bucket's limits and turns them into windows in milliseconds (margin included). */
const windowsOf = (limits: ReadonlyArray<RateLimit>, margin: number): Array<WindowSpec> =>
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

/** A wait for a permit that can be interrupted even where the permit's taking cannot. */
const sleepMillis = (millis: number) => Effect.interruptible(Effect.sleep(Duration.millis(millis)))

/**
 * Runs `call` between `acquire` and `release`. `acquire` runs uninterruptibly (its
 * waits are interruptible), so a permit once taken is always released: an
 * interruption can never leave a permit counted as in flight for ever.
 */
const permitted = <P, X>(
  acquire: Effect.Effect<P, X>,
  release: (permit: P) => Effect.Effect<void>
) =>
<A, E, R>(call: Effect.Effect<A, E, R>): Effect.Effect<A, E | X, R> =>
  Effect.acquireUseRelease(acquire, () => call, release)

/** Counts the callers waiting in `self` (for `waiting`). */
const counted = () => {
  let waiters = 0
  return {
    waiters: () => waiters,
    around: <A, E>(self: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      Effect.acquireUseRelease(Effect.sync(() => waiters++), () => self, () => Effect.sync(() => waiters--))
  }
}

interface MemoryBucket {
  readonly withPermit: <A, E, R>(call: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly pause: (duration: Duration.DurationInput) => Effect.Effect<void>
  readonly waiters: () => number
}

/** One budget: its windows, its pause and its queue. */
const makeBucket = (limits: ReadonlyArray<RateLimit>, margin: number): MemoryBucket => {
  // One permit's time in the windows: when it was granted, then when its call ended.
  interface Stamp {
    time: number
    ended: boolean
  }
  // The stamps of the last `limit` permits, in the order they were granted.
  const windows = windowsOf(limits, margin).map((w) => ({ ...w, stamps: [] as Array<Stamp> }))
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
      yield* sleepMillis(wait)
    }
  })

  const waiting = counted()
  // Without limits only a pause can hold a caller, and nothing needs queueing.
  const acquire = waiting.around(windows.length === 0 ? waitForPermit : lock(waitForPermit)).pipe(
    Effect.withSpan("DefenderRateLimiter.acquire")
  )
  const withPermit = permitted(acquire, (stamp) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      stamp.time = Math.max(stamp.time, now)
      stamp.ended = true
    }))

  const pause = (duration: Duration.DurationInput) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      pausedUntil = Math.max(pausedUntil, now + Duration.toMillis(Duration.decode(duration)))
    })

  return { withPermit, pause, waiters: waiting.waiters }
}

/**
 * An in-memory limiter shared by every fiber that uses this layer.
 *
 * @since 0.1.0
 */
export const layer = (options?: Options): Layer.Layer<DefenderRateLimiter> =>
  Layer.effect(DefenderRateLimiter, make(options))

// ---------------------------------------------------------------------------
// Shared budget on Redis
// ---------------------------------------------------------------------------

/**
 * Options of the Redis-backed limiter: the in-memory options, plus where the
 * budget lives.
 *
 * @since 0.1.0
 */
export interface RedisOptions extends Options {
  /** The Redis server, e.g. `redis://127.0.0.1:6379` or `rediss://:password@host:6380/0`. */
  readonly url: string | Redacted.Redacted<string>
  /**
   * The budget's name: every process using the same Redis and key shares one budget
   * (one per tenant and app registration). Default `mde-live-response`.
   */
  readonly key?: string | undefined
  /**
   * What a call does when Redis cannot be reached: `"none"` (default) fails it with
   * `RateLimiterUnavailable` without calling the API; `"memory"` logs a warning and
   * runs it under this process's own in-memory budget until Redis is back.
   */
  readonly fallback?: "none" | "memory" | undefined
  /**
   * How long a permit of a call still in flight keeps its place in the windows if its
   * process dies before the call ends; default 10 minutes.
   */
  readonly lease?: Duration.DurationInput | undefined
  /** The longest wait for the first connection and for each Redis command; default 5 seconds. */
  readonly redisTimeout?: Duration.DurationInput | undefined
}

/**
 * Builds a limiter whose budget lives in Redis: a sliding log per limit and
 * bucket, checked and stamped atomically by a Lua script, so any number of
 * processes with the same `key` never exceed the quota together. A 429's pause
 * is shared too. The windows use each caller's clock: hosts sharing a budget
 * need synchronised clocks (set `margin` to their largest skew).
 *
 * @since 0.1.0
 */
export const makeRedis = (options: RedisOptions): Effect.Effect<DefenderRateLimiter, never, Scope.Scope> =>
  Effect.gen(function*() {
    const margin = marginOf(options)
    const timeout = Duration.decode(options.redisTimeout ?? "5 seconds")
    const lease = Duration.toMillis(Duration.decode(options.lease ?? "10 minutes"))
    const key = options.key ?? "mde-live-response"
    const url = Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url
    // Checked before connecting, so a bad limit is not hidden by a connection error.
    const limits: Record<Bucket, Array<WindowSpec>> = {
      results: windowsOf(options.limits ?? DEFAULT_LIMITS, margin),
      machineActions: windowsOf(options.machineActionLimits ?? DEFAULT_LIMITS, margin),
      run: windowsOf(options.runLimits ?? DEFAULT_RUN_LIMITS, margin)
    }
    const budget = yield* Effect.acquireRelease(
      connect(url, { connectTimeout: timeout, commandTimeout: timeout }),
      (budget) => budget.close
    )
    const local = yield* make(options)
    const worker = crypto.randomUUID()
    const state = { degraded: false }
    const buckets: Record<Bucket, RedisBucket> = {
      results: makeRedisBucket(budget, `{${key}}:results`, limits.results, lease, worker),
      machineActions: makeRedisBucket(budget, `{${key}}:machineActions`, limits.machineActions, lease, worker),
      run: makeRedisBucket(budget, `{${key}}:run`, limits.run, lease, worker)
    }

    const withPermit = <A, E, R>(call: Effect.Effect<A, E, R>, bucket: Bucket = "results") =>
      Effect.suspend(() => {
        let started = false
        const shared = buckets[bucket].withPermit(Effect.suspend(() => {
          started = true
          return Effect.zipRight(recovered, call)
        }))
        if (options.fallback !== "memory") return shared
        // Only a store failure before the call falls back: the call's own errors pass through.
        return Effect.catchIf(
          shared,
          (_: E | RateLimiterUnavailable): _ is RateLimiterUnavailable => !started,
          (error) => Effect.zipRight(degrade(error), local.withPermit(call, bucket))
        )
      })
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

    return DefenderRateLimiter.of({
      withPermit,
      // Held here too, so this process honours its own 429 even if Redis is unreachable.
      pause: (duration, bucket = "results") =>
        Effect.zipRight(
          local.pause(duration, bucket),
          buckets[bucket].pause(duration).pipe(
            Effect.catchAll((error) => Effect.logDebug(`mde-live-response: could not share a pause: ${error.detail}`))
          )
        ),
      waiting: Effect.sync(() =>
        buckets.results.waiters() + buckets.machineActions.waiters() + buckets.run.waiters()
      ).pipe(Effect.zipWith(local.waiting, (a, b) => a + b))
    })
  })

interface RedisBucket {
  readonly withPermit: <A, E, R>(call: Effect.Effect<A, E, R>) => Effect.Effect<A, E | RateLimiterUnavailable, R>
  readonly pause: (duration: Duration.DurationInput) => Effect.Effect<void, RateLimiterUnavailable>
  readonly waiters: () => number
}

/** One budget kept in Redis under `prefix`; this process's callers queue for it in turn. */
const makeRedisBucket = (
  budget: RedisBudget,
  prefix: string,
  windows: ReadonlyArray<WindowSpec>,
  lease: number,
  worker: string
): RedisBucket => {
  // Keyed by window length, so processes configured alike share each window's log.
  const keys = windows.map((w) => `${prefix}:window:${w.millis}`)
  const pauseKey = `${prefix}:pause`
  let counter = 0
  const lock = makeFifoLock()

  // A wait computed from Redis is a lower bound (calls in flight elsewhere end later
  // and other processes take permits too), so it is checked again after every sleep.
  const waitForPermit = Effect.gen(function*() {
    const id = `${worker}:${++counter}`
    while (true) {
      const now = yield* Clock.currentTimeMillis
      const wait = yield* budget.acquire([pauseKey, ...keys], windows, now, id, lease)
      if (wait <= 0) return id
      yield* sleepMillis(wait)
    }
  })

  const waiting = counted()
  const acquire = waiting.around(lock(waitForPermit)).pipe(
    Effect.withSpan("DefenderRateLimiter.acquire", { attributes: { "mde.rate_budget": "redis" } })
  )
  const withPermit = permitted(acquire, (id) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => budget.release(keys, id, now)).pipe(
      // Unreleased, the permit leaves the windows after its lease: later, never sooner.
      Effect.catchAll((error) => Effect.logDebug(`mde-live-response: could not release a permit: ${error.detail}`))
    ))

  const pause = (duration: Duration.DurationInput) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const millis = Duration.toMillis(Duration.decode(duration))
      return budget.pause(pauseKey, now + millis, millis)
    })

  return { withPermit, pause, waiters: waiting.waiters }
}

/**
 * A limiter whose budget lives in Redis and is shared by every process using the
 * same `url` and `key`. See `makeRedis`.
 *
 * @since 0.1.0
 */
export const layerRedis = (options: RedisOptions): Layer.Layer<DefenderRateLimiter> =>
  Layer.scoped(DefenderRateLimiter, makeRedis(options))

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
    const match = /^\s*(\d+)\s*\/(.*)$/.exec(part)
    const millis = match === null ? undefined : parseShortDuration(match[2]!, true)
    if (match === null || millis === undefined) {
      return Either.left(`"${part.trim()}" is not a rate limit: write calls/window, e.g. 100/1m,1500/1h`)
    }
    const limit = Number(match[1])
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
 * The limiter the environment asks for: limits from `MDE_RATE_LIMITS` and
 * `MDE_RUN_RATE_LIMITS`; with `MDE_REDIS_URL` set, a budget shared on that Redis
 * under `MDE_REDIS_KEY` (default `mde-live-response`), falling back to memory
 * only if `MDE_REDIS_FALLBACK=memory`; otherwise an in-memory budget.
 *
 * @since 0.1.0
 */
export const layerConfig = (): Layer.Layer<DefenderRateLimiter, ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.map(
      Config.all({
        limits: config,
        runLimits: runConfig,
        redis: Config.option(Config.redacted("MDE_REDIS_URL")),
        key: Config.string("MDE_REDIS_KEY").pipe(Config.withDefault("mde-live-response")),
        fallback: Config.literal("none", "memory")("MDE_REDIS_FALLBACK").pipe(Config.withDefault("none" as const))
      }),
      ({ fallback, key, limits, redis, runLimits }) =>
        // An empty MDE_REDIS_URL means no Redis, as an unset one does.
        Option.isSome(redis) && Redacted.value(redis.value).trim() !== ""
          ? layerRedis({ url: redis.value, key, fallback, limits, runLimits })
          : layer({ limits, runLimits })
    )
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
