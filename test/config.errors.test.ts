/**
 * Configuration errors a person can act on: a missing login names what to set, every
 * invalid value names its variable (no `Invalid data at :`), a rejected static token is
 * not called "freshly issued", and the CLI and the examples end with one `error:` line.
 */
import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Config, ConfigError, ConfigProvider, Effect, Layer, Redacted } from "effect"
import { execFile } from "node:child_process"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderClient from "../src/DefenderClient.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import * as LiveResponse from "../src/LiveResponse.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import { CANARY_SECRET, CANARY_SIG, CANARY_TOKEN } from "./utils/fake.ts"

const provider = (env: Record<string, string>) => ConfigProvider.fromMap(new Map(Object.entries(env)))

/** The ConfigError of building the whole stack from `env`. */
const configError = (env: Record<string, string>, configs?: LiveResponse.LayerConfigOptions) =>
  Layer.build(LiveResponse.layerConfig(configs).pipe(Layer.provide(FetchHttpClient.layer))).pipe(
    Effect.scoped,
    Effect.withConfigProvider(provider(env)),
    Effect.flip
  )

describe("a missing login", () => {
  it.effect("names every way to log in, at the first missing setting", () =>
    Effect.gen(function*() {
      const error = yield* configError({})
      expect(ConfigError.isMissingDataOnly(error)).toBe(true)
      expect(error._op === "MissingData" && error.path).toEqual(["AZURE_TENANT_ID"])
      const text = String(error)
      for (const name of ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "MDE_TOKEN", "layerCredential", "certificate"]) {
        expect(text).toContain(name)
      }
      expect(text).not.toContain("Expected AZURE_TENANT_ID to exist")
      expect(text).not.toContain("<redacted>")
    }))

  it.effect("says which settings are missing when some are given; an empty secret is missing", () =>
    Effect.gen(function*() {
      const partial = yield* configError({ AZURE_TENANT_ID: "contoso", AZURE_CLIENT_SECRET: CANARY_SECRET })
      expect(String(partial)).toContain("(AZURE_CLIENT_ID is not set)")
      expect(partial._op === "MissingData" && partial.path).toEqual(["AZURE_CLIENT_ID"])
      expect(String(partial)).not.toContain(CANARY_SECRET)
      const empty = yield* configError({ AZURE_TENANT_ID: "contoso", AZURE_CLIENT_ID: "app", AZURE_CLIENT_SECRET: "" })
      expect(String(empty)).toContain("(AZURE_CLIENT_SECRET is not set)")
      // MDE_TOKEN alone is a complete login.
      const ok = yield* Layer.build(LiveResponse.layerConfig().pipe(Layer.provide(FetchHttpClient.layer))).pipe(
        Effect.scoped,
        Effect.withConfigProvider(provider({ MDE_TOKEN: CANARY_TOKEN })),
        Effect.either
      )
      expect(ok._tag).toBe("Right")
    }))

  it.effect("with an app's own setting names, names those and not the environment's", () =>
    Effect.gen(function*() {
      const error = yield* configError({}, {
        auth: {
          tenantId: Config.nonEmptyString("APP_TENANT"),
          clientId: Config.nonEmptyString("APP_CLIENT"),
          clientSecret: Config.redacted("APP_SECRET")
        }
      })
      expect(String(error)).toContain("(APP_TENANT, APP_CLIENT and APP_SECRET are not set)")
      expect(String(error)).toContain("a static token")
      expect(String(error)).not.toContain("AZURE_TENANT_ID")
    }))
})

