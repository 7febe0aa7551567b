// The campaign engine against the in-process simulator: real temporary folders (the folder store), but no real timers — every wait is the TestClock.
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Stream } from "effect"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import * as Campaign from "../src/Campaign.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import {
  checkManifestFiles,
  clientLayer,
  drive,
  driveUntil,
  layerFor,
  manifestOf,
  maxInWindow,
  resultFiles,
  sha256,
  simActions,
  startedPerMachine,
  tempDir
} from "./utils/campaign.ts"



const COMMANDS = [{ type: "RunScript", scriptName: "triage.ps1" }, { type: "GetFile", path: "C:\\logs\\app.log" }] as const

describe("Campaign", () => {
  it.effect("a fleet of 20: every online machine succeeds, results saved and hashed, within the run budget and the cap", () =>
    Effect.gen(function*() {
      const machines = DefenderSimulator.fleet(20)
      const sim = yield* DefenderSimulator.make({ machines, sessionCap: 50 })
      const dir = tempDir()
      let maxAlive = 0
      const fiber = yield* Effect.fork(
        Stream.runCollect(
          Campaign.start({
            commands: COMMANDS,
            comment: "fleet triage",
            targets: { _tag: "Machines", machineIds: machines.map((m) => m.id) },
            maxSessions: 5,
            deadline: "1 hour",
            pendingTimeout: "10 minutes",
            interval: "10 seconds"
          }).pipe(Stream.tap((u) => Effect.sync(() => {
            if (u._tag === "Progress") maxAlive = Math.max(maxAlive, u.alive)
          })))
        ).pipe(Effect.provide(layerFor(clientLayer(sim), dir)))
      )
      let simAliveMax = 0
      const exit = yield* drive(fiber, {
        step: "10 seconds",
        steps: 4000,
        each: Effect.map(simActions(sim), (actions) => {
          simAliveMax = Math.max(simAliveMax, actions.filter((a) => a.status === "Pending" || a.status === "InProgress").length)
        })
      })
      expect(Exit.isSuccess(exit)).toBe(true)
      const updates = Exit.isSuccess(exit) ? [...exit.value] : []
      const last = updates[updates.length - 1]
      expect(last?._tag).toBe("Completed")
      const manifest = manifestOf(dir)
      expect(manifest.length).toBe(20)
      const online = machines.filter((m) => m.online === undefined && m.outcome === undefined)
      for (const m of online) {
        const entry = manifest.find((e) => e.machineId === m.id)
        expect(entry?.status, m.id).toBe("Succeeded")
        expect(entry?.commands.filter((c) => c.file !== undefined).length).toBe(2)
      }
      const offline = machines.filter((m) => m.online !== undefined)
      for (const m of offline) expect(manifest.find((e) => e.machineId === m.id)?.status).toBe("NotRun")
      const check = checkManifestFiles(dir)
      expect(check.mismatches).toEqual([])
      expect(resultFiles(dir).length).toBe(check.files)
      for (const e of manifest) {
        for (const c of e.commands) if (c.file !== undefined) expect(sha256(join(dir, c.file))).toBe(c.sha256)
      }
      // Limits: the run budget in every minute, the cap at every sampled moment, polls as list calls.
      const runs = sim.received.filter((r) => r.endpoint === "runLiveResponse").map((r) => r.at)
      expect(maxInWindow(runs, 60_000)).toBeLessThanOrEqual(10)
      expect(maxAlive).toBeLessThanOrEqual(5)
      expect(simAliveMax).toBeLessThanOrEqual(5)
      expect(sim.count("getMachineAction")).toBe(0)
      expect(sim.count("listMachineActions")).toBeGreaterThan(0)
      for (const [, n] of startedPerMachine(sim, yield* simActions(sim))) expect(n).toBe(1)
      // Busy machines were refused, tried again and succeeded; offline ones cancelled after pendingTimeout.
      for (const m of machines.filter((m) => m.busyUntil !== undefined)) {
        expect(manifest.find((e) => e.machineId === m.id)?.status).toBe("Succeeded")
        // Every run on it inside its busy window was refused (400), and it was tried again later.
        const runsOn = sim.received.filter((r) => r.endpoint === "runLiveResponse" && r.url.includes(m.id))
        for (const r of runsOn.filter((r) => r.at < m.busyUntil!)) expect(r.status).toBe(400)
      }
      expect(sim.count("cancel", 200)).toBeGreaterThanOrEqual(offline.length)
      for (const m of offline) expect(manifest.find((e) => e.machineId === m.id)?.error?._tag).toBe("DeadlineExceeded")
      const summary = yield* Campaign.summary.pipe(Effect.provide(layerFor(clientLayer(sim), dir)))
      expect(summary.total).toBe(20)
      expect(summary.succeeded).toBe(online.length)

    }), { timeout: 60_000 })

  const slow: Array<DefenderSimulator.MachineSpec> = Array.from({ length: 6 }, (_, i) => ({
    id: `s${i + 1}`,
    properties: { healthStatus: "Active" },
    runFor: "3 minutes"
  }))
  const slowDefinition: Campaign.Definition = {
    commands: [{ type: "RunScript", scriptName: "triage.ps1" }],
    comment: "slow",
    targets: { _tag: "Machines", machineIds: slow.map((m) => m.id) },
    maxSessions: 2,
    interval: "10 seconds"
  }

  it.effect("drain: no new submit, the alive ones are collected, Interrupted recorded; resume finishes the rest", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ machines: slow })
      const dir = tempDir()
      const drain = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        Stream.runCollect(Campaign.start(slowDefinition, { drain: Deferred.await(drain) })).pipe(
          Effect.provide(layerFor(clientLayer(sim), dir))
        )
      )
      yield* driveUntil(() => sim.count("runLiveResponse", 201) === 2)
      yield* Deferred.succeed(drain, undefined)
      const exit = yield* drive(fiber)
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(sim.count("runLiveResponse")).toBe(2)
      expect(manifestOf(dir).map((e) => e.status)).toEqual(["Succeeded", "Succeeded"])
      const again = yield* Effect.fork(Stream.runCollect(Campaign.resume()).pipe(Effect.provide(layerFor(clientLayer(sim), dir))))
      const done = yield* drive(again)
      expect(Exit.isSuccess(done)).toBe(true)
      expect(manifestOf(dir).length).toBe(6)
      expect(sim.count("runLiveResponse", 201)).toBe(6)
    }), { timeout: 60_000 })

  it.effect("interruption: each alive action gets exactly one cancel; resume submits the cancelled-before-start ones again", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ machines: slow, pendingFor: "1 minute" })
      const dir = tempDir()
      let journaledAlive = 0
      const fiber = yield* Effect.fork(
        Stream.runForEach(Campaign.start(slowDefinition), (u) =>
          Effect.sync(() => {
            if (u._tag === "Progress") journaledAlive = u.state.counts.Alive
          })).pipe(Effect.provide(layerFor(clientLayer(sim), dir)))
      )
      // Both submits journaled (an action whose Submitted is not yet written is left for resume to adopt).
      yield* driveUntil(() => journaledAlive === 2)
      yield* Fiber.interrupt(fiber)
      const cancels = sim.received.filter((r) => r.endpoint === "cancel").map((r) => r.url)
      expect(cancels.length).toBe(2)
      expect(new Set(cancels).size).toBe(2)
      const again = yield* Effect.fork(Stream.runCollect(Campaign.resume()).pipe(Effect.provide(layerFor(clientLayer(sim), dir))))
      const done = yield* drive(again)
      expect(Exit.isSuccess(done)).toBe(true)
      expect(manifestOf(dir).map((e) => e.status)).toEqual(slow.map(() => "Succeeded"))
      expect(sim.received.filter((r) => r.endpoint === "cancel").length).toBe(2)
    }), { timeout: 60_000 })

  it.effect("an interruption during a submit in flight waits for its answer: the action is journaled and gets its cancel", () =>
    Effect.gen(function*() {
      // Every answer takes 20 s (simulated), so the interrupt lands while the run call is out.
      const sim = yield* DefenderSimulator.make({ machines: slow, faults: { latency: "20 seconds" } })
      const dir = tempDir()
      const journal = () => readFileSync(join(dir, "journal.jsonl"), "utf8")
      const fiber = yield* Effect.fork(
        Stream.runDrain(Campaign.start({ ...slowDefinition, maxSessions: 1 })).pipe(
          Effect.provide(layerFor(clientLayer(sim), dir))
        )
      )
      yield* driveUntil(() => existsSync(join(dir, "journal.jsonl")) && journal().includes('"Submitting"'), { step: "1 second" })
      expect(sim.count("runLiveResponse", 201)).toBe(0)
      yield* Fiber.interruptFork(fiber)
      const exit = yield* drive(fiber, { step: "1 second" })
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(sim.count("runLiveResponse", 201)).toBe(1)
      const submitted = journal().split("\n").filter((l) => l.includes('"Submitted"')).map((l) => JSON.parse(l))
      expect(submitted).toHaveLength(1)
      const cancels = sim.received.filter((r) => r.endpoint === "cancel")
      expect(cancels).toHaveLength(1)
      expect(cancels[0]!.url).toContain(submitted[0].machineActionId)
    }), { timeout: 60_000 })
})
