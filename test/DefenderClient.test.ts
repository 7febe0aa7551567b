import { describe, expect, it } from "@effect/vitest"
import { HttpClient } from "@effect/platform"
import { Chunk, Config, ConfigProvider, Duration, Effect, Fiber, Layer, Redacted, Schedule, Stream, TestClock } from "effect"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as LiveResponse from "../src/LiveResponse.ts"
import * as DefenderCloud from "../src/DefenderCloud.ts"
import {
  ACTION_ID,
  API,
  BLOB_HOST,
  blobUrl,
  CANARY_SIG,
  CANARY_TOKEN,
  clientLayer,
  expiredSas,
  type Fake,
  json,
  linkResponse,
  makeFake,
  odataError,
  type Recorded,
  SEED_TRANSCRIPT,
  storageError
} from "./utils/fake.ts"

const LINK_PATH = "GetLiveResponseResultDownloadLink"
const ref = { machineActionId: ACTION_ID, index: 0 }

/** A fake where the link endpoint and the blob both answer normally. */
const happy = (blob: () => Response = () => new Response(SEED_TRANSCRIPT)) =>
  makeFake((req) => (req.url.host === BLOB_HOST ? blob() : linkResponse(blobUrl())))

const apiCalls = (fake: Fake): Array<Recorded> => fake.to(new URL(API).host, LINK_PATH)

