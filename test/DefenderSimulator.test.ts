import { FetchHttpClient, HttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Redacted, Stream, TestClock } from "effect"
import { createHash } from "node:crypto"
import { connect } from "node:net"
import { gunzipSync } from "node:zlib"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderClient from "../src/DefenderClient.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import * as LiveResponse from "../src/LiveResponse.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"

const { ACTIONS } = DefenderSimulator
const API = "https://api.security.microsoft.com"

/** The library over an in-process simulator. */
const over = (
  sim: DefenderSimulator.DefenderSimulator,
  options?: {
    readonly auth?: Layer.Layer<DefenderAuth.DefenderAuth, never, HttpClient.HttpClient>
    readonly limits?: ReadonlyArray<DefenderRateLimiter.RateLimit>
    readonly client?: DefenderClient.Options
  }
) =>
  DefenderClient.layer(options?.client).pipe(
    Layer.provide(Layer.merge(
      options?.auth ?? DefenderAuth.layerToken(DefenderSimulator.STATIC_TOKEN),
      DefenderRateLimiter.layer(options?.limits === undefined ? undefined : { limits: options.limits })
    )),
    Layer.provide(DefenderSimulator.layerHttpClient(sim))
  )

const clientSecret = (secret = DefenderSimulator.SIMULATED_CLIENT_SECRET, tenantId = DefenderSimulator.SIMULATED_TENANT) =>
  tenantId === DefenderSimulator.SIMULATED_TENANT
    ? DefenderSimulator.layerLogin({ clientSecret: secret })
    : DefenderAuth.layerClientSecret({ tenantId, clientId: DefenderSimulator.SIMULATED_CLIENT_ID, clientSecret: secret })

const call = (sim: DefenderSimulator.DefenderSimulator, path: string, init?: RequestInit) =>
  Effect.map(
    sim.handle(new Request(`${API}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${Redacted.value(DefenderSimulator.STATIC_TOKEN)}`, ...init?.headers }
    })),
    (r) => r!
  )

describe("DefenderSimulator presets", () => {
  it.effect("the docs' transcript decodes, and the simulator saw one link and one download", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const transcript = yield* LiveResponse.getTranscript({ machineActionId: ACTIONS.runScript, index: 0 }).pipe(
        Effect.provide(over(sim))
      )
      expect(transcript.scriptName).toBe("minidump.ps1")
      expect(transcript.output.endsWith("51 MB\n")).toBe(true)
      expect(sim.count("getResultLink", 200)).toBe(1)
      expect(sim.count("blob", 200)).toBe(1)
      const blob = sim.received.find((r) => r.endpoint === "blob")!
      expect(blob.headers["authorization"]).toBeUndefined()
    }))

  it.effect("every transcript variant decodes: BOM, name, string exit code, script_errors", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const ts = yield* Effect.forEach([0, 1, 2], (index) =>
        LiveResponse.getTranscript({ machineActionId: ACTIONS.variants, index })).pipe(Effect.provide(over(sim)))
      expect(ts.map((t) => [t.scriptName, t.exitCode, t.error])).toEqual([
        ["collect.ps1", 0, ""],
        ["audit.ps1", 1, "Access is denied.\n"],
        ["inventory.ps1", 0, ""]
      ])
      expect(ts[0]!.output).toContain("collect.ps1\nDone.\n")
      expect(ts[0]!.output).not.toContain("\u0000")
    }))

  it.effect("a GetFile result is a gzip file, streamed as bytes", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const chunks = yield* Stream.runCollect(LiveResponse.downloadResult({ machineActionId: ACTIONS.getFile, index: 0 })).pipe(
        Effect.provide(over(sim))
      )
      const bytes = Buffer.concat([...chunks])
      expect([bytes[0], bytes[1]]).toEqual([0x1f, 0x8b])
      const content = gunzipSync(bytes)
      expect(content.length).toBe(1024 * 1024)
      expect(content.subarray(0, 40).toString()).toContain("OfficeClickToRun.dmp.zip")
    }))

  it.effect("a failed action has no result; a result gone from storage is BlobNotFound", () =>
    Effect.gen(function*() {
      const failed = yield* Effect.flip(LiveResponse.getTranscript({ machineActionId: ACTIONS.failed, index: 0 }))
      expect(failed._tag).toBe("NotFound")
      const gone = yield* Effect.flip(LiveResponse.getTranscript({ machineActionId: ACTIONS.blobGone, index: 0 }))
      expect(gone._tag === "ResultLinkError" && gone.reason).toBe("BlobNotFound")
      const unknown = yield* Effect.flip(LiveResponse.getTranscript({ machineActionId: "nope", index: 0 }))
      expect(unknown._tag === "NotFound" && unknown.code).toBe("ResourceNotFound")
    }).pipe(Effect.provide(Layer.unwrapEffect(Effect.map(DefenderSimulator.make(), (sim) => over(sim))))))

  it.effect("addTranscripts serves the transcripts a test brings", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      sim.addTranscripts("mine", ['{"name":"x.ps1","exit_code":"7","script_output":"a\nb","script_error":null}'])
      const t = yield* LiveResponse.getTranscript({ machineActionId: "mine", index: 0 }).pipe(Effect.provide(over(sim)))
      expect([t.scriptName, t.exitCode, t.output, t.error]).toEqual(["x.ps1", 7, "a\nb", ""])
    }))
})

