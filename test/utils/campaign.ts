/**
 * What the campaign tests share: the in-process simulator behind the real client, a folder
 * store on a real temporary folder, and a driver that moves the TestClock in steps while the
 * campaign fiber runs (with a real turn of the event loop between steps for the file I/O).
 */
import { FileSystem } from "@effect/platform"
import { NodeFileSystem } from "@effect/platform-node"
import { type Duration, Effect, Exit, Fiber, Layer, Option, Redacted, TestClock } from "effect"
import { createHash } from "node:crypto"
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as CampaignStore from "../../src/CampaignStore.ts"
import * as DefenderAuth from "../../src/DefenderAuth.ts"
import * as DefenderClient from "../../src/DefenderClient.ts"
import * as DefenderRateLimiter from "../../src/DefenderRateLimiter.ts"
import * as DefenderSimulator from "../../src/testing/DefenderSimulator.ts"

export const API = "https://api.security.microsoft.com"

export const tempDir = (): string => mkdtempSync(join(tmpdir(), "campaign-"))

export const clientLayer = (
  sim: DefenderSimulator.DefenderSimulator,
  http: Layer.Layer<import("@effect/platform").HttpClient.HttpClient> = DefenderSimulator.layerHttpClient(sim)
): Layer.Layer<DefenderClient.DefenderClient> =>
  DefenderClient.layer().pipe(
    Layer.provide(Layer.mergeAll(
      http,
      DefenderAuth.layerToken(DefenderSimulator.STATIC_TOKEN),
      DefenderRateLimiter.layer({
        runLimits: [{ limit: 10, window: "1 minute" }],
        machineActionLimits: [{ limit: 100, window: "1 minute" }, { limit: 1500, window: "1 hour" }],
        limits: [{ limit: 100, window: "1 minute" }, { limit: 1500, window: "1 hour" }]
      })
    ))
  )

export type Services = DefenderClient.DefenderClient | CampaignStore.CampaignStore | FileSystem.FileSystem

/**
 * How many store calls (real file I/O) are in flight. `drive` does not move the clock while
 * one is: under load a journal write can take longer than any fixed number of event-loop
 * turns, and a clock moved meanwhile lets deadlines pass that the campaign never saw coming.
 */
let storeCallsInFlight = 0

const counted = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    storeCallsInFlight++
    return Effect.ensuring(effect, Effect.sync(() => storeCallsInFlight--))
  })

/** The store with each call counted in `storeCallsInFlight`. */
const tracked = (s: CampaignStore.CampaignStore): CampaignStore.CampaignStore => ({
  create: (d) => counted(s.create(d)),
  open: counted(s.open),
  append: (e) => counted(s.append(e)),
  saveResult: (machineId, index, name, bytes) => counted(s.saveResult(machineId, index, name, bytes)),
  resultPath: (machineId, index, name) => counted(s.resultPath(machineId, index, name)),
  recordResult: (machineId, index, name) => counted(s.recordResult(machineId, index, name)),
  manifest: counted(s.manifest)
})

export const layerFor = (
  client: Layer.Layer<DefenderClient.DefenderClient>,
  dir: string,
  store: (s: CampaignStore.CampaignStore) => CampaignStore.CampaignStore = (s) => s
): Layer.Layer<Services, CampaignStore.CampaignStoreError> => {
  const folder = Layer.scoped(CampaignStore.CampaignStore, Effect.map(CampaignStore.makeFolder(dir), (s) => tracked(store(s))))
  return Layer.mergeAll(client, folder).pipe(Layer.provideMerge(NodeFileSystem.layer))
}

/** A real turn of the event loop, so that file I/O started by the campaign fiber completes. */
// Real time, and why: the journal's writes are real file I/O, which the TestClock cannot run; a 1-ms turn lets them finish.
export const turn: Effect.Effect<void> = Effect.promise(() => new Promise<void>((r) => setTimeout(r, 1)))

/**
 * Real turns until no store call has been in flight for three turns in a row (at most ~10 s
 * of real time, so that a store call stuck on the clock cannot hang a test).
 */
export const settle: Effect.Effect<void> = Effect.gen(function*() {
  const until = Date.now() + 10_000
  for (let quiet = 0; quiet < 3 && Date.now() < until;) {
    yield* turn
    quiet = storeCallsInFlight === 0 ? quiet + 1 : 0
  }
})

