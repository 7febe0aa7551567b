/**
 * The public API (`../mod.ts`) on Bun: the same programs the Node suite
 * covers, run against both a hand-written in-process fake `HttpClient`
 * (`fakeDefender`) and the project's simulator (`../testing.ts`:
 * `DefenderSimulator`, in-process and served on 127.0.0.1), plus
 * `examples/failed.bun.ts` run as a real process against a loopback server.
 * Real time only: no `TestClock` here, and no retries, so nothing waits.
 *
 *   bun test ./test/public.bun.test.ts
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { FetchHttpClient, HttpClient, HttpClientResponse } from "@effect/platform"
import { Chunk, Effect, Layer, Redacted, Schedule, Stream } from "effect"
import { DefenderAuth, DefenderClient, DefenderCloud, DefenderRateLimiter, LiveResponse, Transcript } from "../mod.ts"
import { DefenderSimulator } from "../testing.ts"
import { locateOrSkip, use as useServer } from "../scripts/servers.ts"
import {
  ACTION_ID,
  campaignStoreRoundTrip,
  ACTIONS,
  API,
  BLOB_HOST,
  blobUrl,
  concat,
  fakeDefender,
  gunzip,
  newSim,
  onSim,
  ref,
  run,
  SEED,
  SEED_OUTPUT,
  sharedRedisBudget,
  SIG,
  simLayer,
  simLogin,
  TOKEN
} from "./utils/public.ts"


const expectNoSecret = (value: unknown) => {
  const text = `${JSON.stringify(value)} ${String(value)} ${(value as { message?: string }).message ?? ""}`
  expect(text).not.toContain(SIG)
  expect(text).not.toContain(TOKEN)
}

describe("LiveResponse on Bun", () => {
  test("getTranscript decodes the seed transcript (raw newline, NULs)", async () => {
    const fake = fakeDefender()
    const transcript = await run(fake.client, LiveResponse.getTranscript(ref(ACTION_ID)))
    expect({ ...transcript }).toEqual({ scriptName: "minidump.ps1", exitCode: 0, output: SEED_OUTPUT, error: "" })
    expect(fake.sent.map((r) => r.url.host)).toEqual(["api.security.microsoft.com", BLOB_HOST])
  })

  test("the token goes to the API only: no Authorization header reaches the blob host", async () => {
    const fake = fakeDefender()
    await run(fake.client, LiveResponse.getTranscript(ref(ACTION_ID)))
    const [api, blob] = fake.sent
    expect(api!.headers["authorization"]).toBe(`Bearer ${TOKEN}`)
    expect(blob!.url.host).toBe(BLOB_HOST)
    expect(blob!.url.searchParams.get("sig")).toBe(decodeURIComponent(SIG))
    expect(Object.keys(blob!.headers).filter((name) => name.toLowerCase() === "authorization")).toEqual([])
  })

  test("getResultLink returns the link redacted, with its expiry", async () => {
    const fake = fakeDefender()
    const link = await run(fake.client, LiveResponse.getResultLink(ref(ACTION_ID)))
    expect(Redacted.value(link.url)).toBe(blobUrl("transcript"))
    expect(String(link.url)).not.toContain(SIG)
    expect(link.expiresAt?.toISOString()).toBe("2021-02-04T16:13:50.000Z")
    expect(fake.sent).toHaveLength(1)
  })

  test("downloadResult streams the raw bytes", async () => {
    const fake = fakeDefender()
    const chunks = await run(fake.client, Stream.runCollect(LiveResponse.downloadResult(ref(ACTION_ID))))
    const bytes = new Uint8Array(Chunk.toReadonlyArray(chunks).flatMap((chunk) => [...chunk]))
    expect(new TextDecoder().decode(bytes)).toBe(SEED)
  })

  test("Transcript.decode reads text and bytes (with a BOM), and fails typed", async () => {
    expect((await Effect.runPromise(Transcript.decode(SEED))).output).toBe(SEED_OUTPUT)
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(SEED)])
    expect((await Effect.runPromise(Transcript.decode(bytes))).scriptName).toBe("minidump.ps1")
    const error = await Effect.runPromise(Effect.flip(Transcript.decode("[1, 2]")))
    expect(error._tag).toBe("TranscriptDecodeError")
    expect(error.reason).toBe("NotAnObject")
  })

  test("typed errors: NotFound, PermissionDenied", async () => {
    const fake = fakeDefender()
    const missing = await run(fake.client, Effect.flip(LiveResponse.getTranscript(ref("unknown-action"))))
    expect(missing).toMatchObject({ _tag: "NotFound", code: "ResourceNotFound", target: "req-1" })
    const forbidden = await run(fake.client, Effect.flip(LiveResponse.getResultLink(ref("forbidden"))))
    expect(forbidden._tag).toBe("PermissionDenied")
    expect(fake.sent.filter((r) => r.url.host === BLOB_HOST)).toEqual([])
    expectNoSecret(missing)
    expectNoSecret(forbidden)
  })

  test("typed errors: InvalidArgument before any request", async () => {
    const fake = fakeDefender()
    const error = await run(fake.client, Effect.flip(LiveResponse.getTranscript({ machineActionId: ACTION_ID, index: -1 })))
    expect(error).toMatchObject({ _tag: "InvalidArgument", argument: "index" })
    expect(fake.sent).toHaveLength(0)
  })

  test("typed errors: DownloadRefused for a host off the allow-list, which is never contacted", async () => {
    const fake = fakeDefender()
    const error = await run(fake.client, Effect.flip(LiveResponse.getTranscript(ref("elsewhere"))))
    expect(error).toMatchObject({ _tag: "DownloadRefused", reason: "HostNotAllowed", host: "evil.example.com" })
    expect(fake.sent.filter((r) => r.url.host === "evil.example.com")).toEqual([])
    expectNoSecret(error)
  })

  test("typed errors: TranscriptDecodeError for a blob that is not a transcript", async () => {
    const fake = fakeDefender()
    const error = await run(fake.client, Effect.flip(LiveResponse.getTranscript(ref("not-json"))))
    expect(error._tag).toBe("TranscriptDecodeError")
    expectNoSecret(error)
  })
})

// ---------------------------------------------------------------------------
// The same public API against the project's simulator (`../testing.ts`)
// ---------------------------------------------------------------------------


/** No request the simulator recorded at the blob endpoint carried the bearer token. */
const expectNoBlobAuthorization = (sim: DefenderSimulator.DefenderSimulator) => {
  const blobs = sim.received.filter((r) => r.endpoint === "blob")
  expect(blobs.length).toBeGreaterThan(0)
  expect(blobs.map((r) => r.headers["authorization"])).toEqual(blobs.map(() => undefined))
}

