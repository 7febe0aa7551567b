/**
 * Bounded bodies (issue 11, item 6): a download's body has a deadline in all (besides the idle
 * timeout), a result may be capped in size, a gzip file in how far it expands, and a
 * pathological transcript decodes in bounded memory, yielding to the event loop as it goes.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Fiber, Layer, Schedule, Stream, TestClock } from "effect"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { gzipSync } from "node:zlib"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderClient from "../src/DefenderClient.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import * as LiveResponse from "../src/LiveResponse.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import * as Transcript from "../src/Transcript.ts"
import { BLOB_HOST, blobUrl, clientLayer, linkResponse, makeFake } from "./utils/fake.ts"

const deps = (sim: DefenderSimulator.DefenderSimulator) =>
  Layer.merge(DefenderAuth.layerToken(DefenderSimulator.STATIC_TOKEN), DefenderRateLimiter.layer()).pipe(
    Layer.merge(DefenderSimulator.layerHttpClient(sim))
  )

const over = (sim: DefenderSimulator.DefenderSimulator, options?: DefenderClient.Options) =>
  DefenderClient.layer(options).pipe(Layer.provide(deps(sim)))

/** A transcript of `size` bytes of output, trickled 1 KiB every 9 s: never idle for the 30 s timeout. */
const trickled = (size: number) =>
  Effect.gen(function*() {
    const sim = yield* DefenderSimulator.make({ faults: { trickleRate: 1, trickleDelay: "9 seconds" } })
    sim.addTranscripts("slow", [JSON.stringify({ script_name: "a.ps1", exit_code: 0, script_output: "x".repeat(size), script_error: "" })])
    return sim
  })

/** Advances the TestClock a second at a time until `fiber` is done (or `limit` seconds). */
const driveUntilDone = <A, E>(fiber: Fiber.RuntimeFiber<A, E>, limit: number) =>
  Effect.gen(function*() {
    let seconds = 0
    while (fiber.unsafePoll() === null && seconds < limit) {
      yield* TestClock.adjust("1 second")
      seconds++
    }
    return seconds
  })

const ref = { machineActionId: "slow", index: 0 }

describe("the body deadline", () => {
  it.effect("a body trickled 1 KiB every 9 s misses bodyDeadline, read again only as the schedule allows", () =>
    Effect.gen(function*() {
      // 200 KiB at 1 KiB per 9 s: half an hour of a body that is never idle for the 30 s timeout.
      const sim = yield* trickled(200 * 1024)
      const fiber = yield* Effect.fork(Effect.flip(LiveResponse.getTranscript(ref)).pipe(
        Effect.provide(over(sim, { bodyDeadline: "2 minutes", retry: Schedule.spaced("1 second").pipe(Schedule.intersect(Schedule.recurs(1))) }))
      ))
      const seconds = yield* driveUntilDone(fiber, 40 * 60)
      const error = yield* Fiber.join(fiber)
      expect(error._tag === "HttpError" && [error.reason, error.detail, error.attempts]).toEqual([
        "Transport",
        "the body took longer than 2m in all",
        2
      ])
      // Two reads of two minutes each (and the one-second pause between them), from one link.
      expect(seconds).toBeGreaterThanOrEqual(241)
      expect(seconds).toBeLessThanOrEqual(245)
      expect(sim.count("getResultLink")).toBe(1)
      expect(sim.received.filter((r) => r.endpoint === "blob")).toHaveLength(2)
    }))

  it.effect("MDE_BODY_DEADLINE sets it from configuration (short spellings as MDE_TIMEOUT)", () =>
    Effect.gen(function*() {
      const sim = yield* trickled(20 * 1024)
      const configured = DefenderClient.layerConfig({ retry: Schedule.stop }).pipe(
        Layer.provide(deps(sim)),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["MDE_BODY_DEADLINE", "90s"]]))))
      )
      const fiber = yield* Effect.fork(Effect.flip(LiveResponse.getTranscript(ref)).pipe(Effect.provide(configured)))
      const seconds = yield* driveUntilDone(fiber, 10 * 60)
      const error = yield* Fiber.join(fiber)
      expect(error._tag === "HttpError" && error.detail).toBe("the body took longer than 1m 30s in all")
      expect(seconds).toBe(90)
      const read = (value: string) =>
        Effect.either(Effect.withConfigProvider(DefenderClient.config.bodyDeadline, ConfigProvider.fromMap(new Map([["MDE_BODY_DEADLINE", value]]))))
      expect(yield* read("500ms")).toMatchObject({ _tag: "Right" })
      expect((yield* read("0s"))._tag).toBe("Left")
      expect(yield* Effect.withConfigProvider(DefenderClient.config.bodyDeadline, ConfigProvider.fromMap(new Map())))
        .toEqual(DefenderClient.DEFAULT_BODY_DEADLINE)
    }))

  it.effect("a body within the deadline arrives whole", () =>
    Effect.gen(function*() {
      const sim = yield* trickled(5 * 1024)
      const fiber = yield* Effect.fork(LiveResponse.getTranscript(ref).pipe(Effect.provide(over(sim, { bodyDeadline: "2 minutes" }))))
      yield* driveUntilDone(fiber, 10 * 60)
      expect((yield* Fiber.join(fiber)).output).toBe("x".repeat(5 * 1024))
    }))
})

