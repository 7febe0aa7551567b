import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { describe, expect, it, vi } from "@effect/vitest"
import { FileSystem } from "@effect/platform"
import { Effect, Fiber, Layer, TestClock } from "effect"
import { createHash } from "node:crypto"
import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderClient from "../src/DefenderClient.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import * as LiveResponse from "../src/LiveResponse.ts"
import { createTemp, tempName } from "../src/internal/client/downloadToFile.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"

const over = (sim: DefenderSimulator.DefenderSimulator) =>
  Layer.merge(
    DefenderClient.layer().pipe(
      Layer.provide(Layer.merge(DefenderAuth.layerToken(DefenderSimulator.STATIC_TOKEN), DefenderRateLimiter.layer())),
      Layer.provide(DefenderSimulator.layerHttpClient(sim))
    ),
    NodeFileSystem.layer
  )

/** 256 KiB of bytes that differ everywhere, so a misplaced chunk cannot go unnoticed. */
const BIG = new Uint8Array(256 * 1024).map((_, i) => (i * 2654435761) >>> 24)

const withBig = (options?: DefenderSimulator.Options) =>
  Effect.map(DefenderSimulator.make(options), (sim) => {
    sim.addTranscripts("big", [BIG])
    return sim
  })

const dir = () => mkdtempSync(join(tmpdir(), "mde-save-"))

/** Runs `self` forked, moving the TestClock in steps. */
const drive = <A, E>(self: Effect.Effect<A, E>, seconds: number) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(self)
    for (let i = 0; i < seconds; i++) yield* TestClock.adjust("1 second")
    return yield* Fiber.await(fiber)
  })

const ref = { machineActionId: "big", index: 0 }

