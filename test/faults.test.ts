/**
 * The library under injected faults (issue 5, item 3): every request is answered
 * exactly once — a result or a typed error — and nothing hangs or dies.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, TestClock } from "effect"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderClient from "../src/DefenderClient.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import * as LiveResponse from "../src/LiveResponse.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"

const over = (sim: DefenderSimulator.DefenderSimulator, options?: DefenderClient.Options) =>
  DefenderClient.layer(options).pipe(
    Layer.provide(Layer.merge(DefenderAuth.layerToken(DefenderSimulator.STATIC_TOKEN), DefenderRateLimiter.layer())),
    Layer.provide(DefenderSimulator.layerHttpClient(sim))
  )

describe("faults", () => {
  it.effect("500 transcripts under 30 % faults: each ends once, as a result or a typed error", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({
        // A scaled quota, so 429s are part of the mix too.
        rateLimits: [{ limit: 50, window: "10 seconds" }],
        faults: { errorRate: 0.12, dropRate: 0.08, cutRate: 0.05, trickleRate: 0.05, trickleDelay: "40 seconds", seed: 99 }
      })
      const ids = Array.from({ length: 500 }, (_, i) =>
        [DefenderSimulator.ACTIONS.runScript, DefenderSimulator.ACTIONS.variants, "missing-action"][i % 3]!)
      const ended: Array<number> = Array(500).fill(0)
      const fiber = yield* Effect.fork(
        Effect.forEach(ids, (machineActionId, i) =>
          LiveResponse.getTranscript({ machineActionId, index: 0 }).pipe(
            Effect.exit,
            Effect.tap(() => Effect.sync(() => void ended[i]++))
          ), { concurrency: 50 }).pipe(
            // The library's own budget a little above the quota, so the simulator does throttle.
            Effect.provide(DefenderClient.layer({ timeout: "10 seconds" }).pipe(
              Layer.provide(Layer.merge(
                DefenderAuth.layerToken(DefenderSimulator.STATIC_TOKEN),
                DefenderRateLimiter.layer({ limits: [{ limit: 60, window: "10 seconds" }] })
              )),
              Layer.provide(DefenderSimulator.layerHttpClient(sim))
            ))
          )
      )
      for (let i = 0; i < 400 && fiber.unsafePoll() === null; i++) yield* TestClock.adjust("5 seconds")
      const exits = yield* Fiber.join(fiber)
      expect(ended.every((n) => n === 1)).toBe(true)
      const defects = exits.filter((e) => Exit.isFailure(e) && e.cause._tag !== "Fail")
      expect(defects).toHaveLength(0)
      const ok = exits.filter(Exit.isSuccess).length
      const tags = new Set(exits.flatMap((e) => (Exit.isFailure(e) && e.cause._tag === "Fail" ? [e.cause.error._tag] : [])))
      // Most of the real actions get through; the unknown one is always NotFound.
      expect(ok).toBeGreaterThan(250)
      expect(tags.has("NotFound")).toBe(true)
      expect(sim.received.some((r) => r.status === 429)).toBe(true)
      expect(sim.received.some((r) => r.status >= 500)).toBe(true)
      expect(sim.received.some((r) => r.status === 0)).toBe(true)
    }), 120_000) // simulated minutes take a few real seconds of CPU here, not waiting

  it.effect("a body that stalls longer than the timeout is a typed transport error", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ faults: { trickleRate: 1, trickleDelay: "1 minute" } })
      sim.addTranscripts("slow", ["x".repeat(4096)])
      const fiber = yield* Effect.fork(
        Effect.flip(LiveResponse.getTranscript({ machineActionId: "slow", index: 0 })).pipe(
          Effect.provide(over(sim, { timeout: "10 seconds" }))
        )
      )
      for (let i = 0; i < 300; i++) yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      expect(error._tag === "HttpError" && [error.reason, error.detail]).toEqual(["Transport", "the body stalled for 10s"])
      // Read again from the same link on the retry schedule (7 attempts), without another API call.
      expect(error._tag === "HttpError" && error.attempts).toBe(7)
      expect(sim.count("getResultLink")).toBe(1)
      expect(sim.received.filter((r) => r.endpoint === "blob")).toHaveLength(7)
    }))

  it.effect("a transcript whose body breaks is read again from the same link", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ faults: { cutRate: 1 } })
      sim.addTranscripts("flaky", [JSON.stringify({ script_name: "a.ps1", exit_code: 0, script_output: "x".repeat(4096), script_errors: "" })])
      const fiber = yield* Effect.fork(
        LiveResponse.getTranscript({ machineActionId: "flaky", index: 0 }).pipe(Effect.provide(over(sim)))
      )
      // The first body is cut; from then on the storage answers in full.
      yield* Effect.yieldNow()
      for (let i = 0; i < 50 && sim.received.filter((r) => r.endpoint === "blob").length === 0; i++) {
        yield* TestClock.adjust("10 millis")
      }
      sim.setFaults(undefined)
      yield* TestClock.adjust("1 minute")
      const transcript = yield* Fiber.join(fiber)
      expect(transcript.output).toBe("x".repeat(4096))
      expect(sim.count("getResultLink")).toBe(1)
      expect(sim.received.filter((r) => r.endpoint === "blob").map((r) => r.faults)).toEqual([["cut"], []])
    }))
})
