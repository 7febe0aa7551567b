/**
 * No secret leaves the library: every public program runs here, against the
 * simulator (in-process, or served on 127.0.0.1) or a scripted fake, with
 * canary credentials — a client secret, bearer tokens, SAS signatures — while a
 * capturing logger (every level: messages, causes, annotations, log spans) and a
 * capturing tracer (every span: attributes, events, links, how it ended) record
 * everything the library emits. Each scenario first checks that its canaries
 * really reached the other side (so "nothing leaked" cannot pass vacuously),
 * then that none of them, in any form, is in what was captured or in the typed
 * error the program failed with. The last test checks the whole suite at once.
 */
import { FetchHttpClient, HttpClient, HttpClientResponse } from "@effect/platform"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { afterAll, describe, expect, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  ConfigProvider,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Option,
  Redacted,
  Stream,
  TestClock,
  Tracer
} from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer, type Socket } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderClient from "../src/DefenderClient.ts"
import type * as DefenderCloud from "../src/DefenderCloud.ts"
import { HttpError } from "../src/DefenderError.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import * as LiveResponse from "../src/LiveResponse.ts"
import type * as MachineAction from "../src/MachineAction.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import {
  CANARY_REDIS_PASSWORD,
  CANARY_RENEWED_TOKEN,
  CANARY_SECRET,
  CANARY_SIG,
  CANARY_TOKEN,
  CANARY_WRONG_SECRET,
  FIXED_CANARIES,
  leaks
} from "./utils/canary.ts"
import { type Captured, capture, showError, showExit } from "./utils/capture.ts"
import {
  ACTION_ID,
  BLOB_HOST,
  blobUrl,
  clientLayer,
  expiredSas,
  json,
  linkResponse,
  LOGIN,
  type Fake,
  makeFake,
  odataError,
  type Recorded,
  SEED_TRANSCRIPT,
  storageError
} from "./utils/fake.ts"

const { ACTIONS } = DefenderSimulator

// ---------------------------------------------------------------------------
// Everything captured over the whole suite
// ---------------------------------------------------------------------------

const suite = {
  registered: new Set<string>(),
  completed: new Set<string>(),
  /** Programs run under a capture (a scenario may run several). */
  programs: 0,
  spans: 0,
  spanEvents: 0,
  logs: 0,
  failures: 0,
  texts: [] as Array<string>,
  /** The fixed canaries plus every token and signature the simulators handed out. */
  canaries: new Map(FIXED_CANARIES)
}

const TEMP = mkdtempSync(join(tmpdir(), "mde-security-"))
afterAll(() => rmSync(TEMP, { recursive: true, force: true }))

interface Ran<A, E> {
  readonly exit: Exit.Exit<A, E>
  readonly captured: Captured
  /** Everything captured plus the program's outcome (value, or cause and errors in full). */
  readonly text: string
}

/**
 * Runs a fully provided program under a fresh capture (the capture is outermost, so
 * building the program's layers is captured too), moving the TestClock in steps until
 * it ends (`seconds: 0`: real I/O, the clock is left alone), and adds what it
 * captured to the suite's total.
 */
const run = <A, E>(
  name: string,
  program: Effect.Effect<A, E>,
  options?: { readonly seconds?: number; readonly step?: Duration.DurationInput; readonly record?: boolean }
): Effect.Effect<Ran<A, E>> =>
  Effect.gen(function*() {
    const { captured, layer } = capture()
    // As a user would: the outcome logged, a failure with its whole cause.
    const logged = program.pipe(
      Effect.tap((value) => Effect.logInfo("the program succeeded", value)),
      Effect.tapErrorCause((cause) => Effect.logError("the program failed", cause)),
      Effect.annotateLogs("program", name)
    )
    const fiber = yield* Effect.fork(Effect.provide(logged, layer))
    const limit = (options?.seconds ?? 600) * 1000
    const step = Duration.toMillis(Duration.decode(options?.step ?? "10 seconds"))
    for (let t = 0; t < limit && Option.isNone(yield* Fiber.poll(fiber)); t += step) yield* TestClock.adjust(step)
    const exit = yield* Fiber.await(fiber)
    const text = [`program: ${name}`, captured.dump(), showExit(exit)].join("\n")
    if (options?.record !== false) {
      suite.programs++
      suite.spans += captured.spans.length
      suite.spanEvents += captured.spans.reduce((n, s) => n + s.events.length, 0)
      suite.logs += captured.logs.length
      if (Exit.isFailure(exit)) suite.failures++
      suite.texts.push(text)
    }
    return { exit, captured, text }
  })

/**
 * The checks every scenario ends with: its canaries reached the other side (each
 * `flows` entry is true), something was captured, and no canary — fixed, or
 * harvested from what the simulator handed out — is in the captured text.
 */
const verify = (
  ran: Ran<unknown, unknown>,
  flows: Record<string, boolean>,
  harvested: ReadonlyMap<string, string> = new Map()
) => {
  for (const [name, value] of harvested) suite.canaries.set(`${name} #${suite.canaries.size}`, value)
  // Booleans only: a failure names what did not flow, never the secret.
  expect(flows).toEqual(Object.fromEntries(Object.keys(flows).map((k) => [k, true])))
  expect(ran.captured.spans.length).toBeGreaterThan(0)
  expect(leaks(ran.text, new Map([...FIXED_CANARIES, ...harvested]))).toEqual([])
}

/** A test that counts as a scenario: the last test checks that every one of them ran to its end. */
const scenario = (name: string, self: () => Effect.Effect<void>) => {
  suite.registered.add(name)
  it.effect(name, () =>
    Effect.tap(self(), () =>
      Effect.sync(() => {
        suite.completed.add(name)
      })))
}

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
  if (Option.isNone(failure)) throw new Error(`expected a typed failure, got ${exit._tag}`)
  return failure.value
}

const valueOf = <A, E>(exit: Exit.Exit<A, E>): A => {
  if (Exit.isFailure(exit)) throw new Error(`expected a success, got ${Cause.pretty(exit.cause).slice(0, 300)}`)
  return exit.value
}

/** An error a program caught and carries on with, in every printed form (it ends up in the captured text). */
const described = (e: { readonly _tag: string }) => ({ tag: e._tag, shown: showError(e) })

// ---------------------------------------------------------------------------
// The stacks under test
// ---------------------------------------------------------------------------

/** A simulator that accepts only the canary secret (for its app) and the canary token (as a static token). */
const simulator = (options?: DefenderSimulator.Options) =>
  DefenderSimulator.make({
    clientSecret: Redacted.make(CANARY_SECRET),
    staticTokens: [Redacted.make(CANARY_TOKEN)],
    ...options
  })

const login = (
  secret: string = CANARY_SECRET,
  options?: { readonly tenantId?: string; readonly cloud?: DefenderCloud.DefenderCloud }
) =>
  DefenderAuth.layerClientSecret({
    tenantId: options?.tenantId ?? DefenderSimulator.SIMULATED_TENANT,
    clientId: DefenderSimulator.SIMULATED_CLIENT_ID,
    clientSecret: Redacted.make(secret),
    cloud: options?.cloud
  })

