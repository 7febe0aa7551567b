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
import { Config, ConfigError, Context, Duration, Effect, Either, Layer, Option, Redacted, type Scope } from "effect"
import type { RateLimiterUnavailable } from "./DefenderError.ts"
import { parseShortDuration } from "./internal/duration.ts"
import { type BucketLimiter, makeBucket, waitersIn } from "./internal/rateLimiter/bucket.ts"
import { withFallback } from "./internal/rateLimiter/fallback.ts"
import { makeMemoryStore } from "./internal/rateLimiter/memoryStore.ts"
import { connect } from "./internal/rateLimiter/redisStore.ts"
import { type WindowSpec, windowsOf } from "./internal/rateLimiter/store.ts"

/**
 * At most `limit` calls in any rolling `window`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RateLimit {
  /** The most calls any rolling window may hold: a positive integer. */
  readonly limit: number
  /** The window's length. */
  readonly window: Duration.DurationInput
}

/**
 * The shared rate budget.
 *
 * @since 0.1.0
 * @category models
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
 * @category models
 */
export type Bucket = "results" | "machineActions" | "run"

/**
 * The `DefenderRateLimiter` service tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const DefenderRateLimiter: Context.Tag<DefenderRateLimiter, DefenderRateLimiter> = Context.GenericTag<
  DefenderRateLimiter
>("mde-live-response/DefenderRateLimiter")

/**
 * Defender's quota for the result endpoint: 100 calls per minute and 1500 per hour.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_LIMITS: ReadonlyArray<RateLimit> = [
  { limit: 100, window: Duration.minutes(1) },
  { limit: 1500, window: Duration.hours(1) }
]

/**
 * Defender's quota for run live response: 10 calls per minute.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_RUN_LIMITS: ReadonlyArray<RateLimit> = [{ limit: 10, window: Duration.minutes(1) }]

/**
 * Options of the in-memory limiter.
 *
 * @since 0.1.0
 * @category models
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
 * Builds an in-memory limiter: a sliding log per limit, so no rolling window
 * ever holds more than its limit, and a single queue so waiting callers are
 * served in turn.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: Options): Effect.Effect<DefenderRateLimiter> =>
  Effect.sync(() => {
    const buckets = bucketsOf(windowsByBucket(options), (windows) =>
      // Without limits only a pause can hold a caller, and nothing needs queueing.
      makeBucket(makeMemoryStore(windows), { worker: "memory", queue: windows.length > 0 }))
    return DefenderRateLimiter.of({
      withPermit: (call, bucket = "results") => buckets[bucket].withPermit(call),
      pause: (duration, bucket = "results") => buckets[bucket].pause(duration),
      waiting: Effect.sync(() => waitersIn(buckets))
    })
  })

/** Each bucket's limits as windows in milliseconds, checked, margin included. */
const windowsByBucket = (options: Options | undefined): Record<Bucket, Array<WindowSpec>> => {
  const margin = options?.margin === undefined ? 0 : Duration.toMillis(Duration.decode(options.margin))
  return {
    results: windowsOf(options?.limits ?? DEFAULT_LIMITS, margin),
    machineActions: windowsOf(options?.machineActionLimits ?? DEFAULT_LIMITS, margin),
    run: windowsOf(options?.runLimits ?? DEFAULT_RUN_LIMITS, margin)
  }
}

/** One limiter per bucket, each over its windows. */
const bucketsOf = <X>(
  windows: Record<Bucket, Array<WindowSpec>>,
  f: (windows: Array<WindowSpec>, bucket: Bucket) => BucketLimiter<X>
): Record<Bucket, BucketLimiter<X>> => ({
  results: f(windows.results, "results"),
  machineActions: f(windows.machineActions, "machineActions"),
  run: f(windows.run, "run")
})

/**
 * An in-memory limiter shared by every fiber that uses this layer.
 *
 * @since 0.1.0
 * @category layers
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
 * @category models
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
   * What a call does when Redis cannot be reached: `"none"` (default) waits for it to come
   * back (see `outageWait`), then fails with `RateLimiterUnavailable` without calling the
   * API; `"memory"` logs a warning and at once runs it under this process's own in-memory
   * budget until Redis is back.
   */
  readonly fallback?: "none" | "memory" | undefined
  /**
   * How long callers wait for a lost Redis to come back before failing with
   * `RateLimiterUnavailable`, counted from the first failure of the outage; default
   * `DEFAULT_OUTAGE_WAIT` (30 seconds), 0 to fail at once. Waiting callers keep their
   * order and Redis is asked again with a backoff (100 ms doubling up to 1 s). A Redis
   * this process has never reached (a wrong address or password) fails at once, and
   * `fallback: "memory"` never waits.
   */
  readonly outageWait?: Duration.DurationInput | undefined
  /**
   * How long a permit of a call still in flight keeps its place in the windows if its
   * process dies before the call ends; default 10 minutes.
   */
  readonly lease?: Duration.DurationInput | undefined
  /** The longest wait for the first connection and for each Redis command; default 5 seconds. */
  readonly redisTimeout?: Duration.DurationInput | undefined
}

