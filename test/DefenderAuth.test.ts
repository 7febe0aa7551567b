import { HttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Config, ConfigProvider, Duration, Effect, Fiber, Layer, Option, Redacted, TestClock } from "effect"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderCloud from "../src/DefenderCloud.ts"
import * as LiveResponse from "../src/LiveResponse.ts"
import {
  ACTION_ID,
  API,
  BLOB_HOST,
  blobUrl,
  CANARY_SECRET,
  CANARY_SIG,
  CANARY_TOKEN,
  clientLayer,
  json,
  linkResponse,
  LOGIN,
  makeFake,
  odataError,
  type Recorded,
  SEED_TRANSCRIPT
} from "./utils/fake.ts"

const TENANT = "contoso.onmicrosoft.com"
const CLIENT_ID = "11111111-2222-3333-4444-555555555555"
const options: DefenderAuth.ClientSecretOptions = {
  tenantId: TENANT,
  clientId: CLIENT_ID,
  clientSecret: Redacted.make(CANARY_SECRET)
}

const tokenAnswer = (n: number, expiresIn = 3599) =>
  json(200, { token_type: "Bearer", expires_in: expiresIn, ext_expires_in: expiresIn, access_token: `token-${n}` })

const isToken = (r: Recorded) => r.url.host === new URL(LOGIN).host