interface StackOptions {
  readonly auth?: Layer.Layer<DefenderAuth.DefenderAuth, never, HttpClient.HttpClient>
  readonly limiter?: DefenderRateLimiter.Options
  readonly client?: DefenderClient.Options
}

const stack = (http: Layer.Layer<HttpClient.HttpClient>, options?: StackOptions) =>
  DefenderClient.layer(options?.client).pipe(
    Layer.provide(Layer.merge(
      options?.auth ?? DefenderAuth.layerToken(Redacted.make(CANARY_TOKEN)),
      DefenderRateLimiter.layer(options?.limiter)
    )),
    Layer.provide(http)
  )

const over = (sim: DefenderSimulator.DefenderSimulator, options?: StackOptions) =>
  stack(DefenderSimulator.layerHttpClient(sim), options)

const withFiles = (sim: DefenderSimulator.DefenderSimulator, options?: StackOptions) =>
  Layer.merge(over(sim, options), NodeFileSystem.layer)

const sigOf = (url: string): string | null => {
  try {
    return new URL(url).searchParams.get("sig")
  } catch {
    return null
  }
}

/** Every bearer token and SAS signature the simulator received: secrets just like the fixed canaries. */
const harvest = (sim: DefenderSimulator.DefenderSimulator, links: ReadonlyArray<string> = []) => {
  const found = new Map<string, string>()
  let n = 0
  for (const r of sim.received) {
    const auth = r.headers["authorization"]
    if (auth?.startsWith("Bearer ")) found.set(`simulator token ${n++}`, auth.slice(7))
    const sig = sigOf(r.url)
    if (sig !== null && sig !== "") found.set(`simulator signature ${n++}`, sig)
  }
  for (const link of links) {
    const sig = sigOf(link)
    if (sig !== null) found.set(`simulator signature ${n++}`, sig)
  }
  return found
}

const sawBearer = (sim: DefenderSimulator.DefenderSimulator, token: string, status?: number) =>
  sim.received.some((r) => r.headers["authorization"] === `Bearer ${token}` && (status === undefined || r.status === status))

/** A token the simulator issued (so only after the canary secret was accepted) was used on the API. */
const sawIssuedToken = (sim: DefenderSimulator.DefenderSimulator) =>
  sim.received.some((r) => r.endpoint !== "token" && r.headers["authorization"]?.startsWith("Bearer eyJ") === true)

const sawSig = (sim: DefenderSimulator.DefenderSimulator) =>
  sim.received.some((r) => r.endpoint === "blob" && (sigOf(r.url) ?? "") !== "")

const ref = (machineActionId: string, index = 0) => ({ machineActionId, index })

const transcriptText = (code: number) =>
  `{"script_name":"check.ps1","exit_code":${code},"script_output":"line\nnext","script_error":""}`

/** 256 KiB of bytes that differ everywhere. */
const BIG = new Uint8Array(256 * 1024).map((_, i) => (i * 2654435761) >>> 24)

const bytesOf = <E, R>(stream: Stream.Stream<Uint8Array, E, R>) =>
  Effect.map(Stream.runCollect(stream), Chunk.reduce(0, (n, c) => n + c.length))

// ---------------------------------------------------------------------------
// Results: links, transcripts, downloads
// ---------------------------------------------------------------------------

