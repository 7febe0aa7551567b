// Crash at each step boundary, then resume on the same folder: the simulator in-process and real temporary folders, but no real timers — every wait is the TestClock.
import { HttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Stream } from "effect"
import * as Campaign from "../src/Campaign.ts"
import type * as CampaignStore from "../src/CampaignStore.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import {
  checkManifestFiles,
  clientLayer,
  drive,
  layerFor,
  manifestOf,
  maxInWindow,
  resultFiles,
  simActions,
  startedPerMachine,
  tempDir
} from "./utils/campaign.ts"

const machines: Array<DefenderSimulator.MachineSpec> = Array.from({ length: 6 }, (_, i) => ({
  id: `m${i + 1}`,
  properties: { healthStatus: "Active", lastSeen: new Date(-i * 60_000).toISOString() },
  runFor: "20 seconds"
}))

const definition: Campaign.Definition = {
  commands: [{ type: "RunScript", scriptName: "triage.ps1" }, { type: "GetFile", path: "C:\\logs\\app.log" }],
  comment: "crash test",
  targets: { _tag: "Machines", machineIds: machines.map((m) => m.id) },
  maxSessions: 3,
  deadline: "2 hours",
  pendingTimeout: "10 minutes",
  interval: "10 seconds"
}

/** Runs `start` under the crashing layer (it must die), then `resume` to the end; checks the invariants. */
const crashThenResume = (
  crashing: (sim: DefenderSimulator.DefenderSimulator, dir: string) => Layer.Layer<any, any>
) =>
  Effect.gen(function*() {
    const sim = yield* DefenderSimulator.make({ machines })
    const dir = tempDir()
    const first = yield* Effect.fork(Stream.runDrain(Campaign.start(definition)).pipe(Effect.provide(crashing(sim, dir))))
    const crashed = yield* drive(first, { step: "5 seconds", steps: 400 })
    expect(Exit.isFailure(crashed)).toBe(true)
    const blobsBefore = sim.count("blob")
    const second = yield* Effect.fork(
      Stream.runCollect(Campaign.resume()).pipe(Effect.provide(layerFor(clientLayer(sim), dir)))
    )
    const resumed = yield* drive(second, { step: "5 seconds", steps: 2000 })
    expect(Exit.isSuccess(resumed)).toBe(true)
    const manifest = manifestOf(dir)
    expect(manifest.map((e) => e.status)).toEqual(machines.map(() => "Succeeded"))
    for (const [, n] of startedPerMachine(sim, yield* simActions(sim))) expect(n).toBe(1)
    const check = checkManifestFiles(dir)
    expect(check.mismatches).toEqual([])
    expect(check.files).toBe(machines.length * 2)
    expect(resultFiles(dir).length).toBe(machines.length * 2)
    const runs = sim.received.filter((r) => r.endpoint === "runLiveResponse").map((r) => r.at)
    expect(maxInWindow(runs, 60_000)).toBeLessThanOrEqual(10)
    expect(sim.count("getMachineAction")).toBe(0)
    return { sim, blobsBefore }
  })

/** A store that dies right after (or instead of) the first append of `tag`. */
const dyingStore = (tag: CampaignStore.CampaignEvent["_tag"], after: boolean) => (s: CampaignStore.CampaignStore) => {
  let done = false
  return {
    ...s,
    append: (event: CampaignStore.CampaignEvent) => {
      if (event._tag !== tag || done) return s.append(event)
      done = true
      return after ? Effect.zipRight(s.append(event), Effect.die("crash")) : Effect.die("crash")
    }
  }
}

describe("Campaign crash and resume", () => {
  it.effect("a crash after Submitting is journaled, before the POST: the submit is found Lost and made once", () =>
    Effect.gen(function*() {
      const { sim } = yield* crashThenResume((sim, dir) => {
        const base = dyingStore("Submitting", true)
        return layerFor(clientLayer(sim), dir, base)
      })
      expect(sim.count("runLiveResponse", 201)).toBe(machines.length)
    }), { timeout: 60_000 })

  it.effect("a crash after the POST's 201, before Submitted is journaled: the action is adopted, not submitted again", () =>
    Effect.gen(function*() {
      const { sim } = yield* crashThenResume((sim, dir) => layerFor(clientLayer(sim), dir, dyingStore("Submitted", false)))
      expect(sim.count("runLiveResponse", 201)).toBe(machines.length)
      expect(sim.count("listMachineActions")).toBeGreaterThan(0)
    }), { timeout: 60_000 })

  it.effect("a crash mid-download: nothing saved is downloaded again, the broken one once more", () =>
    Effect.gen(function*() {
      const { blobsBefore, sim } = yield* crashThenResume((sim, dir) => {
        const base = DefenderSimulator.httpClient(sim)
        let blobs = 0
        const http = HttpClient.make((request) => {
          if (new URL(request.url).hostname.endsWith(".blob.core.windows.net") && ++blobs === 4) {
            return Effect.die("crash mid-download")
          }
          return base.execute(request)
        })
        return layerFor(clientLayer(sim, Layer.succeed(HttpClient.HttpClient, http)), dir)
      })
      // Three results were saved before the crash (the fourth request died): after it, each result is fetched once.
      expect(blobsBefore).toBe(3)
      expect(sim.count("blob")).toBe(machines.length * 2)
    }), { timeout: 60_000 })
})