describe("DefenderSimulator token endpoint", () => {
  it.effect("issues tokens for the simulated app, and the real error bodies otherwise", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const ok = yield* LiveResponse.getResultLink({ machineActionId: ACTIONS.runScript, index: 0 }).pipe(
        Effect.provide(over(sim, { auth: clientSecret() }))
      )
      expect(String(ok.url)).toBe("<redacted>")
      expect(sim.count("token", 200)).toBe(1)
      const cases = [
        [clientSecret(Redacted.make("wrong")), 7000215],
        [clientSecret(undefined, "other-tenant"), 90002],
        [
          DefenderAuth.layerClientSecret({
            tenantId: DefenderSimulator.SIMULATED_TENANT,
            clientId: "someone-else",
            clientSecret: DefenderSimulator.SIMULATED_CLIENT_SECRET
          }),
          700016
        ]
      ] as const
      for (const [auth, code] of cases) {
        const error = yield* Effect.flip(
          LiveResponse.getResultLink({ machineActionId: ACTIONS.runScript, index: 0 }).pipe(Effect.provide(over(sim, { auth })))
        )
        expect(error._tag === "AuthenticationError" && [error.reason, error.errorCodes]).toEqual(["TokenRequestFailed", [code]])
        expect(error._tag === "AuthenticationError" && error.traceId).toBeTruthy()
      }
    }))

  it.scoped("tokens expire; the library refreshes before they do, and after a 401 if it must", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ tokenLifetime: "20 minutes" })
      const get = LiveResponse.getResultLink({ machineActionId: ACTIONS.runScript, index: 0 })
      yield* Effect.gen(function*() {
        yield* get
        yield* TestClock.adjust("16 minutes")
        yield* get
      }).pipe(Effect.provide(over(sim, { auth: clientSecret() })))
      expect(sim.count("token")).toBe(2)
      expect(sim.count("getResultLink", 401)).toBe(0)
      // A token the simulator no longer accepts: a 401, a new token, the call repeated.
      const stale = yield* DefenderAuth.makeCached(
        Effect.succeed({ token: Redacted.make("sim-token-forged"), expiresAt: Date.now() + 3_600_000 })
      )
      expect(Redacted.value(yield* stale.token)).toBe("sim-token-forged")
      const error = yield* Effect.flip(get.pipe(Effect.provide(over(sim, { auth: Layer.succeed(DefenderAuth.DefenderAuth, stale) }))))
      expect(error._tag === "AuthenticationError" && error.reason).toBe("Unauthorized")
      expect(sim.count("getResultLink", 401)).toBe(2)
    }))
})