describe("results, against the simulator", () => {
  scenario("getResultLink: the link is Redacted, its signature nowhere in logs or spans", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const ran = yield* run(
        "getResultLink",
        LiveResponse.getResultLink(ref(ACTIONS.runScript)).pipe(Effect.provide(over(sim)))
      )
      const link = valueOf(ran.exit)
      const url = Redacted.value(link.url)
      verify(ran, {
        "the canary token reached the API": sawBearer(sim, CANARY_TOKEN, 200),
        "the link holds a signature": (sigOf(url) ?? "").length > 20
      }, harvest(sim, [url]))
      expect(String(link.url)).toBe("<redacted>")
      // The span names the link, with its signature redacted: the capture does see links.
      expect(ran.text).toContain("sig=REDACTED")
    }))

  scenario("getTranscript with a client-secret login: secret, issued token and signature all used", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const ran = yield* run(
        "getTranscript + login",
        Effect.forEach([0, 1, 2], (i) => LiveResponse.getTranscript(ref(ACTIONS.variants, i))).pipe(
          Effect.provide(over(sim, { auth: login() }))
        )
      )
      expect(valueOf(ran.exit).map((t) => t.exitCode)).toEqual([0, 1, 0])
      verify(ran, {
        "the canary secret was accepted": sim.count("token", 200) === 1,
        "the issued token was used": sawIssuedToken(sim),
        "the signatures were used": sim.count("blob", 200) === 3
      }, harvest(sim))
      expect(ran.captured.spans.map((s) => s.name)).toContain("DefenderAuth.requestToken")
    }))

  scenario("downloadResult streams a GetFile result", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const ran = yield* run(
        "downloadResult",
        bytesOf(LiveResponse.downloadResult(ref(ACTIONS.getFile))).pipe(Effect.provide(over(sim)))
      )
      expect(valueOf(ran.exit)).toBeGreaterThan(1000)
      verify(ran, { "token used": sawBearer(sim, CANARY_TOKEN, 200), "signature used": sawSig(sim) }, harvest(sim))
    }))

  scenario("404s: an unknown action, a failed action's missing result, a blob gone from storage", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const ran = yield* run(
        "404s",
        Effect.gen(function*() {
          const unknown = yield* Effect.flip(LiveResponse.getTranscript(ref("5e1d0000-0000-4000-8000-0000000000ff")))
          const failed = yield* Effect.flip(LiveResponse.getTranscript(ref(ACTIONS.failed)))
          const gone = yield* Effect.flip(LiveResponse.getTranscript(ref(ACTIONS.blobGone)))
          return [described(unknown), described(failed), described(gone)]
        }).pipe(Effect.provide(over(sim)))
      )
      expect(valueOf(ran.exit).map((e) => e.tag)).toEqual(["NotFound", "NotFound", "ResultLinkError"])
      verify(ran, {
        "token used": sawBearer(sim, CANARY_TOKEN, 404),
        "signature of the gone blob used": sim.count("blob", 404) === 1
      }, harvest(sim))
    }))

  scenario("429 with Retry-After: the simulator's quota is waited out", () =>
    Effect.gen(function*() {
      const sim = yield* simulator({ rateLimits: [{ limit: 2, window: "1 minute" }] })
      sim.addTranscripts("throttled-action", [0, 1, 2, 3].map(transcriptText))
      const ran = yield* run(
        "429 Retry-After",
        Effect.forEach([0, 1, 2, 3], (i) => LiveResponse.getTranscript(ref("throttled-action", i)), { concurrency: 4 }).pipe(
          Effect.provide(over(sim, { limiter: { limits: [] } }))
        )
      )
      expect(valueOf(ran.exit).map((t) => t.exitCode)).toEqual([0, 1, 2, 3])
      verify(ran, { "429s answered": sim.count("getResultLink", 429) > 0, "token used": sawBearer(sim, CANARY_TOKEN, 429) }, harvest(sim))
      expect(ran.captured.logs.some((l) => l.includes("retrying after Throttled"))).toBe(true)
    }))

  scenario("429 without Retry-After, until Throttled", () =>
    Effect.gen(function*() {
      const sim = yield* simulator({ rateLimits: [{ limit: 1, window: "1 hour" }], faults: { omitRetryAfter: true } })
      const ran = yield* run(
        "429 Throttled",
        Effect.zipRight(
          LiveResponse.getResultLink(ref(ACTIONS.runScript)),
          LiveResponse.getResultLink(ref(ACTIONS.runScript))
        ).pipe(Effect.provide(over(sim, { limiter: { limits: [] } })))
      )
      expect(failureOf(ran.exit)._tag).toBe("Throttled")
      verify(ran, { "429s answered": sim.count("getResultLink", 429) === 7, "token used": sawBearer(sim, CANARY_TOKEN) }, harvest(sim))
    }))

  scenario("5xx on every call, until HttpError after 7 attempts", () =>
    Effect.gen(function*() {
      const sim = yield* simulator({ faults: { errorRate: 1 } })
      const ran = yield* run("5xx", LiveResponse.getTranscript(ref(ACTIONS.runScript)).pipe(Effect.provide(over(sim))))
      const error = failureOf(ran.exit)
      expect(error._tag === "HttpError" && error.attempts).toBe(7)
      verify(ran, { "token used": sawBearer(sim, CANARY_TOKEN), "7 calls": sim.count("getResultLink") === 7 }, harvest(sim))
    }))

  scenario("5xx answers and dropped connections, retried to success", () =>
    Effect.gen(function*() {
      const sim = yield* simulator({ faults: { errorRate: 0.25, dropRate: 0.25, seed: 11 } })
      const ran = yield* run(
        "5xx + drops",
        Effect.forEach([0, 1, 2], (i) => LiveResponse.getTranscript(ref(ACTIONS.variants, i))).pipe(
          Effect.provide(over(sim, { auth: login() }))
        )
      )
      expect(valueOf(ran.exit)).toHaveLength(3)
      verify(ran, {
        "faults happened": sim.received.some((r) => r.status === 0) && sim.received.some((r) => r.status >= 500),
        "secret accepted": sim.count("token", 200) >= 1,
        "issued token used": sawIssuedToken(sim),
        "signatures used": sawSig(sim)
      }, harvest(sim))
    }))

  scenario("every connection dropped, until a transport HttpError", () =>
    Effect.gen(function*() {
      const sim = yield* simulator({ faults: { dropRate: 1 } })
      const ran = yield* run("drops", LiveResponse.getResultLink(ref(ACTIONS.runScript)).pipe(Effect.provide(over(sim))))
      const error = failureOf(ran.exit)
      expect(error._tag === "HttpError" && error.reason).toBe("Transport")
      verify(ran, { "token sent": sim.received.some((r) => r.headers["authorization"] === `Bearer ${CANARY_TOKEN}`) }, harvest(sim))
    }))

  scenario("an expired link is re-created once, then the expiry is a typed error", () =>
    Effect.gen(function*() {
      // Every answer takes 1 s and a link lives 1 s: each link has expired when it is used.
      const sim = yield* simulator({ linkLifetime: "1 second", faults: { latency: "1 second" } })
      const ran = yield* run("expired twice", LiveResponse.getTranscript(ref(ACTIONS.runScript)).pipe(Effect.provide(over(sim))))
      const error = failureOf(ran.exit)
      expect(error._tag === "ResultLinkError" && error.reason).toBe("Expired")
      verify(ran, {
        "two links asked for": sim.count("getResultLink", 200) === 2,
        "both expired signatures used": sim.count("blob", 403) === 2
      }, harvest(sim))
    }))

  scenario("a forged signature is refused by the storage", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      // The simulator, with the signature of every link it hands out replaced by the canary.
      const forging = HttpClient.make((request, url) =>
        Effect.gen(function*() {
          const response = yield* DefenderSimulator.httpClient(sim).execute(request)
          if (!url.pathname.includes("GetLiveResponseResultDownloadLink") || response.status !== 200) return response
          const body = (yield* response.json) as { readonly value: string }
          const value = body.value.replace(/sig=[^&]*/, `sig=${CANARY_SIG}`)
          return HttpClientResponse.fromWeb(request, Response.json({ ...body, value }))
        })
      )
      const ran = yield* run(
        "forged sig",
        LiveResponse.getTranscript(ref(ACTIONS.runScript)).pipe(
          Effect.provide(stack(Layer.succeed(HttpClient.HttpClient, forging)))
        )
      )
      const error = failureOf(ran.exit)
      expect(error._tag === "ResultLinkError" && error.reason).toBe("Forbidden")
      verify(ran, {
        "the forged signature reached the storage": sim.received.some((r) =>
          r.endpoint === "blob" && r.status === 403 && sigOf(r.url) === decodeURIComponent(CANARY_SIG)
        )
      }, harvest(sim))
    }))
})

describe("bodies that break, against the simulator", () => {
  scenario("a body cut mid-transfer is a transport error", () =>
    Effect.gen(function*() {
      const sim = yield* simulator({ faults: { cutRate: 1, seed: 2 } })
      const ran = yield* run("cut", LiveResponse.getTranscript(ref(ACTIONS.runScript)).pipe(Effect.provide(over(sim))))
      expect(failureOf(ran.exit)._tag).toBe("HttpError")
      verify(ran, { "signature used": sawSig(sim), "token used": sawBearer(sim, CANARY_TOKEN, 200) }, harvest(sim))
    }))

  scenario("a trickling body within the time limit arrives; one that stalls past it fails", () =>
    Effect.gen(function*() {
      const slow = yield* simulator({ faults: { trickleRate: 1, trickleDelay: "1 second" } })
      const ok = yield* run(
        "trickle",
        bytesOf(LiveResponse.downloadResult(ref(ACTIONS.variants, 2))).pipe(Effect.provide(over(slow)))
      )
      expect(valueOf(ok.exit)).toBeGreaterThan(0)
      verify(ok, { "signature used": sawSig(slow) }, harvest(slow))
      const stalled = yield* simulator({ faults: { trickleRate: 1, trickleDelay: "40 seconds" } })
      const ran = yield* run(
        "stall",
        bytesOf(LiveResponse.downloadResult(ref(ACTIONS.getFile))).pipe(Effect.provide(over(stalled)))
      )
      const error = failureOf(ran.exit)
      expect(error._tag === "HttpError" && error.reason).toBe("Transport")
      verify(ran, { "signature used": sawSig(stalled) }, harvest(stalled))
    }))
})