/**
 * How long callers wait for a lost Redis to come back by default: 30 seconds.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_OUTAGE_WAIT: Duration.Duration = Duration.seconds(30)

/**
 * Builds a limiter whose budget lives in Redis: a sliding log per limit and
 * bucket, checked and stamped atomically by a Lua script, so any number of
 * processes with the same `key` never exceed the quota together. A 429's pause
 * is shared too. The windows use each caller's clock: hosts sharing a budget
 * need synchronised clocks (set `margin` to their largest skew).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRedis = (options: RedisOptions): Effect.Effect<DefenderRateLimiter, never, Scope.Scope> =>
  Effect.gen(function*() {
    const timeout = Duration.decode(options.redisTimeout ?? "5 seconds")
    const lease = Duration.toMillis(Duration.decode(options.lease ?? "10 minutes"))
    const key = options.key ?? "mde-live-response"
    const outageWait = options.fallback === "memory"
      ? 0
      : Duration.toMillis(Duration.decode(options.outageWait ?? DEFAULT_OUTAGE_WAIT))
    const url = Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url
    // Checked before connecting, so a bad limit is not hidden by a connection error.
    const windows = windowsByBucket(options)
    const redis = yield* Effect.acquireRelease(
      connect(url, { connectTimeout: timeout, commandTimeout: timeout }),
      (redis) => redis.close
    )
    const worker = crypto.randomUUID()
    const shared = bucketsOf(windows, (windows, bucket) =>
      makeBucket(redis.store(`{${key}}:${bucket}`, windows, lease), {
        worker,
        queue: true,
        attributes: { "mde.rate_budget": "redis" },
        outageWait: () => (redis.reachedOnce() ? outageWait : 0)
      }))
    return withFallback(shared, yield* make(options), options.fallback)
  })

/**
 * A limiter whose budget lives in Redis and is shared by every process using the
 * same `url` and `key`. See `makeRedis`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerRedis = (options: RedisOptions): Layer.Layer<DefenderRateLimiter> =>
  Layer.scoped(DefenderRateLimiter, makeRedis(options))

/**
 * Parses a limit list such as `100/1m,1500/1h` (units `ms`, `s`, `m`, `h`; a
 * missing number means 1, as in `100/m`). `none` or an empty text means no limit.
 *
 * @since 0.1.0
 * @category config
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
 * Turns a limit list read under `name` (see `parseLimits`) into limits, or a
 * `ConfigError` (for `Config.mapOrFail` right on `Config.string(name)`, which puts
 * `name` in the error's path: `Invalid data at APP_QUOTA: …`).
 *
 * @since 0.1.0
 * @category config
 */
export const limitsFromText = (
  _name: string
): (text: string) => Either.Either<ReadonlyArray<RateLimit>, ConfigError.ConfigError> =>
(text) =>
  // The path stays empty: the mapOrFail on `Config.string(name)` prefixes it with `name`
  // (a path given here would read `APP_QUOTA.APP_QUOTA`).
  Either.mapLeft(parseLimits(text), (message) => ConfigError.InvalidData([], message))

/**
 * Reads the limits from `MDE_RATE_LIMITS` (default `100/1m,1500/1h`).
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<ReadonlyArray<RateLimit>> = Config.string("MDE_RATE_LIMITS").pipe(
  Config.mapOrFail(limitsFromText("MDE_RATE_LIMITS")),
  Config.withDefault(DEFAULT_LIMITS)
)

/**
 * Where `layerConfig` reads each setting. Every one is optional: an omitted one is
 * read from the environment under today's `MDE_*` name, so an app with its own names
 * or its own `ConfigProvider` overrides only what it needs.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { DefenderRateLimiter } from "@mde/live-response"
 *
 * const limiter = DefenderRateLimiter.layerConfig({
 *   limits: Config.string("APP_QUOTA").pipe(Config.mapOrFail(DefenderRateLimiter.limitsFromText("APP_QUOTA"))),
 *   redisUrl: Config.option(Config.redacted("APP_REDIS"))
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export interface LayerConfigOptions {
  /** The result endpoint's limits; default `config` (`MDE_RATE_LIMITS`). */
  readonly limits?: Config.Config<ReadonlyArray<RateLimit>> | undefined
  /** Run live response's limits; default `runConfig` (`MDE_RUN_RATE_LIMITS`). */
  readonly runLimits?: Config.Config<ReadonlyArray<RateLimit>> | undefined
  /** The machine-action endpoints' limits; default `DEFAULT_LIMITS` (no variable). */
  readonly machineActionLimits?: Config.Config<ReadonlyArray<RateLimit>> | undefined
  /** The Redis that shares the budget; none or empty means an in-memory budget. Default `MDE_REDIS_URL`. */
  readonly redisUrl?: Config.Config<Option.Option<Redacted.Redacted<string>>> | undefined
  /** The shared budget's name; default `MDE_REDIS_KEY`, else `mde-live-response`. */
  readonly redisKey?: Config.Config<string> | undefined
  /** What a call does while Redis is unreachable; default `MDE_REDIS_FALLBACK`, else `"none"`. */
  readonly redisFallback?: Config.Config<"none" | "memory"> | undefined
  /** How long callers wait for a lost Redis to come back; default `MDE_REDIS_OUTAGE_WAIT`, else 30 seconds. */
  readonly redisOutageWait?: Config.Config<Duration.Duration> | undefined
}

