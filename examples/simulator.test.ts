/**
 * How to test your own code against the simulated tenant: in-process, no
 * sockets, and `TestClock` drives the rate windows, link expiry and the
 * machine-action lifecycle. (Imports are relative here; in your project they are
 * "mde-live-response" and "mde-live-response/testing".)
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, TestClock } from "effect"
import { DefenderAuth, DefenderClient, DefenderRateLimiter, LiveResponse } from "../mod.ts"
import { DefenderSimulator } from "../testing.ts"

/** Your code under test: the exit codes of a few RunScript commands. */
const exitCodes = (machineActionId: string, indexes: ReadonlyArray<number>) =>
  Effect.forEach(indexes, (index) =>
    LiveResponse.getTranscript({ machineActionId, index }).pipe(Effect.map((t) => t.exitCode)), { concurrency: 5 })

/** The library wired to a simulator instead of a tenant. */
const simulated = (sim: DefenderSimulator.DefenderSimulator) =>
  DefenderClient.layer().pipe(
    Layer.provide(Layer.merge(DefenderAuth.layerToken(DefenderSimulator.STATIC_TOKEN), DefenderRateLimiter.layer())),
    Layer.provide(DefenderSimulator.layerHttpClient(sim))
  )

describe("exitCodes, against the simulator", () => {
  it.effect("reads every command's exit code", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const codes = yield* exitCodes(DefenderSimulator.ACTIONS.variants, [0, 1, 2]).pipe(Effect.provide(simulated(sim)))
      expect(codes).toEqual([0, 1, 0])
      // Assert on what was sent, too.
      expect(sim.count("getResultLink")).toBe(3)
    }))

  it.effect("waits out the simulator's throttling instead of failing", () =>
    Effect.gen(function*() {
      // A tight quota and your own transcripts.
      const sim = yield* DefenderSimulator.make({ rateLimits: [{ limit: 2, window: "1 minute" }] })
      sim.addTranscripts("my-action", [0, 1, 2, 3].map((code) =>
        `{"script_name":"check.ps1","exit_code":${code},"script_output":"","script_error":""}`
      ))
      const fiber = yield* Effect.fork(exitCodes("my-action", [0, 1, 2, 3]).pipe(
        Effect.provide(
          DefenderClient.layer().pipe(
            // The library's budget switched off, so the simulator's 429s are what hold the calls.
            Layer.provide(Layer.merge(DefenderAuth.layerToken(DefenderSimulator.STATIC_TOKEN), DefenderRateLimiter.layer({ limits: [] }))),
            Layer.provide(DefenderSimulator.layerHttpClient(sim))
          )
        )
      ))
      yield* TestClock.adjust("2 minutes")
      expect(yield* Fiber.join(fiber)).toEqual([0, 1, 2, 3])
      expect(sim.count("getResultLink", 429)).toBeGreaterThan(0)
    }))
})