describe("downloadToFile, against the simulator", () => {
  scenario("resumed after cuts: Range + If-Match, the file verified", () =>
    Effect.gen(function*() {
      const sim = yield* simulator({ faults: { cutRate: 0.8, seed: 7 } })
      sim.addTranscripts("big", [BIG])
      const ran = yield* run(
        "downloadToFile resume",
        LiveResponse.downloadToFile(ref("big"), join(TEMP, "resumed.bin"), { maxInterruptions: 50 }).pipe(
          Effect.provide(withFiles(sim))
        ),
        { step: "1 second" }
      )
      const saved = valueOf(ran.exit)
      expect([saved.bytes, saved.md5Verified, saved.resumes > 0]).toEqual([BIG.length, true, true])
      verify(ran, {
        "resumed with the signature": sim.received.some((r) =>
          r.endpoint === "blob" && r.headers["range"] !== undefined && (sigOf(r.url) ?? "") !== ""
        )
      }, harvest(sim))
    }))

  scenario("the link expires mid-download and is re-created", () =>
    Effect.gen(function*() {
      const sim = yield* simulator({
        linkLifetime: "10 seconds",
        faults: { trickleRate: 1, trickleDelay: "1 second", cutRate: 0.5, seed: 3 }
      })
      sim.addTranscripts("small", [BIG.slice(0, 32 * 1024)])
      const ran = yield* run(
        "downloadToFile expiry",
        LiveResponse.downloadToFile(ref("small"), join(TEMP, "renewed.bin"), { maxInterruptions: 50 }).pipe(
          Effect.provide(withFiles(sim))
        ),
        { step: "1 second" }
      )
      expect(valueOf(ran.exit).bytes).toBe(32 * 1024)
      verify(ran, { "several links": sim.count("getResultLink", 200) > 1, "signatures used": sawSig(sim) }, harvest(sim))
    }))

  scenario("a corrupted body is an Md5Mismatch, and nothing is left", () =>
    Effect.gen(function*() {
      const sim = yield* simulator({ faults: { corruptRate: 1 } })
      sim.addTranscripts("big", [BIG])
      const ran = yield* run(
        "downloadToFile md5",
        LiveResponse.downloadToFile(ref("big"), join(TEMP, "corrupt.bin")).pipe(Effect.provide(withFiles(sim))),
        { step: "1 second" }
      )
      const error = failureOf(ran.exit)
      expect(error._tag === "FileDownloadError" && error.reason).toBe("Md5Mismatch")
      verify(ran, { "signature used": sawSig(sim) }, harvest(sim))
    }))
})

// ---------------------------------------------------------------------------
// Live response sessions
// ---------------------------------------------------------------------------

const script = (scriptName: string, args?: string): MachineAction.Command => ({ type: "RunScript", scriptName, args })

describe("live response sessions, against the simulator", () => {
  scenario("upload a script, runAndCollect a RunScript + GetFile, read every result", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const ran = yield* run(
        "runAndCollect",
        Effect.gen(function*() {
          const uploaded = yield* LiveResponse.uploadScript({ fileName: "triage.ps1", content: "Get-Process", overrideIfExists: true })
          const { action, results } = yield* LiveResponse.runAndCollect({
            machineId: "machine-session-1",
            commands: [script("triage.ps1", "-Quick"), { type: "GetFile", path: "C:\\Windows\\Temp\\triage.log" }],
            comment: "incident 4711"
          }, { decompress: true })
          let bytes = 0
          for (const r of results) if (r.type === "GetFile") bytes += yield* bytesOf(r.bytes)
          return { uploaded, status: action.status, types: results.map((r) => r.type), bytes }
        }).pipe(Effect.provide(over(sim, { auth: login() }))),
        { step: "1 second" }
      )
      const value = valueOf(ran.exit)
      expect([value.status, value.types, value.bytes > 0]).toEqual(["Succeeded", ["RunScript", "GetFile"], true])
      verify(ran, {
        "secret accepted": sim.count("token", 200) === 1,
        "issued token used on every endpoint": ["uploadLibraryFile", "runLiveResponse", "getMachineAction", "getResultLink"]
          .every((e) => sim.received.some((r) => r.endpoint === e && r.headers["authorization"]?.startsWith("Bearer eyJ"))),
        "signatures used": sim.count("blob", 200) === 2
      }, harvest(sim))
    }))

  scenario("runAndAwait of a failing script: MachineActionFailed", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const ran = yield* run(
        "runAndAwait failed",
        LiveResponse.runAndAwait({ machineId: "machine-session-2", commands: [script("fail-on-purpose.ps1")], comment: "c" })
          .pipe(Effect.provide(over(sim)))
      )
      const error = failureOf(ran.exit)
      expect(error._tag === "MachineActionFailed" && error.reason).toBe("Failed")
      verify(ran, { "token used": sawBearer(sim, CANARY_TOKEN, 201) }, harvest(sim))
    }))

  scenario("a script that times out on the machine: MachineActionFailed TimeOut", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const ran = yield* run(
        "runAndAwait timeout",
        LiveResponse.runAndAwait({ machineId: "machine-session-3", commands: [script("timeout.ps1")], comment: "c" }, { interval: "1 minute" })
          .pipe(Effect.provide(over(sim))),
        { seconds: 900, step: "20 seconds" }
      )
      const error = failureOf(ran.exit)
      expect(error._tag === "MachineActionFailed" && error.reason).toBe("TimeOut")
      verify(ran, { "polled with the token": sawBearer(sim, CANARY_TOKEN, 200) && sim.count("getMachineAction") >= 10 }, harvest(sim))
    }))

  scenario("awaitMachineAction past its deadline: DeadlineExceeded and one cancel", () =>
    Effect.gen(function*() {
      const sim = yield* simulator({ runFor: "1 hour" })
      const ran = yield* run(
        "deadline",
        Effect.gen(function*() {
          const started = yield* LiveResponse.runLiveResponse({ machineId: "machine-session-4", commands: [script("slow.ps1")], comment: "c" })
          return yield* LiveResponse.awaitMachineAction(started.id, { deadline: "1 minute" })
        }).pipe(Effect.provide(over(sim)))
      )
      expect(failureOf(ran.exit)._tag).toBe("DeadlineExceeded")
      verify(ran, { "cancelled with the token": sim.count("cancel", 200) === 1 && sawBearer(sim, CANARY_TOKEN, 200) }, harvest(sim))
    }))

  scenario("an interrupted wait cancels the action; waiting on it then fails as Cancelled", () =>
    Effect.gen(function*() {
      const sim = yield* simulator({ runFor: "1 hour" })
      const ran = yield* run(
        "interrupt + cancelled",
        Effect.gen(function*() {
          let id = ""
          const request = { machineId: "machine-session-5", commands: [script("slow.ps1")], comment: "c" }
          const timedOut = yield* Effect.either(LiveResponse.runAndAwait(request, {
            onStarted: (a) =>
              Effect.sync(() => {
                id = a.id
              })
          }).pipe(Effect.timeout("20 seconds")))
          const ended = yield* Effect.flip(LiveResponse.awaitMachineAction(id, { firstDelay: "1 second" }))
          const late = yield* Effect.flip(LiveResponse.cancelMachineAction(id, "again"))
          return { timedOut: timedOut._tag, ended: described(ended), late: described(late) }
        }).pipe(Effect.provide(over(sim)))
      )
      const value = valueOf(ran.exit)
      expect([value.timedOut, value.ended.tag, value.late.tag]).toEqual(["Left", "MachineActionFailed", "HttpError"])
      verify(ran, { "one accepted cancel, with the token": sim.count("cancel", 200) === 1 && sawBearer(sim, CANARY_TOKEN) }, harvest(sim))
    }))

  scenario("a second session on a busy machine: ActiveSessionExists, then waited out", () =>
    Effect.gen(function*() {
      const sim = yield* simulator({ runFor: "1 minute" })
      const ran = yield* run(
        "active session",
        Effect.gen(function*() {
          const request = { machineId: "machine-session-6", commands: [script("collect.ps1")], comment: "c" }
          yield* LiveResponse.runLiveResponse(request)
          const busy = yield* Effect.flip(LiveResponse.runLiveResponse(request))
          const later = yield* LiveResponse.runLiveResponse(request, { waitForActiveSession: { deadline: "5 minutes", interval: "10 seconds" } })
          return { busy: described(busy), later: later.status }
        }).pipe(Effect.provide(over(sim)))
      )
      expect([valueOf(ran.exit).busy.tag, valueOf(ran.exit).later]).toEqual(["ActiveSessionExists", "Pending"])
      verify(ran, { "token used": sawBearer(sim, CANARY_TOKEN, 400) }, harvest(sim))
    }))

  scenario("results of preset actions: transcripts and a gzip GetFile, decompressed", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const ran = yield* run(
        "results",
        Effect.gen(function*() {
          const variants = yield* LiveResponse.getMachineAction(ACTIONS.variants)
          const file = yield* LiveResponse.getMachineAction(ACTIONS.getFile)
          const scripts = yield* Stream.runCollect(LiveResponse.results(variants))
          const files = yield* Stream.runCollect(LiveResponse.results(file, { decompress: true }))
          let bytes = 0
          for (const r of files) if (r.type === "GetFile") bytes += yield* bytesOf(r.bytes)
          return { scripts: Chunk.size(scripts), bytes }
        }).pipe(Effect.provide(over(sim))),
        { step: "1 second" }
      )
      expect(valueOf(ran.exit)).toEqual({ scripts: 3, bytes: 1024 * 1024 })
      verify(ran, { "token used": sawBearer(sim, CANARY_TOKEN, 200), "signatures used": sim.count("blob", 200) === 4 }, harvest(sim))
    }))

  scenario("uploadScript: a duplicate without override, and a bad file name", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const ran = yield* run(
        "uploadScript errors",
        Effect.gen(function*() {
          yield* LiveResponse.uploadScript({ fileName: "dup.ps1", content: "Write-Output 1" })
          const dup = yield* Effect.flip(LiveResponse.uploadScript({ fileName: "dup.ps1", content: "Write-Output 2" }))
          const bad = yield* Effect.flip(LiveResponse.uploadScript({ fileName: "..\\evil.ps1", content: "x" }))
          return [described(dup), described(bad)]
        }).pipe(Effect.provide(over(sim)))
      )
      expect(valueOf(ran.exit).map((e) => e.tag)).toEqual(["HttpError", "InvalidArgument"])
      verify(ran, { "token used": sawBearer(sim, CANARY_TOKEN, 400) }, harvest(sim))
    }))
})