describe("DefenderAuth.layerClientSecret", () => {
  it.effect("posts the client-credentials form with the cloud's scope to the tenant's token endpoint", () => {
    const fake = makeFake(() => tokenAnswer(1))
    return Effect.gen(function*() {
      const auth = yield* DefenderAuth.DefenderAuth
      const token = yield* auth.token
      expect(Redacted.value(token)).toBe("token-1")
      const [request] = fake.requests
      expect(request!.method).toBe("POST")
      expect(request!.url.href).toBe(`${LOGIN}/${TENANT}/oauth2/v2.0/token`)
      const form = new URLSearchParams(request!.body)
      expect(Object.fromEntries(form)).toEqual({
        grant_type: "client_credentials",
        client_id: CLIENT_ID,
        client_secret: CANARY_SECRET,
        scope: "https://api.securitycenter.microsoft.com/.default"
      })
    }).pipe(
      Effect.provide(DefenderAuth.layerClientSecret(options)),
      Effect.provideService(HttpClient.HttpClient, fake.client)
    )
  })

  it.effect("uses the GCC High login host and scope", () => {
    const fake = makeFake(() => tokenAnswer(1))
    return Effect.gen(function*() {
      yield* (yield* DefenderAuth.DefenderAuth).token
      expect(fake.requests[0]!.url.origin).toBe("https://login.microsoftonline.us")
      expect(new URLSearchParams(fake.requests[0]!.body).get("scope")).toBe(
        "https://api-gov.securitycenter.microsoft.us/.default"
      )
    }).pipe(
      Effect.provide(DefenderAuth.layerClientSecret({ ...options, cloud: DefenderCloud.gccHigh })),
      Effect.provideService(HttpClient.HttpClient, fake.client)
    )
  })

  it.effect("many concurrent callers share one token request", () => {
    const fake = makeFake((req) =>
      isToken(req)
        ? Effect.delay(Effect.succeed(tokenAnswer(fake.requests.filter(isToken).length)), "200 millis")
        : req.url.host === BLOB_HOST
        ? new Response(SEED_TRANSCRIPT)
        : linkResponse(blobUrl())
    )
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 50 }), () => LiveResponse.getTranscript({ machineActionId: ACTION_ID, index: 0 }), {
          concurrency: "unbounded"
        })
      )
      yield* TestClock.adjust("1 second")
      const results = yield* Fiber.join(fiber)
      expect(results).toHaveLength(50)
      expect(fake.requests.filter(isToken)).toHaveLength(1)
      const apiAuth = new Set(fake.requests.filter((r) => r.url.origin === API).map((r) => r.headers["authorization"]))
      expect([...apiAuth]).toEqual(["Bearer token-1"])
    }).pipe(Effect.provide(clientLayer(fake, { auth: DefenderAuth.layerClientSecret(options) })))
  })

  it.effect("the token is cached and refreshed 5 minutes before it expires", () => {
    const fake = makeFake(() => tokenAnswer(fake.requests.length, 3600))
    return Effect.gen(function*() {
      const auth = yield* DefenderAuth.DefenderAuth
      expect(Redacted.value(yield* auth.token)).toBe("token-1")
      yield* TestClock.adjust("54 minutes")
      expect(Redacted.value(yield* auth.token)).toBe("token-1")
      expect(fake.requests).toHaveLength(1)
      yield* TestClock.adjust("61 seconds")
      // Inside the margin: the cached token still, and the refresh in the background.
      expect(Redacted.value(yield* auth.token)).toBe("token-1")
      yield* TestClock.adjust("1 second")
      expect(fake.requests.map((r) => r.at)).toEqual([0, 55 * 60_000 + 1000])
      expect(Redacted.value(yield* auth.token)).toBe("token-2")
      expect(fake.requests).toHaveLength(2)
    }).pipe(
      Effect.provide(DefenderAuth.layerClientSecret(options)),
      Effect.provideService(HttpClient.HttpClient, fake.client)
    )
  })

  it.effect("a 401 from the API drops the token and repeats the call once with a new one", () => {
    const fake = makeFake((req) => {
      if (isToken(req)) return tokenAnswer(fake.requests.filter(isToken).length)
      if (req.url.host === BLOB_HOST) return new Response(SEED_TRANSCRIPT)
      return req.headers["authorization"] === "Bearer token-1"
        ? odataError(401, "Unauthorized", "token expired")
        : linkResponse(blobUrl())
    })
    return Effect.gen(function*() {
      const transcript = yield* LiveResponse.getTranscript({ machineActionId: ACTION_ID, index: 0 })
      expect(transcript.exitCode).toBe(0)
      expect(fake.requests.filter(isToken)).toHaveLength(2)
      expect(fake.requests.filter((r) => r.url.origin === API).map((r) => r.headers["authorization"])).toEqual([
        "Bearer token-1",
        "Bearer token-2"
      ])
    }).pipe(Effect.provide(clientLayer(fake, { auth: DefenderAuth.layerClientSecret(options) })))
  })

  it.effect("a 401 with the new token too is an AuthenticationError, never a loop", () => {
    const fake = makeFake((req) =>
      isToken(req) ? tokenAnswer(fake.requests.filter(isToken).length) : odataError(401, "Unauthorized", "wrong audience")
    )
    return Effect.gen(function*() {
      const error = yield* Effect.flip(LiveResponse.getResultLink({ machineActionId: ACTION_ID, index: 0 }))
      expect(error._tag === "AuthenticationError" && error.reason).toBe("Unauthorized")
      expect(fake.requests.filter((r) => r.url.origin === API)).toHaveLength(2)
      expect(fake.requests.filter(isToken)).toHaveLength(2)
    }).pipe(Effect.provide(clientLayer(fake, { auth: DefenderAuth.layerClientSecret(options) })))
  })

  it.effect("a refused token request is a typed error with the AADSTS codes and ids, and no secret", () => {
    const fake = makeFake(() =>
      json(401, {
        error: "invalid_client",
        error_description:
          `AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${CLIENT_ID}'. (echo: ${CANARY_SECRET})`,
        error_codes: [7000215],
        timestamp: "2026-11-29 10:00:00Z",
        trace_id: "trace-abc",
        correlation_id: "corr-def"
      })
    )
    return Effect.gen(function*() {
      const error = yield* Effect.flip((yield* DefenderAuth.DefenderAuth).token)
      expect(error.reason).toBe("TokenRequestFailed")
      expect(error.errorCodes).toEqual([7000215])
      expect(error.traceId).toBe("trace-abc")
      expect(error.correlationId).toBe("corr-def")
      expect(error.message).toContain("secret's value, not its ID")
      expect(error.message).toContain("trace-abc")
      const everything = `${error.message} ${JSON.stringify(error)} ${String(error)} ${error.description}`
      expect(everything).not.toContain(CANARY_SECRET)
      expect(fake.requests).toHaveLength(1)
    }).pipe(
      Effect.provide(DefenderAuth.layerClientSecret(options)),
      Effect.provideService(HttpClient.HttpClient, fake.client)
    )
  })

  it.effect("what a refusal echoes besides the secret (a bearer token, a JWT, a sig=) stays out of the error too", () => {
    const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJlY2FuYXJ5"
    const fake = makeFake(() =>
      json(400, {
        error: `invalid_request (Bearer ${CANARY_TOKEN})`,
        error_description: `AADSTS50027: Invalid JWT token ${jwt}; see https://h.example/x?sig=${CANARY_SIG}`,
        error_codes: [50027],
        trace_id: "trace-abc",
        correlation_id: "corr-def"
      })
    )
    return Effect.gen(function*() {
      const error = yield* Effect.flip((yield* DefenderAuth.DefenderAuth).token)
      expect(error.reason).toBe("TokenRequestFailed")
      expect(error.errorCodes).toEqual([50027])
      expect(error.description).toContain("AADSTS50027: Invalid JWT token")
      const everything = `${error.message} ${JSON.stringify(error)} ${String(error)} ${error.description} ${error.error}`
      for (const canary of [CANARY_TOKEN, jwt, CANARY_SIG, CANARY_SECRET]) expect(everything).not.toContain(canary)
    }).pipe(
      Effect.provide(DefenderAuth.layerClientSecret(options)),
      Effect.provideService(HttpClient.HttpClient, fake.client)
    )
  })

  it.effect("a failed token request is shared too: 20 callers, one request (and its 2 retries)", () => {
    const fake = makeFake(() => json(503, {}))
    return Effect.gen(function*() {
      const auth = yield* DefenderAuth.DefenderAuth
      const fiber = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 20 }), () => Effect.flip(auth.token), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("10 seconds")
      const errors = yield* Fiber.join(fiber)
      expect(errors.map((e) => e.reason)).toEqual(Array(20).fill("TokenEndpointUnreachable"))
      expect(fake.requests).toHaveLength(3)
    }).pipe(
      Effect.provide(DefenderAuth.layerClientSecret(options)),
      Effect.provideService(HttpClient.HttpClient, fake.client)
    )
  })

  it.effect("a caller that gives up does not cancel the shared request for the others", () => {
    const fake = makeFake(() => Effect.delay(Effect.succeed(tokenAnswer(1)), "3 seconds"))
    return Effect.gen(function*() {
      const auth = yield* DefenderAuth.DefenderAuth
      const impatient = yield* Effect.fork(Effect.timeout(auth.token, "1 second"))
      yield* TestClock.adjust("500 millis")
      const patient = yield* Effect.fork(auth.token)
      yield* TestClock.adjust("1 second")
      const gaveUp = yield* Effect.flip(Fiber.join(impatient))
      expect(gaveUp._tag).toBe("TimeoutException")
      yield* TestClock.adjust("2 seconds")
      expect(Redacted.value(yield* Fiber.join(patient))).toBe("token-1")
      expect(fake.requests).toHaveLength(1)
    }).pipe(
      Effect.provide(DefenderAuth.layerClientSecret(options)),
      Effect.provideService(HttpClient.HttpClient, fake.client)
    )
  })

  it.effect("a token endpoint that never answers times out into a typed error", () => {
    const fake = makeFake(() => Effect.never)
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.flip((yield* DefenderAuth.DefenderAuth).token))
      // In steps: the shared request runs in a fiber of its own that starts a moment later.
      for (let i = 0; i < 10; i++) yield* TestClock.adjust("15 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error.reason).toBe("TokenEndpointUnreachable")
      expect(error.message).toContain("no answer within 30s")
      expect(fake.requests).toHaveLength(3)
    }).pipe(
      Effect.provide(DefenderAuth.layerClientSecret(options)),
      Effect.provideService(HttpClient.HttpClient, fake.client)
    )
  })

  it.effect("an answer without a usable expires_in is a typed error, not a token that is never cached", () => {
    let answer = json(200, { access_token: "x", expires_in: 0 })
    const fake = makeFake(() => answer)
    return Effect.gen(function*() {
      const auth = yield* DefenderAuth.DefenderAuth
      const fiber = yield* Effect.fork(Effect.flip(auth.token))
      yield* TestClock.adjust("10 seconds")
      expect((yield* Fiber.join(fiber)).reason).toBe("TokenEndpointUnreachable")
      answer = json(200, { access_token: "x", expires_in: "3599" })
      expect(Redacted.value(yield* auth.token)).toBe("x")
    }).pipe(
      Effect.provide(DefenderAuth.layerClientSecret(options)),
      Effect.provideService(HttpClient.HttpClient, fake.client)
    )
  })

  it.effect("an unreachable token endpoint is retried twice, then a typed error", () => {
    const fake = makeFake(() => Effect.fail("transport" as const))
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.flip((yield* DefenderAuth.DefenderAuth).token))
      yield* TestClock.adjust("10 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error.reason).toBe("TokenEndpointUnreachable")
      expect(fake.requests).toHaveLength(3)
    }).pipe(
      Effect.provide(DefenderAuth.layerClientSecret(options)),
      Effect.provideService(HttpClient.HttpClient, fake.client)
    )
  })
})