describe("LiveResponse on Bun against DefenderSimulator", () => {
  test("the preset RunScript transcript decodes; one link, one download, no token at the blob", async () => {
    const sim = await newSim()
    const transcript = await onSim(sim, LiveResponse.getTranscript(ref(ACTIONS.runScript)))
    expect([transcript.scriptName, transcript.exitCode]).toEqual(["minidump.ps1", 0])
    expect(transcript.output.endsWith("51 MB\n")).toBe(true)
    expect(transcript.output).not.toContain("\u0000")
    expect(sim.count("getResultLink")).toBe(1)
    expect(sim.count("getResultLink", 200)).toBe(1)
    expect(sim.count("blob")).toBe(1)
    expect(sim.count("blob", 200)).toBe(1)
    expectNoBlobAuthorization(sim)
  })

  test("the three transcript variants decode (BOM + name + string exit code, script_errors, plain)", async () => {
    const sim = await newSim()
    const transcripts = await onSim(
      sim,
      Effect.forEach([0, 1, 2], (index) => LiveResponse.getTranscript({ machineActionId: ACTIONS.variants, index }))
    )
    expect(transcripts.map((t) => [t.scriptName, t.exitCode, t.error])).toEqual([
      ["collect.ps1", 0, ""],
      ["audit.ps1", 1, "Access is denied.\n"],
      ["inventory.ps1", 0, ""]
    ])
    expect(transcripts.filter((t) => t.output.includes("\u0000"))).toEqual([])
    expect(sim.count("getResultLink", 200)).toBe(3)
    expect(sim.count("blob", 200)).toBe(3)
    expectNoBlobAuthorization(sim)
  })

  test("a GetFile result downloads as gzip bytes that decompress to 1 MiB", async () => {
    const sim = await newSim()
    const chunks = await onSim(sim, Stream.runCollect(LiveResponse.downloadResult(ref(ACTIONS.getFile))))
    const bytes = concat(Chunk.toReadonlyArray(chunks))
    expect([bytes[0], bytes[1]]).toEqual([0x1f, 0x8b])
    const content = await gunzip(bytes)
    expect(content.length).toBe(1024 * 1024)
    expect(new TextDecoder().decode(content.subarray(0, 60))).toContain("OfficeClickToRun.dmp.zip")
    expect(sim.count("getResultLink")).toBe(1)
    expect(sim.count("blob")).toBe(1)
    expectNoBlobAuthorization(sim)
  })

  test("typed errors: a failed action is NotFound, a result gone from storage is BlobNotFound", async () => {
    const sim = await newSim()
    const failed = await onSim(sim, Effect.flip(LiveResponse.getTranscript(ref(ACTIONS.failed))))
    expect(failed._tag).toBe("NotFound")
    expect(sim.count("getResultLink", 404)).toBe(1)
    expect(sim.count("blob")).toBe(0)
    const gone = await onSim(sim, Effect.flip(LiveResponse.getTranscript(ref(ACTIONS.blobGone))))
    expect(gone).toMatchObject({ _tag: "ResultLinkError", reason: "BlobNotFound" })
    expect(sim.count("getResultLink")).toBe(2)
    expect(sim.count("getResultLink", 200)).toBe(1)
    expect(sim.count("blob")).toBe(1)
    expect(sim.count("blob", 404)).toBe(1)
    expectNoBlobAuthorization(sim)
  })

  test("a client-secret login works; a wrong secret is AuthenticationError 7000215", async () => {
    const sim = await newSim()
    const transcript = await onSim(sim, LiveResponse.getTranscript(ref(ACTIONS.runScript)), simLogin())
    expect(transcript.scriptName).toBe("minidump.ps1")
    expect(sim.count("token", 200)).toBe(1)
    const api = sim.received.find((r) => r.endpoint === "getResultLink")!
    expect(api.headers["authorization"]).toMatch(/^Bearer eyJ[\w-]+\.eyJ/)
    expectNoBlobAuthorization(sim)
    const error = await onSim(
      sim,
      Effect.flip(LiveResponse.getResultLink(ref(ACTIONS.runScript))),
      simLogin(Redacted.make("not-the-secret"))
    )
    expect(error).toMatchObject({ _tag: "AuthenticationError", errorCodes: [7000215] })
    expect(sim.count("token", 401)).toBe(1)
    expect(sim.count("getResultLink")).toBe(1)
    expect(JSON.stringify(error)).not.toContain("not-the-secret")
  })

  test("served on 127.0.0.1, a real fetch client logs in and gets a transcript", async () => {
    const sim = await newSim()
    const { transcript, url } = await Effect.runPromise(
      Effect.gen(function*() {
        const served = yield* DefenderSimulator.serve(sim)
        const cloud: DefenderCloud.DefenderCloud = {
          ...DefenderCloud.commercial,
          apiBaseUrl: served.url,
          authorityHost: served.url
        }
        const live = DefenderClient.layer({ cloud, downloadHosts: ["127.0.0.1"], retry: Schedule.stop }).pipe(
          Layer.provide(Layer.merge(
            DefenderAuth.layerClientSecret({
              tenantId: DefenderSimulator.SIMULATED_TENANT,
              clientId: DefenderSimulator.SIMULATED_CLIENT_ID,
              clientSecret: DefenderSimulator.SIMULATED_CLIENT_SECRET,
              cloud
            }),
            DefenderRateLimiter.layer()
          )),
          Layer.provide(FetchHttpClient.layer)
        )
        const transcript = yield* LiveResponse.getTranscript(ref(ACTIONS.runScript)).pipe(Effect.provide(live))
        return { transcript, url: served.url }
      }).pipe(Effect.scoped)
    )
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(transcript.scriptName).toBe("minidump.ps1")
    expect(transcript.output.endsWith("51 MB\n")).toBe(true)
    expect(sim.count("token", 200)).toBe(1)
    expect(sim.count("getResultLink", 200)).toBe(1)
    expect(sim.count("blob", 200)).toBe(1)
    expect(sim.received.filter((r) => r.endpoint === "blob" && !r.url.startsWith(url))).toEqual([])
    expectNoBlobAuthorization(sim)
  }, 30_000)
})