// ---------------------------------------------------------------------------
// Logins and configuration
// ---------------------------------------------------------------------------

describe("logins, against the simulator", () => {
  scenario("a rejected client secret (AADSTS7000215)", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const ran = yield* run(
        "rejected secret",
        LiveResponse.getTranscript(ref(ACTIONS.runScript)).pipe(Effect.provide(over(sim, { auth: login(CANARY_WRONG_SECRET) })))
      )
      const error = failureOf(ran.exit)
      expect(error._tag === "AuthenticationError" && [error.reason, error.errorCodes]).toEqual(["TokenRequestFailed", [7000215]])
      verify(ran, { "the wrong secret was sent and refused": sim.count("token", 401) === 1 }, harvest(sim))
    }))

  scenario("an unknown tenant (AADSTS90002)", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const ran = yield* run(
        "unknown tenant",
        LiveResponse.getResultLink(ref(ACTIONS.runScript)).pipe(
          Effect.provide(over(sim, { auth: login(CANARY_SECRET, { tenantId: "contoso.example" }) }))
        )
      )
      const error = failureOf(ran.exit)
      expect(error._tag === "AuthenticationError" && error.errorCodes).toEqual([90002])
      verify(ran, { "the secret was sent and refused": sim.count("token", 400) === 1 }, harvest(sim))
    }))

  scenario("a static token the API refuses: Unauthorized", () =>
    Effect.gen(function*() {
      const sim = yield* simulator({ staticTokens: [] })
      const ran = yield* run("static 401", LiveResponse.getResultLink(ref(ACTIONS.runScript)).pipe(Effect.provide(over(sim))))
      const error = failureOf(ran.exit)
      expect(error._tag === "AuthenticationError" && error.reason).toBe("Unauthorized")
      verify(ran, { "the token was sent and refused": sawBearer(sim, CANARY_TOKEN, 401) }, harvest(sim))
    }))

  scenario("an @azure/identity-style credential: its token used; a failing one is CredentialFailed", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const good = yield* run(
        "credential",
        LiveResponse.getTranscript(ref(ACTIONS.runScript)).pipe(Effect.provide(over(sim, {
          auth: DefenderAuth.layerCredential({
            getToken: () => Promise.resolve({ token: CANARY_TOKEN, expiresOnTimestamp: 3_600_000 })
          })
        })))
      )
      expect(valueOf(good.exit).scriptName).toBe("minidump.ps1")
      verify(good, { "the credential's token was used": sawBearer(sim, CANARY_TOKEN, 200) }, harvest(sim))
      const bad = yield* run(
        "credential fails",
        LiveResponse.getTranscript(ref(ACTIONS.runScript)).pipe(Effect.provide(over(sim, {
          auth: DefenderAuth.layerCredential({
            getToken: () => Promise.reject(new Error("ManagedIdentityCredential: no managed identity endpoint"))
          })
        })))
      )
      const error = failureOf(bad.exit)
      expect(error._tag === "AuthenticationError" && error.reason).toBe("CredentialFailed")
      verify(bad, { "it asked the credential": error._tag === "AuthenticationError" })
    }))
})