/** Runs `effect` while the TestClock moves on by `wait`: its result, or "still waiting". */
const within = <A, E>(effect: Effect.Effect<A, E>, wait: Duration.DurationInput) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    yield* TestClock.adjust(wait)
    const exit = yield* Fiber.poll(fiber)
    if (Option.isNone(exit)) {
      yield* Fiber.interrupt(fiber)
      return "still waiting" as const
    }
    return yield* exit.value
  })

const shown = (token: Redacted.Redacted<string> | string) => typeof token === "string" ? token : Redacted.value(token)

// A 3600 s token issued at 0 is refreshed from 55:00 on; at 3301 s it has 4 min 59 s left.
const IN_MARGIN = "3301 seconds"

describe("DefenderAuth refresh ahead", () => {
  const withAuth = (fake: ReturnType<typeof makeFake>) => <A, E>(self: Effect.Effect<A, E, DefenderAuth.DefenderAuth>) =>
    self.pipe(Effect.provide(DefenderAuth.layerClientSecret(options)), Effect.provideService(HttpClient.HttpClient, fake.client))

  it.effect("a 20 s refresh does not hold the caller: inside the margin the cached token comes at once, one refresh for all", () => {
    const fake = makeFake(() =>
      fake.requests.length === 1
        ? tokenAnswer(1, 3600)
        : Effect.delay(Effect.succeed(tokenAnswer(fake.requests.length, 3600)), "20 seconds")
    )
    return Effect.gen(function*() {
      const auth = yield* DefenderAuth.DefenderAuth
      yield* auth.token
      yield* TestClock.adjust(IN_MARGIN)
      const tokens = yield* within(Effect.forEach(Array.from({ length: 10 }), () => auth.token, { concurrency: "unbounded" }), "1 milli")
      expect(typeof tokens === "string" ? tokens : tokens.map(shown)).toEqual(Array(10).fill("token-1"))
      expect(fake.requests).toHaveLength(2)
      yield* TestClock.adjust("20 seconds")
      expect(shown(yield* auth.token)).toBe("token-2")
      expect(fake.requests).toHaveLength(2)
    }).pipe(withAuth(fake))
  })

  it.effect("a call with 4:59 left and a failing token endpoint succeeds with the cached token; the error comes only once it expired", () => {
    let down = false
    const fake = makeFake(() => down ? json(503, {}) : tokenAnswer(fake.requests.length, 3600))
    return Effect.gen(function*() {
      const auth = yield* DefenderAuth.DefenderAuth
      yield* auth.token
      down = true
      yield* TestClock.adjust(IN_MARGIN)
      // Calls every 10 s until 3591 s: every one gets the cached token, none waits or fails.
      for (let t = 3301; t < 3600; t += 10) expect(shown(yield* within(auth.token, "10 seconds"))).toBe("token-1")
      const refreshes = fake.requests.length - 1
      // Failed refreshes are retried, but with a backoff (5 s, doubling, at most 1 min), not on every call.
      expect(refreshes % 3).toBe(0)
      expect(refreshes / 3).toBeGreaterThanOrEqual(3)
      expect(refreshes / 3).toBeLessThanOrEqual(8)
      // Expired (3601 s): now the caller waits for a token, and sees the refresh's error.
      const error = yield* within(Effect.flip(auth.token), "10 seconds")
      expect(typeof error !== "string" && error.reason).toBe("TokenEndpointUnreachable")
      down = false
      expect(shown(yield* within(auth.token, "1 milli"))).toMatch(/^token-\d+$/)
      expect(shown(yield* auth.token)).not.toBe("token-1")
    }).pipe(withAuth(fake))
  })

  it.effect("refresh_in moves the refresh: at issue time + refresh_in, not 5 minutes before expiry", () => {
    const fake = makeFake(() =>
      json(200, { token_type: "Bearer", expires_in: 3600, refresh_in: 1800, access_token: `token-${fake.requests.length}` })
    )
    return Effect.gen(function*() {
      const auth = yield* DefenderAuth.DefenderAuth
      expect(shown(yield* auth.token)).toBe("token-1")
      yield* TestClock.adjust("1799 seconds")
      expect(shown(yield* auth.token)).toBe("token-1")
      expect(fake.requests).toHaveLength(1)
      yield* TestClock.adjust("2 seconds")
      expect(shown(yield* auth.token)).toBe("token-1")
      yield* TestClock.adjust("1 second")
      expect(fake.requests.map((r) => r.at)).toEqual([0, 1801_000])
      expect(shown(yield* auth.token)).toBe("token-2")
    }).pipe(withAuth(fake))
  })

  it.effect("once the token has expired, a caller waits for the refresh already in flight (no second request)", () => {
    const fake = makeFake(() =>
      fake.requests.length === 1 ? tokenAnswer(1, 3600) : Effect.delay(Effect.succeed(tokenAnswer(2, 3600)), "25 seconds")
    )
    return Effect.gen(function*() {
      const auth = yield* DefenderAuth.DefenderAuth
      yield* auth.token
      yield* TestClock.adjust("3599 seconds")
      expect(shown(yield* within(auth.token, "2 seconds"))).toBe("token-1")
      const waiting = yield* Effect.fork(auth.token)
      yield* TestClock.adjust("22 seconds")
      expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
      yield* TestClock.adjust("1 second")
      expect(shown(yield* Fiber.join(waiting))).toBe("token-2")
      expect(fake.requests).toHaveLength(2)
    }).pipe(withAuth(fake))
  })

  it.effect("invalidate drops only the failed token, and the next caller waits for a new one", () => {
    const fake = makeFake(() => Effect.delay(Effect.succeed(tokenAnswer(fake.requests.length, 3600)), "1 second"))
    return Effect.gen(function*() {
      const auth = yield* DefenderAuth.DefenderAuth
      expect(shown(yield* within(auth.token, "1 second"))).toBe("token-1")
      yield* auth.invalidate(Redacted.make("token-0"))
      expect(shown(yield* auth.token)).toBe("token-1")
      expect(yield* auth.invalidate(Redacted.make("token-1"))).toBe(true)
      expect(yield* within(auth.token, "999 millis")).toBe("still waiting")
      expect(shown(yield* within(auth.token, "1 second"))).toBe("token-2")
    }).pipe(withAuth(fake))
  })

  it.effect("a static token is never refreshed", () =>
    Effect.gen(function*() {
      const auth = yield* DefenderAuth.DefenderAuth
      yield* TestClock.adjust("30 days")
      expect(shown(yield* auth.token)).toBe("static-1")
      expect(yield* auth.invalidate(Redacted.make("static-1"))).toBe(false)
    }).pipe(Effect.provide(DefenderAuth.layerToken(Redacted.make("static-1")))))
})