// ---------------------------------------------------------------------------
// examples/failed.bun.ts, as a process against a loopback server
// ---------------------------------------------------------------------------

/** What the loopback server holds: a transcript per action id, or a 404 when absent. */
const TRANSCRIPTS: Record<string, string> = {
  "ok-1": SEED,
  "ok-2": `{"name": "quick.ps1", "exit_code": "0", "script_output": "fine", "script_errors": ""}`,
  "exit-3": `{"script_name": "collect.ps1", "exit_code": 3, "script_output": "", "script_error": "Access denied\u0000"}`,
  "garbage": "<html>maintenance</html>"
}

describe("examples/failed.bun.ts", () => {
  const blobAuthorizations: Array<string | null> = []
  let server: ReturnType<typeof Bun.serve> | undefined
  let base = ""

  beforeAll(() => {
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (request) => {
        const url = new URL(request.url)
        const link = /^\/api\/machineactions\/([^/]+)\/GetLiveResponseResultDownloadLink\(index=0\)$/.exec(url.pathname)
        if (link !== null) {
          if (request.headers.get("authorization") !== `Bearer ${TOKEN}`) return new Response(null, { status: 401 })
          const id = decodeURIComponent(link[1]!)
          if (TRANSCRIPTS[id] === undefined) {
            return Response.json({ error: { code: "ResourceNotFound", message: "Machine action not found" } }, { status: 404 })
          }
          return Response.json({ value: `${base}/blob/${id}?se=2099-01-01T00%3A00%3A00Z&sp=r&sr=b&sig=${SIG}` })
        }
        if (url.pathname.startsWith("/blob/")) {
          blobAuthorizations.push(request.headers.get("authorization"))
          const transcript = TRANSCRIPTS[url.pathname.slice("/blob/".length)]
          if (transcript !== undefined && url.searchParams.get("sig") === decodeURIComponent(SIG)) {
            return new Response(transcript)
          }
        }
        return new Response("unexpected request", { status: 400 })
      }
    })
    base = `http://127.0.0.1:${server.port}`
  })

  afterAll(async () => {
    await server?.stop(true)
  })

  const runExample = async (args: ReadonlyArray<string>, stdin?: string) => {
    const child = Bun.spawn([process.execPath, "examples/failed.bun.ts", ...args], {
      cwd: new URL("..", import.meta.url).pathname,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        NO_COLOR: "1",
        MDE_TOKEN: TOKEN,
        MDE_API_URL: base,
        MDE_DOWNLOAD_HOSTS: "127.0.0.1"
      },
      stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
      stdout: "pipe",
      stderr: "pipe"
    })
    const [out, err, code] = await Promise.all([
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
      child.exited
    ])
    const lines = out.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line))
    lines.sort((a, b) => a.machineActionId.localeCompare(b.machineActionId))
    return { code, out, err, lines }
  }

  test("prints the failed actions as JSON lines", async () => {
    blobAuthorizations.length = 0
    const { code, err, lines, out } = await runExample(["ok-1", "exit-3", "missing", "ok-2", "garbage"])
    expect(err).toBe("")
    expect(code).toBe(1)
    expect(lines.map((line) => [line.machineActionId, line.exitCode ?? line.error._tag])).toEqual([
      ["exit-3", 3],
      ["garbage", "TranscriptDecodeError"],
      ["missing", "NotFound"]
    ])
    expect(lines[0]).toEqual({ machineActionId: "exit-3", index: 0, scriptName: "collect.ps1", exitCode: 3, stderr: "Access denied" })
    expect(out).not.toContain(SIG)
    expect(out).not.toContain(TOKEN)
    expect(blobAuthorizations).toEqual([null, null, null, null])
  }, 30_000)

  test("reads the ids from stdin, and prints nothing when none failed", async () => {
    const { code, err, out } = await runExample([], "ok-1\nok-2\n")
    expect(err).toBe("")
    expect(out).toBe("")
    expect(code).toBe(0)
  }, 30_000)
})

// .ci/run passes its Redis (MDE_TEST_REDIS_URL), else redis-server from the PATH is started for
// the test; with neither it is skipped with one line (a failure under MDE_REQUIRE_SERVERS=1).
const redis = locateOrSkip("redis", "1 Redis test of the Bun suite")
test.skipIf(redis.missing !== undefined)(
  "a budget shared on Redis holds a second process's call (ioredis on Bun)",
  async () => {
    const running = await useServer("redis", redis)
    try {
      const { ran, waitMillis } = await sharedRedisBudget(running.url)
      expect(ran).toBe(true)
      expect(waitMillis).toBe(3_600_000)
    } finally {
      await running.stop()
    }
  }
)

describe("the campaign folder store on Bun", () => {
  test("created, appended, saved and read back by a second store", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mde-bun-campaign-"))
    try {
      const got = await campaignStoreRoundTrip(dir)
      expect(got.phase).toBe("Finished")
      expect(got.manifest.map((e) => [e.machineId, e.status])).toEqual([["m1", "Succeeded"]])
      expect(got.fileText).toBe("{\"exitCode\":0}")
      expect(got.sha256Matches).toBe(true)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
