import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber, Layer, Stream, TestClock } from "effect"
import { gunzipSync } from "node:zlib"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderClient from "../src/DefenderClient.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import * as LiveResponse from "../src/LiveResponse.ts"
import * as MachineAction from "../src/MachineAction.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"

const { ACTIONS } = DefenderSimulator

const over = (sim: DefenderSimulator.DefenderSimulator, limiter?: DefenderRateLimiter.Options) =>
  DefenderClient.layer().pipe(
    Layer.provide(Layer.merge(DefenderAuth.layerToken(DefenderSimulator.STATIC_TOKEN), DefenderRateLimiter.layer(limiter))),
    Layer.provide(DefenderSimulator.layerHttpClient(sim))
  )

const script = (scriptName: string): MachineAction.Command => ({ type: "RunScript", scriptName, args: "-Verbose" })

/** Runs `self` forked, moving the TestClock in steps, and returns its exit. */
const drive = <A, E>(self: Effect.Effect<A, E>, total: number, step = 1000) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(self)
    for (let t = 0; t < total; t += step) yield* TestClock.adjust(step)
    return yield* Fiber.await(fiber)
  })

const success = <A, E>(exit: import("effect").Exit.Exit<A, E>): A => {
  if (exit._tag !== "Success") throw new Error(`expected success, got ${JSON.stringify(exit.cause)}`)
  return exit.value
}

const failure = <A, E>(exit: import("effect").Exit.Exit<A, E>): E => {
  if (exit._tag !== "Failure" || exit.cause._tag !== "Fail") throw new Error(`expected a failure, got ${exit._tag}`)
  return exit.cause.error
}

describe("MachineAction", () => {
  it("builds the body with the API's names and enforces the command order", () => {
    expect(MachineAction.toRequestBody([script("a.ps1"), { type: "GetFile", path: "C:\\x.txt" }], "c")).toEqual(
      Either.right({
        Commands: [
          { type: "RunScript", params: [{ key: "ScriptName", value: "a.ps1" }, { key: "Args", value: "-Verbose" }] },
          { type: "GetFile", params: [{ key: "Path", value: "C:\\x.txt" }] }
        ],
        Comment: "c"
      })
    )
    expect(Either.isLeft(MachineAction.toRequestBody([{ type: "GetFile", path: "x" }, script("a.ps1")], "c"))).toBe(true)
    expect(Either.isLeft(MachineAction.toRequestBody([{ type: "PutFile", fileName: "" }], "c"))).toBe(true)
    expect(Either.isLeft(MachineAction.toRequestBody([], "c"))).toBe(true)
    expect(Either.isLeft(MachineAction.toRequestBody([script("a.ps1")], " "))).toBe(true)
  })

  it("reads both spellings of Cancelled and tolerates missing fields", () => {
    const decoded = MachineAction.decode({ id: "a", status: "Canceled", extra: 1 })
    expect(Either.getOrThrow(decoded)).toMatchObject({ id: "a", status: "Cancelled", commands: [] })
    expect(Either.isLeft(MachineAction.decode({ id: "a", status: "Exploded" }))).toBe(true)
    expect(Either.isLeft(MachineAction.decode("nope"))).toBe(true)
  })
})