describe("an invalid setting names its variable", () => {
  const cases: ReadonlyArray<readonly [string, string]> = [
    ["MDE_RATE_LIMITS", "x"],
    ["MDE_RUN_RATE_LIMITS", "100"],
    ["MDE_TIMEOUT", "x"],
    ["MDE_BODY_DEADLINE", "-1s"],
    ["MDE_CLOUD", "x"],
    ["MDE_API_URL", "ftp://x"],
    ["MDE_API_URL", "x"],
    ["AZURE_AUTHORITY_HOST", "http://login.example.com"],
    ["MDE_REDIS_URL", "x"],
    ["MDE_REDIS_URL", "http://127.0.0.1:6379"],
    ["MDE_REDIS_FALLBACK", "x"],
    ["MDE_REDIS_OUTAGE_WAIT", "x"],
    ["MDE_DOWNLOAD_HOSTS", "http://x/y"],
    ["MDE_DOWNLOAD_HOSTS", "*"],
    ["MDE_DOWNLOAD_HOSTS", "127.0.0.1:10000"],
    ["MDE_DOWNLOAD_HOSTS", "a.example.com,*.blob.*.net"],
    ["MDE_MAX_TRANSCRIPT_BYTES", "-1"],
    ["MDE_MAX_TRANSCRIPT_BYTES", "x"]
  ]
  for (const [name, value] of cases) {
    it.effect(`${name}=${value}`, () =>
      Effect.gen(function*() {
        const text = String(yield* configError({ MDE_TOKEN: CANARY_TOKEN, [name]: value }))
        expect(text).toMatch(new RegExp(`^\\(Invalid data at ${name}: "`))
        expect(text).not.toContain(`${name}.${name}`)
        expect(text).not.toContain(CANARY_TOKEN)
      }))
  }

  it.effect("and never echoes a Redis password or a SAS signature", () =>
    Effect.gen(function*() {
      const redis = String(yield* configError({ MDE_TOKEN: CANARY_TOKEN, MDE_REDIS_URL: `https://:${CANARY_SECRET}@cache:6379` }))
      expect(redis).toContain("MDE_REDIS_URL")
      expect(redis).not.toContain(CANARY_SECRET)
      const hosts = String(yield* configError({
        MDE_TOKEN: CANARY_TOKEN,
        MDE_DOWNLOAD_HOSTS: `https://user:${CANARY_SECRET}@acct.blob.core.windows.net/c/b?sp=r&sig=${CANARY_SIG}`
      }))
      expect(hosts).toContain("MDE_DOWNLOAD_HOSTS")
      expect(hosts).not.toContain(CANARY_SIG)
      expect(hosts).not.toContain(CANARY_SECRET)
    }))

  it.effect("an app's own rate limit variable is named once", () =>
    Effect.gen(function*() {
      const appQuota = Config.string("APP_QUOTA").pipe(Config.mapOrFail(DefenderRateLimiter.limitsFromText("APP_QUOTA")))
      const error = yield* Effect.flip(Effect.withConfigProvider(appQuota, provider({ APP_QUOTA: "lots" })))
      expect(String(error)).toMatch(/^\(Invalid data at APP_QUOTA: /)
    }))

  it.effect("good values still pass: host lists with IPs and patterns, an empty Redis URL, the defaults", () =>
    Effect.gen(function*() {
      const hosts = yield* Effect.withConfigProvider(
        DefenderClient.config.downloadHosts,
        provider({ MDE_DOWNLOAD_HOSTS: "127.0.0.1, *.blob.core.windows.net ::1,[::1],localhost." })
      )
      expect(hosts).toEqual(["127.0.0.1", "*.blob.core.windows.net", "::1", "[::1]", "localhost"])
      expect(yield* Effect.withConfigProvider(DefenderRateLimiter.config, provider({}))).toEqual(DefenderRateLimiter.DEFAULT_LIMITS)
      const built = yield* Layer.build(LiveResponse.layerConfig().pipe(Layer.provide(FetchHttpClient.layer))).pipe(
        Effect.scoped,
        Effect.withConfigProvider(provider({ MDE_TOKEN: CANARY_TOKEN, MDE_REDIS_URL: "", MDE_REDIS_OUTAGE_WAIT: "0" })),
        Effect.either
      )
      expect(built._tag).toBe("Right")
    }))
})

describe("a rejected static token", () => {
  it.effect("is called the given token, expired or for another audience, not freshly issued", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const error = yield* LiveResponse.getResultLink({ machineActionId: DefenderSimulator.ACTIONS.runScript, index: 0 }).pipe(
        Effect.provide(DefenderClient.layer().pipe(
          Layer.provide(Layer.merge(DefenderAuth.layerToken(Redacted.make(CANARY_TOKEN)), DefenderRateLimiter.layer())),
          Layer.provide(DefenderSimulator.layerHttpClient(sim))
        )),
        Effect.flip
      )
      expect(error._tag === "AuthenticationError" && [error.reason, error.staticToken]).toEqual(["Unauthorized", true])
      expect(error.message).toContain("rejected the given token (401)")
      expect(error.message).toMatch(/expired.*audience or tenant/)
      expect(error.message).toContain("MDE_TOKEN")
      expect(error.message).not.toContain("freshly")
      expect(error.message).not.toContain(CANARY_TOKEN)
    }))
})

// Real processes: the CLI's and an example's own error handling is what is tested.
describe("one error line from the CLI and the examples", { timeout: 90_000 }, () => {
  const run = (args: ReadonlyArray<string>) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ["--import", "tsx", ...args], { env: { PATH: process.env.PATH ?? "" } }, (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr }))
    })

  it("the CLI without configuration names the settings and --simulate", async () => {
    const result = await run(["cli/main.ts", "transcript", "--action", DefenderSimulator.ACTIONS.runScript])
    expect(result.code).toBe(3)
    const lines = result.stderr.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^error: configuration: .*AZURE_TENANT_ID.*AZURE_CLIENT_SECRET.*MDE_TOKEN.*, or add --simulate to try the built-in simulator$/)
  })

  it("examples/transcripts.ts without configuration ends with one error line, exit 3", async () => {
    const result = await run(["examples/transcripts.ts", DefenderSimulator.ACTIONS.runScript])
    expect(result.code).toBe(3)
    expect(result.stdout).toBe("")
    expect(result.stderr).not.toContain("FiberFailure")
    expect(result.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^error: configuration: .*MDE_TOKEN/)])
  })
})
