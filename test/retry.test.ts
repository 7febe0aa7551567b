// The default retry schedule as it is felt on the wire: exponential, capped, and jittered.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Random, TestClock } from "effect"
import * as LiveResponse from "../src/LiveResponse.ts"
import { ACTION_ID, API, clientLayer, makeFake } from "./utils/fake.ts"

/** The waits between the attempts of one call that always gets a 503 without Retry-After. */
const waitsWithSeed = (seed: string) => {
  const fake = makeFake(() => new Response("busy", { status: 503 }))
  return Effect.gen(function*() {
    const fiber = yield* Effect.fork(LiveResponse.getResultLink({ machineActionId: ACTION_ID, index: 0 }))
    yield* TestClock.adjust("5 minutes")
    const error = yield* Effect.flip(Fiber.join(fiber))
    expect(error._tag === "HttpError" && error.status).toBe(503)
    const times = fake.to(new URL(API).host).map((r) => r.at)
    return times.slice(1).map((t, i) => t - times[i]!)
  }).pipe(Effect.provide(clientLayer(fake)), Effect.withRandom(Random.make(seed)))
}

// The schedule before jitter: 1 s doubling, each wait at most 30 s, 6 retries.
const BASE = [1_000, 2_000, 4_000, 8_000, 16_000, 30_000]

describe("defaultRetrySchedule", () => {
  it.effect("backs off exponentially within ±20 % jitter, each wait at most 30 s, 7 attempts in all", () =>
    Effect.gen(function*() {
      const waits = yield* waitsWithSeed("first")
      expect(waits).toHaveLength(6)
      waits.forEach((wait, i) => {
        const base = i === 5 ? 32_000 : BASE[i]!
        expect(wait).toBeGreaterThanOrEqual(Math.floor(base * 0.8))
        expect(wait).toBeLessThanOrEqual(Math.min(30_000, Math.ceil(base * 1.2)))
      })
    }))

  it.effect("is jittered: the waits are not the bare doubling, and differ from one random seed to another", () =>
    Effect.gen(function*() {
      const first = yield* waitsWithSeed("first")
      const second = yield* waitsWithSeed("second")
      // Without Schedule.jittered every wait would be exactly the base, for any seed: callers that
      // failed together would retry together, in lockstep.
      expect(first.filter((wait, i) => wait !== BASE[i]).length).toBeGreaterThan(2)
      expect(first).not.toEqual(second)
    }))
})