describe("LiveResponse.downloadToFile", () => {
  it.effect("saves the result and verifies its MD5; nothing else is left in the folder", () =>
    Effect.gen(function*() {
      const sim = yield* withBig()
      const folder = dir()
      const path = join(folder, "result.bin")
      const saved = yield* LiveResponse.downloadToFile(ref, path).pipe(Effect.provide(over(sim)))
      expect(saved).toEqual({ path, bytes: BIG.length, md5Verified: true, resumes: 0 })
      expect(readFileSync(path).equals(BIG)).toBe(true)
      expect(readdirSync(folder)).toEqual(["result.bin"])
    }))

  it.effect("resumes with Range + If-Match when the connection breaks at random bytes", () =>
    Effect.gen(function*() {
      const sim = yield* withBig({ faults: { cutRate: 0.8, seed: 7 } })
      const folder = dir()
      const path = join(folder, "result.bin")
      const exit = yield* drive(LiveResponse.downloadToFile(ref, path, { maxInterruptions: 50 }).pipe(Effect.provide(over(sim))), 300)
      expect(exit._tag).toBe("Success")
      const saved = exit._tag === "Success" ? exit.value : undefined
      expect(saved!.resumes).toBeGreaterThan(0)
      expect(createHash("md5").update(readFileSync(path)).digest("hex")).toBe(createHash("md5").update(BIG).digest("hex"))
      const resumed = sim.received.filter((r) => r.endpoint === "blob" && r.headers["range"] !== undefined)
      expect(resumed.length).toBe(saved!.resumes)
      expect(resumed.every((r) => /^bytes=\d+-$/.test(r.headers["range"]!) && r.headers["if-match"] !== undefined)).toBe(true)
      expect(readdirSync(folder)).toEqual(["result.bin"])
    }))

  // Larger than downloadToFile's 1 MiB write buffer: one chunk bigger than the buffer (no
  // faults: the simulator answers in one piece), and answers cut at random bytes, whose parts
  // end inside the buffer: what was buffered is written before the resume asks from there.
  it.effect.each([
    ["in one chunk bigger than the write buffer", undefined],
    ["cut at random bytes", { cutRate: 0.8, seed: 11 }]
  ] as const)("a 2.5 MiB result %s is saved whole, its MD5 verified", ([, faults]) =>
    Effect.gen(function*() {
      const huge = new Uint8Array(2.5 * 1024 * 1024 + 77).map((_, i) => (i * 2654435761) >>> 24)
      const sim = yield* DefenderSimulator.make(faults === undefined ? {} : { faults })
      sim.addTranscripts("huge", [huge])
      const path = join(dir(), "result.bin")
      const exit = yield* drive(
        LiveResponse.downloadToFile({ machineActionId: "huge", index: 0 }, path, { maxInterruptions: 50 }).pipe(
          Effect.provide(over(sim))
        ),
        300
      )
      expect(exit._tag).toBe("Success")
      const saved = exit._tag === "Success" ? exit.value : undefined
      expect(saved!.bytes).toBe(huge.length)
      expect(saved!.md5Verified).toBe(true)
      if (faults !== undefined) expect(saved!.resumes).toBeGreaterThan(0)
      expect(readFileSync(path).equals(huge)).toBe(true)
    }))

  it.effect("gets a new link when the old one expires mid-download, and resumes", () =>
    Effect.gen(function*() {
      // 1 KiB a second and a link valid for 10 s: connections that break after 10 s need a new link.
      const sim = yield* DefenderSimulator.make({
        linkLifetime: "10 seconds",
        faults: { trickleRate: 1, trickleDelay: "1 second", cutRate: 0.5, seed: 3 }
      })
      const small = BIG.slice(0, 32 * 1024)
      sim.addTranscripts("small", [small])
      const folder = dir()
      const path = join(folder, "result.bin")
      const exit = yield* drive(
        LiveResponse.downloadToFile({ machineActionId: "small", index: 0 }, path, { maxInterruptions: 50 }).pipe(
          Effect.provide(over(sim))
        ),
        200
      )
      expect(exit._tag).toBe("Success")
      expect(readFileSync(path).equals(small)).toBe(true)
      expect(sim.count("blob", 403)).toBeGreaterThan(0)
      expect(sim.count("getResultLink")).toBeGreaterThan(1)
    }))

  it.effect("a result rewritten under a resumed download (412 on If-Match) restarts cleanly from byte 0", () =>
    Effect.gen(function*() {
      const sim = yield* withBig({ faults: { cutRate: 1, trickleRate: 1, trickleDelay: "1 second", seed: 5 } })
      const folder = dir()
      const path = join(folder, "result.bin")
      const fiber = yield* Effect.fork(
        LiveResponse.downloadToFile(ref, path, { maxInterruptions: 100 }).pipe(Effect.provide(over(sim)))
      )
      for (let i = 0; i < 30; i++) yield* TestClock.adjust("1 second")
      const NEW = BIG.map((b) => b ^ 0x5a)
      sim.replaceResult("big", 0, NEW)
      sim.setFaults(undefined)
      // The connection in flight still trickles until it breaks.
      for (let i = 0; i < 300; i++) yield* TestClock.adjust("1 second")
      const saved = yield* Fiber.join(fiber)
      expect(readFileSync(path).equals(Buffer.from(NEW))).toBe(true)
      expect(saved.md5Verified).toBe(true)
      expect(sim.count("blob", 412)).toBe(1)
    }))

  it.effect("a 200 answer to a range request restarts from byte 0", () =>
    Effect.gen(function*() {
      const sim = yield* withBig({ faults: { cutRate: 1, trickleRate: 1, trickleDelay: "1 second", seed: 5 } })
      const folder = dir()
      const path = join(folder, "result.bin")
      const fiber = yield* Effect.fork(
        LiveResponse.downloadToFile(ref, path, { maxInterruptions: 100 }).pipe(Effect.provide(over(sim)))
      )
      for (let i = 0; i < 30; i++) yield* TestClock.adjust("1 second")
      sim.setFaults({ ignoreRange: true })
      for (let i = 0; i < 300; i++) yield* TestClock.adjust("1 second")
      const saved = yield* Fiber.join(fiber)
      expect(readFileSync(path).equals(BIG)).toBe(true)
      expect(saved.bytes).toBe(BIG.length)
      const wholeAnswers = sim.received.filter((r) => r.endpoint === "blob" && r.headers["range"] !== undefined && r.status === 200)
      expect(wholeAnswers.length).toBeGreaterThan(0)
    }))

  it.effect("an MD5 mismatch fails and leaves nothing on disk", () =>
    Effect.gen(function*() {
      const sim = yield* withBig({ faults: { corruptRate: 1 } })
      const folder = dir()
      const error = yield* Effect.flip(LiveResponse.downloadToFile(ref, join(folder, "result.bin"))).pipe(Effect.provide(over(sim)))
      expect(error._tag === "FileDownloadError" && error.reason).toBe("Md5Mismatch")
      expect(readdirSync(folder)).toEqual([])
    }))

  it.effect("a connection that keeps breaking ends in a typed error and leaves nothing on disk", () =>
    Effect.gen(function*() {
      const sim = yield* withBig({ faults: { cutRate: 1, seed: 1 } })
      const folder = dir()
      const exit = yield* drive(
        Effect.flip(LiveResponse.downloadToFile(ref, join(folder, "result.bin"), { maxInterruptions: 3 })).pipe(
          Effect.provide(over(sim))
        ),
        60
      )
      const error = exit._tag === "Success" ? exit.value : undefined
      expect(error?._tag === "FileDownloadError" && error.reason).toBe("TooManyInterruptions")
      expect(readdirSync(folder)).toEqual([])
    }))

  it.effect("an interrupted download leaves nothing on disk", () =>
    Effect.gen(function*() {
      const sim = yield* withBig({ faults: { trickleRate: 1, trickleDelay: "1 second" } })
      const folder = dir()
      const fiber = yield* Effect.fork(LiveResponse.downloadToFile(ref, join(folder, "result.bin")).pipe(Effect.provide(over(sim))))
      for (let i = 0; i < 10; i++) yield* TestClock.adjust("1 second")
      expect(readdirSync(folder)).toHaveLength(1)
      yield* Fiber.interrupt(fiber)
      expect(readdirSync(folder)).toEqual([])
    }))

  it.effect("a symlink planted at the temporary name the old code predicted is not followed", () =>
    Effect.gen(function*() {
      // Math.random() named the temporary file once; pinned, its name is known in advance.
      const random = vi.spyOn(Math, "random").mockReturnValue(0.123456789)
      try {
        const sim = yield* withBig()
        const folder = dir()
        const path = join(folder, "result.bin")
        const victim = join(folder, "victim.txt")
        writeFileSync(victim, "precious")
        const predicted = `${path}.partial-${(0.123456789).toString(36).slice(2, 10)}`
        symlinkSync(victim, predicted)
        const saved = yield* LiveResponse.downloadToFile(ref, path).pipe(Effect.provide(over(sim)))
        expect(saved.md5Verified).toBe(true)
        expect(readFileSync(victim, "utf8")).toBe("precious")
        expect(lstatSync(path).isSymbolicLink()).toBe(false)
        expect(readFileSync(path).equals(BIG)).toBe(true)
        expect(readlinkSync(predicted)).toBe(victim)
        expect(readdirSync(folder).sort()).toEqual([path, predicted, victim].map((p) => p.slice(folder.length + 1)).sort())
      } finally {
        random.mockRestore()
      }
    }))

  it.effect("a symlink planted at the target is replaced by the file, its target untouched", () =>
    Effect.gen(function*() {
      const sim = yield* withBig()
      const folder = dir()
      const path = join(folder, "result.bin")
      const victim = join(folder, "victim.txt")
      writeFileSync(victim, "precious")
      symlinkSync(victim, path)
      yield* LiveResponse.downloadToFile(ref, path).pipe(Effect.provide(over(sim)))
      expect(readFileSync(victim, "utf8")).toBe("precious")
      expect(lstatSync(path).isSymbolicLink()).toBe(false)
      expect(readFileSync(path).equals(BIG)).toBe(true)
    }))

  it("temporary names are crypto-random, beside the target", () => {
    const names = new Set(Array.from({ length: 100 }, () => tempName("/x/out.bin")))
    expect(names.size).toBe(100)
    for (const name of names) expect(name).toMatch(/^\/x\/out\.bin\.partial-[0-9a-f]{24}$/)
  })

  it.effect("the temporary file is created exclusively: a taken name (file or symlink) is left alone, the next one used", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const folder = dir()
      const path = join(folder, "result.bin")
      writeFileSync(`${path}.t1`, "someone else's file")
      writeFileSync(join(folder, "victim.txt"), "precious")
      symlinkSync(join(folder, "victim.txt"), `${path}.t2`)
      let n = 0
      const temp = yield* Effect.scoped(Effect.gen(function*() {
        const { file, temp } = yield* createTemp(fs, path, (p) => `${p}.t${++n}`)
        yield* file.writeAll(new TextEncoder().encode("new"))
        return temp
      }))
      expect(temp).toBe(`${path}.t3`)
      expect(readFileSync(`${path}.t1`, "utf8")).toBe("someone else's file")
      expect(readFileSync(join(folder, "victim.txt"), "utf8")).toBe("precious")
      expect(readFileSync(`${path}.t3`, "utf8")).toBe("new")

      // Every name taken: a typed error after a few tries, and nothing removed.
      const error = yield* Effect.flip(Effect.scoped(createTemp(fs, path, () => `${path}.t1`)))
      expect(error).toMatchObject({ _tag: "FileDownloadError", reason: "FileSystem", path })
      expect(error.detail).toContain("already existed")
      expect(readFileSync(`${path}.t1`, "utf8")).toBe("someone else's file")
    }).pipe(Effect.provide(NodeFileSystem.layer)))
})