describe("LiveResponse.runLiveResponse", () => {
  it.effect("starts a session and answers the machine action (201)", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const action = yield* LiveResponse.runLiveResponse({ machineId: "m1", commands: [script("collect.ps1")], comment: "t" }).pipe(
        Effect.provide(over(sim))
      )
      expect(action.status).toBe("Pending")
      expect(action.commands.map((c) => c.command.type)).toEqual(["RunScript"])
      expect(sim.count("runLiveResponse", 201)).toBe(1)
    }))

  it.effect("refuses commands out of order, before any request", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const error = yield* Effect.flip(
        LiveResponse.runLiveResponse({ machineId: "m1", commands: [{ type: "GetFile", path: "x" }, script("a.ps1")], comment: "t" })
      ).pipe(Effect.provide(over(sim)))
      expect(error._tag === "InvalidArgument" && error.argument).toBe("commands")
      expect(sim.received).toHaveLength(0)
    }))

  it.effect("a second session on a busy machine is ActiveSessionExists; waitForActiveSession tries again", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ pendingFor: "2 seconds", runFor: "5 seconds" })
      const run = (options?: LiveResponse.RunOptions) =>
        LiveResponse.runLiveResponse({ machineId: "m1", commands: [script("a.ps1")], comment: "t" }, options).pipe(
          Effect.provide(over(sim))
        )
      yield* run()
      const busy = yield* Effect.flip(run())
      expect(busy._tag === "ActiveSessionExists" && busy.machineId).toBe("m1")
      const exit = yield* drive(run({ waitForActiveSession: { deadline: "1 minute", interval: "5 seconds" } }), 20_000)
      expect(success(exit).status).toBe("Pending")
      // t=0 created, t=0 refused, then the waiting run: refused at 0 and 5 s, accepted at 10 s.
      expect(sim.received.filter((r) => r.endpoint === "runLiveResponse").map((r) => [r.at, r.status])).toEqual([
        [0, 201],
        [0, 400],
        [0, 400],
        [5000, 400],
        [10_000, 201]
      ])
    }))

  it.effect("run calls for one machine are serialised within a client", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ faults: { latency: "1 second" } })
      const run = (machineId: string) =>
        Effect.either(LiveResponse.runLiveResponse({ machineId, commands: [script("a.ps1")], comment: "t" }))
      const exit = yield* drive(
        Effect.all([run("m1"), run("m1"), run("m2")], { concurrency: "unbounded" }).pipe(Effect.provide(over(sim))),
        5000
      )
      const [first, second, other] = success(exit)
      expect(first._tag).toBe("Right")
      expect(second._tag === "Left" && second.left._tag).toBe("ActiveSessionExists")
      expect(other._tag).toBe("Right")
      // m1's second call went out only after the first was answered; m2 did not wait.
      const calls = sim.received.map((r) => `${r.url.split("/machines/")[1]!.split("/")[0]}@${r.at}`)
      expect(calls.sort()).toEqual(["m1@1000", "m1@2000", "m2@1000"])
    }))

  it.effect("the run budget is 10 calls per minute", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const exit = yield* drive(
        Effect.forEach(Array.from({ length: 12 }, (_, i) => `m${i}`), (machineId) =>
          LiveResponse.runLiveResponse({ machineId, commands: [script("a.ps1")], comment: "t" }), { concurrency: "unbounded" }).pipe(
            Effect.provide(over(sim))
          ),
        70_000,
        5000
      )
      expect(success(exit)).toHaveLength(12)
      expect(sim.count("runLiveResponse", 429)).toBe(0)
      expect(sim.received.map((r) => r.at)).toEqual([...Array(10).fill(0), 60_000, 60_000])
    }))
})