describe("configuration (ConfigProvider.fromMap), against the simulator", () => {
  const configured = (sim: DefenderSimulator.DefenderSimulator, env: Record<string, string>) =>
    <A, E>(self: Effect.Effect<A, E, DefenderClient.DefenderClient>) =>
      self.pipe(
        Effect.provide(LiveResponse.layerConfig()),
        Effect.provide(DefenderSimulator.layerHttpClient(sim)),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
      )
  const app = { AZURE_TENANT_ID: DefenderSimulator.SIMULATED_TENANT, AZURE_CLIENT_ID: DefenderSimulator.SIMULATED_CLIENT_ID }

  scenario("layerConfig with AZURE_CLIENT_SECRET", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const ran = yield* run(
        "config secret",
        LiveResponse.getTranscript(ref(ACTIONS.runScript)).pipe(configured(sim, { ...app, AZURE_CLIENT_SECRET: CANARY_SECRET }))
      )
      expect(valueOf(ran.exit).exitCode).toBe(0)
      verify(ran, { "secret accepted": sim.count("token", 200) === 1, "issued token used": sawIssuedToken(sim) }, harvest(sim))
    }))

  scenario("layerConfig with a wrong AZURE_CLIENT_SECRET", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const ran = yield* run(
        "config wrong secret",
        LiveResponse.getTranscript(ref(ACTIONS.runScript)).pipe(configured(sim, { ...app, AZURE_CLIENT_SECRET: CANARY_WRONG_SECRET }))
      )
      expect(failureOf(ran.exit)._tag).toBe("AuthenticationError")
      verify(ran, { "secret sent and refused": sim.count("token", 401) === 1 }, harvest(sim))
    }))

  scenario("layerConfig with MDE_TOKEN (and a secret that is then unused)", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const ran = yield* run(
        "config token",
        LiveResponse.getTranscript(ref(ACTIONS.runScript)).pipe(
          configured(sim, { ...app, AZURE_CLIENT_SECRET: CANARY_SECRET, MDE_TOKEN: CANARY_TOKEN })
        )
      )
      expect(valueOf(ran.exit).exitCode).toBe(0)
      verify(ran, { "the token was used": sawBearer(sim, CANARY_TOKEN, 200), "no login": sim.count("token") === 0 }, harvest(sim))
    }))

  scenario("a ConfigError while the secret is set names the variable, never the secret", () =>
    Effect.gen(function*() {
      const sim = yield* simulator()
      const ran = yield* run(
        "config error",
        LiveResponse.getTranscript(ref(ACTIONS.runScript)).pipe(
          configured(sim, { AZURE_CLIENT_ID: "app", AZURE_CLIENT_SECRET: CANARY_SECRET, MDE_CLOUD: "nowhere" })
        )
      )
      const error = failureOf(ran.exit)
      expect(String(error)).toContain("AZURE_TENANT_ID")
      // A ConfigError is raised while building layers: no span is required of it.
      expect(leaks(ran.text, FIXED_CANARIES)).toEqual([])
      expect(sim.received).toHaveLength(0)
    }))
})

// ---------------------------------------------------------------------------
// The served simulator, over real fetch on 127.0.0.1
// ---------------------------------------------------------------------------

describe("over fetch on 127.0.0.1", () => {
  scenario("login, a transcript and a file through FetchHttpClient", () =>
    Effect.scoped(Effect.gen(function*() {
      const sim = yield* simulator()
      const served = yield* DefenderSimulator.serve(sim)
      const ran = yield* run(
        "served",
        Effect.gen(function*() {
          const transcript = yield* LiveResponse.getTranscript(ref(ACTIONS.runScript))
          const saved = yield* LiveResponse.downloadToFile(ref(ACTIONS.getFile), join(TEMP, "served.bin"))
          const missing = yield* Effect.flip(LiveResponse.getTranscript(ref(ACTIONS.blobGone)))
          return { exitCode: transcript.exitCode, bytes: saved.bytes, missing: described(missing) }
        }).pipe(Effect.provide(Layer.merge(
          stack(FetchHttpClient.layer, {
            auth: login(CANARY_SECRET, { cloud: served.cloud }),
            client: { cloud: served.cloud, downloadHosts: ["127.0.0.1"] }
          }),
          NodeFileSystem.layer
        ))),
        { seconds: 0 }
      )
      const value = valueOf(ran.exit)
      expect([value.exitCode, value.bytes > 0, value.missing.tag]).toEqual([0, true, "ResultLinkError"])
      verify(ran, {
        "secret accepted": sim.count("token", 200) === 1,
        "issued token used": sawIssuedToken(sim),
        "signatures used": sim.count("blob", 200) === 2
      }, harvest(sim))
      // The platform's client span of an API call shows the Authorization header only as redacted.
      const api = ran.captured.spans.find((s) => s.attributes.get("http.request.header.authorization") !== undefined)
      expect(String(api?.attributes.get("http.request.header.authorization"))).toBe("<redacted>")
    })))
})

// ---------------------------------------------------------------------------
// The shared budget on a Redis that hangs up (a loopback listener)
// ---------------------------------------------------------------------------

/**
 * A TCP listener on 127.0.0.1 that records what a Redis client sends first (its AUTH,
 * password included) and hangs up, so every Redis command fails; closed with the scope.
 */
const hangingUpRedis = Effect.acquireRelease(
  Effect.async<{ readonly port: number; readonly received: () => string; readonly close: () => void }>((resume) => {
    const chunks: Array<Buffer> = []
    const sockets = new Set<Socket>()
    const server = createServer((socket) => {
      sockets.add(socket)
      socket.once("data", (data) => {
        chunks.push(data)
        socket.destroy()
      })
    })
    server.listen(0, "127.0.0.1", () =>
      resume(Effect.succeed({
        port: (server.address() as { port: number }).port,
        received: () => Buffer.concat(chunks).toString("latin1"),
        close: () => {
          for (const socket of sockets) socket.destroy()
          server.close()
        }
      })))
  }),
  (redis) => Effect.sync(redis.close)
)

describe("the shared budget on Redis, with a password in its URL", () => {
  scenario("a Redis that hangs up: RateLimiterUnavailable, or the in-memory fallback with a warning", () =>
    Effect.scoped(Effect.gen(function*() {
      const redis = yield* hangingUpRedis
      const sim = yield* simulator()
      const budget = (fallback: "none" | "memory") =>
        DefenderClient.layer().pipe(
          Layer.provide(Layer.merge(
            DefenderAuth.layerToken(Redacted.make(CANARY_TOKEN)),
            DefenderRateLimiter.layerRedis({
              url: Redacted.make(`redis://:${CANARY_REDIS_PASSWORD}@127.0.0.1:${redis.port}/0`),
              fallback,
              redisTimeout: "2 seconds"
            })
          )),
          Layer.provide(DefenderSimulator.layerHttpClient(sim))
        )
      const refused = yield* run(
        "redis none",
        LiveResponse.getResultLink(ref(ACTIONS.runScript)).pipe(Effect.provide(budget("none"))),
        { seconds: 0 }
      )
      expect(failureOf(refused.exit)._tag).toBe("RateLimiterUnavailable")
      const degraded = yield* run(
        "redis memory",
        LiveResponse.getResultLink(ref(ACTIONS.runScript)).pipe(Effect.provide(budget("memory"))),
        { seconds: 0 }
      )
      expect(Exit.isSuccess(degraded.exit)).toBe(true)
      expect(degraded.captured.logs.some((l) => l.startsWith("WARN") && l.includes("shared rate budget is unreachable"))).toBe(true)
      // The password really went out (in the client's AUTH), and the API was called in the fallback.
      const flows = { "the password reached the listener": redis.received().includes(CANARY_REDIS_PASSWORD) }
      verify(refused, flows)
      verify(degraded, { ...flows, "the API was called": sawBearer(sim, CANARY_TOKEN, 200) }, harvest(sim))
    })))
})

// ---------------------------------------------------------------------------
// Scripted answers the simulator does not give (a scripted fake)
// ---------------------------------------------------------------------------

