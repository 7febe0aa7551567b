import { HttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Redacted, TestClock } from "effect"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as LiveResponse from "../src/LiveResponse.ts"
import { capture } from "./utils/capture.ts"
import {
  ACTION_ID,
  BLOB_HOST,
  blobUrl,
  CANARY_SECRET,
  CANARY_SIG,
  CANARY_TOKEN,
  clientLayer,
  expiredSas,
  json,
  linkResponse,
  LOGIN,
  makeFake,
  odataError,
  type Recorded,
  SEED_TRANSCRIPT,
  storageError
} from "./utils/fake.ts"

const CANARIES = [CANARY_SECRET, CANARY_TOKEN, CANARY_SIG, decodeURIComponent(CANARY_SIG)]
const ref = { machineActionId: ACTION_ID, index: 0 }
const options = { tenantId: "t", clientId: "c", clientSecret: Redacted.make(CANARY_SECRET) }

/** Runs one scenario with logs and spans captured; returns everything it emitted plus its outcome. */
type Answer = Response | Effect.Effect<Response, "transport">

const scenario = (handler: (req: Recorded, n: number) => Answer) => {
  let n = 0
  const fake = makeFake((req) => handler(req, n++))
  const { captured, layer } = capture()
  const auth = DefenderAuth.layerClientSecret(options)
  return Effect.gen(function*() {
    const fiber = yield* Effect.fork(Effect.either(LiveResponse.getTranscript(ref)))
    yield* TestClock.adjust("30 minutes")
    const outcome = yield* Fiber.join(fiber)
    const error = outcome._tag === "Left" ? outcome.left : undefined
    return {
      fake,
      text: [
        captured.dump(),
        error === undefined ? "" : `${error.message} ${String(error)} ${JSON.stringify(error)}`
      ].join("\n"),
      captured
    }
  }).pipe(Effect.provide(Layer.merge(clientLayer(fake, { auth }), layer)))
}

const token = (req: Recorded) =>
  req.url.origin === LOGIN ? json(200, { expires_in: 3599, access_token: CANARY_TOKEN }) : undefined

describe("no secret leaves the library", () => {
  const scenarios: Record<string, (req: Recorded, n: number) => Answer> = {
    "a successful download": (req) =>
      token(req) ?? (req.url.host === BLOB_HOST ? new Response(SEED_TRANSCRIPT) : linkResponse(blobUrl())),
    "a 429 storm and 5xx answers": (req, n) =>
      token(req) ??
        (req.url.host === BLOB_HOST
          ? new Response(SEED_TRANSCRIPT)
          : n < 3
          ? odataError(429, "TooManyRequests", `slow down, see ${blobUrl()}`, { "retry-after": "1" })
          : n < 5
          ? odataError(503, "ServiceUnavailable", "busy")
          : linkResponse(blobUrl())),
    "an expired link, twice": (req) => token(req) ?? (req.url.host === BLOB_HOST ? expiredSas() : linkResponse(blobUrl())),
    "a storage error that echoes the URL": (req) =>
      token(req) ??
        (req.url.host === BLOB_HOST
          ? storageError(403, "AuthenticationFailed", `Signature did not match for ${blobUrl()}`)
          : linkResponse(blobUrl())),
    "a storage that keeps failing": (req) =>
      token(req) ?? (req.url.host === BLOB_HOST ? storageError(500, "InternalError", blobUrl()) : linkResponse(blobUrl())),
    "a refused host": (req) => token(req) ?? linkResponse(blobUrl("x", CANARY_SIG, "evil.example.com")),
    "a plain-http link": (req) => token(req) ?? linkResponse(blobUrl().replace("https:", "http:")),
    "a 401 every time": (req) => token(req) ?? odataError(401, "Unauthorized", "no"),
    "a token endpoint that echoes the secret": () =>
      json(401, {
        error: "invalid_client",
        error_description: `AADSTS7000215: Invalid client secret ${CANARY_SECRET}`,
        error_codes: [7000215],
        trace_id: "t",
        correlation_id: "c"
      }),
    "an API 400 whose message echoes a link": (req) => token(req) ?? odataError(400, "BadRequest", `bad ${blobUrl()}`),
    "an API 403 whose message echoes a link": (req) => token(req) ?? odataError(403, "Forbidden", `no ${blobUrl()}`),
    "an API 404 whose message echoes a link": (req) => token(req) ?? odataError(404, "NotFound", `gone ${blobUrl()}`),
    "a storage connection that drops": (req) =>
      token(req) ?? (req.url.host === BLOB_HOST ? Effect.fail("transport" as const) : linkResponse(blobUrl())),
    "an undecodable transcript": (req) =>
      token(req) ?? (req.url.host === BLOB_HOST ? new Response(`{"bad": "${CANARY_SIG}"`) : linkResponse(blobUrl()))
  }

  for (const [name, handler] of Object.entries(scenarios)) {
    it.effect(name, () =>
      Effect.gen(function*() {
        const { captured, fake, text } = yield* scenario(handler)
        // Each echo of a link must have been redacted, not dropped: the redacted form is still there.
        if (name.includes("echoes a link") || name.includes("drops")) expect(text).toContain("sig=REDACTED")
        // The scenario did reach the services and produce spans: the check below is not vacuous.
        expect(fake.requests.length).toBeGreaterThan(0)
        expect(captured.spans.length).toBeGreaterThan(0)
        for (const canary of CANARIES) expect(text).not.toContain(canary)
      }))
  }

  it.effect("spans carry the redacted link, so the check above would catch a leak", () =>
    Effect.gen(function*() {
      const { captured } = yield* scenario(scenarios["a successful download"]!)
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
      const { captured } = yield* scenario(scenarios["a 429 storm and 5xx answers"]!)
      const retries = captured.logs.filter((l) => l.includes("retrying after"))
      // 2 × 429 and 2 × 503 were each retried once; the final success logs nothing.
      expect(retries.filter((l) => l.includes("retrying after Throttled"))).toHaveLength(2)
      expect(retries.filter((l) => l.includes("retrying after HttpError"))).toHaveLength(2)
    }))

  it.effect("the token request's form body is never recorded in a span", () => {
    const fake = makeFake(() => json(200, { expires_in: 3599, access_token: CANARY_TOKEN }))
    const { captured, layer } = capture()
    return Effect.gen(function*() {
      const auth = yield* DefenderAuth.DefenderAuth
      expect(Redacted.value(yield* auth.token)).toBe(CANARY_TOKEN)
      expect(String(yield* auth.token)).toBe("<redacted>")
      expect(captured.spans.map((s) => s.name)).toContain("DefenderAuth.requestToken")
      for (const canary of CANARIES) expect(captured.dump()).not.toContain(canary)
    }).pipe(
      Effect.provide(DefenderAuth.layerClientSecret(options)),
      Effect.provideService(HttpClient.HttpClient, fake.client),
      Effect.provide(layer)
    )
  })
})