describe("DefenderAuth token endpoint throttling", () => {
  const request = (fake: ReturnType<typeof makeFake>) =>
    Effect.provideService(DefenderAuth.requestClientSecretToken(options), HttpClient.HttpClient, fake.client)

  it.effect("a 503 with Retry-After: 20 is retried after 20 s, not 0.5 s", () => {
    const fake = makeFake(() => fake.requests.length === 1 ? json(503, {}, { "retry-after": "20" }) : tokenAnswer(2))
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(request(fake))
      yield* TestClock.adjust("19 seconds")
      expect(fake.requests).toHaveLength(1)
      yield* TestClock.adjust("1 second")
      expect(Redacted.value((yield* Fiber.join(fiber)).token)).toBe("token-2")
      expect(fake.requests.map((r) => r.at)).toEqual([0, 20_000])
    })
  })

  const throttled = (retryAfter: string) =>
    json(429, {
      error: "temporarily_unavailable",
      error_description: "AADSTS50196: The server terminated an operation because it encountered a client request loop.",
      error_codes: [50196],
      trace_id: "trace-429"
    }, { "retry-after": retryAfter })

  it.effect("a 429 is retried after its Retry-After", () => {
    const fake = makeFake(() => fake.requests.length === 1 ? throttled("3") : tokenAnswer(2))
    return Effect.gen(function*() {
      const token = yield* within(request(fake), "3 seconds")
      expect(typeof token !== "string" && Redacted.value(token.token)).toBe("token-2")
      expect(fake.requests.map((r) => r.at)).toEqual([0, 3000])
    })
  })

  it.effect("a throttling endpoint is tried 3 times at most, each wait capped at 30 s", () => {
    const fake = makeFake(() => throttled("3600"))
    return Effect.gen(function*() {
      const error = yield* within(Effect.flip(request(fake)), "2 minutes")
      expect(typeof error !== "string" && [error.reason, error.status]).toEqual(["TokenEndpointUnreachable", 429])
      expect(typeof error !== "string" && error.message).toContain("throttling")
      expect(fake.requests.map((r) => r.at)).toEqual([0, 30_000, 60_000])
    })
  })

  it.effect("a refusal is never retried, even with a Retry-After", () => {
    const fake = makeFake(() =>
      json(400, { error: "invalid_request", error_codes: [90002], error_description: "AADSTS90002: Tenant not found." }, {
        "retry-after": "1"
      })
    )
    return Effect.gen(function*() {
      const error = yield* within(Effect.flip(request(fake)), "1 minute")
      expect(typeof error !== "string" && [error.reason, error.errorCodes]).toEqual(["TokenRequestFailed", [90002]])
      expect(fake.requests).toHaveLength(1)
    })
  })

  it.effect("an answer with an access_token but no usable expires_in says so (and never shows the token)", () => {
    let expiresIn: unknown = undefined
    const fake = makeFake(() => json(200, { token_type: "Bearer", access_token: CANARY_TOKEN, expires_in: expiresIn }))
    return Effect.gen(function*() {
      for (const value of [undefined, "soon", -5, null]) {
        expiresIn = value
        const error = yield* within(Effect.flip(request(fake)), "10 seconds")
        if (typeof error === "string") return expect.fail(error)
        expect(error.reason).toBe("TokenEndpointUnreachable")
        expect(error.message).toContain("no usable expires_in")
        expect(error.message).not.toContain("holds no access_token")
        expect(`${error.message} ${JSON.stringify(error)}`).not.toContain(CANARY_TOKEN)
      }
      expiresIn = undefined
      const missing = yield* within(Effect.flip(request(makeFake(() => json(200, { expires_in: 3599 })))), "10 seconds")
      expect(typeof missing !== "string" && missing.message).toContain("holds no access_token")
    })
  })
})