describe("DefenderSimulator rate limits", () => {
  it.effect("answers 429 with Retry-After over its quota, and the library waits it out", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ rateLimits: [{ limit: 5, window: Duration.seconds(10) }] })
      const fiber = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 12 }), () => LiveResponse.getResultLink({ machineActionId: ACTIONS.runScript, index: 0 }), {
          concurrency: "unbounded"
        }).pipe(Effect.provide(over(sim, { limits: [] })))
      )
      for (let i = 0; i < 12; i++) yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(fiber)
      expect(sim.count("getResultLink", 200)).toBe(12)
      expect(sim.count("getResultLink", 429)).toBeGreaterThan(0)
      const throttled = sim.received.filter((r) => r.status === 429)
      expect(throttled.every((r) => r.at < 20_000)).toBe(true)
    }))

  it.effect("with the library's budget set to the quota, the simulator never throttles", () =>
    Effect.gen(function*() {
      const limits: ReadonlyArray<DefenderRateLimiter.RateLimit> = [{ limit: 5, window: Duration.seconds(10) }]
      const sim = yield* DefenderSimulator.make({ rateLimits: limits })
      const fiber = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 20 }), () => LiveResponse.getResultLink({ machineActionId: ACTIONS.runScript, index: 0 }), {
          concurrency: "unbounded"
        }).pipe(Effect.provide(over(sim, { limits })))
      )
      for (let i = 0; i < 10; i++) yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(fiber)
      expect(sim.count("getResultLink", 200)).toBe(20)
      expect(sim.count("getResultLink", 429)).toBe(0)
    }))
})

describe("DefenderSimulator storage", () => {
  it.effect("links expire after their lifetime with the real 403; the library re-creates once", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ linkLifetime: "0 millis" })
      const error = yield* Effect.flip(
        LiveResponse.getTranscript({ machineActionId: ACTIONS.runScript, index: 0 }).pipe(Effect.provide(over(sim)))
      )
      expect(error._tag === "ResultLinkError" && error.reason).toBe("Expired")
      expect(sim.count("getResultLink")).toBe(2)
      expect(sim.count("blob", 403)).toBe(2)
    }))

  it.effect("a 30-minute link works at 29 minutes and not at 30", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const link = yield* Effect.map(call(sim, `/api/machineactions/${ACTIONS.runScript}/GetLiveResponseResultDownloadLink(index=0)`), (r) => r)
      const url = ((yield* Effect.promise(() => link.json())) as { value: string }).value
      expect(new URL(url).searchParams.get("se")).toBe("1970-01-01T00:30:00Z")
      yield* TestClock.adjust("29 minutes")
      expect((yield* sim.handle(new Request(url)))!.status).toBe(200)
      yield* TestClock.adjust("1 minute")
      const expired = (yield* sim.handle(new Request(url)))!
      expect(expired.status).toBe(403)
      expect(expired.headers.get("x-ms-error-code")).toBe("AuthenticationFailed")
      expect(yield* Effect.promise(() => expired.text())).toContain("Signature not valid in the specified time frame")
    }))

  it.effect("Range, ETag/If-Match and Content-MD5 behave as blob storage does", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const link = yield* call(sim, `/api/machineactions/${ACTIONS.getFile}/GetLiveResponseResultDownloadLink(index=0)`)
      const url = ((yield* Effect.promise(() => link.json())) as { value: string }).value
      const full = (yield* sim.handle(new Request(url)))!
      const bytes = new Uint8Array(yield* Effect.promise(() => full.arrayBuffer()))
      expect(full.headers.get("content-md5")).toBe(createHash("md5").update(bytes).digest("base64"))
      const etag = full.headers.get("etag")!
      const part = (yield* sim.handle(new Request(url, { headers: { range: "bytes=100-", "if-match": etag } })))!
      expect(part.status).toBe(206)
      expect(part.headers.get("content-range")).toBe(`bytes 100-${bytes.length - 1}/${bytes.length}`)
      expect(new Uint8Array(yield* Effect.promise(() => part.arrayBuffer()))).toEqual(bytes.subarray(100))
      const stale = (yield* sim.handle(new Request(url, { headers: { range: "bytes=100-", "if-match": "\"other\"" } })))!
      expect(stale.status).toBe(412)
      const tampered = (yield* sim.handle(new Request(url.replace(/sig=[^&]+/, "sig=forged"))))!
      expect(tampered.status).toBe(403)
    }))
})