describe("maxResultBytes", () => {
  const file = new Uint8Array(64 * 1024).fill(0x41)

  it.effect("downloadResult: a declared size over it fails before the body is read, and is not retried", () => {
    let served = 0
    const fake = makeFake((req) => {
      if (req.url.host !== BLOB_HOST) return linkResponse(blobUrl())
      served++
      return new Response(file, { headers: { "content-length": String(file.length) } })
    })
    return Effect.gen(function*() {
      const error = yield* Effect.flip(Stream.runDrain(LiveResponse.downloadResult(ref)))
      expect(error._tag === "HttpError" && [error.reason, error.detail]).toEqual([
        "TooLarge",
        "the result is 65536 bytes, over the maxResultBytes limit of 1000 bytes"
      ])
      expect(error.message).toContain("raise maxResultBytes")
      expect(served).toBe(1)
    }).pipe(Effect.provide(clientLayer(fake, { client: { maxResultBytes: 1000 } })))
  })

  it.effect("downloadResult: an undeclared body fails as soon as it grows past it", () => {
    const fake = makeFake((req) =>
      req.url.host !== BLOB_HOST ? linkResponse(blobUrl()) : new Response(Stream.toReadableStream(
        Stream.make(file.subarray(0, 600), file.subarray(600, 1200), file.subarray(1200))
      ))
    )
    return Effect.gen(function*() {
      const received: Array<number> = []
      const error = yield* Effect.flip(Stream.runForEach(LiveResponse.downloadResult(ref), (c) => Effect.sync(() => received.push(c.length))))
      expect(error._tag === "HttpError" && error.reason).toBe("TooLarge")
      // The bytes within the cap were handed on, nothing past it.
      expect(received).toEqual([600, 400])
    }).pipe(Effect.provide(clientLayer(fake, { client: { maxResultBytes: 1000 } })))
  })

  // The storage declares every size (Content-Length, or Content-Range's total on a resume), so a
  // download over the cap fails on its headers; an undeclared body that grows past it fails there
  // and is not resumed (a storage that ignored Range would otherwise be read again and again).
  const ranged = (declare: boolean) => (req: { readonly url: URL; readonly headers: Readonly<Record<string, string>> }) => {
    if (req.url.host !== BLOB_HOST) return linkResponse(blobUrl())
    const range = /^bytes=(\d+)-$/.exec(req.headers["range"] ?? "")
    if (range === null) {
      if (declare) return new Response(file, { headers: { "content-length": String(file.length), etag: "\"e\"" } })
      return new Response(Stream.toReadableStream(Stream.make(file.subarray(0, 600), file.subarray(600))), { headers: { etag: "\"e\"" } })
    }
    const start = Number(range[1])
    return new Response(file.subarray(start), {
      status: 206,
      headers: { "content-range": `bytes ${start}-${file.length - 1}/${file.length}`, etag: "\"e\"" }
    })
  }
  for (const declare of [true, false]) {
    it.effect(`downloadToFile (${declare ? "declared" : "undeclared, not resumed"}): TooLarge, and no file is left behind`, () => {
      const fake = makeFake(ranged(declare))
      const dir = mkdtempSync(join(tmpdir(), "mde-bodies-"))
      return Effect.gen(function*() {
        const path = join(dir, "result.bin")
        const error = yield* Effect.flip(LiveResponse.downloadToFile(ref, path))
        expect(error._tag === "HttpError" && [error.reason, error.detail]).toEqual([
          "TooLarge",
          `the result is ${declare ? "65536 bytes" : "larger"}, over the maxResultBytes limit of 1000 bytes`
        ])
        expect(fake.to(BLOB_HOST)).toHaveLength(1)
        expect(existsSync(path)).toBe(false)
        expect(readdirSync(dir)).toEqual([])
      }).pipe(
        Effect.provide(Layer.merge(clientLayer(fake, { client: { maxResultBytes: 1000 } }), NodeFileSystem.layer)),
        Effect.ensuring(Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      )
    })
  }

  it.effect("within it (and by default, with none) the result arrives whole", () => {
    const fake = makeFake((req) => (req.url.host !== BLOB_HOST ? linkResponse(blobUrl()) : new Response(file)))
    return Effect.gen(function*() {
      const chunks = yield* Stream.runCollect(LiveResponse.downloadResult(ref))
      expect([...chunks].reduce((n, c) => n + c.length, 0)).toBe(file.length)
    }).pipe(Effect.provide(clientLayer(fake, { client: { maxResultBytes: file.length } })))
  })
})

describe("decompression is capped", () => {
  /** The bytes of a GetFile result with `decompress` and `options`. */
  const decompressed = (
    gzipped: Uint8Array,
    options?: { readonly maxDecompressedBytes?: number; readonly maxDecompressionRatio?: number }
  ) =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      sim.addFiles("file", [{ path: "C:\\big.bin", bytes: gzipped }])
      const layer = over(sim)
      const action = yield* LiveResponse.getMachineAction("file").pipe(Effect.provide(layer))
      const [result] = yield* Stream.runCollect(LiveResponse.results(action, { decompress: true, ...options })).pipe(
        Effect.provide(layer)
      )
      if (result?.type !== "GetFile") throw new Error("expected a GetFile result")
      let size = 0
      const exit = yield* Stream.runForEach(result.bytes, (c) => Effect.sync(() => void (size += c.length))).pipe(
        Effect.provide(layer),
        Effect.exit
      )
      return { exit, size }
    })

  it.effect("a gzip bomb (64 MiB of zeros in 64 KiB) fails past 100:1 after the first MiB, not at 64 MiB", () =>
    Effect.gen(function*() {
      const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024))
      expect(bomb.length).toBeLessThan(100 * 1024)
      const { exit, size } = yield* decompressed(bomb)
      expect(exit._tag).toBe("Failure")
      const error = exit._tag === "Failure" && exit.cause._tag === "Fail" ? exit.cause.error : undefined
      expect(error?._tag === "HttpError" && error.reason).toBe("InvalidResponse")
      expect(error?._tag === "HttpError" && error.detail).toMatch(/^the gzip data expands more than 100:1 \(\d+ bytes from \d+; maxDecompressionRatio\)$/)
      expect(size).toBeLessThan(16 * 1024 * 1024)
    }))

  it.effect("maxDecompressedBytes caps the output whatever the ratio", () =>
    Effect.gen(function*() {
      const text = Buffer.from(Array.from({ length: 40_000 }, (_, i) => `${i * 7919 % 100_003} `).join(""))
      const { exit, size } = yield* decompressed(gzipSync(text), { maxDecompressedBytes: 100_000 })
      const error = exit._tag === "Failure" && exit.cause._tag === "Fail" ? exit.cause.error : undefined
      expect(error?._tag === "HttpError" && [error.reason, error.detail]).toEqual([
        "InvalidResponse",
        "the gzip data expands past 100000 bytes (maxDecompressedBytes)"
      ])
      expect(size).toBeLessThanOrEqual(100_000)
    }))

  it.effect("an ordinary gzip file (3 MiB at about 3:1) and a bomb under raised caps decompress whole", () =>
    Effect.gen(function*() {
      const text = Buffer.from(Array.from({ length: 600_000 }, (_, i) => `${i * 7919 % 100_003} `).join("").slice(0, 3 * 1024 * 1024))
      const ordinary = yield* decompressed(gzipSync(text))
      expect([ordinary.exit._tag, ordinary.size]).toEqual(["Success", text.length])
      const raised = yield* decompressed(gzipSync(Buffer.alloc(4 * 1024 * 1024)), { maxDecompressionRatio: 10_000 })
      expect([raised.exit._tag, raised.size]).toEqual(["Success", 4 * 1024 * 1024])
    }))
})

