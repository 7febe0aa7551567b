import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Redacted } from "effect"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderCloud from "../src/DefenderCloud.ts"
import * as LiveResponse from "../src/LiveResponse.ts"
import { ACTION_ID, CANARY_SECRET, clientLayer, makeFake } from "./utils/fake.ts"

const fromEnv = (env: Record<string, string>) => Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

describe("DefenderCloud", () => {
  it("has the API base, login host and scope of every cloud", () => {
    expect(DefenderCloud.commercial).toEqual({
      name: "commercial",
      apiBaseUrl: "https://api.security.microsoft.com",
      authorityHost: "https://login.microsoftonline.com",
      scope: "https://api.securitycenter.microsoft.com/.default"
    })
    expect(DefenderCloud.geo("eu").apiBaseUrl).toBe("https://eu.api.security.microsoft.com")
    expect(DefenderCloud.gcc.apiBaseUrl).toBe("https://api-gcc.securitycenter.microsoft.us")
    expect(DefenderCloud.gcc.authorityHost).toBe("https://login.microsoftonline.com")
    expect(DefenderCloud.gccHigh.authorityHost).toBe("https://login.microsoftonline.us")
    expect(DefenderCloud.dod.scope).toBe("https://api-gov.securitycenter.microsoft.us/.default")
  })

  it("looks clouds up by name", () => {
    expect(DefenderCloud.byName("GCC-High")).toEqual(Either.right(DefenderCloud.gccHigh))
    expect(DefenderCloud.byName("aea")).toEqual(Either.right(DefenderCloud.geo("aea")))
    expect(DefenderCloud.byName("")).toEqual(Either.right(DefenderCloud.commercial))
    expect(Either.isLeft(DefenderCloud.byName("mars"))).toBe(true)
  })

  it("accepts https anywhere and plain http only on loopback", () => {
    expect(DefenderCloud.validateBaseUrl("https://api.example.com/")).toEqual(Either.right("https://api.example.com"))
    expect(DefenderCloud.validateBaseUrl("http://127.0.0.1:8080")).toEqual(Either.right("http://127.0.0.1:8080"))
    expect(DefenderCloud.validateBaseUrl("http://localhost:1/base/")).toEqual(Either.right("http://localhost:1/base"))
    expect(DefenderCloud.validateBaseUrl("http://[::1]:9")).toEqual(Either.right("http://[::1]:9"))
    expect(Either.isLeft(DefenderCloud.validateBaseUrl("http://api.security.microsoft.com"))).toBe(true)
    expect(Either.isLeft(DefenderCloud.validateBaseUrl("http://localhost.evil.com"))).toBe(true)
    expect(Either.isLeft(DefenderCloud.validateBaseUrl("not a url"))).toBe(true)
  })

  it.effect("config reads MDE_CLOUD with the MDE_API_URL, AZURE_AUTHORITY_HOST and MDE_SCOPE overrides", () =>
    Effect.gen(function*() {
      expect(yield* DefenderCloud.config.pipe(fromEnv({}))).toEqual(DefenderCloud.commercial)
      expect(yield* DefenderCloud.config.pipe(fromEnv({ MDE_CLOUD: "dod" }))).toEqual(DefenderCloud.dod)
      expect(
        yield* DefenderCloud.config.pipe(fromEnv({
          MDE_CLOUD: "uk",
          MDE_API_URL: "http://127.0.0.1:4000/",
          MDE_SCOPE: "api://x/.default"
        }))
      ).toEqual({
        name: "uk",
        apiBaseUrl: "http://127.0.0.1:4000",
        authorityHost: "https://login.microsoftonline.com",
        scope: "api://x/.default"
      })
      const insecure = yield* Effect.flip(DefenderCloud.config.pipe(fromEnv({ MDE_API_URL: "http://example.com" })))
      expect(String(insecure)).toContain("must use https")
      const unknown = yield* Effect.flip(DefenderCloud.config.pipe(fromEnv({ MDE_CLOUD: "mars" })))
      expect(String(unknown)).toContain("unknown cloud")
    }))
})

describe("a cloud built in code", () => {
  const plainHttp: DefenderCloud.DefenderCloud = { ...DefenderCloud.commercial, apiBaseUrl: "http://api.example.test" }

  it("is validated like configuration", () => {
    expect(Either.isLeft(DefenderCloud.validate(plainHttp))).toBe(true)
    expect(Either.isLeft(DefenderCloud.validate({ ...DefenderCloud.commercial, authorityHost: "http://login.example.test" })))
      .toBe(true)
    expect(DefenderCloud.validate({ ...DefenderCloud.commercial, apiBaseUrl: "http://127.0.0.1:8080/" })).toEqual(
      Either.right({ ...DefenderCloud.commercial, apiBaseUrl: "http://127.0.0.1:8080" })
    )
  })

  it.effect("with a plain-http API off loopback is refused before a token or secret is sent", () => {
    const fake = makeFake(() => new Response("{}", { status: 500 }))
    const auth = DefenderAuth.layerClientSecret({
      tenantId: "t",
      clientId: "c",
      clientSecret: Redacted.make(CANARY_SECRET),
      cloud: plainHttp
    })
    return Effect.gen(function*() {
      const error = yield* Effect.flip(LiveResponse.getResultLink({ machineActionId: ACTION_ID, index: 0 }))
      expect(error._tag === "InvalidArgument" && error.argument).toBe("cloud.apiBaseUrl")
      expect(error.message).toContain("must use https")
      // Nothing at all went out: no token request (with the secret), no API call (with a token).
      expect(fake.requests).toHaveLength(0)
    }).pipe(Effect.provide(clientLayer(fake, { client: { cloud: plainHttp }, auth })))
  })
})

describe("a login host built in code", () => {
  it.effect("with plain http off loopback gets no client secret: the login fails before any request", () => {
    const fake = makeFake(() => new Response("{}", { status: 500 }))
    const cloud: DefenderCloud.DefenderCloud = { ...DefenderCloud.commercial, authorityHost: "http://login.example.test" }
    const auth = DefenderAuth.layerClientSecret({ tenantId: "t", clientId: "c", clientSecret: Redacted.make(CANARY_SECRET), cloud })
    return Effect.gen(function*() {
      const error = yield* Effect.flip(LiveResponse.getResultLink({ machineActionId: ACTION_ID, index: 0 }))
      expect(error._tag === "AuthenticationError" && error.reason).toBe("TokenRequestFailed")
      expect(error.message).toContain("never sent to an insecure login host")
      expect(error.message).not.toContain(CANARY_SECRET)
      expect(fake.requests).toHaveLength(0)
    }).pipe(Effect.provide(clientLayer(fake, { auth })))
  })
})