describe("DefenderSimulator machine actions", () => {
  const runBody = (script: string) =>
    JSON.stringify({
      Commands: [{ type: "RunScript", params: [{ key: "ScriptName", value: script }, { key: "Args", value: "-x" }] }],
      Comment: "test"
    })

  it.effect("run → Pending → InProgress → Succeeded on the clock, then its result is there", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const created = yield* call(sim, "/api/machines/m1/runliveresponse", { method: "POST", body: runBody("collect.ps1") })
      expect(created.status).toBe(201)
      const action = (yield* Effect.promise(() => created.json())) as { id: string; status: string }
      expect(action.status).toBe("Pending")
      const status = () =>
        Effect.flatMap(call(sim, `/api/machineactions/${action.id}`), (r) =>
          Effect.promise(() => r.json() as Promise<{ status: string; commands: Array<{ commandStatus: string }> }>))
      yield* TestClock.adjust("2 seconds")
      expect((yield* status()).status).toBe("InProgress")
      const busy = yield* call(sim, "/api/machines/m1/runliveresponse", { method: "POST", body: runBody("x.ps1") })
      expect(busy.status).toBe(400)
      expect(((yield* Effect.promise(() => busy.json())) as any).error.code).toBe("ActiveRequestAlreadyExists")
      yield* TestClock.adjust("5 seconds")
      const done = yield* status()
      expect([done.status, done.commands[0]!.commandStatus]).toEqual(["Succeeded", "Completed"])
      const t = yield* LiveResponse.getTranscript({ machineActionId: action.id, index: 0 }).pipe(Effect.provide(over(sim)))
      expect(t.scriptName).toBe("collect.ps1")
      expect(t.output).toContain("collect.ps1 -x")
    }))

  it.effect("cancel while running gives Cancelled; cancel after the end is refused", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const start = (machine: string) =>
        Effect.flatMap(
          call(sim, `/api/machines/${machine}/runliveresponse`, { method: "POST", body: runBody("a.ps1") }),
          (r) => Effect.promise(() => r.json() as Promise<{ id: string }>)
        )
      const a = yield* start("m1")
      const cancelled = yield* call(sim, `/api/machineactions/${a.id}/cancel`, { method: "POST", body: "{\"Comment\":\"stop\"}" })
      expect(((yield* Effect.promise(() => cancelled.json())) as { status: string }).status).toBe("Cancelled")
      const b = yield* start("m2")
      yield* TestClock.adjust("1 minute")
      const late = yield* call(sim, `/api/machineactions/${b.id}/cancel`, { method: "POST", body: "{}" })
      expect(late.status).toBe(400)
    }))

  it.effect("scripts named *fail* fail and *timeout* time out", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const ids = yield* Effect.forEach(["will-fail.ps1", "timeout.ps1"], (script, i) =>
        Effect.flatMap(
          call(sim, `/api/machines/m${i}/runliveresponse`, { method: "POST", body: runBody(script) }),
          (r) => Effect.promise(() => r.json() as Promise<{ id: string }>)
        ))
      yield* TestClock.adjust("11 minutes")
      const statuses = yield* Effect.forEach(ids, ({ id }) =>
        Effect.flatMap(call(sim, `/api/machineactions/${id}`), (r) => Effect.promise(() => r.json() as Promise<{ status: string }>)))
      expect(statuses.map((s) => s.status)).toEqual(["Failed", "TimeOut"])
    }))
})

