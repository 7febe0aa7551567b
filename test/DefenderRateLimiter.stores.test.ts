/**
 * One behavioural suite for the rate-limit algorithm, run over both stores: the
 * in-memory budget (`make`) and the shared one on a real Redis (`makeRedis`, see
 * test/setup/servers.ts; skipped without one). Every wait is on the TestClock; the only real time is `settle`'s
 * turns of the event loop (no timer longer than 0 ms), which let Redis's answers arrive.
 *
 * Redis commands are real I/O: a fiber woken by the TestClock asks Redis before it
 * sleeps again, so the clock must not move on until every command has come back
 * (`settle`, which counts the commands in flight), and a wait that the algorithm
 * re-checks mid-way is crossed in steps (`advance`) rather than in one jump. In
 * memory, settling is a no-op and the steps change nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Fiber, type Scope, TestClock } from "effect"
import { Redis } from "ioredis"
import { maxInWindow } from "../bench/windows.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import { needServer } from "./utils/servers.ts"

interface StoreUnderTest {
  readonly make: (
    options?: DefenderRateLimiter.Options
  ) => Effect.Effect<DefenderRateLimiter.DefenderRateLimiter, never, Scope.Scope>
  /** Returns once every fiber has reached a TestClock sleep, the queue, or its end. */
  readonly settle: Effect.Effect<void>
  /** No server for this store here (test/utils/servers.ts). */
  readonly skip?: boolean
}

/** Forks `n` callers that each take one permit and record when they got it. */
const forkCallers = (limiter: DefenderRateLimiter.DefenderRateLimiter, n: number, times: Array<number>) =>
  Effect.forEach(
    Array.from({ length: n }),
    () => limiter.withPermit(Clock.currentTimeMillis).pipe(Effect.map((t) => times.push(t))),
    { concurrency: "unbounded", discard: true }
  ).pipe(Effect.fork)