/** `MDE_REDIS_URL`: unset or empty (no Redis), or a `redis://` / `rediss://` URL; never echoed (it may hold a password). */
const redisUrlConfig: Config.Config<Option.Option<Redacted.Redacted<string>>> = Config.option(
  Config.redacted("MDE_REDIS_URL")
).pipe(
  Config.mapOrFail((url) => {
    const text = Option.isSome(url) ? Redacted.value(url.value).trim() : ""
    return text === "" || /^rediss?:\/\/[^/?#\s]/i.test(text)
      ? Either.right(url)
      : Either.left(ConfigError.InvalidData(
        ["MDE_REDIS_URL"],
        "must be a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379 (or empty for an in-memory budget)"
      ))
  })
)

/** `MDE_REDIS_OUTAGE_WAIT`: `30s`, `500ms`, `2m`, `"30 seconds"`, or `0` for no wait. */
const outageWaitConfig: Config.Config<Duration.Duration> = Config.string("MDE_REDIS_OUTAGE_WAIT").pipe(
  Config.mapOrFail((text) => {
    const short = text.trim() === "0" ? 0 : parseShortDuration(text)
    const duration = short === undefined
      ? Option.getOrUndefined(Duration.decodeUnknown(text.trim()))
      : Duration.millis(short)
    return duration === undefined || !Duration.isFinite(duration)
      // `[]`: the error of a mapOrFail right on `Config.string(name)` is prefixed with `name` already.
      ? Either.left(ConfigError.InvalidData(
        [],
        `must be a duration (30s, 500ms, 2m, 2 minutes, or 0 for no wait), got: ${text}`
      ))
      : Either.right(duration)
  }),
  Config.withDefault(DEFAULT_OUTAGE_WAIT)
)

/**
 * The limiter the environment asks for: limits from `MDE_RATE_LIMITS` and
 * `MDE_RUN_RATE_LIMITS`; with `MDE_REDIS_URL` set, a budget shared on that Redis
 * under `MDE_REDIS_KEY` (default `mde-live-response`), waiting up to
 * `MDE_REDIS_OUTAGE_WAIT` (default 30 s) for a lost Redis, falling back to memory
 * instead only if `MDE_REDIS_FALLBACK=memory`; otherwise an in-memory budget. Pass
 * `configs` to read any of these elsewhere.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (configs?: LayerConfigOptions): Layer.Layer<DefenderRateLimiter, ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.map(
      Config.all({
        limits: configs?.limits ?? config,
        runLimits: configs?.runLimits ?? runConfig,
        machineActionLimits: configs?.machineActionLimits ?? Config.succeed(DEFAULT_LIMITS),
        redis: configs?.redisUrl ?? redisUrlConfig,
        key: configs?.redisKey ?? Config.string("MDE_REDIS_KEY").pipe(Config.withDefault("mde-live-response")),
        fallback: configs?.redisFallback ??
          Config.literal("none", "memory")("MDE_REDIS_FALLBACK").pipe(Config.withDefault("none" as const)),
        outageWait: configs?.redisOutageWait ?? outageWaitConfig
      }),
      ({ fallback, key, limits, machineActionLimits, outageWait, redis, runLimits }) =>
        // An empty MDE_REDIS_URL means no Redis, as an unset one does.
        Option.isSome(redis) && Redacted.value(redis.value).trim() !== ""
          ? layerRedis({ url: redis.value, key, fallback, outageWait, limits, machineActionLimits, runLimits })
          : layer({ limits, machineActionLimits, runLimits })
    )
  )

/**
 * Reads run live response's limits from `MDE_RUN_RATE_LIMITS` (default `10/1m`).
 *
 * @since 0.1.0
 * @category config
 */
export const runConfig: Config.Config<ReadonlyArray<RateLimit>> = Config.string("MDE_RUN_RATE_LIMITS").pipe(
  Config.mapOrFail(limitsFromText("MDE_RUN_RATE_LIMITS")),
  Config.withDefault(DEFAULT_RUN_LIMITS)
)
