/**
 * The Redis-backed budget against a real Redis on loopback (see test/setup/servers.ts; skipped without one).
 * Two limiters built in this process stand for two worker processes: each has its
 * own connection and its own queue, and they share only what is in Redis. The
 * algorithm itself, the same over memory and Redis, is DefenderRateLimiter.stores.test.ts.
 *
 * Time is the TestClock's. Redis commands are real I/O, so before moving the clock a
 * test lets the fibers reach their next sleep (`settle`): nothing waits in real time
 * beyond the round trips to Redis (`settle` turns the event loop with `setImmediate`, no timer).
 */
import { describe, expect, it } from "@effect/vitest"
import {
  Clock,
  Config,
  type ConfigError,
  ConfigProvider,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Option,
  Redacted,
  TestClock
} from "effect"
import { Redis } from "ioredis"
import { createServer } from "node:net"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import { needServer } from "./utils/servers.ts"

const redis = needServer("redis")
const url = redis.url

/** A budget of its own for each test, so tests never share windows. */
const freshKey = () => `test-${crypto.randomUUID()}`

const limiterFor = (key: string, options?: Partial<DefenderRateLimiter.RedisOptions>) =>
  DefenderRateLimiter.makeRedis({ url, key, limits: [{ limit: 3, window: "10 seconds" }], ...options })

/** Lets every unfinished fiber reach a TestClock sleep (or finish), over real Redis round trips. */
const settle = (fibers: ReadonlyArray<Fiber.Fiber<unknown, unknown>>, lockWaiters = 0) =>
  Effect.gen(function*() {
    for (let round = 0; round < 2000; round++) {
      const sleeping = (yield* TestClock.sleeps()).length
      let running = 0
      for (const fiber of fibers) if (Option.isNone(yield* Fiber.poll(fiber))) running++
      if (sleeping + lockWaiters >= running) return
      yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
    }
    throw new Error("fibers did not settle")
  })

/** Moves the TestClock by `step` until `total` has passed, settling after each step. */
const advance = (fibers: ReadonlyArray<Fiber.Fiber<unknown, unknown>>, total: number, step: number) =>
  Effect.gen(function*() {
    for (let passed = 0; passed < total; passed += step) {
      yield* TestClock.adjust(step)
      yield* settle(fibers)
    }
  })

/** Builds `layer` twice (two processes) and checks that they share a budget of one call an hour. */
const sharesOneCallAnHour = (
  layer: Layer.Layer<DefenderRateLimiter.DefenderRateLimiter, ConfigError.ConfigError>,
  provider: ConfigProvider.ConfigProvider
) =>
  Effect.gen(function*() {
    const build = Layer.build(layer).pipe(
      Effect.withConfigProvider(provider),
      Effect.map((context) => context.unsafeMap.values().next().value as DefenderRateLimiter.DefenderRateLimiter)
    )
    const a = yield* build
    const b = yield* build
    yield* a.withPermit(Effect.void)
    const next = yield* Effect.fork(b.withPermit(Clock.currentTimeMillis))
    yield* settle([next])
    yield* TestClock.adjust("1 hour")
    expect(yield* Fiber.join(next)).toBe(3_600_000)
  })

const closedPort = () =>
  new Promise<number>((resolve) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })

