// The folder store on real temporary folders (NodeFileSystem), but no timers: nothing here waits on a clock.
import { FileSystem } from "@effect/platform"
import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Either, Fiber, Option, Stream, TestClock } from "effect"
import { spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import { hostname } from "node:os"
import * as CampaignStore from "../src/CampaignStore.ts"

type Event = CampaignStore.CampaignEvent

const definition: CampaignStore.CampaignDefinition = {
  campaignId: "cmp-00112233aabbccdd",
  createdAt: 1_000,
  commands: [{ type: "RunScript", scriptName: "triage.ps1", args: "-Quick" }, { type: "GetFile", path: "C:\\x.log" }],
  comment: "triage",
  targets: { _tag: "Machines", machineIds: ["m1", "m2", "../x"] },
  options: { maxSessions: 2, deadline: 90_000, pendingTimeout: 600_000, interval: 10_000 }
}

const commands = [
  { index: 0, type: "RunScript", status: "Completed", errors: [] },
  { index: 1, type: "GetFile", status: "Completed", errors: [] }
]

/** Submits and ends an action on `machineId` (Succeeded unless told). */
const run = (machineId: string, machineActionId: string, status: CampaignStore.EndStatus = "Succeeded"): Array<Event> => [
  { _tag: "Submitting", machineId, attempt: 1, at: 2_000 },
  { _tag: "Submitted", machineId, machineActionId, at: 2_001 },
  { _tag: "ActionEnded", machineId, machineActionId, status, commands, at: 3_000 }
]

/** `f` with a folder store on `dir`, its lock released afterwards. */
const withStore = <A, E>(dir: string, f: (store: CampaignStore.CampaignStore) => Effect.Effect<A, E, FileSystem.FileSystem>) =>
  Effect.scoped(Effect.flatMap(CampaignStore.makeFolder(dir), f))

const appendAll = (store: CampaignStore.CampaignStore, events: ReadonlyArray<Event>) =>
  Effect.forEach(events, store.append, { discard: true })

const lines = (text: string): Array<unknown> => text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l))

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

const text = (s: string): Uint8Array => new TextEncoder().encode(s)

/** A pid that is certainly not running: a child that has already exited. */
const deadPid = (): number => spawnSync(process.execPath, ["-e", ""]).pid!

describe("CampaignStore.makeDefinition", () => {
  it.effect("stamps the clock's time, a fresh id and absolute deadline; checks the commands", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust("1 hour")
      const input = { commands: [{ type: "RunScript", scriptName: "t.ps1" }], comment: "c", targets: { _tag: "Machines", machineIds: ["m1", "m1", "m2"] } } as const
      const a = yield* CampaignStore.makeDefinition({ ...input, deadline: "2 hours", pendingTimeout: "5 minutes" })
      expect(a).toMatchObject({
        createdAt: 3_600_000,
        targets: { _tag: "Machines", machineIds: ["m1", "m2"] },
        options: { maxSessions: 50, deadline: 3 * 3_600_000, pendingTimeout: 300_000, interval: 10_000 }
      })
      expect(a.campaignId).toMatch(/^cmp-[0-9a-f]{16}$/)
      expect((yield* CampaignStore.makeDefinition(input)).campaignId).not.toBe(a.campaignId)
      const wrongOrder = [{ type: "GetFile", path: "x" }, { type: "RunScript", scriptName: "t.ps1" }] as const
      const refused = yield* Effect.flip(CampaignStore.makeDefinition({ ...input, commands: wrongOrder }))
      expect(refused.reason).toBe("InvalidDefinition")
      expect(refused.message).toMatch(/order PutFile, RunScript, GetFile/)
    }))
})