const suite = (name: string, store: StoreUnderTest) =>
  describe.skipIf(store.skip === true)(`DefenderRateLimiter (${name})`, () => {
    /** Moves the TestClock by `duration` in one jump, with every fiber settled before and after. */
    const adjust = (duration: Duration.DurationInput) =>
      Effect.zipRight(store.settle, Effect.zipRight(TestClock.adjust(duration), store.settle))
    /** Moves the TestClock by `total` in steps of `step`. */
    const advance = (total: Duration.DurationInput, step: Duration.DurationInput) =>
      Effect.gen(function*() {
        const steps = Math.ceil(Duration.toMillis(total) / Duration.toMillis(step))
        for (let i = 0; i < steps; i++) yield* adjust(step)
      })
    /** Starts calls of these latencies at once; when each call started, once `total` has passed. */
    const startsOf = (
      limiter: DefenderRateLimiter.DefenderRateLimiter,
      latencies: ReadonlyArray<Duration.DurationInput>,
      total: Duration.DurationInput
    ) =>
      Effect.gen(function*() {
        const starts: Array<number> = []
        const call = (latency: Duration.DurationInput) =>
          limiter.withPermit(
            Clock.currentTimeMillis.pipe(Effect.tap((t) => starts.push(t)), Effect.zipRight(Effect.sleep(latency)))
          )
        const fiber = yield* Effect.fork(Effect.all(latencies.map(call), { concurrency: "unbounded" }))
        yield* advance(total, "1 second")
        yield* Fiber.join(fiber)
        return starts
      })

    it.scoped("300 concurrent callers never exceed 100 per rolling minute, and wait instead of failing", () =>
      Effect.gen(function*() {
        const limiter = yield* store.make()
        const times: Array<number> = []
        const fiber = yield* forkCallers(limiter, 300, times)
        yield* adjust("59 seconds")
        expect(times.length).toBe(100)
        expect(yield* limiter.waiting).toBe(200)
        yield* adjust("1 second")
        expect(times.length).toBe(200)
        yield* adjust("1 minute")
        yield* Fiber.join(fiber)
        expect(times.length).toBe(300)
        expect(yield* limiter.waiting).toBe(0)
        expect(maxInWindow(times, 60_000)).toBe(100)
        expect(Math.max(...times)).toBe(120_000)
      }))

    it.scoped("the hourly limit applies at the same time as the per-minute one", () =>
      Effect.gen(function*() {
        const limiter = yield* store.make({
          limits: [{ limit: 5, window: "1 second" }, { limit: 12, window: "1 minute" }]
        })
        const times: Array<number> = []
        const fiber = yield* forkCallers(limiter, 13, times)
        yield* advance("59 seconds", "1 second")
        expect(times.length).toBe(12)
        expect(maxInWindow(times, 1000)).toBe(5)
        yield* adjust("1 second")
        yield* Fiber.join(fiber)
        expect(times).toHaveLength(13)
        expect(Math.max(...times)).toBe(60_000)
      }))

    it.scoped("a pause holds every caller until it has passed", () =>
      Effect.gen(function*() {
        const limiter = yield* store.make({ limits: [] })
        yield* limiter.pause("30 seconds")
        const times: Array<number> = []
        const fiber = yield* forkCallers(limiter, 50, times)
        yield* adjust("29 seconds")
        expect(times).toHaveLength(0)
        yield* adjust("1 second")
        yield* Fiber.join(fiber)
        expect(times).toEqual(Array.from({ length: 50 }, () => 30_000))
      }))

    for (const [name, limits] of [["with limits", undefined], ["without limits", []]] as const) {
      it.scoped(`a pause extended while callers wait holds them until its new end (${name})`, () =>
        Effect.gen(function*() {
          const limiter = yield* store.make({ limits })
          yield* limiter.pause("5 seconds")
          const times: Array<number> = []
          const fiber = yield* forkCallers(limiter, 3, times)
          yield* adjust("4 seconds")
          yield* limiter.pause("27 seconds")
          yield* advance("30 seconds", "1 second")
          yield* Fiber.join(fiber)
          expect(times).toEqual([31_000, 31_000, 31_000])
        }))
    }

    it.scoped("pauses are per bucket: a results 429 does not hold session starts", () =>
      Effect.gen(function*() {
        const limiter = yield* store.make()
        yield* limiter.pause("30 seconds", "results")
        expect(yield* limiter.withPermit(Clock.currentTimeMillis, "run")).toBe(0)
      }))

    it.scoped("waiting callers get their permits in arrival order", () =>
      Effect.gen(function*() {
        const limiter = yield* store.make({ limits: [{ limit: 1, window: "1 second" }] })
        const order: Array<number> = []
        const fibers: Array<Fiber.RuntimeFiber<void, unknown>> = []
        for (let i = 0; i < 6; i++) {
          fibers.push(yield* Effect.fork(limiter.withPermit(Effect.sync(() => void order.push(i)))))
          // Newcomers keep arriving while the queue is served.
          yield* adjust("300 millis")
        }
        yield* advance("10 seconds", "250 millis")
        yield* Fiber.joinAll(fibers)
        expect(order).toEqual([0, 1, 2, 3, 4, 5])
      }))

    it.scoped("a call counts in the window from when it ends, so its latency cannot squeeze the window", () =>
      Effect.gen(function*() {
        const limiter = yield* store.make({ limits: [{ limit: 2, window: "10 seconds" }] })
        // Both first calls take 3 s to come back (they may reach the API as late as that):
        // the third may only start 10 s after the earlier of them ended.
        const starts = yield* startsOf(limiter, ["3 seconds", "4 seconds", "0 millis"], "20 seconds")
        expect(starts).toEqual([0, 0, 13_000])
      }))

    it.scoped("a call still in flight a window later keeps its slot", () =>
      Effect.gen(function*() {
        const limiter = yield* store.make({ limits: [{ limit: 1, window: "10 seconds" }] })
        // The first call hangs for 25 s: the second may start only 10 s after it ended.
        const starts = yield* startsOf(limiter, ["25 seconds", "0 millis"], "40 seconds")
        expect(starts).toEqual([0, 35_000])
      }))

    it.scoped("the slot freed is the one of the call that ended first, not the one granted first", () =>
      Effect.gen(function*() {
        const limiter = yield* store.make({ limits: [{ limit: 2, window: "60 seconds" }] })
        // A ends at 30 s, B at 1 s: C may start at 61 s, D only at 90 s.
        const starts = yield* startsOf(limiter, ["30 seconds", "1 second", "0 millis", "0 millis"], "100 seconds")
        expect(starts).toEqual([0, 0, 61_000, 90_000])
      }))

    it.scoped("an optional margin widens every window", () =>
      Effect.gen(function*() {
        const limiter = yield* store.make({ limits: [{ limit: 1, window: "1 second" }], margin: "250 millis" })
        const times: Array<number> = []
        const fiber = yield* forkCallers(limiter, 2, times)
        yield* advance("2 seconds", "250 millis")
        yield* Fiber.join(fiber)
        expect(times).toEqual([0, 1250])
      }))

    it.scoped("a shorter pause never shortens a longer one", () =>
      Effect.gen(function*() {
        const limiter = yield* store.make()
        yield* limiter.pause("20 seconds")
        yield* limiter.pause("5 seconds")
        const times: Array<number> = []
        const fiber = yield* forkCallers(limiter, 1, times)
        yield* adjust("20 seconds")
        yield* Fiber.join(fiber)
        expect(times).toEqual([20_000])
      }))

    it.scoped("an interrupted waiter takes no permit", () =>
      Effect.gen(function*() {
        const limiter = yield* store.make({ limits: [{ limit: 1, window: "10 seconds" }] })
        yield* limiter.withPermit(Effect.void)
        const waiting = yield* Effect.fork(limiter.withPermit(Effect.void))
        yield* adjust("1 second")
        yield* Fiber.interrupt(waiting)
        yield* adjust("9 seconds")
        const times: Array<number> = []
        yield* Fiber.join(yield* forkCallers(limiter, 1, times))
        expect(times).toEqual([10_000])
      }))

    it.scoped("an interrupted call gives its permit back, stamped with when it was interrupted", () =>
      Effect.gen(function*() {
        const limiter = yield* store.make({ limits: [{ limit: 1, window: "10 seconds" }] })
        const long = yield* Effect.fork(limiter.withPermit(Effect.sleep("1 hour")))
        yield* adjust("1 second")
        yield* Fiber.interrupt(long)
        const times: Array<number> = []
        const next = yield* forkCallers(limiter, 1, times)
        yield* advance("10 seconds", "1 second")
        yield* Fiber.join(next)
        expect(times).toEqual([11_000])
        expect(yield* limiter.waiting).toBe(0)
      }))
  })