describe.skipIf(redis.skip)("DefenderRateLimiter.layerRedis (real Redis)", () => {
  it.scoped("two processes with the same key share one budget", () =>
    Effect.gen(function*() {
      const key = freshKey()
      const a = yield* limiterFor(key)
      const b = yield* limiterFor(key)
      const times: Array<number> = []
      const call = (limiter: DefenderRateLimiter.DefenderRateLimiter) =>
        Effect.fork(limiter.withPermit(Effect.map(Clock.currentTimeMillis, (t) => void times.push(t))))
      const fibers = [yield* call(a), yield* call(b), yield* call(a), yield* call(b), yield* call(a), yield* call(b)]
      // Three permits at once, then one head per process sleeping, the others queued behind it.
      yield* settle(fibers, 2)
      expect(times).toEqual([0, 0, 0])
      yield* TestClock.adjust("10 seconds")
      yield* Effect.forEach(fibers, Fiber.join)
      expect(times).toEqual([0, 0, 0, 10_000, 10_000, 10_000])
    }))

  it.scoped("another key is another budget", () =>
    Effect.gen(function*() {
      const a = yield* limiterFor(freshKey(), { limits: [{ limit: 1, window: "1 hour" }] })
      const b = yield* limiterFor(freshKey(), { limits: [{ limit: 1, window: "1 hour" }] })
      yield* a.withPermit(Effect.void)
      const other = yield* Effect.fork(b.withPermit(Clock.currentTimeMillis))
      expect(yield* Fiber.join(other)).toBe(0)
      // …while the first key's budget is spent for the hour.
      const same = yield* Effect.fork(a.withPermit(Clock.currentTimeMillis))
      yield* settle([same])
      expect(yield* TestClock.sleeps()).toHaveLength(1)
      yield* Fiber.interrupt(same)
    }))

  it.scoped("a call in flight in one process keeps its place until it has ended", () =>
    Effect.gen(function*() {
      const key = freshKey()
      const limits: ReadonlyArray<DefenderRateLimiter.RateLimit> = [{ limit: 1, window: "1 second" }]
      const a = yield* limiterFor(key, { limits })
      const b = yield* limiterFor(key, { limits })
      const slow = yield* Effect.fork(a.withPermit(Effect.sleep("5 seconds")))
      yield* settle([slow])
      const next = yield* Effect.fork(b.withPermit(Clock.currentTimeMillis))
      const fibers = [slow, next]
      yield* settle(fibers)
      yield* advance(fibers, 8_000, 250)
      // The slow call ended at 5 s: it counts until 6 s, not until 1 s after it was granted.
      expect(yield* Fiber.join(next)).toBe(6_000)
    }))

  it.scoped("a 429 seen by one process pauses the others until its Retry-After has passed", () =>
    Effect.gen(function*() {
      const key = freshKey()
      const a = yield* limiterFor(key)
      const b = yield* limiterFor(key)
      yield* a.pause("30 seconds")
      const waiting = yield* Effect.fork(b.withPermit(Clock.currentTimeMillis))
      yield* settle([waiting])
      yield* TestClock.adjust("29 seconds")
      expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(waiting)).toBe(30_000)
    }))

  it.scoped("pauses are per bucket: a results 429 does not hold session starts", () =>
    Effect.gen(function*() {
      const key = freshKey()
      const a = yield* limiterFor(key)
      const b = yield* limiterFor(key)
      yield* a.pause("30 seconds", "results")
      expect(yield* b.withPermit(Clock.currentTimeMillis, "run")).toBe(0)
    }))

  it.scoped("an interrupted wait takes no permit, and an interrupted call gives its permit back", () =>
    Effect.gen(function*() {
      const key = freshKey()
      const limits: ReadonlyArray<DefenderRateLimiter.RateLimit> = [{ limit: 1, window: "10 seconds" }]
      const a = yield* limiterFor(key, { limits })
      const b = yield* limiterFor(key, { limits })
      const long = yield* Effect.fork(a.withPermit(Effect.sleep("1 hour")))
      yield* settle([long])
      const waiting = yield* Effect.fork(b.withPermit(Effect.void))
      yield* settle([long, waiting])
      yield* TestClock.adjust("1 second")
      yield* settle([long, waiting])
      // Both interrupted at 1 s: the long call's permit now counts from 1 s, the waiter took none.
      yield* Fiber.interrupt(waiting)
      yield* Fiber.interrupt(long)
      const next = yield* Effect.fork(b.withPermit(Clock.currentTimeMillis))
      yield* settle([next])
      yield* TestClock.adjust("10 seconds")
      expect(yield* Fiber.join(next)).toBe(11_000)
    }))

  it.scoped("the budget's keys expire on their own", () =>
    Effect.gen(function*() {
      const key = freshKey()
      const limiter = yield* limiterFor(key, { lease: "1 minute" })
      yield* limiter.withPermit(Effect.void)
      const redis = yield* Effect.acquireRelease(Effect.sync(() => new Redis(url)), (r) => Effect.promise(() => r.quit()))
      const keys = yield* Effect.promise(() => redis.keys(`{${key}}:*`))
      expect(keys).toEqual([`{${key}}:results:window:10000`])
      const ttl = yield* Effect.promise(() => redis.pttl(keys[0]!))
      expect(ttl).toBeGreaterThan(0)
      expect(ttl).toBeLessThanOrEqual(70_000)
    }))

  it.scoped("an unreachable Redis fails the call with a typed error, and the call is never made", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(closedPort)
      const limiter = yield* DefenderRateLimiter.makeRedis({
        url: Redacted.make(`redis://:canary-password@127.0.0.1:${port}`),
        redisTimeout: "1 second"
      })
      let called = false
      const result = yield* Effect.either(limiter.withPermit(Effect.sync(() => void (called = true))))
      expect(called).toBe(false)
      const error = Either.getLeft(result).pipe(Option.getOrThrow)
      expect(error._tag).toBe("RateLimiterUnavailable")
      expect(error.message).toContain("could not be reached")
      expect(JSON.stringify(error) + error.message).not.toContain("canary-password")
    }))

  it.scoped("with fallback \"memory\", an unreachable Redis means this process's own budget and one warning", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(closedPort)
      const logs: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => void logs.push(`${logLevel.label} ${String(message)}`))
      const limiter = yield* DefenderRateLimiter.makeRedis({
        url: `redis://127.0.0.1:${port}`,
        redisTimeout: "1 second",
        fallback: "memory",
        limits: [{ limit: 1, window: "10 seconds" }]
      })
      const withLogs = <A, E>(self: Effect.Effect<A, E>) =>
        self.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)), Logger.withMinimumLogLevel(LogLevel.All))
      expect(yield* withLogs(limiter.withPermit(Clock.currentTimeMillis))).toBe(0)
      // Still limited: the in-memory budget holds the second call for the window.
      const second = yield* Effect.fork(withLogs(limiter.withPermit(Clock.currentTimeMillis)))
      yield* settle([second])
      yield* TestClock.adjust("10 seconds")
      expect(yield* Fiber.join(second)).toBe(10_000)
      expect(logs.filter((l) => l.startsWith("WARN"))).toHaveLength(1)
      expect(logs.join("\n")).toContain("uses its own in-memory budget")
    }))

  it.scoped("a call's own failure is not mistaken for Redis being down", () =>
    Effect.gen(function*() {
      const limiter = yield* limiterFor(freshKey(), { fallback: "memory" })
      let runs = 0
      const exit = yield* Effect.exit(limiter.withPermit(Effect.suspend(() => {
        runs++
        return Effect.fail("boom" as const)
      })))
      expect(exit).toEqual(Exit.fail("boom"))
      expect(runs).toBe(1)
    }))

  it.scoped("layerConfig shares the budget on MDE_REDIS_URL under MDE_REDIS_KEY", () =>
    Effect.gen(function*() {
      const key = freshKey()
      const provider = ConfigProvider.fromMap(
        new Map([["MDE_REDIS_URL", url], ["MDE_REDIS_KEY", key], ["MDE_RATE_LIMITS", "1/1h"]])
      )
      yield* sharesOneCallAnHour(DefenderRateLimiter.layerConfig(), provider)
    }))

  it.scoped("layerConfig shares the budget on a Redis the app names its own way", () =>
    Effect.gen(function*() {
      // No MDE_* variable at all: every setting comes from the app's Configs.
      const layer = DefenderRateLimiter.layerConfig({
        limits: Config.succeed([{ limit: 1, window: "1 hour" }]),
        redisUrl: Config.option(Config.redacted("APP_REDIS")),
        redisKey: Config.succeed(freshKey()),
        redisFallback: Config.succeed("none")
      })
      yield* sharesOneCallAnHour(layer, ConfigProvider.fromMap(new Map([["APP_REDIS", url]])))
    }))
})
