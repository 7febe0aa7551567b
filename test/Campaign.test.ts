// The campaign engine against the in-process simulator: real temporary folders (the folder store), but no real timers — every wait is the TestClock.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Stream } from "effect"
import { join } from "node:path"
import * as Campaign from "../src/Campaign.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import {
  checkManifestFiles,
  clientLayer,
  drive,
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
      const summary = yield* Campaign.summary.pipe(Effect.provide(layerFor(clientLayer(sim), dir)))
      expect(summary.total).toBe(20)
      expect(summary.succeeded).toBe(online.length)

    }), { timeout: 60_000 })
})