describe("CampaignStore folder store", () => {
  it.layer(NodeFileSystem.layer)((it) => {
    it.scoped("create writes the definition and begins the journal; a second store sees every appended event", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* fs.makeTempDirectoryScoped()
        const events = run("m1", "a1")
        const created = yield* withStore(dir, (store) =>
          Effect.gen(function*() {
            const campaign = yield* store.create(definition)
            expect(campaign.state.targets).toEqual(["m1", "m2", "../x"])
            yield* appendAll(store, events)
            // Durable when append returns: the journal on disk holds the line already.
            expect(lines(yield* fs.readFileString(`${dir}/journal.jsonl`)).map((e) => (e as Event)._tag)).toEqual([
              "Defined", "TargetsResolved", "Submitting", "Submitted", "ActionEnded"
            ])
            return campaign
          }))
        expect(created.definition).toEqual(definition)
        const reopened = yield* withStore(dir, (store) => store.open)
        expect(reopened.definition).toEqual(definition)
        expect(reopened.state.events).toBe(5)
        expect(reopened.state.machines.get("m1")!.phase).toMatchObject({ _tag: "Collecting", machineActionId: "a1" })
        expect(yield* fs.exists(`${dir}/lock`)).toBe(false)
      }))

    it.scoped("open fails NotFound on an empty folder, create AlreadyExists on a used one", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* fs.makeTempDirectoryScoped()
        expect((yield* Effect.flip(withStore(dir, (s) => s.open))).reason).toBe("NotFound")
        expect((yield* Effect.flip(withStore(dir, (s) => s.append({ _tag: "Interrupted", at: 1 })))).reason).toBe("NotFound")
        yield* withStore(dir, (s) => s.create(definition))
        expect((yield* Effect.flip(withStore(dir, (s) => s.create(definition)))).reason).toBe("AlreadyExists")
        const bad = { ...definition, commands: [] }
        const other = yield* fs.makeTempDirectoryScoped()
        expect((yield* Effect.flip(withStore(other, (s) => s.create(bad)))).reason).toBe("InvalidDefinition")
      }))

    it.scoped("an event that breaks a rule is InvalidEvent and is not written", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* fs.makeTempDirectoryScoped()
        yield* withStore(dir, (store) =>
          Effect.gen(function*() {
            yield* store.create(definition)
            yield* appendAll(store, run("m1", "a1").slice(0, 2))
            const second = yield* Effect.flip(store.append({ _tag: "Submitted", machineId: "m1", machineActionId: "a2", at: 5 }))
            expect(second.reason).toBe("InvalidEvent")
            expect(second.message).toMatch(/second action \(a2\)/)
            const nan = yield* Effect.flip(store.append({ _tag: "Interrupted", at: Number.NaN }))
            expect(nan.reason).toBe("InvalidEvent")
          }))
        expect(lines(yield* fs.readFileString(`${dir}/journal.jsonl`))).toHaveLength(4)
      }))

    it.scoped("a torn last line is ignored and truncated; a bad line before the last is Corrupt with its number", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* fs.makeTempDirectoryScoped()
        yield* withStore(dir, (s) => Effect.zipRight(s.create(definition), appendAll(s, run("m1", "a1").slice(0, 1))))
        const whole = yield* fs.readFileString(`${dir}/journal.jsonl`)
        // A crash mid-append: half a line, no newline.
        yield* fs.writeFileString(`${dir}/journal.jsonl`, `${whole}{"_tag":"Submitted","machineId":"m1","machi`)
        const state = yield* withStore(dir, (s) => Effect.map(s.open, (c) => c.state))
        expect(state.events).toBe(3)
        expect(state.machines.get("m1")!.phase._tag).toBe("Submitting")
        expect(yield* fs.readFileString(`${dir}/journal.jsonl`)).toBe(whole)
        // The store appends after the truncation point, so the next line is whole.
        yield* withStore(dir, (s) => s.append({ _tag: "Submitted", machineId: "m1", machineActionId: "a1", at: 9 }))
        expect(lines(yield* fs.readFileString(`${dir}/journal.jsonl`))).toHaveLength(4)
        const [first, ...rest] = whole.split("\n")
        yield* fs.writeFileString(`${dir}/journal.jsonl`, [first, "{not json", ...rest].join("\n"))
        const corrupt = yield* Effect.flip(withStore(dir, (s) => s.open))
        expect(corrupt).toMatchObject({ _tag: "CampaignStoreError", reason: "Corrupt", line: 2 })
        // A journal that decodes but breaks a rule is Corrupt too, never a defect.
        yield* fs.writeFileString(`${dir}/journal.jsonl`, [first, first, ""].join("\n"))
        expect(yield* Effect.flip(withStore(dir, (s) => s.open))).toMatchObject({ reason: "Corrupt", line: 2 })
      }))

    it.scoped("one writer per folder: a live holder is Locked, a dead one's lock is taken over", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* fs.makeTempDirectoryScoped()
        yield* withStore(dir, (first) =>
          Effect.gen(function*() {
            yield* first.create(definition)
            const second = yield* Effect.flip(withStore(dir, (s) => s.open))
            expect(second.reason).toBe("Locked")
            expect(second.message).toContain(`process ${process.pid}`)
          }))
        const pid = deadPid()
        yield* fs.writeFileString(`${dir}/lock`, JSON.stringify({ pid, host: hostname(), since: 0 }))
        yield* withStore(dir, (s) =>
          Effect.gen(function*() {
            expect((yield* s.open).state.events).toBe(2)
            expect(JSON.parse(yield* fs.readFileString(`${dir}/lock`)).pid).toBe(process.pid)
          }))
        // A lock left unreadable by a crash while it was being written is stale too.
        yield* fs.writeFileString(`${dir}/lock`, "")
        yield* withStore(dir, (s) => s.open)
      }))

    it.scoped("saveResult: the file appears only complete, its sha256 matches, and an id never leaves the folder", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const parent = yield* fs.makeTempDirectoryScoped()
        const dir = `${parent}/out`
        yield* withStore(dir, (store) =>
          Effect.gen(function*() {
            yield* store.create(definition)
            const body = text("{\"exit_code\":0}")
            const saved = yield* store.saveResult("../x", 0, "RunScript.json", Stream.make(body.subarray(0, 4), body.subarray(4)))
            expect(saved).toEqual({ index: 0, file: "results/%2E.%2Fx/0-RunScript.json", bytes: body.length, sha256: sha256(body) })
            expect(new Uint8Array(yield* fs.readFile(`${dir}/${saved.file}`))).toEqual(body)
            expect(yield* fs.readDirectory(parent)).toEqual(["out"])
            for (const id of ["..", "/etc", "a\\b", ".hidden"]) {
              const file = (yield* store.saveResult(id, 1, "../../GetFile.gz", Stream.make(body))).file
              expect(file.split("/")).toHaveLength(3)
              expect(file.split("/").every((part) => part !== ".." && part !== "." && !part.startsWith("."))).toBe(true)
            }
            expect((yield* Effect.flip(store.saveResult("", 0, "x", Stream.empty))).reason).toBe("InvalidEvent")
            // A stream that fails leaves nothing, not even a temporary file.
            const failed = yield* Effect.flip(store.saveResult("m2", 0, "RunScript.json", Stream.concat(Stream.make(body), Stream.fail("boom" as const))))
            expect(failed).toBe("boom")
            expect(yield* fs.readDirectory(`${dir}/results/m2`)).toEqual([])
            // Nor does an interrupted one.
            const started = yield* Deferred.make<void>()
            const hanging = Stream.concat(Stream.make(body), Stream.drain(Stream.fromEffect(Deferred.succeed(started, undefined))))
              .pipe(Stream.concat(Stream.never))
            const fiber = yield* Effect.fork(store.saveResult("m2", 1, "GetFile.gz", hanging))
            yield* Deferred.await(started)
            expect(yield* fs.readDirectory(`${dir}/results/m2`)).toHaveLength(1)
            yield* Fiber.interrupt(fiber)
            expect(yield* fs.readDirectory(`${dir}/results/m2`)).toEqual([])
          }))
      }))

    it.scoped("resultPath for downloadToFile, then recordResult hashes the finished file", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* fs.makeTempDirectoryScoped()
        yield* withStore(dir, (store) =>
          Effect.gen(function*() {
            const path = yield* store.resultPath("m1", 1, "GetFile.gz")
            expect(path).toBe(`${dir}/results/m1/1-GetFile.gz`)
            const bytes = new Uint8Array([0x1f, 0x8b, 1, 2, 3])
            yield* fs.writeFile(path, bytes)
            expect(yield* store.recordResult("m1", 1, "GetFile.gz")).toEqual({
              index: 1,
              file: "results/m1/1-GetFile.gz",
              bytes: 5,
              sha256: sha256(bytes)
            })
            expect((yield* Effect.flip(store.recordResult("m1", 2, "GetFile.gz"))).reason).toBe("NotFound")
          }))
      }))

    it.scoped("the manifest is derived from the journal and completed from it after a crash", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* fs.makeTempDirectoryScoped()
        const entries = yield* withStore(dir, (store) =>
          Effect.gen(function*() {
            yield* store.create(definition)
            yield* appendAll(store, run("m1", "a1"))
            const saved = yield* store.saveResult("m1", 0, "RunScript.json", Stream.make(text("{}")))
            let state = yield* store.append({ _tag: "ResultSaved", machineId: "m1", machineActionId: "a1", type: "RunScript", md5Verified: false, at: 4_000, ...saved })
            const entry = Option.getOrThrow(CampaignStore.entryFor(state.machines.get("m1")!))
            yield* store.append({ _tag: "MachineFinished", entry, at: 5_000 })
            yield* appendAll(store, run("m2", "a2", "TimeOut"))
            state = yield* store.append({ _tag: "NotRun", machineId: "../x", error: { _tag: "DeadlinePassed", message: "offline until the deadline" }, at: 6_000 })
            const m2 = Option.getOrThrow(CampaignStore.entryFor(state.machines.get("m2")!))
            yield* store.append({ _tag: "MachineFinished", entry: m2, at: 7_000 })
            yield* store.append({ _tag: "Completed", at: 8_000 })
            return yield* store.manifest
          }))
        expect(entries.map((e) => [e.machineId, e.status])).toEqual([["m1", "Succeeded"], ["../x", "NotRun"], ["m2", "TimeOut"]])
        const manifest = yield* fs.readFileString(`${dir}/manifest.jsonl`)
        expect(lines(manifest)).toEqual(entries)
        const first = lines(manifest)[0] as CampaignStore.ManifestEntry
        const file = first.commands[0]!.file!
        expect(first.commands[0]!.sha256).toBe(sha256(yield* fs.readFile(`${dir}/${file}`)))
        // A crash between the journal and the manifest: the manifest lacks its last lines, the last one torn.
        yield* fs.writeFileString(`${dir}/manifest.jsonl`, manifest.slice(0, manifest.indexOf("\n") + 10))
        // …and a download it cut short left its temporary file: open removes it, and only it.
        yield* fs.writeFileString(`${dir}/${file}.partial-${"ab".repeat(12)}`, "half")
        const reopened = yield* withStore(dir, (s) => Effect.zip(s.open, s.manifest))
        expect(yield* fs.readDirectory(`${dir}/results/m1`)).toEqual(["0-RunScript.json"])
        expect(reopened[0].state.completed).toBe(true)
        expect(reopened[1]).toEqual(entries)
        expect(yield* fs.readFileString(`${dir}/manifest.jsonl`)).toBe(manifest)
      }))

    it.scoped("a crash inside create (definition written, journal not begun) is finished by open", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* fs.makeTempDirectoryScoped()
        yield* withStore(dir, (s) => s.create(definition))
        yield* fs.remove(`${dir}/journal.jsonl`)
        const state = yield* withStore(dir, (s) => Effect.map(s.open, (c) => c.state))
        expect(state.campaignId).toBe(definition.campaignId)
        expect(state.counts.Waiting).toBe(3)
        // A journal of another campaign beside this definition is Corrupt.
        const other = yield* CampaignStore.makeDefinition({ ...definition, targets: { _tag: "Query", filter: "healthStatus eq 'Active'" } })
        yield* fs.writeFileString(`${dir}/journal.jsonl`, `${JSON.stringify({ _tag: "Defined", campaignId: other.campaignId, at: 0 })}\n`)
        expect((yield* Effect.flip(withStore(dir, (s) => s.open))).reason).toBe("Corrupt")
        expect(Either.isRight(CampaignStore.replay([]))).toBe(true)
      }))
  })
})