describe("DefenderSimulator request bodies, as case-sensitive as the API", () => {
  const errorOf = (response: Response) =>
    Effect.promise(() => response.json() as Promise<{ error: { code: string; message: string } }>)

  it.effect("a cancel body with `comment` for `Comment` is refused, and the action keeps running", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const started = yield* call(sim, "/api/machines/m1/runliveresponse", {
        method: "POST",
        body: JSON.stringify({ Commands: [{ type: "RunScript", params: [{ key: "ScriptName", value: "a.ps1" }] }], Comment: "t" })
      })
      const { id } = (yield* Effect.promise(() => started.json())) as { id: string }
      const wrong = yield* call(sim, `/api/machineactions/${id}/cancel`, { method: "POST", body: "{\"comment\":\"stop\"}" })
      expect(wrong.status).toBe(400)
      expect((yield* errorOf(wrong)).error.message).toBe("Property names are case-sensitive: Comment, not comment")
      const missing = yield* call(sim, `/api/machineactions/${id}/cancel`, { method: "POST", body: "{}" })
      expect(missing.status).toBe(400)
      const right = yield* call(sim, `/api/machineactions/${id}/cancel`, { method: "POST", body: "{\"Comment\":\"stop\"}" })
      expect(right.status).toBe(200)
    }))

  it.effect("run live response refuses `comment`, `Type` and `Key` spelt in another case", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const run = (body: unknown) =>
        Effect.flatMap(
          call(sim, "/api/machines/m1/runliveresponse", { method: "POST", body: JSON.stringify(body) }),
          (r) => Effect.map(errorOf(r), (e) => [r.status, e.error.message] as const)
        )
      const params = [{ key: "ScriptName", value: "a.ps1" }]
      expect(yield* run({ Commands: [{ type: "RunScript", params }], comment: "t" })).toEqual([
        400,
        "Property names are case-sensitive: Comment, not comment"
      ])
      expect((yield* run({ Commands: [{ Type: "RunScript", params }], Comment: "t" }))[1]).toContain("type, not Type")
      expect((yield* run({ Commands: [{ type: "RunScript", params: [{ Key: "ScriptName", value: "a" }] }], Comment: "t" }))[1])
        .toContain("key, not Key")
      expect(sim.count("runLiveResponse", 201)).toBe(0)
    }))

  it.effect("an upload with `description` for `Description` is refused and nothing is stored", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const form = new FormData()
      form.append("file", new Blob(["Write-Output 1"]), "a.ps1")
      form.append("description", "lower-case")
      const wrong = yield* call(sim, "/api/libraryfiles", { method: "POST", body: form })
      expect(wrong.status).toBe(400)
      expect((yield* errorOf(wrong)).error.message).toBe("Property names are case-sensitive: Description, not description")
      // The library's own upload and cancel use the API's spelling, so the simulator takes them.
      const uploaded = yield* LiveResponse.uploadScript({ fileName: "a.ps1", content: "Write-Output 1", description: "ok" }).pipe(
        Effect.provide(over(sim))
      )
      expect(uploaded.fileName).toBe("a.ps1")
    }))
})

describe("DefenderSimulator faults", () => {
  it.effect("with 5xx answers and dropped connections injected, the library still gets every result", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ faults: { errorRate: 0.2, dropRate: 0.1, seed: 42 } })
      const fiber = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 20 }), () => LiveResponse.getTranscript({ machineActionId: ACTIONS.runScript, index: 0 }), {
          concurrency: 5
        }).pipe(Effect.provide(over(sim)))
      )
      for (let i = 0; i < 60; i++) yield* TestClock.adjust("10 seconds")
      const results = yield* Fiber.join(fiber)
      expect(results.every((t) => t.scriptName === "minidump.ps1")).toBe(true)
      expect(sim.received.filter((r) => r.status >= 500).length).toBeGreaterThan(0)
      expect(sim.received.filter((r) => r.status === 0).length).toBeGreaterThan(0)
    }))

  it.effect("latency delays every answer on the clock", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ faults: { latency: "3 seconds" } })
      const fiber = yield* Effect.fork(
        LiveResponse.getResultLink({ machineActionId: ACTIONS.runScript, index: 0 }).pipe(Effect.provide(over(sim)))
      )
      yield* TestClock.adjust("2999 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(fiber)
      expect(sim.received.map((r) => r.at)).toEqual([3000])
    }))

  it.effect("a trickling body arrives 1 KiB at a time, paced on the clock", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ faults: { trickleRate: 1, trickleDelay: "1 second" } })
      sim.addTranscripts("slow", [`{"name":"s.ps1","exit_code":0,"script_output":"${"x".repeat(3000)}","script_error":""}`])
      const fiber = yield* Effect.fork(
        LiveResponse.getTranscript({ machineActionId: "slow", index: 0 }).pipe(Effect.provide(over(sim)))
      )
      yield* TestClock.adjust("2 seconds")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("3 seconds")
      const t = yield* Fiber.join(fiber)
      expect(t.output).toHaveLength(3000)
    }))
})

