/**
 * The outage wait of the rate-limit algorithm (`bucket.ts`), over a store that cannot be
 * reached until the test says so: callers wait for it, in order, polling with a backoff,
 * up to the outage's wait, then fail together. Every wait is on the TestClock; the real
 * redis-server stopped and restarted is test/redis.outage.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, ConfigProvider, Effect, Either, Fiber, Layer, Option, TestClock } from "effect"
import { RateLimiterUnavailable } from "../src/DefenderError.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import { makeBucket } from "../src/internal/rateLimiter/bucket.ts"
import type { Store } from "../src/internal/rateLimiter/store.ts"

/** A store with no limit that fails while `down` is set, counting every try. */
const flakyStore = () => {
  const state = { down: true, tries: [] as Array<number> }
  const store: Store<RateLimiterUnavailable> = {
    acquire: (now) =>
      Effect.suspend(() => {
        state.tries.push(now)
        return state.down
          ? Effect.fail(new RateLimiterUnavailable({ store: "redis", detail: "not connected: ECONNREFUSED" }))
          : Effect.succeed(0)
      }),
    release: () => Effect.void,
    pause: () => Effect.void
  }
  return { state, store }
}

const bucketOver = (store: Store<RateLimiterUnavailable>, outageWait?: number) =>
  makeBucket(store, {
    worker: "test",
    queue: true,
    ...(outageWait === undefined ? {} : { outageWait: () => outageWait })
  })

/** Forks `n` callers in arrival order; each records its index and the time it ran. */
const forkCallers = (bucket: ReturnType<typeof bucketOver>, n: number, ran: Array<readonly [number, number]>) =>
  Effect.forEach(
    Array.from({ length: n }, (_, i) => i),
    (i) =>
      Effect.either(bucket.withPermit(Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.sync(() => ran.push([i, t]))))),
    { concurrency: "unbounded" }
  ).pipe(Effect.fork)

describe("DefenderRateLimiter: an unreachable store", () => {
  it.effect("callers wait for it to come back, in arrival order, and none fails", () =>
    Effect.gen(function*() {
      const { state, store } = flakyStore()
      const bucket = bucketOver(store, 30_000)
      const ran: Array<readonly [number, number]> = []
      const fiber = yield* forkCallers(bucket, 5, ran)
      yield* TestClock.adjust("10 seconds")
      expect(ran).toEqual([])
      expect(bucket.waiters()).toBe(5)
      state.down = false
      yield* TestClock.adjust("1 second")
      const results = yield* Fiber.join(fiber)
      expect(results.filter(Either.isLeft)).toEqual([])
      expect(ran.map(([i]) => i)).toEqual([0, 1, 2, 3, 4])
      // Back at 10 s, seen at the next poll (polls are at most 1 s apart).
      for (const [, t] of ran) expect(t).toBeLessThanOrEqual(11_000)
    }))

  it.effect("it is polled with a backoff (100 ms doubling to 1 s), not in a loop, and only by the head", () =>
    Effect.gen(function*() {
      const { state, store } = flakyStore()
      const bucket = bucketOver(store, 30_000)
      const fiber = yield* forkCallers(bucket, 20, [])
      yield* TestClock.adjust("10 seconds")
      // 0, 100, 300, 700, 1500, then every second: 13 tries in 10 s, whatever the queue's length.
      expect(state.tries).toEqual([0, 100, 300, 700, 1500, 2500, 3500, 4500, 5500, 6500, 7500, 8500, 9500])
      state.down = false
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
    }))

  it.effect("an outage longer than the wait: every caller fails together after it, and no call is made", () =>
    Effect.gen(function*() {
      const { state, store } = flakyStore()
      const bucket = bucketOver(store, 30_000)
      const ran: Array<readonly [number, number]> = []
      const fiber = yield* forkCallers(bucket, 5, ran)
      yield* TestClock.adjust("29 seconds")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      const triesBefore = state.tries.length
      yield* TestClock.adjust("1 second")
      const results = yield* Fiber.join(fiber)
      expect(ran).toEqual([])
      for (const result of results) {
        expect(Either.getLeft(result).pipe((e) => e._tag === "Some" && e.value._tag)).toBe("RateLimiterUnavailable")
      }
      // The head tried at 29.5 s and once more at 30 s; the callers behind it saw that and did not ask again.
      expect(state.tries.slice(triesBefore)).toEqual([29_500, 30_000])
      expect(yield* Clock.currentTimeMillis).toBe(30_000)
      // Once the outage has outlasted the wait, a newcomer tries once and fails at once.
      yield* TestClock.adjust("1 second")
      const late = yield* Effect.either(bucket.withPermit(Effect.void))
      expect(Either.isLeft(late)).toBe(true)
      expect(state.tries.slice(triesBefore)).toEqual([29_500, 30_000, 31_000])
      // …and when the store is back, the next outage has a wait of its own.
      state.down = false
      expect(Either.isRight(yield* Effect.either(bucket.withPermit(Effect.void)))).toBe(true)
    }))

  it.effect("a waiting caller can be interrupted; the one behind it takes its place", () =>
    Effect.gen(function*() {
      const { state, store } = flakyStore()
      const bucket = bucketOver(store, 30_000)
      const head = yield* Effect.fork(bucket.withPermit(Effect.void))
      const ran: Array<readonly [number, number]> = []
      const next = yield* forkCallers(bucket, 1, ran)
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.interrupt(head)
      expect(bucket.waiters()).toBe(1)
      state.down = false
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(next)
      expect(ran.map(([i]) => i)).toEqual([0])
    }))

  it.effect("without a wait (fallback \"memory\", or a Redis never reached) the call fails at once", () =>
    Effect.gen(function*() {
      for (const wait of [undefined, 0]) {
        const { state, store } = flakyStore()
        const result = yield* Effect.either(bucketOver(store, wait).withPermit(Effect.void))
        expect(Either.isLeft(result)).toBe(true)
        expect(state.tries).toEqual([0])
      }
    }))

  it.effect("layerConfig rejects a malformed MDE_REDIS_OUTAGE_WAIT with a ConfigError that names it", () =>
    Effect.gen(function*() {
      const build = (value: string) =>
        Layer.build(DefenderRateLimiter.layerConfig()).pipe(
          Effect.scoped,
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["MDE_REDIS_OUTAGE_WAIT", value]]))),
          Effect.either
        )
      const bad = yield* build("a while")
      expect(String(Either.getLeft(bad).pipe((e) => e._tag === "Some" ? e.value : ""))).toContain("MDE_REDIS_OUTAGE_WAIT")
      for (const ok of ["30s", "500ms", "2m", "0", "45 seconds"]) expect(Either.isRight(yield* build(ok))).toBe(true)
    }))
})