describe("LiveResponse.awaitMachineAction", () => {
  const start = (sim: DefenderSimulator.DefenderSimulator, scriptName: string, machineId = "m1") =>
    LiveResponse.runLiveResponse({ machineId, commands: [script(scriptName)], comment: "t" }).pipe(Effect.provide(over(sim)))

  it.effect("polls after a first delay and then on an interval until Succeeded", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ pendingFor: "2 seconds", runFor: "20 seconds" })
      const action = yield* start(sim, "a.ps1")
      const exit = yield* drive(
        LiveResponse.awaitMachineAction(action.id, { firstDelay: "3 seconds", interval: "10 seconds" }).pipe(Effect.provide(over(sim))),
        40_000
      )
      expect(success(exit).status).toBe("Succeeded")
      expect(sim.received.filter((r) => r.endpoint === "getMachineAction").map((r) => r.at)).toEqual([3000, 13_000, 23_000])
      expect(sim.count("cancel")).toBe(0)
    }))

  it.effect("Failed and TimeOut are typed errors with each command's status and errors", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const failed = yield* start(sim, "will-fail.ps1", "m1")
      const slow = yield* start(sim, "timeout.ps1", "m2")
      const exit = yield* drive(
        Effect.all([
          Effect.flip(LiveResponse.awaitMachineAction(failed.id)),
          Effect.flip(LiveResponse.awaitMachineAction(slow.id, { deadline: "2 hours" }))
        ], { concurrency: "unbounded" }).pipe(Effect.provide(over(sim))),
        15 * 60_000,
        10_000
      )
      const [f, t] = success(exit)
      expect(f._tag === "MachineActionFailed" && [f.reason, f.commands[0]!.status, f.commands[0]!.errors.length > 0]).toEqual([
        "Failed",
        "Failed",
        true
      ])
      expect(t._tag === "MachineActionFailed" && t.reason).toBe("TimeOut")
      expect(f.message).toContain("Script execution failed")
    }))

  it.effect("tolerates the 404 a new action gives for a moment, within the grace", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ visibleAfter: "12 seconds" })
      const action = yield* start(sim, "a.ps1")
      const exit = yield* drive(LiveResponse.awaitMachineAction(action.id).pipe(Effect.provide(over(sim))), 60_000)
      expect(success(exit).status).toBe("Succeeded")
      expect(sim.count("getMachineAction", 404)).toBe(1)
      const gone = yield* drive(
        Effect.flip(LiveResponse.awaitMachineAction("unknown-action", { notFoundGrace: "20 seconds" })).pipe(Effect.provide(over(sim))),
        60_000
      )
      expect(success(gone)._tag).toBe("NotFound")
      // Giving up on an error (not a final status) still cancels, once.
      expect(sim.received.filter((r) => r.endpoint === "cancel" && r.url.includes("unknown-action"))).toHaveLength(1)
    }))

  it.effect("interrupting the wait sends exactly one cancel; the action ends Cancelled", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ runFor: "5 minutes" })
      const action = yield* start(sim, "a.ps1")
      const fiber = yield* Effect.fork(LiveResponse.awaitMachineAction(action.id).pipe(Effect.provide(over(sim))))
      yield* TestClock.adjust("30 seconds")
      yield* Fiber.interrupt(fiber)
      expect(sim.count("cancel", 200)).toBe(1)
      const after = yield* LiveResponse.getMachineAction(action.id).pipe(Effect.provide(over(sim)))
      expect(after.status).toBe("Cancelled")
    }))

  it.effect("a timeout around the wait also cancels once; completing sends none", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ runFor: "5 minutes" })
      const long = yield* start(sim, "a.ps1", "m1")
      const exit = yield* drive(
        LiveResponse.awaitMachineAction(long.id).pipe(Effect.timeout("1 minute"), Effect.provide(over(sim))),
        70_000,
        5000
      )
      expect(failure(exit)._tag).toBe("TimeoutException")
      expect(sim.count("cancel")).toBe(1)
      const quick = yield* start(sim, "a.ps1", "m2")
      const done = yield* drive(LiveResponse.awaitMachineAction(quick.id).pipe(Effect.provide(over(sim))), 6 * 60_000, 10_000)
      expect(success(done).status).toBe("Succeeded")
      expect(sim.count("cancel")).toBe(1)
    }))

  it.effect("past its deadline the wait cancels the action and fails with DeadlineExceeded", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ runFor: "5 minutes" })
      const action = yield* start(sim, "a.ps1")
      const exit = yield* drive(
        LiveResponse.awaitMachineAction(action.id, { deadline: "1 minute" }).pipe(Effect.provide(over(sim))),
        70_000,
        5000
      )
      const error = failure(exit)
      expect(error._tag === "DeadlineExceeded" && error.lastStatus).toBe("InProgress")
      expect(sim.count("cancel", 200)).toBe(1)
    }))

  it.effect("a cancel that races with completion is tolerated", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ pendingFor: "0 millis", runFor: "10 seconds" })
      const action = yield* start(sim, "a.ps1")
      // Interrupted after the action ended but before the next poll saw it.
      const fiber = yield* Effect.fork(
        LiveResponse.awaitMachineAction(action.id, { firstDelay: "1 second", interval: "30 seconds" }).pipe(Effect.provide(over(sim)))
      )
      yield* TestClock.adjust("15 seconds")
      const exit = yield* Fiber.interrupt(fiber)
      expect(exit._tag).toBe("Failure")
      expect(sim.count("cancel", 400)).toBe(1)
      const after = yield* LiveResponse.getMachineAction(action.id).pipe(Effect.provide(over(sim)))
      expect(after.status).toBe("Succeeded")
    }))
})

describe("LiveResponse.runAndAwait", () => {
  it.effect("reports the action as soon as it exists, and a Ctrl-C while waiting cancels it once", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ runFor: "5 minutes" })
      const seen: Array<string> = []
      const fiber = yield* Effect.fork(
        LiveResponse.runAndAwait({ machineId: "m1", commands: [script("a.ps1")], comment: "t" }, {
          onStarted: (action) => Effect.sync(() => void seen.push(action.id))
        }).pipe(Effect.provide(over(sim)))
      )
      yield* TestClock.adjust("20 seconds")
      expect(seen).toHaveLength(1)
      yield* Fiber.interrupt(fiber)
      expect(sim.received.filter((r) => r.endpoint === "cancel").map((r) => r.url.includes(seen[0]!))).toEqual([true])
    }))
})