describe("DefenderSimulator odd input", () => {
  it.effect("answers broken percent-encoding, a null body and a token sent to storage, never throws", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const broken = yield* call(sim, "/api/machineactions/%E0%A4%A")
      expect(broken.status).toBe(404)
      const nullBody = yield* call(sim, "/api/machines/m1/runliveresponse", { method: "POST", body: "null" })
      expect(nullBody.status).toBe(400)
      const link = yield* call(sim, `/api/machineactions/${ACTIONS.runScript}/GetLiveResponseResultDownloadLink(index=0)`)
      const url = ((yield* Effect.promise(() => link.json())) as { value: string }).value
      const leaked = (yield* sim.handle(new Request(url, { headers: { authorization: "Bearer x" } })))!
      expect([leaked.status, leaked.headers.get("x-ms-error-code")]).toEqual([400, "InvalidAuthenticationInfo"])
      const ok = (yield* sim.handle(new Request(url)))!
      expect(ok.headers.get("content-length")).toBe(String((yield* Effect.promise(() => ok.arrayBuffer())).byteLength))
    }))

  it.effect("429s without Retry-After are waited out with backoff", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({
        rateLimits: [{ limit: 2, window: Duration.seconds(10) }],
        faults: { omitRetryAfter: true }
      })
      const fiber = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 4 }), () => LiveResponse.getResultLink({ machineActionId: ACTIONS.runScript, index: 0 }), {
          concurrency: "unbounded"
        }).pipe(Effect.provide(over(sim, { limits: [] })))
      )
      for (let i = 0; i < 60; i++) yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(fiber)
      expect(sim.count("getResultLink", 200)).toBe(4)
      const throttled = sim.received.filter((r) => r.status === 429)
      expect(throttled.length).toBeGreaterThan(0)
    }))

  it.effect("the live response library: upload a script, and a second upload needs OverrideIfExists", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const layer = over(sim)
      const file = yield* LiveResponse.uploadScript({ fileName: "collect.ps1", content: "Get-Process", description: "d" }).pipe(
        Effect.provide(layer)
      )
      expect(file.fileName).toBe("collect.ps1")
      const again = yield* Effect.flip(LiveResponse.uploadScript({ fileName: "collect.ps1", content: "x" })).pipe(Effect.provide(layer))
      expect(again._tag === "HttpError" && [again.status, again.code]).toEqual([400, "FileAlreadyExists"])
      yield* LiveResponse.uploadScript({ fileName: "collect.ps1", content: "x", overrideIfExists: true }).pipe(Effect.provide(layer))
      const bad = yield* Effect.flip(LiveResponse.uploadScript({ fileName: "../x.ps1", content: "x" })).pipe(Effect.provide(layer))
      expect(bad._tag).toBe("InvalidArgument")
      expect(sim.count("uploadLibraryFile")).toBe(3)
    }))
})

// Served on a real socket, so these run on the real clock (`it.live`); none waits on a timer.
describe("DefenderSimulator.serve", () => {
  it.live("a request the web Request cannot hold is a 400, not a crash", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const served = yield* DefenderSimulator.serve(sim)
      const status = yield* Effect.async<number>((resume) => {
        const socket = connect(served.port, "127.0.0.1", () => socket.write("TRACE / HTTP/1.1\r\nHost: x\r\n\r\n"))
        socket.on("data", (data) => {
          resume(Effect.succeed(Number(data.toString().split(" ")[1])))
          socket.destroy()
        })
      })
      expect(status).toBe(400)
    }).pipe(Effect.scoped))

  it.live("serves the same tenant on 127.0.0.1 to a real fetch client", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const served = yield* DefenderSimulator.serve(sim)
      expect(served.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      const live = DefenderClient.layer({ cloud: served.cloud, downloadHosts: ["127.0.0.1"] }).pipe(
        Layer.provide(Layer.merge(DefenderSimulator.layerLogin({ cloud: served.cloud }), DefenderRateLimiter.layer())),
        Layer.provide(FetchHttpClient.layer)
      )
      const [t, file] = yield* Effect.all([
        LiveResponse.getTranscript({ machineActionId: ACTIONS.runScript, index: 0 }),
        Stream.runFold(LiveResponse.downloadResult({ machineActionId: ACTIONS.getFile, index: 0 }), 0, (n, c) => n + c.length)
      ]).pipe(Effect.provide(live))
      expect(t.scriptName).toBe("minidump.ps1")
      expect(file).toBeGreaterThan(1000)
      expect(sim.count("token", 200)).toBe(1)
      expect(sim.received.find((r) => r.endpoint === "blob")!.url.startsWith(served.url)).toBe(true)
    }).pipe(Effect.scoped))
})
