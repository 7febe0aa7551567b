/**
 * The Redis store: one bucket's sliding logs (a sorted set of permits per limit,
 * scored by time) and pause, checked and stamped by one Lua script, so any number
 * of processes see and take the same budget atomically.
 *
 * It keeps the `Store` contract as the memory store does: a permit is stamped in
 * flight when granted (scored `now + lease`, so it cannot leave a window while its
 * call may still reach the API) and re-stamped with the time its call ended; the
 * window frees the slot of the call that ended first. A crashed worker's in-flight
 * permits leave after `lease`.
 *
 * @internal
 */
import { Duration, Effect } from "effect"
import type { Redis, RedisOptions } from "ioredis"
import { redactText } from "../url.ts"
import { RateLimiterUnavailable } from "../../DefenderError.ts"
import type { Store, WindowSpec } from "./store.ts"

/**
 * KEYS: pause key, then one sorted set per limit.
 * ARGV: now, permit id, lease, ttl, then limit and window millis per sorted set.
 * Returns 0 when granted (and stamped), else the milliseconds to wait.
 */
const ACQUIRE = `
local now = tonumber(ARGV[1])
local id = ARGV[2]
local lease = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local wait = 0
local paused = tonumber(redis.call("GET", KEYS[1]) or "0")
if paused > now then wait = paused - now end
for i = 2, #KEYS do
  local limit = tonumber(ARGV[2 * i + 1])
  local millis = tonumber(ARGV[2 * i + 2])
  redis.call("ZREMRANGEBYSCORE", KEYS[i], "-inf", now - millis)
  if redis.call("ZCARD", KEYS[i]) >= limit then
    local first = redis.call("ZRANGE", KEYS[i], 0, 0, "WITHSCORES")
    local oldest = tonumber(first[2])
    -- a permit still in flight (scored in the future) may reach the API at any moment
    if oldest > now then oldest = now end
    local w = oldest + millis - now
    if w > wait then wait = w end
  end
end
if wait > 0 then return math.max(1, math.ceil(wait)) end
for i = 2, #KEYS do
  redis.call("ZADD", KEYS[i], now + lease, id)
  redis.call("PEXPIRE", KEYS[i], ttl)
end
return 0
`

/** KEYS: the sorted sets. ARGV: permit id, end time. Re-stamps a permit with the time its call ended. */
const RELEASE = `
for i = 1, #KEYS do
  redis.call("ZADD", KEYS[i], "XX", ARGV[2], ARGV[1])
end
return 0
`

/** KEYS: pause key. ARGV: until, ttl. Extends the pause, never shortens it. */
const PAUSE = `
local current = tonumber(redis.call("GET", KEYS[1]) or "0")
local untilMillis = tonumber(ARGV[1])
if untilMillis > current then redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2]) end
return 0
`

interface BudgetCommands {
  mdeAcquire(...args: Array<string | number>): Promise<number>
  mdeRelease(...args: Array<string | number>): Promise<number>
  mdePause(...args: Array<string | number>): Promise<number>
}

/**
 * A connection to the budget's Redis, with the scripts loaded.
 *
 * @internal
 */
export interface RedisConnection {
  /**
   * The store of one bucket, kept under `prefix`: its logs at `prefix:window:<millis>`
   * (keyed by window length, so processes configured alike share each window's log)
   * and its pause at `prefix:pause`.
   */
  readonly store: (prefix: string, windows: ReadonlyArray<WindowSpec>, lease: number) => Store<RateLimiterUnavailable>
  /**
   * Whether the connection has been ready at least once: an unreachable Redis is then an
   * outage to wait out, not a wrong address or password to report at once.
   */
  readonly reachedOnce: () => boolean
  /** Closes the connection. */
  readonly close: Effect.Effect<void>
}

/**
 * The store's own error, without any address or password a URL might carry.
 *
 * @internal
 */