type Answer = Response | Effect.Effect<Response, "transport">

const token = (req: Recorded) =>
  req.url.origin === LOGIN ? json(200, { expires_in: 3599, access_token: CANARY_TOKEN }) : undefined

const fakeAuth = DefenderAuth.layerClientSecret({ tenantId: "t", clientId: "c", clientSecret: Redacted.make(CANARY_SECRET) })

/** getTranscript over a fake answering `handler`, logged in with the canary secret. */
const fakeScenario = (name: string, handler: (req: Recorded, n: number) => Answer, record = true) => {
  let n = 0
  const fake = makeFake((req) => handler(req, n++))
  return Effect.map(
    run(name, LiveResponse.getTranscript(ref(ACTION_ID)).pipe(Effect.provide(clientLayer(fake, { auth: fakeAuth }))), {
      seconds: 1800,
      record
    }),
    (ran) => ({ ...ran, fake })
  )
}

const secretSent = (fake: Fake) =>
  fake.requests.some((r) => r.url.origin === LOGIN && new URLSearchParams(r.body).get("client_secret") === CANARY_SECRET)
const tokenSent = (fake: Fake, token: string = CANARY_TOKEN) =>
  fake.requests.some((r) => r.headers["authorization"] === `Bearer ${token}`)
const sigSent = (fake: Fake) => fake.to(BLOB_HOST).some((r) => r.url.search.includes(`sig=${CANARY_SIG}`))

describe("scripted answers, from a fake", () => {
  const scenarios: Record<string, { readonly handler: (req: Recorded, n: number) => Answer; readonly reaches: "token" | "api" | "blob" }> = {
    "a successful download": {
      reaches: "blob",
      handler: (req) => token(req) ?? (req.url.host === BLOB_HOST ? new Response(SEED_TRANSCRIPT) : linkResponse(blobUrl()))
    },
    "a 429 storm and 5xx answers": {
      reaches: "blob",
      handler: (req, n) =>
        token(req) ??
          (req.url.host === BLOB_HOST
            ? new Response(SEED_TRANSCRIPT)
            : n < 3
            ? odataError(429, "TooManyRequests", `slow down, see ${blobUrl()}`, { "retry-after": "1" })
            : n < 5
            ? odataError(503, "ServiceUnavailable", "busy")
            : linkResponse(blobUrl()))
    },
    "an expired link, twice": {
      reaches: "blob",
      handler: (req) => token(req) ?? (req.url.host === BLOB_HOST ? expiredSas() : linkResponse(blobUrl()))
    },
    "a storage error that echoes the URL": {
      reaches: "blob",
      handler: (req) =>
        token(req) ??
          (req.url.host === BLOB_HOST
            ? storageError(403, "AuthenticationFailed", `Signature did not match for ${blobUrl()}`)
            : linkResponse(blobUrl()))
    },
    "a storage that keeps failing": {
      reaches: "blob",
      handler: (req) =>
        token(req) ?? (req.url.host === BLOB_HOST ? storageError(500, "InternalError", blobUrl()) : linkResponse(blobUrl()))
    },
    "a storage redirect to another host, refused": {
      reaches: "blob",
      handler: (req) =>
        token(req) ??
          (req.url.host === BLOB_HOST
            ? new Response(null, { status: 302, headers: { location: blobUrl("x", CANARY_SIG, "evil.example.com") } })
            : linkResponse(blobUrl()))
    },
    "a refused host": { reaches: "api", handler: (req) => token(req) ?? linkResponse(blobUrl("x", CANARY_SIG, "evil.example.com")) },
    "a plain-http link": { reaches: "api", handler: (req) => token(req) ?? linkResponse(blobUrl().replace("https:", "http:")) },
    "a 401 every time": { reaches: "api", handler: (req) => token(req) ?? odataError(401, "Unauthorized", "no") },
    "a token endpoint that echoes the secret": {
      reaches: "token",
      handler: () =>
        json(401, {
          error: "invalid_client",
          error_description: `AADSTS7000215: Invalid client secret ${CANARY_SECRET}`,
          error_codes: [7000215],
          trace_id: "t",
          correlation_id: "c"
        })
    },
    "a token endpoint that fails with 5xx": { reaches: "token", handler: () => json(503, { error: "temporarily_unavailable" }) },
    "an API 400 whose message echoes a link": { reaches: "api", handler: (req) => token(req) ?? odataError(400, "BadRequest", `bad ${blobUrl()}`) },
    "an API 403 (DisabledFeature) whose message echoes a link": {
      reaches: "api",
      handler: (req) => token(req) ?? odataError(403, "DisabledFeature", `no ${blobUrl()}`)
    },
    "an API 404 whose message echoes a link": { reaches: "api", handler: (req) => token(req) ?? odataError(404, "NotFound", `gone ${blobUrl()}`) },
    "a link answer that is not JSON": { reaches: "api", handler: (req) => token(req) ?? new Response(`value=${blobUrl()}`) },
    "a storage connection that drops": {
      reaches: "blob",
      handler: (req) => token(req) ?? (req.url.host === BLOB_HOST ? Effect.fail("transport" as const) : linkResponse(blobUrl()))
    },
    "an undecodable transcript": {
      reaches: "blob",
      handler: (req) => token(req) ?? (req.url.host === BLOB_HOST ? new Response(`{"bad": "${CANARY_SIG}"`) : linkResponse(blobUrl()))
    }
  }
  // The expired-once scenario hands out a first link, then a second one with another signature.
  let links = 0
  scenarios["an expired link, re-created once, then fine"] = {
    reaches: "blob",
    handler: (req) => {
      if (req.url.origin === LOGIN) return token(req)!
      if (req.url.host !== BLOB_HOST) return linkResponse(blobUrl("result", links++ === 0 ? CANARY_SIG : `second${CANARY_SIG}`))
      return req.url.search.includes("sig=second") ? new Response(SEED_TRANSCRIPT) : expiredSas()
    }
  }

  for (const [name, { handler, reaches }] of Object.entries(scenarios)) {
    scenario(name, () =>
      Effect.gen(function*() {
        const ran = yield* fakeScenario(name, handler)
        // Each echo of a link must have been redacted, not dropped: the redacted form is still there.
        if (name.includes("echoes a link") || name.includes("drops")) expect(ran.text).toContain("sig=REDACTED")
        verify(ran, {
          "the canary secret was sent": secretSent(ran.fake),
          ...(reaches === "token" ? {} : { "the canary token was sent": tokenSent(ran.fake) }),
          ...(reaches === "blob" ? { "the canary signature was sent": sigSent(ran.fake) } : {})
        })
      }))
  }

  scenario("a 401, then a renewed token that works", () =>
    Effect.gen(function*() {
      let issued = 0
      const ran = yield* fakeScenario("401 then renewed", (req) => {
        if (req.url.origin === LOGIN) {
          return json(200, { expires_in: 3599, access_token: issued++ === 0 ? CANARY_TOKEN : CANARY_RENEWED_TOKEN })
        }
        if (req.url.host === BLOB_HOST) return new Response(SEED_TRANSCRIPT)
        return req.headers["authorization"] === `Bearer ${CANARY_TOKEN}`
          ? odataError(401, "InvalidAuthenticationToken", "Access token has expired")
          : linkResponse(blobUrl())
      })
      expect(valueOf(ran.exit).scriptName).toBe("minidump.ps1")
      verify(ran, {
        "secret sent twice": ran.fake.requests.filter((r) => r.url.origin === LOGIN).length === 2 && secretSent(ran.fake),
        "first token refused": tokenSent(ran.fake),
        "renewed token used": tokenSent(ran.fake, CANARY_RENEWED_TOKEN),
        "signature used": sigSent(ran.fake)
      })
    }))

  it.effect("spans carry the redacted link, so the check above would catch a leak", () =>
    Effect.gen(function*() {
      const { captured } = yield* fakeScenario("control: link", scenarios["a successful download"]!.handler, false)
      const names = captured.spans.map((s) => s.name)
      expect(names).toEqual(expect.arrayContaining(["DefenderClient.getTranscript", "DefenderClient.getResultLink"]))
      const link = captured.spans.find((s) => s.name === "DefenderClient.getResultLink")!.attributes.get("mde.result_link")
      expect(link).toContain("sig=REDACTED")
      expect(link).toContain("se=2021-02-04T16%3A13%3A50Z")
      // The platform's client span for the API call records the Authorization header only as redacted.
      const apiSpan = captured.spans.find((s) => s.attributes.get("http.request.header.authorization") !== undefined)
      expect(String(apiSpan?.attributes.get("http.request.header.authorization"))).toBe("<redacted>")
    }))

  it.effect("retries are logged, with the URL redacted", () =>
    Effect.gen(function*() {
      const { captured } = yield* fakeScenario("control: retries", scenarios["a 429 storm and 5xx answers"]!.handler, false)
      const retries = captured.logs.filter((l) => l.includes("retrying after"))
      // 2 × 429 and 2 × 503 were each retried once; the final success logs nothing.
      expect(retries.filter((l) => l.includes("retrying after Throttled"))).toHaveLength(2)
      expect(retries.filter((l) => l.includes("retrying after HttpError"))).toHaveLength(2)
      expect(retries.every((l) => l.includes("DEBUG"))).toBe(true)
    }))

  scenario("the token request's form body is never recorded in a span", () => {
    const fake = makeFake(() => json(200, { expires_in: 3599, access_token: CANARY_TOKEN }))
    return Effect.gen(function*() {
      const ran = yield* run(
        "token request",
        Effect.gen(function*() {
          const auth = yield* DefenderAuth.DefenderAuth
          const token = yield* auth.token
          return { token, same: Redacted.value(token) === CANARY_TOKEN, shown: String(token) }
        }).pipe(
          Effect.provide(fakeAuth),
          Effect.provideService(HttpClient.HttpClient, fake.client)
        )
      )
      expect([valueOf(ran.exit).same, valueOf(ran.exit).shown]).toEqual([true, "<redacted>"])
      expect(ran.captured.spans.map((s) => s.name)).toContain("DefenderAuth.requestToken")
      verify(ran, { "secret sent": secretSent(fake) })
    })
  })
})