describe("LiveResponse.results and runAndCollect", () => {
  it.effect("one result per command, matched by index and type; GetFile optionally decompressed", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const layer = over(sim)
      const variants = yield* LiveResponse.getMachineAction(ACTIONS.variants).pipe(Effect.provide(layer))
      const rs = yield* Stream.runCollect(LiveResponse.results(variants)).pipe(Effect.provide(layer))
      expect([...rs].map((r) => [r.index, r.type, r.type === "RunScript" ? r.transcript.exitCode : null])).toEqual([
        [0, "RunScript", 0],
        [1, "RunScript", 1],
        [2, "RunScript", 0]
      ])
      const file = yield* LiveResponse.getMachineAction(ACTIONS.getFile).pipe(Effect.provide(layer))
      const bytesOf = (decompress: boolean) =>
        Effect.gen(function*() {
          const [result] = yield* Stream.runCollect(LiveResponse.results(file, { decompress }))
          if (result?.type !== "GetFile") throw new Error("expected a GetFile result")
          expect(result.path).toContain("OfficeClickToRun.dmp.zip")
          return Buffer.concat([...yield* Stream.runCollect(result.bytes)])
        }).pipe(Effect.provide(layer))
      const raw = yield* bytesOf(false)
      expect([raw[0], raw[1]]).toEqual([0x1f, 0x8b])
      const plain = yield* bytesOf(true)
      expect(plain.length).toBe(1024 * 1024)
      expect(plain.equals(gunzipSync(raw))).toBe(true)
    }))

  it.effect("with decompress, a non-gzip file passes through and a broken download keeps its typed error", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      sim.addTranscripts("plain", [new Uint8Array([0x1f]), new Uint8Array([])])
      const action = yield* LiveResponse.getMachineAction("plain").pipe(Effect.provide(over(sim)))
      // Two RunScript commands here, so read their bytes through the GetFile path by hand.
      const asFile = { ...action, commands: action.commands.map((c) => ({ ...c, command: { type: "GetFile", params: [{ key: "Path", value: "x" }] } })) }
      const files = yield* Stream.runCollect(LiveResponse.results(asFile, { decompress: true })).pipe(Effect.provide(over(sim)))
      const bytes = yield* Effect.forEach([...files], (f) =>
        f.type === "GetFile" ? Stream.runCollect(f.bytes).pipe(Effect.map((c) => Buffer.concat([...c]))) : Effect.succeed(Buffer.alloc(0))).pipe(
          Effect.provide(over(sim))
        )
      expect(bytes.map((b) => [...b])).toEqual([[0x1f], []])
      const gone = yield* LiveResponse.getMachineAction(ACTIONS.blobGone).pipe(Effect.provide(over(sim)))
      const goneFile = { ...gone, commands: gone.commands.map((c) => ({ ...c, command: { type: "GetFile", params: [] } })) }
      const [result] = yield* Stream.runCollect(LiveResponse.results(goneFile, { decompress: true })).pipe(Effect.provide(over(sim)))
      const error = yield* Effect.flip(result!.type === "GetFile" ? Stream.runDrain(result!.bytes) : Effect.void).pipe(Effect.provide(over(sim)))
      expect(error?._tag === "ResultLinkError" && error.reason).toBe("BlobNotFound")
    }))

  it.effect("runAndCollect: run, wait, and every result in one call", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const exit = yield* drive(
        LiveResponse.runAndCollect({
          machineId: "m7",
          commands: [{ type: "PutFile", fileName: "tool.ps1" }, script("collect.ps1"), { type: "GetFile", path: "C:\\log.txt" }],
          comment: "triage"
        }).pipe(Effect.provide(over(sim))),
        30_000
      )
      const { action, results } = success(exit)
      expect(action.status).toBe("Succeeded")
      expect(results.map((r) => r.type)).toEqual(["PutFile", "RunScript", "GetFile"])
      const transcript = results[1]!.type === "RunScript" ? results[1]!.transcript : undefined
      expect(transcript?.output).toContain("collect.ps1 -Verbose")
      const file = results[2]!
      const bytes = file.type === "GetFile"
        ? yield* Stream.runFold(file.bytes, 0, (n, c) => n + c.length).pipe(Effect.provide(over(sim)))
        : 0
      expect(bytes).toBe(64 * 1024)
    }))
})
