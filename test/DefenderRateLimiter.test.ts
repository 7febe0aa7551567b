import { describe, expect, it } from "@effect/vitest"
import { Clock, Config, type ConfigError, ConfigProvider, Duration, Effect, Either, Fiber, Layer, Option, TestClock } from "effect"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"

// The algorithm's behaviour is tested over both stores in DefenderRateLimiter.stores.test.ts;
// here: the limit syntax and the layers built from Config. Every wait is on the TestClock.

/** A limit list under the app's own name. */
const appQuota = Config.string("APP_QUOTA").pipe(Config.mapOrFail(DefenderRateLimiter.limitsFromText("APP_QUOTA")))

/** The variables an app's environment holds. */
const environment = (entries: ReadonlyArray<readonly [string, string]>) =>
  ConfigProvider.fromMap(new Map(entries))

/**
 * When each of `n` concurrent callers of the limiter built by `layer` got its permit,
 * once `total` has passed on the TestClock.
 */
const grantTimes = (
  layer: Layer.Layer<DefenderRateLimiter.DefenderRateLimiter, ConfigError.ConfigError>,
  entries: ReadonlyArray<readonly [string, string]>,
  n: number,
  total: Duration.DurationInput,
  bucket?: DefenderRateLimiter.Bucket
) =>
  Effect.gen(function*() {
    const limiter = yield* DefenderRateLimiter.DefenderRateLimiter
    const times: Array<number> = []
    const fiber = yield* Effect.forEach(
      Array.from({ length: n }),
      () => limiter.withPermit(Clock.currentTimeMillis, bucket).pipe(Effect.map((t) => times.push(t))),
      { concurrency: "unbounded", discard: true }
    ).pipe(Effect.fork)
    yield* TestClock.adjust(total)
    yield* Fiber.join(fiber)
    return times
  }).pipe(Effect.provide(layer.pipe(Layer.provide(Layer.setConfigProvider(environment(entries))))))

/** The ConfigError `layer` fails with, built in `entries`. */
const configError = (
  layer: Layer.Layer<DefenderRateLimiter.DefenderRateLimiter, ConfigError.ConfigError>,
  entries: ReadonlyArray<readonly [string, string]>
) => Layer.build(layer).pipe(Effect.scoped, Effect.withConfigProvider(environment(entries)), Effect.flip)

describe("DefenderRateLimiter", () => {
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
      const times = yield* grantTimes(DefenderRateLimiter.layerConfig(), [["MDE_RATE_LIMITS", "2/2s"]], 3, "2 seconds")
      expect(times).toEqual([0, 0, 2000])
    }))

  it.effect("layerConfig rejects a malformed MDE_RATE_LIMITS with a ConfigError", () =>
    Effect.gen(function*() {
      const error = yield* configError(DefenderRateLimiter.layerConfig(), [["MDE_RATE_LIMITS", "lots"]])
      expect(String(error)).toContain("MDE_RATE_LIMITS")
    }))

  it.effect("layerConfig reads the limits under the app's own names", () =>
    Effect.gen(function*() {
      const layer = DefenderRateLimiter.layerConfig({ limits: appQuota })
      const times = yield* grantTimes(layer, [["APP_QUOTA", "1/3s"], ["MDE_RATE_LIMITS", "2/2s"]], 3, "6 seconds")
      // APP_QUOTA's 1/3s, not MDE_RATE_LIMITS' 2/2s.
      expect(times).toEqual([0, 3000, 6000])
    }))

  it.effect("layerConfig takes any Config, for machine actions too", () =>
    Effect.gen(function*() {
      const layer = DefenderRateLimiter.layerConfig({
        machineActionLimits: Config.succeed([{ limit: 1, window: "5 seconds" }]),
        // An app that never wants Redis, whatever the environment says.
        redisUrl: Config.succeed(Option.none())
      })
      const times = yield* grantTimes(layer, [["MDE_REDIS_URL", "redis://x"]], 2, "5 seconds", "machineActions")
      expect(times).toEqual([0, 5000])
    }))

  it.effect("layerConfig's ConfigError names the app's own variable", () =>
    Effect.gen(function*() {
      const error = yield* configError(DefenderRateLimiter.layerConfig({ limits: appQuota }), [["APP_QUOTA", "lots"]])
      expect(String(error)).toContain("APP_QUOTA")
    }))
})
