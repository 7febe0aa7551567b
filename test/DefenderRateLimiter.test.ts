import { describe, expect, it } from "@effect/vitest"
import { Clock, ConfigProvider, Duration, Effect, Either, Fiber, Layer, TestClock } from "effect"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import { maxInWindow } from "../bench/windows.ts"

// Every `Effect.sleep` below is a simulated call latency inside `it.effect`, so it runs on
// the TestClock that `TestClock.adjust` moves: no test here waits in real time.

/** Forks `n` callers that each take one permit and record when they got it. */
const forkCallers = (limiter: DefenderRateLimiter.DefenderRateLimiter, n: number, times: Array<number>) =>
  Effect.forEach(
    Array.from({ length: n }),
    () => limiter.withPermit(Clock.currentTimeMillis).pipe(Effect.map((t) => times.push(t))),
    { concurrency: "unbounded", discard: true }
  ).pipe(Effect.fork)

describe("DefenderRateLimiter", () => {
  it.effect("300 concurrent callers never exceed 100 per rolling minute, and wait instead of failing", () =>
    Effect.gen(function*() {
      const limiter = yield* DefenderRateLimiter.make()
      const times: Array<number> = []
      const fiber = yield* forkCallers(limiter, 300, times)
      yield* TestClock.adjust("59 seconds")
      expect(times.length).toBe(100)
      expect(yield* limiter.waiting).toBe(200)
      yield* TestClock.adjust("1 second")
      expect(times.length).toBe(200)
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      expect(times.length).toBe(300)
      expect(yield* limiter.waiting).toBe(0)
      expect(maxInWindow(times, 60_000)).toBe(100)
      expect(Math.max(...times)).toBe(120_000)
    }))

  it.effect("the hourly limit applies at the same time as the per-minute one", () =>
    Effect.gen(function*() {
      const limiter = yield* DefenderRateLimiter.make({
        limits: [{ limit: 5, window: "1 second" }, { limit: 12, window: "1 minute" }]
      })
      const times: Array<number> = []
      const fiber = yield* forkCallers(limiter, 13, times)
      yield* TestClock.adjust("59 seconds")
      expect(times.length).toBe(12)
      expect(maxInWindow(times, 1000)).toBe(5)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(times).toHaveLength(13)
      expect(Math.max(...times)).toBe(60_000)
    }))

  it.effect("a pause holds every caller until it has passed", () =>
    Effect.gen(function*() {
      const limiter = yield* DefenderRateLimiter.make({ limits: [] })
      yield* limiter.pause("30 seconds")
      const times: Array<number> = []
      const fiber = yield* forkCallers(limiter, 50, times)
      yield* TestClock.adjust("29 seconds")
      expect(times).toHaveLength(0)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(times).toEqual(Array.from({ length: 50 }, () => 30_000))
    }))

  for (const [name, limits] of [["with limits", undefined], ["without limits", []]] as const) {
    it.effect(`a pause extended while callers wait holds them until its new end (${name})`, () =>
      Effect.gen(function*() {
        const limiter = yield* DefenderRateLimiter.make({ limits })
        yield* limiter.pause("5 seconds")
        const times: Array<number> = []
        const fiber = yield* forkCallers(limiter, 3, times)
        yield* TestClock.adjust("4 seconds")
        yield* limiter.pause("27 seconds")
        yield* TestClock.adjust("30 seconds")
        yield* Fiber.join(fiber)
        expect(times).toEqual([31_000, 31_000, 31_000])
      }))
  }

  it.effect("waiting callers get their permits in arrival order", () =>
    Effect.gen(function*() {
      const limiter = yield* DefenderRateLimiter.make({ limits: [{ limit: 1, window: "1 second" }] })
      const order: Array<number> = []
      const fibers: Array<Fiber.RuntimeFiber<void, unknown>> = []
      for (let i = 0; i < 6; i++) {
        fibers.push(yield* Effect.fork(limiter.withPermit(Effect.sync(() => void order.push(i)))))
        // Newcomers keep arriving while the queue is served.
        yield* TestClock.adjust("300 millis")
      }
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.joinAll(fibers)
      expect(order).toEqual([0, 1, 2, 3, 4, 5])
    }))

  it.effect("a call counts in the window from when it ends, so its latency cannot squeeze the window", () =>
    Effect.gen(function*() {
      const limiter = yield* DefenderRateLimiter.make({ limits: [{ limit: 2, window: "10 seconds" }] })
      const starts: Array<number> = []
      const call = (latency: Duration.DurationInput) =>
        limiter.withPermit(
          Clock.currentTimeMillis.pipe(Effect.tap((t) => starts.push(t)), Effect.zipRight(Effect.sleep(latency)))
        )
      // Both first calls take 3 s to come back (they may reach the API as late as that):
      // the third may only start 10 s after the earlier of them ended.
      const fiber = yield* Effect.fork(
        Effect.all([call("3 seconds"), call("4 seconds"), call("0 millis")], { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("20 seconds")
      yield* Fiber.join(fiber)
      expect(starts).toEqual([0, 0, 13_000])
    }))

  it.effect("a call still in flight a window later keeps its slot", () =>
    Effect.gen(function*() {
      const limiter = yield* DefenderRateLimiter.make({ limits: [{ limit: 1, window: "10 seconds" }] })
      const starts: Array<number> = []
      const call = (latency: Duration.DurationInput) =>
        limiter.withPermit(
          Clock.currentTimeMillis.pipe(Effect.tap((t) => starts.push(t)), Effect.zipRight(Effect.sleep(latency)))
        )
      // The first call hangs for 25 s: the second may start only 10 s after it ended.
      const fiber = yield* Effect.fork(Effect.all([call("25 seconds"), call("0 millis")], { concurrency: "unbounded" }))
      for (let i = 0; i < 40; i++) yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(starts).toEqual([0, 35_000])
    }))

  it.effect("the slot freed is the one of the call that ended first, not the one granted first", () =>
    Effect.gen(function*() {
      const limiter = yield* DefenderRateLimiter.make({ limits: [{ limit: 2, window: "60 seconds" }] })
      const starts: Array<number> = []
      const call = (latency: Duration.DurationInput) =>
        limiter.withPermit(
          Clock.currentTimeMillis.pipe(Effect.tap((t) => starts.push(t)), Effect.zipRight(Effect.sleep(latency)))
        )
      // A ends at 30 s, B at 1 s: C may start at 61 s, D only at 90 s.
      const fiber = yield* Effect.fork(
        Effect.all([call("30 seconds"), call("1 second"), call("0 millis"), call("0 millis")], { concurrency: "unbounded" })
      )
      for (let i = 0; i < 100; i++) yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(starts).toEqual([0, 0, 61_000, 90_000])
    }))

  it.effect("an optional margin widens every window", () =>
    Effect.gen(function*() {
      const limiter = yield* DefenderRateLimiter.make({ limits: [{ limit: 1, window: "1 second" }], margin: "250 millis" })
      const times: Array<number> = []
      const fiber = yield* forkCallers(limiter, 2, times)
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(fiber)
      expect(times).toEqual([0, 1250])
    }))

  it.effect("a shorter pause never shortens a longer one", () =>
    Effect.gen(function*() {
      const limiter = yield* DefenderRateLimiter.make()
      yield* limiter.pause("20 seconds")
      yield* limiter.pause("5 seconds")
      const times: Array<number> = []
      const fiber = yield* forkCallers(limiter, 1, times)
      yield* TestClock.adjust("20 seconds")
      yield* Fiber.join(fiber)
      expect(times).toEqual([20_000])
    }))

  it.effect("an interrupted waiter takes no permit", () =>
    Effect.gen(function*() {
      const limiter = yield* DefenderRateLimiter.make({ limits: [{ limit: 1, window: "10 seconds" }] })
      yield* limiter.withPermit(Effect.void)
      const waiting = yield* Effect.fork(limiter.withPermit(Effect.void))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(waiting)
      yield* TestClock.adjust("9 seconds")
      const times: Array<number> = []
      yield* Fiber.join(yield* forkCallers(limiter, 1, times))
      expect(times).toEqual([10_000])
    }))

  it("parseLimits reads MDE_RATE_LIMITS syntax", () => {
    expect(DefenderRateLimiter.parseLimits("100/1m,1500/1h")).toEqual(
      Either.right([{ limit: 100, window: Duration.millis(60_000) }, { limit: 1500, window: Duration.millis(3_600_000) }])
    )
    expect(DefenderRateLimiter.parseLimits(" 20 / 2s ")).toEqual(Either.right([{ limit: 20, window: Duration.millis(2000) }]))
    expect(DefenderRateLimiter.parseLimits("10/m")).toEqual(Either.right([{ limit: 10, window: Duration.millis(60_000) }]))
    expect(DefenderRateLimiter.parseLimits("none")).toEqual(Either.right([]))
    expect(Either.isLeft(DefenderRateLimiter.parseLimits("100 per minute"))).toBe(true)
    expect(Either.isLeft(DefenderRateLimiter.parseLimits("0/1m"))).toBe(true)
    expect(Either.isLeft(DefenderRateLimiter.parseLimits("100/0s"))).toBe(true)
  })

  it.effect("layerConfig takes MDE_RATE_LIMITS", () =>
    Effect.gen(function*() {
      const limiter = yield* DefenderRateLimiter.DefenderRateLimiter
      const times: Array<number> = []
      const fiber = yield* forkCallers(limiter, 3, times)
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(fiber)
      expect(times).toEqual([0, 0, 2000])
    }).pipe(
      Effect.provide(
        DefenderRateLimiter.layerConfig().pipe(
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["MDE_RATE_LIMITS", "2/2s"]]))))
        )
      )
    ))

  it.effect("layerConfig rejects a malformed MDE_RATE_LIMITS with a ConfigError", () =>
    Effect.gen(function*() {
      const error = yield* Layer.build(DefenderRateLimiter.layerConfig()).pipe(
        Effect.scoped,
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["MDE_RATE_LIMITS", "lots"]]))),
        Effect.flip
      )
      expect(String(error)).toContain("MDE_RATE_LIMITS")
    }))
})