describe("the pathological transcript", () => {
  /** 1 MiB: `ab<NUL>ab<LF>`… as script_output, a raw control character every 3 bytes. */
  const MiB = 1024 * 1024
  const unit = "ab\u0000ab\n"
  const output = unit.repeat(Math.floor((MiB - 80) / unit.length))
  const bytes = new TextEncoder().encode(
    `{"script_name":"patho.ps1","exit_code":0,"script_output":"${output}","script_error":""}`
  )

  it.effect("decodes correctly, in steps that let the event loop run between them", () =>
    Effect.gen(function*() {
      // A setImmediate chain counts the turns of the event loop the decode leaves to others.
      let turns = 0
      let done = false
      const tick = () => {
        turns++
        if (!done) setImmediate(tick)
      }
      setImmediate(tick)
      const transcript = yield* Transcript.decode(bytes).pipe(Effect.ensuring(Effect.sync(() => void (done = true))))
      expect(transcript).toEqual({ scriptName: "patho.ps1", exitCode: 0, output, error: "" })
      expect(turns).toBeGreaterThanOrEqual(4)
    }))

  it("is asynchronous (so Effect.runSync is refused), while a small transcript stays synchronous", () => {
    expect(() => Effect.runSync(Transcript.decode(bytes))).toThrow()
    const small = new TextEncoder().encode(`{"script_name":"a","exit_code":0,"script_output":"${unit.repeat(100)}","script_error":""}`)
    expect(Effect.runSync(Transcript.decode(small)).output).toBe(unit.repeat(100))
  })

  it.effect("arrives whole through getTranscript", () => {
    const fake = makeFake((req) => (req.url.host !== BLOB_HOST ? linkResponse(blobUrl()) : new Response(bytes)))
    return Effect.gen(function*() {
      expect((yield* LiveResponse.getTranscript(ref)).output).toBe(output)
    }).pipe(Effect.provide(clientLayer(fake)))
  })
})
