// The campaign engine's remaining behaviours (query targets, the session cap's 429, the deadline, NotRun, a crash mid-body): the simulator in-process and real temporary folders, but no real timers — every wait is the TestClock.
import { HttpClient, HttpClientResponse } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Stream } from "effect"
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
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

const journalOf = (dir: string): Array<CampaignStore.CampaignEvent> =>
  readFileSync(join(dir, "journal.jsonl"), "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l))

const runsOf = (sim: DefenderSimulator.DefenderSimulator) => sim.received.filter((r) => r.endpoint === "runLiveResponse")

const machineOfRun = (url: string): string => /\/api\/machines\/([^/]+)\/runliveresponse/i.exec(url)?.[1] ?? ""

const aliveOnSim = (actions: ReadonlyArray<any>): number =>
  actions.filter((a) => a.status === "Pending" || a.status === "InProgress").length

/** Every `.partial-` temporary file left under `dir/results`. */
const partials = (dir: string): Array<string> => {
  try {
    return readdirSync(join(dir, "results"), { recursive: true, encoding: "utf8" }).filter((p) => p.includes(".partial-"))
  } catch {
    return []
  }
}

const minutesAgo = (n: number): string => new Date(-n * 60_000).toISOString()

const RUN = [{ type: "RunScript", scriptName: "triage.ps1" }] as const

describe("Campaign (more)", () => {
  it.effect("query targets: only the matching machines run, most recently seen first; TargetsResolved once, not again on resume", () =>
    Effect.gen(function*() {
      const machines: Array<DefenderSimulator.MachineSpec> = [
        { id: "q-old", properties: { healthStatus: "Active", lastSeen: minutesAgo(30) } },
        { id: "q-off", properties: { healthStatus: "Inactive", lastSeen: minutesAgo(1) } },
        { id: "q-new", properties: { healthStatus: "Active", lastSeen: minutesAgo(1) } },
        { id: "q-mid", properties: { healthStatus: "Active", lastSeen: minutesAgo(10) } },
        { id: "q-gone", properties: { healthStatus: "ImpairedCommunication", lastSeen: minutesAgo(2) } }
      ]
      // Pages of 2: the query's 3 machines come in two pages (through `@odata.nextLink`).
      const sim = yield* DefenderSimulator.make({ machines, runFor: "20 seconds", pageSize: 2 })
      const dir = tempDir()
      const definition: Campaign.Definition = {
        commands: RUN,
        comment: "query",
        targets: { _tag: "Query", filter: "healthStatus eq 'Active'" },
        maxSessions: 1,
        interval: "10 seconds"
      }
      // The first run dies right after the first Submitted is journaled.
      let died = false
      const dying = (s: CampaignStore.CampaignStore): CampaignStore.CampaignStore => ({
        ...s,
        append: (event) =>
          event._tag === "Submitted" && !died
            ? s.append(event).pipe(Effect.tap(() => (died = true)), Effect.zipRight(Effect.die("crash")))
            : s.append(event)
      })
      const first = yield* Effect.fork(Stream.runDrain(Campaign.start(definition)).pipe(
        Effect.provide(layerFor(clientLayer(sim), dir, dying))
      ))
      expect(Exit.isFailure(yield* drive(first))).toBe(true)
      const listsBefore = sim.count("listMachines")
      expect(listsBefore).toBe(2)
      expect(sim.received.filter((r) => r.endpoint === "listMachines").every((r) => r.url.includes("healthStatus"))).toBe(true)
      const second = yield* Effect.fork(Stream.runCollect(Campaign.resume()).pipe(Effect.provide(layerFor(clientLayer(sim), dir))))
      const resumed = yield* drive(second)
      expect(Exit.isSuccess(resumed)).toBe(true)
      // The resume did not resolve the query again.
      expect(sim.count("listMachines")).toBe(listsBefore)
      const journal = journalOf(dir)
      const resolved = journal.filter((e) => e._tag === "TargetsResolved")
      expect(resolved.length).toBe(1)
      expect(resolved[0]?._tag === "TargetsResolved" ? resolved[0].machineIds : []).toEqual(["q-new", "q-mid", "q-old"])
      // Only the matching machines ran, each once, in that order (maxSessions 1 makes it sequential).
      expect(runsOf(sim).filter((r) => r.status === 201).map((r) => machineOfRun(r.url))).toEqual(["q-new", "q-mid", "q-old"])
      expect(manifestOf(dir).map((e) => [e.machineId, e.status])).toEqual([
        ["q-new", "Succeeded"],
        ["q-mid", "Succeeded"],
        ["q-old", "Succeeded"]
      ])
      for (const [, n] of startedPerMachine(sim, yield* simActions(sim))) expect(n).toBe(1)
    }), { timeout: 60_000 })

  it.effect("the session cap's 429: refused and tried again later, every machine succeeds, never more alive than the cap", () =>
    Effect.gen(function*() {
      const machines: Array<DefenderSimulator.MachineSpec> = Array.from({ length: 6 }, (_, i) => ({
        id: `c${i + 1}`,
        properties: { healthStatus: "Active", lastSeen: minutesAgo(i) },
        // Longer than the client's retries of a 429 (6, each at most the minute Retry-After says): the engine sees the refusal.
        runFor: "8 minutes"
      }))
      const sim = yield* DefenderSimulator.make({ machines, sessionCap: 2 })
      const dir = tempDir()
      let maxAlive = 0
      const fiber = yield* Effect.fork(Stream.runCollect(Campaign.start({
        commands: RUN,
        comment: "cap",
        targets: { _tag: "Machines", machineIds: machines.map((m) => m.id) },
        maxSessions: 5,
        deadline: "2 hours",
        interval: "10 seconds"
      })).pipe(Effect.provide(layerFor(clientLayer(sim), dir))))
      const exit = yield* drive(fiber, {
        each: Effect.map(simActions(sim), (actions) => {
          maxAlive = Math.max(maxAlive, aliveOnSim(actions))
        })
      })
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(manifestOf(dir).map((e) => e.status)).toEqual(machines.map(() => "Succeeded"))
      expect(sim.count("runLiveResponse", 429)).toBeGreaterThan(0)
      const refused = journalOf(dir).filter((e) => e._tag === "SubmitRefused" && e.reason === "CapReached")
      expect(refused.length).toBeGreaterThan(0)
      // Each refused machine was submitted again later and succeeded.
      for (const e of refused) {
        if (e._tag !== "SubmitRefused") continue
        const later = runsOf(sim).filter((r) => machineOfRun(r.url) === e.machineId && r.at >= e.retryAt)
        expect(later.some((r) => r.status === 201), e.machineId).toBe(true)
      }
      expect(maxAlive).toBeLessThanOrEqual(2)
      const actions = yield* simActions(sim)
      for (const [, n] of startedPerMachine(sim, actions)) expect(n).toBe(1)
      expect(maxInWindow(runsOf(sim).map((r) => r.at), 60_000)).toBeLessThanOrEqual(10)
    }), { timeout: 60_000 })

  it.effect("the deadline: each alive action (running or pending) gets one cancel and is recorded; the waiting ones are NotRun", () =>
    Effect.gen(function*() {
      const machines: Array<DefenderSimulator.MachineSpec> = [
        { id: "d-run", properties: { healthStatus: "Active", lastSeen: minutesAgo(1) }, runFor: "5 minutes" },
        { id: "d-pend", properties: { healthStatus: "Active", lastSeen: minutesAgo(2) }, online: false },
        { id: "d-wait1", properties: { healthStatus: "Active", lastSeen: minutesAgo(3) } },
        { id: "d-wait2", properties: { healthStatus: "Active", lastSeen: minutesAgo(4) } }
      ]
      const sim = yield* DefenderSimulator.make({ machines })
      const dir = tempDir()
      const fiber = yield* Effect.fork(Stream.runCollect(Campaign.start({
        commands: RUN,
        comment: "deadline",
        targets: { _tag: "Machines", machineIds: machines.map((m) => m.id) },
        maxSessions: 2,
        deadline: "1 minute",
        pendingTimeout: "30 minutes",
        interval: "10 seconds"
      })).pipe(Effect.provide(layerFor(clientLayer(sim), dir))))
      const exit = yield* drive(fiber)
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(runsOf(sim).filter((r) => r.status === 201).map((r) => machineOfRun(r.url))).toEqual(["d-run", "d-pend"])
      const cancels = sim.received.filter((r) => r.endpoint === "cancel")
      expect(cancels.length).toBe(2)
      expect(new Set(cancels.map((r) => r.url)).size).toBe(2)
      for (const c of cancels) expect(c.at).toBeGreaterThanOrEqual(60_000)
      const byId = new Map(manifestOf(dir).map((e) => [e.machineId, e]))
      expect(byId.size).toBe(4)
      expect(byId.get("d-run")?.status).toBe("Cancelled")
      expect(byId.get("d-run")?.machineActionId).toBeDefined()
      for (const id of ["d-pend", "d-wait1", "d-wait2"]) {
        const e = byId.get(id)
        expect(e?.status, id).toBe("NotRun")
        expect(e?.error?._tag, id).toBe("DeadlineExceeded")
        expect(typeof e?.error?.message).toBe("string")
      }
      const journal = journalOf(dir)
      expect(journal.some((e) => e._tag === "ActionEnded" && e.machineId === "d-run" && e.status === "Cancelled")).toBe(true)
      expect(journal.some((e) => e._tag === "PendingTimedOut" && e.machineId === "d-pend")).toBe(true)
      // No session started after the deadline.
      for (const r of runsOf(sim)) expect(r.at).toBeLessThan(60_000)
      const summary = yield* Campaign.summary.pipe(Effect.provide(layerFor(clientLayer(sim), dir)))
      expect(summary).toMatchObject({ cancelled: 1, notRun: 3, total: 4 })
    }), { timeout: 60_000 })

  it.effect("NotRun: an id outside the fleet (UnknownMachine) and a 403 on one machine's run (PermissionDenied)", () =>
    Effect.gen(function*() {
      const machines: Array<DefenderSimulator.MachineSpec> = [
        { id: "n-ok", properties: { healthStatus: "Active" } },
        { id: "n-denied", properties: { healthStatus: "Active" } }
      ]
      const sim = yield* DefenderSimulator.make({ machines })
      const base = DefenderSimulator.httpClient(sim)
      const http = HttpClient.make((request) =>
        /\/api\/machines\/n-denied\/runliveresponse/i.test(request.url)
          ? Effect.succeed(HttpClientResponse.fromWeb(
            request,
            new Response(JSON.stringify({ error: { code: "Forbidden", message: "Missing Machine.LiveResponse" } }), {
              status: 403,
              headers: { "content-type": "application/json" }
            })
          ))
          : base.execute(request)
      )
      const dir = tempDir()
      const fiber = yield* Effect.fork(Stream.runCollect(Campaign.start({
        commands: RUN,
        comment: "notrun",
        targets: { _tag: "Machines", machineIds: ["n-ok", "n-unknown", "n-denied"] },
        interval: "10 seconds"
      })).pipe(Effect.provide(layerFor(clientLayer(sim, Layer.succeed(HttpClient.HttpClient, http)), dir))))
      const exit = yield* drive(fiber)
      expect(Exit.isSuccess(exit)).toBe(true)
      const byId = new Map(manifestOf(dir).map((e) => [e.machineId, e]))
      expect(byId.get("n-ok")?.status).toBe("Succeeded")
      const unknown = byId.get("n-unknown")
      expect(unknown?.status).toBe("NotRun")
      expect(unknown?.commands).toEqual([])
      expect(unknown?.error?._tag).toBe("UnknownMachine")
      expect(unknown?.error?.message).toContain("n-unknown")
      const denied = byId.get("n-denied")
      expect(denied?.status).toBe("NotRun")
      expect(denied?.error?._tag).toBe("PermissionDenied")
      expect(typeof denied?.error?.message).toBe("string")
      // Neither was tried again: one refused run on the denied machine, none on the unknown one.
      expect(runsOf(sim).filter((r) => machineOfRun(r.url) === "n-unknown").length).toBe(0)
      const summary = yield* Campaign.summary.pipe(Effect.provide(layerFor(clientLayer(sim), dir)))
      expect(summary).toMatchObject({ succeeded: 1, notRun: 2, total: 3 })
    }), { timeout: 60_000 })

  it.effect("a crash mid-body of a GetFile download: no torn file, resume saves it once and complete, no machine runs twice", () =>
    Effect.gen(function*() {
      const machines: Array<DefenderSimulator.MachineSpec> = Array.from({ length: 3 }, (_, i) => ({
        id: `b${i + 1}`,
        properties: { healthStatus: "Active", lastSeen: minutesAgo(i) },
        runFor: "20 seconds"
      }))
      const sim = yield* DefenderSimulator.make({ machines })
      const dir = tempDir()
      const base = DefenderSimulator.httpClient(sim)
      let blobs = 0
      let cutAt = -1
      // The second blob's body: its first half arrives, then the process dies.
      const http = HttpClient.make((request) => {
        if (!new URL(request.url).hostname.endsWith(".blob.core.windows.net") || ++blobs !== 2) return base.execute(request)
        return Effect.flatMap(base.execute(request), (response) =>
          Effect.map(response.arrayBuffer, (buffer) => {
            const bytes = new Uint8Array(buffer)
            cutAt = Math.floor(bytes.length / 2)
            const stream = Stream.concat(Stream.make(bytes.slice(0, cutAt)), Stream.die("crash mid-body"))
            return Object.create(response, { stream: { value: stream } }) as HttpClientResponse.HttpClientResponse
          }))
      })
      const definition: Campaign.Definition = {
        commands: [{ type: "GetFile", path: "C:\\logs\\app.log" }],
        comment: "mid-body",
        targets: { _tag: "Machines", machineIds: machines.map((m) => m.id) },
        maxSessions: 3,
        interval: "10 seconds"
      }
      const first = yield* Effect.fork(Stream.runDrain(Campaign.start(definition)).pipe(
        Effect.provide(layerFor(clientLayer(sim, Layer.succeed(HttpClient.HttpClient, http)), dir))
      ))
      const crashed = yield* drive(first)
      expect(Exit.isFailure(crashed)).toBe(true)
      expect(cutAt).toBeGreaterThan(0)
      expect(partials(dir)).toEqual([])
      const savedBefore = journalOf(dir).filter((e) => e._tag === "ResultSaved")
      expect(savedBefore.length).toBe(1)
      // What a kill -9 (no finalizer) would leave: a torn temporary file beside an unsaved result.
      const unsaved = machines.find((m) => !savedBefore.some((e) => e._tag === "ResultSaved" && e.machineId === m.id))!.id
      mkdirSync(join(dir, "results", unsaved), { recursive: true })
      writeFileSync(join(dir, "results", unsaved, `0-app.log.partial-${"ab".repeat(12)}`), new Uint8Array(cutAt))
      expect(partials(dir).length).toBe(1)
      const second = yield* Effect.fork(Stream.runCollect(Campaign.resume()).pipe(Effect.provide(layerFor(clientLayer(sim), dir))))
      expect(Exit.isSuccess(yield* drive(second))).toBe(true)
      expect(partials(dir)).toEqual([])
      expect(manifestOf(dir).map((e) => e.status)).toEqual(machines.map(() => "Succeeded"))
      const saved = journalOf(dir).filter((e) => e._tag === "ResultSaved")
      expect(saved.length).toBe(3)
      expect(new Set(saved.map((e) => e._tag === "ResultSaved" ? e.machineId : "")).size).toBe(3)
      const check = checkManifestFiles(dir)
      expect(check.mismatches).toEqual([])
      expect(check.files).toBe(3)
      expect(resultFiles(dir).length).toBe(3)
      // The saved one was not downloaded again; the torn one once more (2 before the crash + 2 after).
      expect(sim.count("blob")).toBe(4)
      expect(sim.count("runLiveResponse", 201)).toBe(3)
      for (const [, n] of startedPerMachine(sim, yield* simActions(sim))) expect(n).toBe(1)
    }), { timeout: 60_000 })
})