/** Moves the clock `step` at a time until `fiber` is done (at most `steps` times); its exit. */
export const drive = <A, E>(
  fiber: Fiber.RuntimeFiber<A, E>,
  options: { readonly step?: Duration.DurationInput; readonly steps?: number; readonly each?: Effect.Effect<void> } = {}
): Effect.Effect<Exit.Exit<A, E>> =>
  Effect.gen(function*() {
    for (let i = 0; i < (options.steps ?? 3000); i++) {
      yield* settle
      const done = yield* Fiber.poll(fiber)
      if (Option.isSome(done)) return done.value
      if (options.each !== undefined) yield* options.each
      yield* TestClock.adjust(options.step ?? "5 seconds")
    }
    return yield* Fiber.await(fiber)
  })

/** Moves the clock until `check` holds (at most `steps` steps). */
export const driveUntil = (
  check: () => boolean,
  options: { readonly step?: Duration.DurationInput; readonly steps?: number } = {}
): Effect.Effect<void> =>
  Effect.gen(function*() {
    for (let i = 0; i < (options.steps ?? 3000) && !check(); i++) {
      yield* settle
      if (check()) return
      yield* TestClock.adjust(options.step ?? "5 seconds")
    }
  })

/** The manifest's lines, read from the folder. */
export const manifestOf = (dir: string): Array<CampaignStore.ManifestEntry> =>
  readFileSync(join(dir, "manifest.jsonl"), "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l))

/** Every file under results/, relative to the folder. */
export const resultFiles = (dir: string): Array<string> => {
  const out: Array<string> = []
  const root = join(dir, "results")
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel))) {
      const p = rel === "" ? name : `${rel}/${name}`
      if (statSync(join(root, p)).isDirectory()) walk(p)
      else out.push(`results/${p}`)
    }
  }
  try {
    walk("")
  } catch {
    // no results folder
  }
  return out.sort()
}

export const sha256 = (path: string): string => createHash("sha256").update(readFileSync(path)).digest("hex")

/** Every manifest file's SHA-256 and length match the file. */
export const checkManifestFiles = (dir: string): { readonly files: number; readonly mismatches: Array<string> } => {
  let files = 0
  const mismatches: Array<string> = []
  for (const entry of manifestOf(dir)) {
    for (const c of entry.commands) {
      if (c.file === undefined) continue
      files++
      const p = join(dir, c.file)
      if (sha256(p) !== c.sha256 || statSync(p).size !== c.bytes) mismatches.push(c.file)
    }
  }
  return { files, mismatches }
}

const BEARER = { authorization: `Bearer ${Redacted.value(DefenderSimulator.STATIC_TOKEN)}` }

/** Every action of the simulator (read through its own list endpoint, after the run). */
export const simActions = (sim: DefenderSimulator.DefenderSimulator): Effect.Effect<Array<any>> =>
  Effect.gen(function*() {
    const response = yield* sim.handle(new Request(`${API}/api/machineactions`, { headers: BEARER }))
    const body: any = yield* Effect.promise(() => response!.json())
    return body.value as Array<any>
  })

/**
 * How many actions of each machine left Pending (ran at all): at most one each. A cancelled
 * action never ran when its cancel came before its (planned) start time.
 */
export const startedPerMachine = (
  sim: DefenderSimulator.DefenderSimulator,
  actions: ReadonlyArray<any>
): Map<string, number> => {
  const cancelAt = new Map<string, number>()
  for (const r of sim.received) {
    const m = /\/api\/machineactions\/([^/]+)\/cancel/.exec(r.url)
    if (r.endpoint === "cancel" && r.status === 200 && m !== null && !cancelAt.has(m[1]!)) cancelAt.set(m[1]!, r.at)
  }
  const out = new Map<string, number>()
  for (const a of actions) {
    const start = a.commands[0]?.startTime === null ? Number.POSITIVE_INFINITY : Date.parse(a.commands[0]?.startTime)
    const never = a.status === "Pending" || (a.status === "Cancelled" && (cancelAt.get(a.id) ?? -1) < start)
    if (!never) out.set(a.machineId, (out.get(a.machineId) ?? 0) + 1)
  }
  return out
}

/** The most run calls in any window (by the simulator's receive times): the benchmarks' own count. */
export { maxInWindow } from "../../bench/windows.ts"