describe("LiveResponse.getTranscript", () => {
  it.effect("fetches a link, downloads it and decodes the seed's example transcript", () => {
    const fake = happy()
    return Effect.gen(function*() {
      const transcript = yield* LiveResponse.getTranscript(ref)
      expect(transcript.scriptName).toBe("minidump.ps1")
      expect(transcript.exitCode).toBe(0)
      expect(transcript.output).toContain("PSScript_Transcript_{TRANSCRIPT_ID}.txt\nC:\\windows\\TEMP")
      expect(transcript.output.endsWith("51 MB\n")).toBe(true)
      expect(transcript.error).toBe("")
      const [api] = apiCalls(fake)
      expect(api!.url.href).toBe(`${API}/api/machineactions/${ACTION_ID}/${LINK_PATH}(index=0)`)
      expect(api!.headers["authorization"]).toBe(`Bearer ${CANARY_TOKEN}`)
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("sends no Authorization header to the storage host", () => {
    const fake = happy()
    return Effect.gen(function*() {
      yield* LiveResponse.getTranscript(ref)
      const [download] = fake.to(BLOB_HOST)
      expect(download).toBeDefined()
      expect(Object.keys(download!.headers).map((h) => h.toLowerCase())).not.toContain("authorization")
      expect(download!.url.searchParams.get("sig")).toBe(decodeURIComponent(CANARY_SIG))
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("never contacts a link host that is not on the allow-list", () => {
    const fake = makeFake((req) =>
      req.url.host === "evil.example.com" ? new Response("{}") : linkResponse(blobUrl("x", CANARY_SIG, "evil.example.com"))
    )
    return Effect.gen(function*() {
      const error = yield* Effect.flip(LiveResponse.getTranscript(ref))
      expect(error._tag).toBe("DownloadRefused")
      if (error._tag !== "DownloadRefused") return
      expect(error.reason).toBe("HostNotAllowed")
      expect(error.host).toBe("evil.example.com")
      expect(fake.to("evil.example.com")).toHaveLength(0)
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("refuses a plain-http link outside loopback, and a look-alike host", () => {
    let link = blobUrl().replace("https:", "http:")
    const fake = makeFake(() => linkResponse(link))
    return Effect.gen(function*() {
      const insecure = yield* Effect.flip(LiveResponse.getTranscript(ref))
      expect(insecure._tag === "DownloadRefused" && insecure.reason).toBe("InsecureScheme")
      link = blobUrl("x", CANARY_SIG, "blob.core.windows.net.evil.com")
      const lookalike = yield* Effect.flip(LiveResponse.getTranscript(ref))
      expect(lookalike._tag === "DownloadRefused" && lookalike.reason).toBe("HostNotAllowed")
      expect(fake.requests.filter((r) => !r.url.pathname.includes(LINK_PATH))).toHaveLength(0)
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("extra download hosts can be allowed by option", () => {
    const fake = makeFake((req) =>
      req.url.host === "127.0.0.1:9999"
        ? new Response(SEED_TRANSCRIPT)
        : linkResponse(`http://127.0.0.1:9999/blob?sig=${CANARY_SIG}`)
    )
    return Effect.gen(function*() {
      const transcript = yield* LiveResponse.getTranscript(ref)
      expect(transcript.scriptName).toBe("minidump.ps1")
    }).pipe(Effect.provide(clientLayer(fake, { client: { downloadHosts: ["127.0.0.1"] } })))
  })

  it.effect("re-creates an expired link once and downloads again", () => {
    let downloads = 0
    const fake = makeFake((req) => {
      if (req.url.host !== BLOB_HOST) return linkResponse(blobUrl(`r${apiCalls(fake).length}`))
      downloads++
      return downloads === 1 ? expiredSas() : new Response(SEED_TRANSCRIPT)
    })
    return Effect.gen(function*() {
      const transcript = yield* LiveResponse.getTranscript(ref)
      expect(transcript.exitCode).toBe(0)
      expect(apiCalls(fake)).toHaveLength(2)
      expect(fake.to(BLOB_HOST).map((r) => r.url.pathname.split("/").pop())).toEqual(["r1", "r2"])
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("a link that stays expired is re-created once, not in a loop", () => {
    const fake = makeFake((req) => (req.url.host === BLOB_HOST ? expiredSas() : linkResponse(blobUrl())))
    return Effect.gen(function*() {
      const error = yield* Effect.flip(LiveResponse.getTranscript(ref))
      expect(error._tag).toBe("ResultLinkError")
      expect(error._tag === "ResultLinkError" && error.reason).toBe("Expired")
      expect(apiCalls(fake)).toHaveLength(2)
      expect(fake.to(BLOB_HOST)).toHaveLength(2)
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("the emulator's AuthorizationFailure also counts as an expired link", () => {
    let downloads = 0
    const fake = makeFake((req) => {
      if (req.url.host !== BLOB_HOST) return linkResponse(blobUrl())
      return ++downloads === 1
        ? storageError(403, "AuthorizationFailure", "This request is not authorized to perform this operation.")
        : new Response(SEED_TRANSCRIPT)
    })
    return Effect.gen(function*() {
      yield* LiveResponse.getTranscript(ref)
      expect(apiCalls(fake)).toHaveLength(2)
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  // Real storage's two wordings of a refused time frame, with the clocks disagreeing: the link
  // is not valid yet (Current < Start), or the storage's time is past an expiry this machine's
  // clock (the TestClock, at 2021-02-04T16:00Z) says is still 13 minutes away.
  const skewed = {
    "not valid yet": "Signature not valid in the specified time frame: Start [Thu, 04 Feb 2021 16:10:00 GMT] - Expiry [Thu, 04 Feb 2021 16:40:00 GMT] - Current [Thu, 04 Feb 2021 15:58:00 GMT]",
    "storage ahead": "Signed expiry time [Thu, 04 Feb 2021 16:13:50 GMT] must be after signed start time [Thu, 04 Feb 2021 17:30:00 GMT]"
  }
  for (const [what, message] of Object.entries(skewed)) {
    it.effect(`a refused time frame from clocks that disagree (${what}) is ClockSkew, with no re-created link`, () => {
      const fake = happy(() => storageError(403, "AuthenticationFailed", `Server failed to authenticate the request. ${message}`))
      return Effect.gen(function*() {
        yield* TestClock.setTime(Date.parse("2021-02-04T16:00:00Z"))
        const error = yield* Effect.flip(LiveResponse.getTranscript(ref))
        expect(error._tag === "ResultLinkError" && [error.reason, error.storageCode]).toEqual(["ClockSkew", "AuthenticationFailed"])
        expect(error.message).toContain("check this machine's clock")
        expect(error.message).toContain("this machine's time is 2021-02-04T16:00:00.000Z")
        expect(error.message.includes(decodeURIComponent(CANARY_SIG))).toBe(false)
        // One link, one download: a re-created link would be refused the same way.
        expect(apiCalls(fake)).toHaveLength(1)
        expect(fake.to(BLOB_HOST)).toHaveLength(1)
      }).pipe(Effect.provide(clientLayer(fake)))
    })
  }

  it.effect("a link whose st= is still in the future by this machine's clock is ClockSkew too", () => {
    const fake = makeFake((req) =>
      req.url.host === BLOB_HOST
        ? storageError(403, "AuthorizationFailure", "This request is not authorized to perform this operation.")
        : linkResponse(`${blobUrl()}&st=2021-02-04T16%3A20%3A00Z`)
    )
    return Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2021-02-04T16:00:00Z"))
      const error = yield* Effect.flip(LiveResponse.getTranscript(ref))
      expect(error._tag === "ResultLinkError" && error.reason).toBe("ClockSkew")
      expect(error._tag === "ResultLinkError" && error.detail).toBe(
        "the link starts at 2021-02-04T16:20:00.000Z, in the future; this machine's time is 2021-02-04T16:00:00.000Z"
      )
      expect(apiCalls(fake)).toHaveLength(1)
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("a link that really expired (the storage's time agrees with this machine's) is still re-created", () => {
    let downloads = 0
    const fake = makeFake((req) => {
      if (req.url.host !== BLOB_HOST) return linkResponse(blobUrl())
      return ++downloads === 1
        ? storageError(403, "AuthenticationFailed", "Signed expiry time [Thu, 04 Feb 2021 16:13:50 GMT] must be after signed start time [Thu, 04 Feb 2021 16:20:00 GMT]")
        : new Response(SEED_TRANSCRIPT)
    })
    return Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2021-02-04T16:20:00Z"))
      yield* LiveResponse.getTranscript(ref)
      expect(apiCalls(fake)).toHaveLength(2)
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("a 404 BlobNotFound is a typed error and is not retried", () => {
    const fake = happy(() => storageError(404, "BlobNotFound", "The specified blob does not exist."))
    return Effect.gen(function*() {
      const error = yield* Effect.flip(LiveResponse.getTranscript(ref))
      expect(error._tag === "ResultLinkError" && [error.reason, error.storageCode]).toEqual(["BlobNotFound", "BlobNotFound"])
      expect(fake.to(BLOB_HOST)).toHaveLength(1)
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("a transcript over the cap is a typed error, checked on Content-Length and on the bytes read", () => {
    let declared = true
    const big = "x".repeat(2048)
    const fake = happy(() =>
      declared
        ? new Response(big, { headers: { "content-length": "2048" } })
        : new Response(new ReadableStream({
          start(c) {
            for (let i = 0; i < 4; i++) c.enqueue(new TextEncoder().encode(big.slice(0, 512)))
            c.close()
          }
        }))
    )
    return Effect.gen(function*() {
      const first = yield* Effect.flip(LiveResponse.getTranscript(ref))
      expect(first._tag === "TranscriptDecodeError" && first.reason).toBe("TooLarge")
      declared = false
      const second = yield* Effect.flip(LiveResponse.getTranscript(ref))
      expect(second._tag === "TranscriptDecodeError" && second.reason).toBe("TooLarge")
    }).pipe(Effect.provide(clientLayer(fake, { client: { maxTranscriptBytes: 1024 } })))
  })

  it.effect("an undecodable transcript is a typed TranscriptDecodeError", () => {
    const fake = happy(() => new Response(`{"script_name":"a.ps1","exit_code":"oops","script_output":"","script_error":""}`))
    return Effect.gen(function*() {
      const error = yield* Effect.flip(LiveResponse.getTranscript(ref))
      expect(error._tag === "TranscriptDecodeError" && [error.reason, error.field]).toEqual(["InvalidField", "exit_code"])
    }).pipe(Effect.provide(clientLayer(fake)))
  })
})

describe("LiveResponse.getResultLink", () => {
  it.effect("returns the link redacted, with its expiry read from se=", () => {
    const fake = happy()
    return Effect.gen(function*() {
      const link = yield* LiveResponse.getResultLink({ machineActionId: ACTION_ID, index: 3 })
      expect(String(link.url)).toBe("<redacted>")
      expect(Redacted.value(link.url)).toBe(blobUrl())
      expect(link.expiresAt?.toISOString()).toBe("2021-02-04T16:13:50.000Z")
      expect(apiCalls(fake)[0]!.url.pathname).toContain("(index=3)")
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("accepts an answer without @odata.context", () => {
    const fake = makeFake(() => json(200, { value: blobUrl() }))
    return Effect.gen(function*() {
      const link = yield* LiveResponse.getResultLink(ref)
      expect(Redacted.value(link.url)).toBe(blobUrl())
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("encodes the action id as one path segment and validates the arguments before sending", () => {
    const fake = happy()
    return Effect.gen(function*() {
      yield* LiveResponse.getResultLink({ machineActionId: "a/b?c#d", index: 0 })
      expect(apiCalls(fake)[0]!.url.pathname).toBe(`/api/machineactions/a%2Fb%3Fc%23d/${LINK_PATH}(index=0)`)
      for (const bad of [{ machineActionId: "", index: 0 }, { machineActionId: "..", index: 0 }, {
        machineActionId: "a\nb",
        index: 0
      }]) {
        const error = yield* Effect.flip(LiveResponse.getResultLink(bad))
        expect(error._tag === "InvalidArgument" && error.argument).toBe("machineActionId")
      }
      for (const index of [-1, 1.5, Number.NaN]) {
        const error = yield* Effect.flip(LiveResponse.getResultLink({ machineActionId: ACTION_ID, index }))
        expect(error._tag === "InvalidArgument" && error.argument).toBe("index")
      }
      expect(fake.requests).toHaveLength(1)
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("an answer without a usable value is a typed error", () => {
    let body: unknown = { nope: 1 }
    const fake = makeFake(() => json(200, body))
    return Effect.gen(function*() {
      const missing = yield* Effect.flip(LiveResponse.getResultLink(ref))
      expect(missing._tag === "HttpError" && missing.reason).toBe("InvalidResponse")
      body = { value: "not a url" }
      const notUrl = yield* Effect.flip(LiveResponse.getResultLink(ref))
      expect(notUrl._tag === "ResultLinkError" && notUrl.reason).toBe("InvalidLink")
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("403, 404 and 400 answers are typed errors that keep code and target, never retried", () => {
    let answer = () => odataError(403, "Forbidden", "Missing application roles")
    const fake = makeFake(() => answer())
    return Effect.gen(function*() {
      const denied = yield* Effect.flip(LiveResponse.getResultLink(ref))
      expect(denied._tag).toBe("PermissionDenied")
      expect(denied._tag === "PermissionDenied" && [denied.code, denied.target]).toEqual(["Forbidden", "req-1234"])
      expect(denied.message).toContain("Machine.LiveResponse")
      answer = () => odataError(404, "ResourceNotFound", "Machine action was not found")
      const missing = yield* Effect.flip(LiveResponse.getResultLink(ref))
      expect(missing._tag === "NotFound" && [missing.code, missing.target]).toEqual(["ResourceNotFound", "req-1234"])
      expect(missing.message).toContain(ACTION_ID)
      answer = () => odataError(400, "InvalidRequestBody", "Bad index")
      const bad = yield* Effect.flip(LiveResponse.getResultLink(ref))
      expect(bad._tag === "HttpError" && [bad.reason, bad.status, bad.code, bad.attempts]).toEqual([
        "Status",
        400,
        "InvalidRequestBody",
        1
      ])
      expect(fake.requests).toHaveLength(3)
    }).pipe(Effect.provide(clientLayer(fake)))
  })
})

describe("the shared rate budget", () => {
  it.effect("300 concurrent calls never put more than 100 on the API in any rolling minute", () => {
    const fake = happy()
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 300 }), (_, i) => LiveResponse.getResultLink({ machineActionId: ACTION_ID, index: i }), {
          concurrency: "unbounded"
        })
      )
      yield* TestClock.adjust("3 minutes")
      const links = yield* Fiber.join(fiber)
      expect(links).toHaveLength(300)
      const times = apiCalls(fake).map((r) => r.at).sort((a, b) => a - b)
      expect(times).toHaveLength(300)
      for (let i = 0; i + 100 < times.length; i++) expect(times[i + 100]! - times[i]!).toBeGreaterThanOrEqual(60_000)
      expect(times.at(-1)).toBe(120_000)
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("a slow token request does not bunch calls up beyond the rolling window", () => {
    const fake = makeFake((req) =>
      req.url.host === "login.microsoftonline.com"
        ? Effect.delay(Effect.succeed(json(200, { access_token: "t", expires_in: 3599 })), "3 seconds")
        : linkResponse(blobUrl())
    )
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 101 }), (_, index) => LiveResponse.getResultLink({ ...ref, index }), {
          concurrency: "unbounded"
        })
      )
      for (let i = 0; i < 8; i++) yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(fiber)
      const times = apiCalls(fake).map((r) => r.at).sort((a, b) => a - b)
      expect(times).toHaveLength(101)
      expect(times[0]).toBe(3_000)
      expect(times[100]! - times[0]!).toBeGreaterThanOrEqual(60_000)
    }).pipe(
      Effect.provide(clientLayer(fake, {
        auth: DefenderAuth.layerClientSecret({ tenantId: "t", clientId: "c", clientSecret: Redacted.make("s") })
      }))
    )
  })
})

describe("LiveResponse.layerConfig", () => {
  const env = (vars: Record<string, string>) => Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars))))

  it.effect("builds the whole stack from the environment", () => {
    const fake = makeFake((req) =>
      req.url.host === "127.0.0.1:7000" ? new Response(SEED_TRANSCRIPT) : linkResponse(`http://127.0.0.1:7000/r?sig=${CANARY_SIG}`)
    )
    return Effect.gen(function*() {
      const transcript = yield* LiveResponse.getTranscript(ref)
      expect(transcript.scriptName).toBe("minidump.ps1")
      expect(fake.requests[0]!.url.href).toBe(`http://127.0.0.1:6000/mde/api/machineactions/${ACTION_ID}/${LINK_PATH}(index=0)`)
      expect(fake.requests[0]!.headers["authorization"]).toBe("Bearer env-token")
    }).pipe(
      Effect.provide(LiveResponse.layerConfig()),
      Effect.provide(env({
        MDE_TOKEN: "env-token",
        MDE_API_URL: "http://127.0.0.1:6000/mde/",
        MDE_DOWNLOAD_HOSTS: "127.0.0.1, example.org"
      })),
      Effect.provideService(HttpClient.HttpClient, fake.client)
    )
  })

  it.effect("MDE_MAX_TRANSCRIPT_BYTES caps the transcript, MDE_RATE_LIMITS the calls", () => {
    const fake = happy()
    return Effect.gen(function*() {
      const error = yield* Effect.flip(LiveResponse.getTranscript(ref))
      expect(error._tag === "TranscriptDecodeError" && error.reason).toBe("TooLarge")
      const fiber = yield* Effect.fork(Effect.forEach([1, 2, 3], (index) => LiveResponse.getResultLink({ ...ref, index })))
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(fiber)
      // Two calls per 10 s: the transcript's link and the first link now, the next two 10 s later.
      expect(apiCalls(fake).map((r) => r.at)).toEqual([0, 0, 10_000, 10_000])
    }).pipe(
      Effect.provide(LiveResponse.layerConfig()),
      Effect.provide(env({ MDE_TOKEN: "t", MDE_MAX_TRANSCRIPT_BYTES: "100", MDE_RATE_LIMITS: "2/10s" })),
      Effect.provideService(HttpClient.HttpClient, fake.client)
    )
  })
})

describe("layerConfig with the app's own Configs", () => {
  it.effect("each part reads the Config it is given; the ones not given keep the MDE_*/AZURE_* names", () => {
    const fake = makeFake((req) =>
      req.url.host === "127.0.0.1:7000" ? new Response(SEED_TRANSCRIPT) : linkResponse(`http://127.0.0.1:7000/r?sig=${CANARY_SIG}`)
    )
    const provider = ConfigProvider.fromMap(new Map(Object.entries({
      APP_TOKEN: "app-token",
      APP_API: "http://127.0.0.1:6000/app/",
      APP_TRANSCRIPT_LIMIT: "100",
      // Not read: the app's Configs replace these names.
      MDE_TOKEN: "env-token",
      MDE_MAX_TRANSCRIPT_BYTES: "1"
    })))
    const layer = LiveResponse.layerConfig({
      auth: { token: Config.option(Config.redacted("APP_TOKEN")) },
      client: {
        cloud: Config.map(Config.string("APP_API"), (api) => ({
          ...DefenderCloud.commercial,
          apiBaseUrl: api.replace(/\/$/, "")
        })),
        downloadHosts: Config.succeed(["127.0.0.1"]),
        maxTranscriptBytes: Config.integer("APP_TRANSCRIPT_LIMIT")
      }
    })
    return Effect.gen(function*() {
      const link = yield* LiveResponse.getResultLink(ref)
      expect(link.url).toBeDefined()
      expect(fake.requests[0]!.url.href).toBe(`http://127.0.0.1:6000/app/api/machineactions/${ACTION_ID}/${LINK_PATH}(index=0)`)
      expect(fake.requests[0]!.headers["authorization"]).toBe("Bearer app-token")
      // The seed transcript is over 100 bytes: APP_TRANSCRIPT_LIMIT, not MDE_MAX_TRANSCRIPT_BYTES, is the cap.
      const error = yield* Effect.flip(LiveResponse.getTranscript(ref))
      expect(error._tag === "TranscriptDecodeError" && error.detail).toContain("100-byte limit")
    }).pipe(
      Effect.provide(layer),
      Effect.provide(Layer.setConfigProvider(provider)),
      Effect.provideService(HttpClient.HttpClient, fake.client)
    )
  })
})

describe("retries", () => {
  it.effect("a 429 storm is waited out with exactly the Retry-After waits", () => {
    const waits = ["7", "3", "12"]
    const fake = makeFake(() => {
      const next = waits[apiCalls(fake).length - 1]
      return next === undefined
        ? linkResponse(blobUrl())
        : odataError(429, "TooManyRequests", "Rate limit is exceeded", { "retry-after": next })
    })
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(LiveResponse.getResultLink(ref))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      expect(apiCalls(fake).map((r) => r.at)).toEqual([0, 7_000, 10_000, 22_000])
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("a 429 holds every concurrent caller until its Retry-After has passed", () => {
    let throttled = false
    const fake = makeFake((req) => {
      if (!throttled && req.at === 0) {
        throttled = true
        return odataError(429, "TooManyRequests", "slow down", { "retry-after": "30" })
      }
      return linkResponse(blobUrl())
    })
    return Effect.gen(function*() {
      // One caller is throttled first; the 49 that arrive afterwards must wait too.
      const first = yield* Effect.fork(LiveResponse.getResultLink(ref))
      yield* TestClock.adjust("1 second")
      const rest = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 49 }), () => LiveResponse.getResultLink(ref), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(first)
      yield* Fiber.join(rest)
      const times = apiCalls(fake).map((r) => r.at)
      expect(times).toHaveLength(51)
      expect(times.filter((t) => t < 30_000)).toEqual([0])
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("retry-after-ms and HTTP-date forms are honoured too", () => {
    const answers = [
      () => odataError(429, "TooManyRequests", "x", { "retry-after-ms": "1500" }),
      () => odataError(429, "TooManyRequests", "x", { "retry-after": new Date(1_500 + 4_000).toUTCString() })
    ]
    const fake = makeFake(() => (answers[apiCalls(fake).length - 1] ?? (() => linkResponse(blobUrl())))())
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(LiveResponse.getResultLink(ref))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      // The date has one-second precision: 5.5 s is sent as 5 s after the epoch.
      expect(apiCalls(fake).map((r) => r.at)).toEqual([0, 1_500, 5_000])
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("5xx, 408 and transport errors back off and succeed", () => {
    const failures: Array<() => Response | Effect.Effect<Response, "transport">> = [
      () => odataError(503, "ServiceUnavailable", "x"),
      () => Effect.fail("transport" as const),
      () => json(408, {}),
      () => json(500, {})
    ]
    const fake = makeFake(() => (failures[apiCalls(fake).length - 1] ?? (() => linkResponse(blobUrl())))())
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(LiveResponse.getResultLink(ref))
      yield* TestClock.adjust("5 minutes")
      yield* Fiber.join(fiber)
      const times = apiCalls(fake).map((r) => r.at)
      expect(times).toHaveLength(5)
      // Waits grow: jittered exponential backoff from 1 s.
      const waits = times.slice(1).map((t, i) => t - times[i]!)
      expect(waits[0]).toBeGreaterThanOrEqual(800)
      expect(waits[3]).toBeGreaterThan(waits[0]!)
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("exhausted retries give a typed error with the attempt count", () => {
    const fake = makeFake(() => odataError(429, "TooManyRequests", "x", { "retry-after": "2" }))
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.flip(LiveResponse.getResultLink(ref)))
      yield* TestClock.adjust("10 minutes")
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("Throttled")
      expect(error._tag === "Throttled" && [error.attempts, error.retryAfterMillis, error.target]).toEqual([
        7,
        2000,
        "req-1234"
      ])
      expect(apiCalls(fake)).toHaveLength(7)
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("a user schedule decides how often; Retry-After still decides how long", () => {
    const fake = makeFake(() => json(502, {}))
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.flip(LiveResponse.getResultLink(ref)))
      yield* TestClock.adjust("1 minute")
      const error = yield* Fiber.join(fiber)
      expect(error._tag === "HttpError" && [error.reason, error.status, error.attempts]).toEqual(["Status", 502, 3])
      expect(apiCalls(fake).map((r) => r.at)).toEqual([0, 100, 200])
    }).pipe(
      Effect.provide(
        clientLayer(fake, { client: { retry: Schedule.spaced(Duration.millis(100)).pipe(Schedule.intersect(Schedule.recurs(2))) } })
      )
    )
  })

  it.effect("a 429's Retry-After overrides a user schedule's wait", () => {
    const fake = makeFake(() =>
      apiCalls(fake).length === 1
        ? odataError(429, "TooManyRequests", "x", { "retry-after": "9" })
        : linkResponse(blobUrl())
    )
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(LiveResponse.getResultLink(ref))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      expect(apiCalls(fake).map((r) => r.at)).toEqual([0, 9_000])
    }).pipe(Effect.provide(clientLayer(fake, { client: { retry: Schedule.spaced("100 millis") } })))
  })

  it.effect("a 503 with Retry-After waits as asked", () => {
    const fake = makeFake(() =>
      apiCalls(fake).length === 1
        ? odataError(503, "ServiceUnavailable", "x", { "retry-after": "4" })
        : linkResponse(blobUrl())
    )
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(LiveResponse.getResultLink(ref))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      expect(apiCalls(fake).map((r) => r.at)).toEqual([0, 4_000])
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("an API that never answers times out into a retried, then typed, transport error", () => {
    const fake = makeFake(() => Effect.never)
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.flip(LiveResponse.getResultLink(ref)))
      for (let i = 0; i < 20; i++) yield* TestClock.adjust("30 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error._tag === "HttpError" && [error.reason, error.attempts, error.detail]).toEqual([
        "Transport",
        3,
        "no answer within 10s"
      ])
      expect(apiCalls(fake)).toHaveLength(3)
    }).pipe(
      Effect.provide(clientLayer(fake, { client: { timeout: "10 seconds", retry: Schedule.recurs(2) } }))
    )
  })

  it.effect("a connection lost while reading the link's body is retried", () => {
    const fake = makeFake(() =>
      apiCalls(fake).length === 1
        ? new Response(new ReadableStream({
          start(c) {
            c.enqueue(new TextEncoder().encode("{\"value\": \"https://"))
            c.error(new Error("socket hang up"))
          }
        }), { status: 200, headers: { "content-type": "application/json" } })
        : linkResponse(blobUrl())
    )
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(LiveResponse.getResultLink(ref))
      yield* TestClock.adjust("1 minute")
      const link = yield* Fiber.join(fiber)
      expect(Redacted.value(link.url)).toBe(blobUrl())
      expect(apiCalls(fake)).toHaveLength(2)
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("storage 503 is retried before the body is read", () => {
    let downloads = 0
    const fake = happy(() => (++downloads === 1 ? storageError(503, "ServerBusy", "busy") : new Response(SEED_TRANSCRIPT)))
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(LiveResponse.getTranscript(ref))
      yield* TestClock.adjust("1 minute")
      const transcript = yield* Fiber.join(fiber)
      expect(transcript.scriptName).toBe("minidump.ps1")
      expect(fake.to(BLOB_HOST)).toHaveLength(2)
      expect(apiCalls(fake)).toHaveLength(1)
    }).pipe(Effect.provide(clientLayer(fake)))
  })
})

describe("LiveResponse.downloadResult", () => {
  it.effect("streams the raw bytes of a GetFile result", () => {
    const bytes = new Uint8Array(300_000).map((_, i) => (i * 31) % 256)
    const fake = happy(() => new Response(bytes))
    return Effect.gen(function*() {
      const chunks = yield* Stream.runCollect(LiveResponse.downloadResult(ref))
      const total = Chunk.reduce(chunks, 0, (n, c) => n + c.length)
      expect(total).toBe(bytes.length)
      const joined = new Uint8Array(total)
      let offset = 0
      for (const c of chunks) {
        joined.set(c, offset)
        offset += c.length
      }
      expect(joined).toEqual(bytes)
    }).pipe(Effect.provide(clientLayer(fake)))
  })

  it.effect("fails with a typed error, not a defect, when the link is refused", () => {
    const fake = makeFake(() => linkResponse("ftp://mdestore.blob.core.windows.net/x"))
    return Effect.gen(function*() {
      const error = yield* Effect.flip(Stream.runDrain(LiveResponse.downloadResult(ref)))
      expect(error._tag).toBe("DownloadRefused")
    }).pipe(Effect.provide(clientLayer(fake)))
  })
})