suite("in memory", {
  make: (options) => DefenderRateLimiter.make(options),
  // Nothing leaves the fiber runtime: TestClock.adjust alone lets every fiber reach its next sleep.
  settle: Effect.void
})

// Counts this process's Redis commands still waiting for their reply.
let inFlight = 0
let sent = 0
const sendCommand = Redis.prototype.sendCommand
beforeAll(() => {
  Redis.prototype.sendCommand = function(this: Redis, ...args: Parameters<Redis["sendCommand"]>) {
    inFlight++
    sent++
    const done = () => void inFlight--
    args[0].promise.then(done, done)
    return sendCommand.apply(this, args)
  }
})
afterAll(() => {
  Redis.prototype.sendCommand = sendCommand
})

/** Real-time turns of the event loop until no command has been in flight for two turns in a row. */
const settleRedis = Effect.promise(async () => {
  for (let quiet = 0, turns = 0; quiet < 2; turns++) {
    if (turns > 100_000) throw new Error("Redis commands did not settle")
    const idle = inFlight === 0
    // A turn of timers as well: Effect's scheduler may resume a fiber in a timer callback.
    await new Promise((resolve) => idle ? setTimeout(resolve, 0) : setImmediate(resolve))
    quiet = idle && inFlight === 0 ? quiet + 1 : 0
  }
})

const redis = needServer("redis")
const url = redis.url
suite("on Redis", {
  skip: redis.skip,
  // A budget of its own for each limiter, so tests never share windows.
  make: (options) => DefenderRateLimiter.makeRedis({ ...options, url, key: `test-${crypto.randomUUID()}` }),
  settle: settleRedis
})

describe.skipIf(redis.skip)("the Redis suite's settle", () => {
  it.scoped("sees the store's commands (else it would settle at once, and prove nothing)", () =>
    Effect.gen(function*() {
      const before = sent
      const limiter = yield* DefenderRateLimiter.makeRedis({ url, key: `test-${crypto.randomUUID()}` })
      yield* limiter.withPermit(Effect.void)
      expect(sent - before).toBeGreaterThanOrEqual(2)
      expect(inFlight).toBe(0)
    }))
})