export const describeRedisError = (cause: unknown): string => {
  const text = cause instanceof Error ? cause.message : String(cause)
  // url.ts's userinfo rule: greedy to the last `@`, so a password holding a raw `@` goes whole.
  return redactText(text).slice(0, 200)
}

const unavailable = (cause: unknown): RateLimiterUnavailable => new RateLimiterUnavailable({ store: "redis", detail: describeRedisError(cause) })

/**
 * Connects to Redis (waiting at most `connectTimeout` for the first connection; a
 * failure there is not fatal: every command then fails with `RateLimiterUnavailable`
 * until the client has reconnected on its own).
 *
 * @internal
 */
export const connect = (url: string, options: {
  readonly connectTimeout: Duration.Duration
  readonly commandTimeout: Duration.Duration
}): Effect.Effect<RedisConnection> =>
  Effect.gen(function*() {
    // Loaded on demand: ioredis is only needed by those who use the Redis budget.
    const { Redis: RedisClient } = yield* Effect.tryPromise({
      try: () => import("ioredis"),
      catch: () => new Error("a rate budget on Redis needs the ioredis package, an optional peer: npm install ioredis@5")
    }).pipe(Effect.orDie)
    const redisOptions: RedisOptions = {
      lazyConnect: true,
      // A command while disconnected fails at once instead of queueing without limit.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: Duration.toMillis(options.connectTimeout),
      commandTimeout: Duration.toMillis(options.commandTimeout),
      retryStrategy: (times) => Math.min(times * 100, 2000)
    }
    const redis = new RedisClient(url, redisOptions) as Redis & BudgetCommands
    // Without a listener, ioredis prints every connection error to the console. The last
    // one explains a command refused while disconnected better than ioredis's own message.
    let lastError: unknown = undefined
    let reachedOnce = false
    redis.on("error", (error) => {
      lastError = error
    })
    redis.on("ready", () => {
      lastError = undefined
      reachedOnce = true
    })
    redis.defineCommand("mdeAcquire", { lua: ACQUIRE })
    redis.defineCommand("mdeRelease", { lua: RELEASE })
    redis.defineCommand("mdePause", { lua: PAUSE, numberOfKeys: 1 })
    yield* Effect.promise(() =>
      redis.connect().then(
        () => undefined,
        () => undefined
      )
    )
    const run = <A>(command: () => Promise<A>) =>
      Effect.tryPromise({
        try: command,
        catch: (cause) =>
          unavailable(
            redis.status !== "ready" && lastError !== undefined
              ? `not connected: ${describeRedisError(lastError)}`
              : cause
          )
      })
    const store = (prefix: string, windows: ReadonlyArray<WindowSpec>, lease: number): Store<RateLimiterUnavailable> => {
      const keys = windows.map((w) => `${prefix}:window:${w.millis}`)
      const pauseKey = `${prefix}:pause`
      const ttl = Math.ceil(Math.max(0, ...windows.map((w) => w.millis)) + lease)
      const limits = windows.flatMap((w) => [w.limit, w.millis])
      return {
        acquire: (now, permitId) =>
          run(() => redis.mdeAcquire(keys.length + 1, pauseKey, ...keys, now, permitId, lease, ttl, ...limits)).pipe(
            Effect.map(Number)
          ),
        release: (permitId, now) =>
          keys.length === 0
            ? Effect.void
            : Effect.asVoid(run(() => redis.mdeRelease(keys.length, ...keys, permitId, now))),
        pause: (until, now) => Effect.asVoid(run(() => redis.mdePause(pauseKey, until, Math.max(1, Math.ceil(until - now)))))
      }
    }
    return {
      store,
      reachedOnce: () => reachedOnce,
      close: Effect.promise(() =>
        redis.status === "ready"
          ? redis.quit().then(() => undefined, () => redis.disconnect())
          : Promise.resolve(redis.disconnect())
      )
    }
  })