describe("DefenderAuth.layerCredential", () => {
  it.effect("asks an @azure/identity-style credential for the cloud's scope and caches its token", () => {
    const scopes: Array<string | Array<string>> = []
    const credential: DefenderAuth.TokenCredential = {
      getToken: (scope) => {
        scopes.push(scope)
        return Promise.resolve({ token: `cred-${scopes.length}`, expiresOnTimestamp: 3_600_000 })
      }
    }
    return Effect.gen(function*() {
      const auth = yield* DefenderAuth.DefenderAuth
      expect(Redacted.value(yield* auth.token)).toBe("cred-1")
      expect(Redacted.value(yield* auth.token)).toBe("cred-1")
      yield* auth.invalidate(Redacted.make("cred-1"))
      expect(Redacted.value(yield* auth.token)).toBe("cred-2")
      expect(scopes).toEqual(Array(2).fill("https://api-gcc.securitycenter.microsoft.us/.default"))
    }).pipe(Effect.provide(DefenderAuth.layerCredential(credential, { cloud: DefenderCloud.gcc })))
  })

  it.effect("a credential that returns null or throws is a typed error", () => {
    let mode: "null" | "throw" = "null"
    const credential: DefenderAuth.TokenCredential = {
      getToken: () =>
        mode === "null" ? Promise.resolve(null) : Promise.reject(new Error("CredentialUnavailableError: no login"))
    }
    return Effect.gen(function*() {
      const auth = yield* DefenderAuth.DefenderAuth
      const none = yield* Effect.flip(auth.token)
      expect(none.reason).toBe("CredentialFailed")
      mode = "throw"
      const thrown = yield* Effect.flip(auth.token)
      expect(thrown.reason).toBe("CredentialFailed")
      expect(thrown.message).toContain("no login")
    }).pipe(Effect.provide(DefenderAuth.layerCredential(credential)))
  })
})

