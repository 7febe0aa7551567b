/**
 * `doctor`: in-process against the simulator under `TestClock` (its roles and clock offset
 * chosen per test), and as a real CLI process for the exit codes, the text and the JSON.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Redacted, Scope, TestClock } from "effect"
import { execFile } from "node:child_process"
import { Buffer } from "node:buffer"
import { clockSkew, diagnose, PERMISSIONS, readClaims, readSetup, renderText, type Report, simulatedSetup } from "../cli/doctor.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import { CLI } from "./utils/cli.ts"

const API = "https://api.security.microsoft.com"
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
/** A hand-made unsigned JWT with the given claims. */
const unsigned = (claims: Record<string, unknown>) => `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`

/** The simulator's token answer for its app, as the library's login asks for it. */
const issue = (sim: DefenderSimulator.DefenderSimulator) =>
  Effect.flatMap(
    sim.handle(
      new Request(`https://login.microsoftonline.com/${DefenderSimulator.SIMULATED_TENANT}/oauth2/v2.0/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "client_credentials",
          client_id: DefenderSimulator.SIMULATED_CLIENT_ID,
          client_secret: Redacted.value(DefenderSimulator.SIMULATED_CLIENT_SECRET),
          scope: "https://api.securitycenter.microsoft.com/.default"
        }).toString()
      })
    ),
    (answer) => Effect.promise(() => answer!.json() as Promise<{ access_token: string; expires_in: number }>)
  )

const get = (sim: DefenderSimulator.DefenderSimulator, path: string, token: string) =>
  Effect.map(sim.handle(new Request(`${API}${path}`, { headers: { authorization: `Bearer ${token}` } })), (r) => r!)

const doctorOn = (sim: DefenderSimulator.DefenderSimulator) =>
  diagnose(simulatedSetup).pipe(Effect.provide(DefenderSimulator.layerHttpClient(sim)))

const fromEnv = (sim: DefenderSimulator.DefenderSimulator, env: Record<string, string>) =>
  Effect.flatMap(readSetup, diagnose).pipe(
    Effect.provide(DefenderSimulator.layerHttpClient(sim)),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
  )

const granted = (report: Report) => Object.fromEntries(report.permissions.map((p) => [p.call, p.granted]))

describe("the simulator's tokens and clock", () => {
  it.effect("an issued token is JWT-shaped, unsigned, with roles (all by default), tid, appid, aud and exp", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-03-01T10:00:00Z"))
      const answer = yield* issue(yield* DefenderSimulator.make())
      const parts = answer.access_token.split(".")
      expect(parts).toHaveLength(3)
      // The marker instead of a JOSE header: it cannot pass for a real token.
      expect(JSON.parse(Buffer.from(parts[0]!, "base64url").toString())).toMatchObject({ typ: "JWT", alg: "none" })
      const claims = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"))
      expect(claims).toMatchObject({
        roles: [...DefenderSimulator.ALL_ROLES],
        tid: DefenderSimulator.SIMULATED_TENANT,
        appid: DefenderSimulator.SIMULATED_CLIENT_ID,
        aud: "https://api.securitycenter.microsoft.com",
        idtyp: "app",
        iat: Date.parse("2026-03-01T10:00:00Z") / 1000,
        exp: Date.parse("2026-03-01T11:00:00Z") / 1000
      })
      expect(DefenderSimulator.ALL_ROLES).toEqual(["Machine.LiveResponse", "Machine.ReadWrite.All", "Machine.Read.All", "Library.Manage"])
    }))

  it.effect("roles: an endpoint whose permission the token lacks answers 403 Forbidden naming it; static tokens are not checked", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ roles: ["Machine.LiveResponse"] })
      const { access_token } = yield* issue(sim)
      const claims = readClaims(access_token)
      expect(claims?.roles).toEqual(["Machine.LiveResponse"])
      const link = yield* get(sim, `/api/machineactions/${DefenderSimulator.ACTIONS.runScript}/GetLiveResponseResultDownloadLink(index=0)`, access_token)
      expect(link.status).toBe(200)
      const machines = yield* get(sim, "/api/machines?$top=1", access_token)
      expect(machines.status).toBe(403)
      const body = (yield* Effect.promise(() => machines.json())) as { error: { code: string; message: string } }
      expect(body.error.code).toBe("Forbidden")
      expect(body.error.message).toContain("Machine.Read.All, Machine.ReadWrite.All")
      const library = yield* get(sim, "/api/libraryfiles", access_token)
      expect(library.status).toBe(403)
      const staticToken = yield* get(sim, "/api/machines?$top=1", Redacted.value(DefenderSimulator.STATIC_TOKEN))
      expect(staticToken.status).toBe(200)
    }))

  it.effect("every answer has a Date header on the simulated clock, shifted by clockOffset (and so are the token's times)", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-03-01T10:00:00Z"))
      const plain = yield* get(yield* DefenderSimulator.make(), "/api/machines", "not-a-token")
      expect(plain.status).toBe(401)
      expect(plain.headers.get("date")).toBe("Sun, 01 Mar 2026 10:00:00 GMT")
      const skewed = yield* DefenderSimulator.make({ clockOffset: -90_000 })
      const machines = yield* get(skewed, "/api/machines", Redacted.value(DefenderSimulator.STATIC_TOKEN))
      expect(machines.headers.get("date")).toBe("Sun, 01 Mar 2026 09:58:30 GMT")
      const claims = readClaims((yield* issue(skewed)).access_token)
      expect(claims?.expiresAt).toBe(Date.parse("2026-03-01T10:58:30Z") / 1000)
    }))
})

describe("doctor, in-process", () => {
  it.effect("all roles: every line granted, the API answered 200, the clocks agree, exit 0", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-03-01T10:00:00Z"))
      const sim = yield* DefenderSimulator.make()
      const report = yield* doctorOn(sim)
      expect({ ok: report.ok, exitCode: report.exitCode, problems: report.problems, warnings: report.warnings }).toEqual({
        ok: true,
        exitCode: 0,
        problems: [],
        warnings: []
      })
      expect(Object.values(granted(report))).toEqual(PERMISSIONS.map(() => true))
      expect(report.token).toMatchObject({
        jwt: true,
        tenantId: DefenderSimulator.SIMULATED_TENANT,
        appId: DefenderSimulator.SIMULATED_CLIENT_ID,
        expiresAt: "2026-03-01T11:00:00.000Z"
      })
      expect(report.api).toMatchObject({ request: "GET /api/machines?$top=1", status: 200, skewSeconds: 0 })
      // One cheap request: list machines, one row.
      expect(sim.received.filter((r) => r.endpoint !== "token").map((r) => r.url)).toEqual([`${API}/api/machines?$top=1`])
      const text = renderText(report)
      expect(text).toContain("✓ result link, download, transcript")
      expect(text).not.toContain("✗")
      expect(text).toContain("ok: every command will work")
    }))

  it.effect("a token without Machine.Read.All: run and campaign will not work, the API's 403 is reported, exit 5", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ roles: ["Machine.LiveResponse", "Library.Manage"] })
      const report = yield* doctorOn(sim)
      expect(report.exitCode).toBe(5)
      expect(granted(report)).toMatchObject({
        "result link, download, transcript": true,
        "run live response, cancel": true,
        "get and list machine actions (polling)": false,
        "list machines": false
      })
      expect(report.notWorking.map((n) => n.command)).toEqual(["run", "campaign", "campaign --query"])
      expect(report.problems[0]).toContain("lack Machine.Read.All or Machine.ReadWrite.All")
      expect(report.problems[0]).toContain("run, campaign, campaign --query will not work")
      // The probe was refused, and that is reported, not fatal: the clock was still read from it.
      expect(report.api).toMatchObject({ status: 403, code: "Forbidden", skewSeconds: 0 })
      expect(report.warnings.join("\n")).toContain("403 Forbidden")
      expect(renderText(report)).toMatch(/✗ get and list machine actions/)
    }))

  it.effect("Machine.ReadWrite.All counts for Machine.Read.All; a missing Library.Manage warns (no CLI command needs it), exit 0", () =>
    Effect.gen(function*() {
      const report = yield* doctorOn(yield* DefenderSimulator.make({ roles: ["Machine.ReadWrite.All", "Machine.LiveResponse"] }))
      expect(report.exitCode).toBe(0)
      expect(granted(report)["get and list machine actions (polling)"]).toBe(true)
      expect(granted(report)["upload, list and delete library files"]).toBe(false)
      expect(report.warnings.join("\n")).toContain("no Library.Manage: the library's uploadScript")
    }))

  it.effect("a clock 10 minutes off is a warning naming the skew; 90 seconds is not", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-03-01T10:00:00Z"))
      const behind = yield* doctorOn(yield* DefenderSimulator.make({ clockOffset: 10 * 60_000 }))
      expect(behind.api?.skewSeconds).toBe(600)
      expect(behind.exitCode).toBe(0)
      expect(behind.warnings.join("\n")).toContain("this machine's clock is 600 s behind the API's")
      expect(renderText(behind)).toContain("clock: ✗ 600 s behind the API's")
      const near = yield* doctorOn(yield* DefenderSimulator.make({ clockOffset: -90_000 }))
      expect(near.api?.skewSeconds).toBe(-90)
      expect(near.warnings).toEqual([])
      expect(renderText(near)).toContain("clock: ✓ 90 s ahead of the API's")
    }))

  it.effect("no configuration: exit 3 naming AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, MDE_TOKEN and --simulate; no request", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const report = yield* fromEnv(sim, { AZURE_TENANT_ID: DefenderSimulator.SIMULATED_TENANT })
      expect(report.exitCode).toBe(3)
      expect(report.problems[0]).toMatch(/^AZURE_CLIENT_ID, AZURE_CLIENT_SECRET not set: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET .*or MDE_TOKEN .*or use --simulate$/)
      expect(report.settings.find((s) => s.name === "AZURE_TENANT_ID")).toEqual({
        name: "AZURE_TENANT_ID",
        set: true,
        value: DefenderSimulator.SIMULATED_TENANT
      })
      expect(sim.received).toEqual([])
    }))

  it.effect("a bad MDE_CLOUD: exit 3 naming it", () =>
    Effect.gen(function*() {
      const report = yield* fromEnv(yield* DefenderSimulator.make(), { MDE_CLOUD: "mars", MDE_TOKEN: "x" })
      expect(report.exitCode).toBe(3)
      expect(report.problems[0]).toMatch(/^MDE_CLOUD: unknown cloud "mars"/)
    }))

  it.effect("MDE_TOKEN, a hand-made JWT without roles: every command line ✗, exit 5, and the token is printed nowhere", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-03-01T10:00:00Z"))
      const token = unsigned({ tid: "t-1", azp: "app-1", aud: [API], exp: Date.parse("2026-03-01T11:00:00Z") / 1000 })
      const sim = yield* DefenderSimulator.make({ staticTokens: [Redacted.make(token)] })
      const report = yield* fromEnv(sim, { MDE_TOKEN: token, AZURE_CLIENT_SECRET: "never-shown-secret" })
      expect(report.exitCode).toBe(5)
      expect(report.token).toMatchObject({ jwt: true, tenantId: "t-1", appId: "app-1", audience: API, roles: undefined })
      expect(report.permissions.every((p) => p.granted === false)).toBe(true)
      expect(report.settings.find((s) => s.name === "MDE_TOKEN")).toEqual({ name: "MDE_TOKEN", set: true, value: undefined })
      const shown = `${JSON.stringify(report)}\n${renderText(report)}`
      expect(shown).not.toContain(token)
      expect(shown).not.toContain(token.split(".")[1])
      expect(shown).not.toContain("never-shown-secret")
      expect(renderText(report)).toContain("roles: none (no roles claim)")
    }))

  it.effect("MDE_TOKEN expired: exit 4 saying when", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-03-01T10:00:00Z"))
      const token = unsigned({ roles: DefenderSimulator.ALL_ROLES, exp: Date.parse("2026-03-01T09:00:00Z") / 1000 })
      const report = yield* fromEnv(yield* DefenderSimulator.make(), { MDE_TOKEN: token })
      expect(report.exitCode).toBe(4)
      expect(report.problems[0]).toContain("the token expired at 2026-03-01T09:00:00.000Z")
      // The simulator does not know it either: the API's 401 is the second problem.
      expect(report.api?.status).toBe(401)
    }))

  it.effect("an opaque MDE_TOKEN: the permissions cannot be read (?), the API's 200 decides, exit 0 with a warning", () =>
    Effect.gen(function*() {
      const report = yield* fromEnv(yield* DefenderSimulator.make(), { MDE_TOKEN: Redacted.value(DefenderSimulator.STATIC_TOKEN) })
      expect(report.exitCode).toBe(0)
      expect(report.permissions.every((p) => p.granted === undefined)).toBe(true)
      expect(report.warnings[0]).toContain("not a JWT")
      expect(renderText(report)).toContain("? result link")
    }))

  it.effect("a wrong client secret: no token, exit 4, the secret nowhere", () =>
    Effect.gen(function*() {
      const report = yield* fromEnv(yield* DefenderSimulator.make(), {
        AZURE_TENANT_ID: DefenderSimulator.SIMULATED_TENANT,
        AZURE_CLIENT_ID: DefenderSimulator.SIMULATED_CLIENT_ID,
        AZURE_CLIENT_SECRET: "wrong-secret-4711"
      })
      expect(report.exitCode).toBe(4)
      expect(report.problems[0]).toMatch(/^no token: Entra ID refused the token request/)
      expect(JSON.stringify(report)).not.toContain("wrong-secret-4711")
    }))
})

describe("doctor's parts", () => {
  it("clockSkew: the Date header against the request's middle; no or a broken header is undefined", () => {
    const at = Date.parse("2026-03-01T10:00:00Z")
    expect(clockSkew(at - 200, at + 200, "Sun, 01 Mar 2026 10:05:00 GMT")).toBe(300_000)
    expect(clockSkew(at, at, "Sun, 01 Mar 2026 09:59:00 GMT")).toBe(-60_000)
    expect(clockSkew(at, at, undefined)).toBeUndefined()
    expect(clockSkew(at, at, "yesterday-ish")).toBeUndefined()
  })

  it("readClaims: roles, appid or azp, aud as a string or a list, scp; not a JWT is undefined", () => {
    expect(readClaims(unsigned({ roles: ["A", 3, "B"], appid: "x", aud: "y", scp: "one two" }))).toEqual({
      tenantId: undefined,
      appId: "x",
      audience: "y",
      expiresAt: undefined,
      roles: ["A", "B"],
      scopes: ["one", "two"]
    })
    expect(readClaims("opaque-token")).toBeUndefined()
    expect(readClaims("a.b.c")).toBeUndefined()
    expect(readClaims(`x.${b64([1, 2])}.y`)).toBeUndefined()
  })
})

// ---------------------------------------------------------------------------
// The CLI as a process (real processes and a served simulator: real time)
// ---------------------------------------------------------------------------

const cli = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [...CLI, ...args],
      { env: { PATH: process.env.PATH ?? "", ...env }, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : (error as { code?: number }).code ?? null, stdout, stderr })
    )
  })

describe("doctor, the command", () => {
  it("--simulate: ✓ lines and exit 0; --format json prints one object that parses", async () => {
    const [text, json] = await Promise.all([
      cli(["doctor", "--simulate"], {}),
      cli(["doctor", "--simulate", "--format", "json"], {})
    ])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/✓ result link, download, transcript +Machine\.LiveResponse or Machine\.ReadWrite\.All +transcript, link/)
    expect(text.stdout).toContain("api: ✓ GET /api/machines?$top=1 → 200")
    expect(text.stdout).toContain("ok: every command will work")
    expect(json.code).toBe(0)
    const report = JSON.parse(json.stdout) as Report
    expect(report).toMatchObject({ ok: true, exitCode: 0, source: "simulator" })
    expect(report.token?.roles).toEqual([...DefenderSimulator.ALL_ROLES])
  }, 120_000)

  it("no configuration: exit 3, naming what to set", async () => {
    const run = await cli(["doctor"], {})
    expect(run.code).toBe(3)
    expect(run.stdout).toContain("· AZURE_TENANT_ID")
    expect(run.stderr).toMatch(/^error: configuration: .*AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET.*MDE_TOKEN.*--simulate/)
    expect(run.stderr.match(/--simulate/g)).toHaveLength(1) // the hint once, not doctor's and main's
  }, 60_000)

  it("a served tenant whose app lacks Machine.Read.All: exit 5 naming the commands; neither the token nor the secret printed", async () => {
    const scope = Effect.runSync(Scope.make())
    try {
      const { served, sim } = await Effect.runPromise(
        Effect.gen(function*() {
          const sim = yield* DefenderSimulator.make({ roles: ["Machine.LiveResponse"] })
          return { sim, served: yield* DefenderSimulator.serve(sim) }
        }).pipe(Scope.extend(scope))
      )
      const secret = Redacted.value(DefenderSimulator.SIMULATED_CLIENT_SECRET)
      const run = await cli(["doctor"], {
        AZURE_TENANT_ID: DefenderSimulator.SIMULATED_TENANT,
        AZURE_CLIENT_ID: DefenderSimulator.SIMULATED_CLIENT_ID,
        AZURE_CLIENT_SECRET: secret,
        AZURE_AUTHORITY_HOST: served.url,
        MDE_API_URL: served.url
      })
      expect(run.code).toBe(5)
      expect(run.stdout).toContain("✓ AZURE_CLIENT_SECRET   set (not shown)")
      expect(run.stdout).toMatch(/✗ get and list machine actions \(polling\)/)
      expect(run.stdout).toContain("api: ✗ GET /api/machines?$top=1 → 403 Forbidden")
      // Served: node:http's Date on the real clock.
      expect(run.stdout).toMatch(/clock: ✓ in step with the API's/)
      expect(run.stderr).toMatch(/^error: PermissionDenied: the token's roles lack Machine\.Read\.All or Machine\.ReadWrite\.All: run, campaign, campaign --query will not work/)
      const token = sim.received.find((r) => r.endpoint === "listMachines")?.headers["authorization"]?.slice("Bearer ".length)
      expect(token).toMatch(/^eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+$/)
      for (const text of [run.stdout, run.stderr]) {
        expect(text).not.toContain(token!)
        expect(text).not.toContain(token!.split(".")[1]!)
        expect(text).not.toContain(secret)
      }
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }, 60_000)
})