// ---------------------------------------------------------------------------
// The capture catches leaks (positive controls), and the whole suite's verdict
// ---------------------------------------------------------------------------

describe("the capture would catch a leak", () => {
  const b64 = (s: string) => Buffer.from(s).toString("base64")
  const channels: Record<string, readonly [Effect.Effect<unknown, unknown>, string]> = {
    "a log message": [Effect.logTrace(`token ${CANARY_TOKEN}`), "bearer token (raw)"],
    "a log annotation": [Effect.annotateLogs(Effect.log("calling"), "auth", `Bearer ${CANARY_TOKEN}`), "bearer token (raw)"],
    "a log span": [Effect.withLogSpan(Effect.logDebug("x"), `get ${CANARY_SIG}`), "SAS signature (raw)"],
    "a logged cause": [Effect.logError("failed", Cause.fail(new Error(b64(CANARY_SECRET)))), "client secret (base64)"],
    "a span attribute": [
      Effect.withSpan(Effect.annotateCurrentSpan("body", `client_secret=${encodeURIComponent(CANARY_SECRET)}`), "s"),
      "client secret (url-encoded)"
    ],
    "a span event": [
      Effect.withSpan(
        Effect.flatMap(Effect.currentSpan, (span) => Effect.sync(() => span.event("sent", 0n, { sig: decodeURIComponent(CANARY_SIG) }))),
        "s"
      ),
      "SAS signature (raw)"
    ],
    "a span link": [
      Effect.withSpan(Effect.void, "s", {
        links: [{ _tag: "SpanLink", span: Tracer.externalSpan({ spanId: "a", traceId: "b" }), attributes: { t: CANARY_RENEWED_TOKEN } }]
      }),
      "renewed bearer token (raw)"
    ],
    "a span's failure, caught afterwards": [
      Effect.ignore(Effect.withSpan(Effect.fail(new Error(`refused ${CANARY_WRONG_SECRET}`)), "s")),
      "rejected client secret (raw)"
    ],
    "a span's success value": [Effect.asVoid(Effect.withSpan(Effect.succeed({ link: blobUrl() }), "s")), "SAS signature (raw)"],
    "a typed error's fields": [
      Effect.fail(new HttpError({ reason: "Status", method: "GET", url: blobUrl(), attempts: 1 })),
      "SAS signature (raw)"
    ]
  }
  for (const [channel, [leaky, expected]] of Object.entries(channels)) {
    it.effect(`in ${channel}`, () =>
      Effect.gen(function*() {
        const ran = yield* run(`control: ${channel}`, Effect.withSpan(leaky, "control"), { record: false })
        expect(leaks(ran.text, FIXED_CANARIES)).toContain(expected)
      }))
  }
})

describe("the whole suite", () => {
  it("captured a lot, and no canary anywhere in it", () => {
    // Runs last (vitest runs a file's tests in order); every scenario above has run.
    if (process.env["MDE_SECURITY_STATS"] !== undefined) {
      console.info(
        `security suite: ${suite.registered.size} scenarios, ${suite.programs} programs, ${suite.spans} spans (${suite.spanEvents} events), ${suite.logs} log lines, ` +
          `${suite.failures} failures, ${suite.canaries.size} canaries, ${suite.texts.join("\n").length} characters`
      )
    }
    expect([...suite.registered].filter((name) => !suite.completed.has(name))).toEqual([])
    expect(suite.programs).toBeGreaterThan(suite.registered.size)
    expect(suite.spans).toBeGreaterThan(400)
    expect(suite.logs).toBeGreaterThan(120)
    expect(suite.spanEvents).toBeGreaterThan(40)
    expect(suite.failures).toBeGreaterThan(20)
    // Every token and signature the simulators handed out is checked too, not only the fixed canaries.
    expect(suite.canaries.size).toBeGreaterThan(FIXED_CANARIES.size + 50)
    expect(leaks(suite.texts.join("\n"), suite.canaries)).toEqual([])
  })
})