describe("DefenderAuth.layerToken and layerConfig", () => {
  it.effect("a static token is used as it is, and a 401 with it is an AuthenticationError", () => {
    const fake = makeFake(() => odataError(401, "Unauthorized", "expired"))
    return Effect.gen(function*() {
      const error = yield* Effect.flip(LiveResponse.getResultLink({ machineActionId: ACTION_ID, index: 0 }))
      expect(error._tag).toBe("AuthenticationError")
      // A static token cannot be renewed, so the call is not repeated.
      expect(fake.requests.map((r) => r.headers["authorization"])).toEqual(["Bearer static-1"])
    }).pipe(Effect.provide(clientLayer(fake, { auth: DefenderAuth.layerToken(Redacted.make("static-1")) })))
  })

  const fromEnv = (env: Record<string, string>) =>
    Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

  it.effect("layerConfig reads the @azure/identity variable names and the cloud settings", () => {
    const fake = makeFake(() => tokenAnswer(1))
    return Effect.gen(function*() {
      yield* (yield* DefenderAuth.DefenderAuth).token
      const request = fake.requests[0]!
      expect(request.url.href).toBe(`https://login.example.test/${TENANT}/oauth2/v2.0/token`)
      const form = new URLSearchParams(request.body)
      expect(form.get("client_id")).toBe(CLIENT_ID)
      expect(form.get("client_secret")).toBe(CANARY_SECRET)
      expect(form.get("scope")).toBe("api://custom/.default")
    }).pipe(
      Effect.provide(
        DefenderAuth.layerConfig().pipe(
          Layer.provide(fromEnv({
            AZURE_TENANT_ID: TENANT,
            AZURE_CLIENT_ID: CLIENT_ID,
            AZURE_CLIENT_SECRET: CANARY_SECRET,
            AZURE_AUTHORITY_HOST: "https://login.example.test/",
            MDE_SCOPE: "api://custom/.default"
          }))
        )
      ),
      Effect.provideService(HttpClient.HttpClient, fake.client)
    )
  })

  it.effect("layerConfig takes the app's own Configs for the login", () => {
    const fake = makeFake(() => tokenAnswer(1))
    return Effect.gen(function*() {
      yield* (yield* DefenderAuth.DefenderAuth).token
      const form = new URLSearchParams(fake.requests[0]!.body)
      expect(fake.requests[0]!.url.pathname).toBe(`/${TENANT}/oauth2/v2.0/token`)
      expect(form.get("client_id")).toBe(CLIENT_ID)
      expect(form.get("client_secret")).toBe(CANARY_SECRET)
    }).pipe(
      Effect.provide(
        DefenderAuth.layerConfig({
          tenantId: Config.nonEmptyString("APP_TENANT"),
          clientId: Config.succeed(CLIENT_ID),
          clientSecret: Config.redacted("APP_SECRET")
        }).pipe(Layer.provide(fromEnv({
          APP_TENANT: TENANT,
          APP_SECRET: CANARY_SECRET,
          // Not read: the app's Configs replace these names.
          AZURE_TENANT_ID: "other-tenant",
          AZURE_CLIENT_SECRET: "other-secret"
        })))
      ),
      Effect.provideService(HttpClient.HttpClient, fake.client)
    )
  })

  it.effect("layerConfig prefers MDE_TOKEN, and fails with a ConfigError when nothing is set", () => {
    const fake = makeFake(() => tokenAnswer(1))
    return Effect.gen(function*() {
      const token = yield* Effect.flatMap(DefenderAuth.DefenderAuth, (a) => a.token).pipe(
        Effect.provide(DefenderAuth.layerConfig().pipe(Layer.provide(fromEnv({ MDE_TOKEN: "from-env" }))))
      )
      expect(Redacted.value(token)).toBe("from-env")
      expect(fake.requests).toHaveLength(0)
      const missing = yield* Layer.build(DefenderAuth.layerConfig()).pipe(
        Effect.scoped,
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map())),
        Effect.flip
      )
      expect(String(missing)).toContain("AZURE_TENANT_ID")
    }).pipe(Effect.provideService(HttpClient.HttpClient, fake.client))
  })
})
