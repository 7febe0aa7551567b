/**
 * `doctor`: what connecting a real tenant needs, checked in one go — the settings, a token,
 * the token's `roles` against the application permission each command needs, and this
 * machine's clock against the API's `Date` header — with a line for each thing to fix.
 *
 * Exit 0 when every CLI command will work; 3 when a setting is missing or invalid; 4 when no
 * token could be had or the API refuses it; 5 when the token's roles lack a permission a
 * command needs; 11 when the API could not be reached. The token is decoded (its payload,
 * no signature check) but never printed, nor any secret.
 */
import { Command } from "@effect/cli"
import { FetchHttpClient, HttpClient, HttpClientRequest } from "@effect/platform"
import { Clock, Config, ConfigError, Console, Effect, Either, Layer, Option, Redacted } from "effect"
import { Buffer } from "node:buffer"
import { AuthenticationError, DefenderAuth, DefenderCloud, HttpError, PermissionDenied } from "../mod.ts"
import { DefenderSimulator } from "../testing.ts"
import { simulate } from "./batch.ts"
import { formatOption } from "./format.ts"

// ---------------------------------------------------------------------------
// What each call needs (API-FACTS.md's table; a role in `anyOf` is enough)
// ---------------------------------------------------------------------------

/** One group of calls, the application permissions that allow it, and who uses it. */
export interface Permission {
  /** The calls, for people. */
  readonly call: string
  /** Any one of these application permissions lets the calls through. */
  readonly anyOf: ReadonlyArray<string>
  /** The CLI commands that make these calls (none: only the library does). */
  readonly commands: ReadonlyArray<string>
  /** The library's programs that make them. */
  readonly library: ReadonlyArray<string>
}

const READ = ["Machine.Read.All", "Machine.ReadWrite.All"]

/** The permission of each call, as Microsoft's pages give them (`Machine.ReadWrite.All` includes `Machine.Read.All`). */
export const PERMISSIONS: ReadonlyArray<Permission> = [
  {
    call: "result link, download, transcript",
    // The seed page names Machine.LiveResponse; newer pages list Machine.ReadWrite.All.
    anyOf: ["Machine.LiveResponse", "Machine.ReadWrite.All"],
    commands: ["transcript", "link", "download", "batch", "run", "campaign"],
    library: ["getResultLink", "downloadResult", "getTranscript", "downloadToFile"]
  },
  {
    call: "run live response, cancel",
    anyOf: ["Machine.LiveResponse"],
    commands: ["run", "campaign"],
    library: ["runLiveResponse", "runAndAwait", "runAndCollect", "cancelMachineAction", "Campaign.start"]
  },
  {
    call: "get and list machine actions (polling)",
    anyOf: READ,
    commands: ["run", "campaign"],
    library: ["getMachineAction", "awaitMachineAction", "listMachineActions"]
  },
  {
    call: "list machines",
    anyOf: READ,
    commands: ["campaign --query"],
    library: ["listMachines"]
  },
  {
    call: "upload, list and delete library files",
    anyOf: ["Library.Manage"],
    commands: [],
    library: ["uploadScript", "listLibraryFiles", "deleteLibraryFile"]
  }
]

// ---------------------------------------------------------------------------
// The token's claims
// ---------------------------------------------------------------------------

/** What the doctor reads from an access token's payload. */
export interface Claims {
  readonly tenantId: string | undefined
  readonly appId: string | undefined
  readonly audience: string | undefined
  /** Seconds since the epoch. */
  readonly expiresAt: number | undefined
  /** The application permissions granted (`roles`); `undefined` when the claim is absent. */
  readonly roles: ReadonlyArray<string> | undefined
  /** Delegated permissions (`scp`) of a user's token; `undefined` when absent. */
  readonly scopes: ReadonlyArray<string> | undefined
}

const text = (value: unknown): string | undefined => (typeof value === "string" && value !== "" ? value : undefined)

/**
 * The claims of a JWT's payload (its middle base64url segment), without checking the signature;
 * `undefined` when the token is not one (an opaque token).
 */
export const readClaims = (token: string): Claims | undefined => {
  const parts = token.split(".")
  if (parts.length !== 3) return undefined
  let payload: unknown
  try {
    payload = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"))
  } catch {
    return undefined
  }
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) return undefined
  const claims = payload as Record<string, unknown>
  const roles = claims["roles"]
  const scp = text(claims["scp"])
  const aud = claims["aud"]
  return {
    tenantId: text(claims["tid"]),
    appId: text(claims["appid"]) ?? text(claims["azp"]),
    audience: Array.isArray(aud) ? aud.filter((a) => typeof a === "string").join(" ") : text(aud),
    expiresAt: typeof claims["exp"] === "number" ? claims["exp"] : undefined,
    roles: Array.isArray(roles) ? roles.filter((r): r is string => typeof r === "string") : undefined,
    scopes: scp === undefined ? undefined : scp.split(" ").filter((s) => s !== "")
  }
}

// ---------------------------------------------------------------------------
// The clock
// ---------------------------------------------------------------------------

/** Above this the clock is reported as wrong: token and link lifetimes are judged on it. */
export const SKEW_LIMIT_MILLIS: number = 5 * 60_000

/**
 * How far the API's clock (its `Date` header, whole seconds) is ahead of this machine's, in
 * milliseconds, against the middle of the request; `undefined` without a readable header.
 */
export const clockSkew = (sentAt: number, answeredAt: number, date: string | undefined): number | undefined => {
  if (date === undefined) return undefined
  const server = Date.parse(date)
  if (Number.isNaN(server)) return undefined
  // The header has whole seconds: a clock in step reads as up to a second ahead.
  return server - (sentAt + answeredAt) / 2
}

// ---------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------

/** One setting as found (a secret's value is never shown). */
export interface Setting {
  readonly name: string
  readonly set: boolean
  /** The value, for the settings that are not secret. */
  readonly value?: string | undefined
}

/** A permission line: what the token has for one group of calls (`granted` undefined: cannot tell). */
export interface PermissionCheck extends Permission {
  readonly granted: boolean | undefined
}

/** The one API request the doctor makes, and what it learnt from the answer. */
export interface Probe {
  readonly request: string
  readonly status?: number | undefined
  readonly code?: string | undefined
  readonly message?: string | undefined
  /** The answer's `Date` header. */
  readonly date?: string | undefined
  /** How far the API's clock is ahead of this machine's, in seconds (negative: behind). */
  readonly skewSeconds?: number | undefined
  /** Why there was no answer. */
  readonly error?: string | undefined
}

/** Everything the doctor found; `--format json` prints it as one object. */
export interface Report {
  readonly ok: boolean
  readonly exitCode: number
  /** `configuration` (the environment) or `simulator` (`--simulate`). */
  readonly source: "configuration" | "simulator"
  readonly settings: ReadonlyArray<Setting>
  readonly cloud?: DefenderCloud.DefenderCloud | undefined
  /** How the token is had, for people. */
  readonly login?: string | undefined
  readonly token?: {
    readonly jwt: boolean
    readonly tenantId?: string | undefined
    readonly appId?: string | undefined
    readonly audience?: string | undefined
    readonly expiresAt?: string | undefined
    readonly roles?: ReadonlyArray<string> | undefined
    readonly scopes?: ReadonlyArray<string> | undefined
  } | undefined
  readonly permissions: ReadonlyArray<PermissionCheck>
  /** The CLI commands that will not work, each with the permissions it lacks (any one would do). */
  readonly notWorking: ReadonlyArray<{ readonly command: string; readonly needs: ReadonlyArray<string> }>
  readonly api?: Probe | undefined
  /** What stops a command from working, each a line a person can act on. */
  readonly problems: ReadonlyArray<string>
  /** What may cause trouble, but stops nothing. */
  readonly warnings: ReadonlyArray<string>
}

/** Exit codes, as in main.ts's EXIT_CODES. */
const EXIT = { ok: 0, config: 3, auth: 4, permission: 5, http: 11 } as const

// ---------------------------------------------------------------------------
// The settings
// ---------------------------------------------------------------------------

const NAMES = [
  ["AZURE_TENANT_ID", false],
  ["AZURE_CLIENT_ID", false],
  ["AZURE_CLIENT_SECRET", true],
  ["MDE_TOKEN", true],
  ["MDE_CLOUD", false],
  ["MDE_API_URL", false],
  ["AZURE_AUTHORITY_HOST", false],
  ["MDE_SCOPE", false]
] as const

const LOGIN_NAMES = ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"] as const

/** What the configuration gives: the settings, the cloud, and a way to a token, or why not. */
export interface Setup {
  readonly source: Report["source"]
  readonly settings: ReadonlyArray<Setting>
  readonly cloud: DefenderCloud.DefenderCloud | undefined
  readonly login: string | undefined
  /** The token source; `undefined` when the configuration gives none (`problem` says why). */
  readonly auth: Layer.Layer<DefenderAuth.DefenderAuth, ConfigError.ConfigError, HttpClient.HttpClient> | undefined
  readonly problem: { readonly error: ConfigError.ConfigError; readonly line: string } | undefined
  readonly warnings: ReadonlyArray<string>
}

// The error line main prints adds the --simulate hint to a missing setting itself; the report says it here.
const TO_SET =
  "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (an app registration's client secret), or MDE_TOKEN (a bearer token)"
const OR_SIMULATE = ", or use --simulate"

/** Reads the settings from the configuration (the environment), as `LiveResponse.layerConfig()` does. */
export const readSetup: Effect.Effect<Setup> = Effect.gen(function*() {
  const values = new Map<string, string>()
  for (const [name] of NAMES) {
    const value = yield* Effect.orElseSucceed(Config.option(Config.string(name)), () => Option.none<string>())
    if (Option.isSome(value) && value.value.trim() !== "") values.set(name, value.value.trim())
  }
  const settings = NAMES.map(([name, secret]): Setting => ({
    name,
    set: values.has(name),
    value: secret ? undefined : values.get(name)
  }))
  const warnings: Array<string> = []
  const certificate = yield* Effect.orElseSucceed(
    Config.option(Config.string("AZURE_CLIENT_CERTIFICATE_PATH")),
    () => Option.none<string>()
  )
  if (Option.isSome(certificate) && !values.has("AZURE_CLIENT_SECRET")) {
    warnings.push(
      "AZURE_CLIENT_CERTIFICATE_PATH is set, but the CLI logs in with a client secret or MDE_TOKEN; a certificate works from code (DefenderAuth.layerCredential with @azure/identity's ClientCertificateCredential)"
    )
  }
  const cloud = yield* Effect.either(DefenderCloud.config)
  if (Either.isLeft(cloud)) {
    const message = cloudMessage(cloud.left)
    const name = ["MDE_API_URL", "AZURE_AUTHORITY_HOST"].find((n) => values.has(n) && message.includes(values.get(n)!)) ??
      "MDE_CLOUD"
    return {
      source: "configuration",
      settings,
      cloud: undefined,
      login: undefined,
      auth: undefined,
      problem: { error: ConfigError.InvalidData([name], message), line: `${name}: ${message}` },
      warnings
    }
  }
  if (values.has("MDE_TOKEN")) {
    if (LOGIN_NAMES.some((n) => values.has(n))) warnings.push("MDE_TOKEN is set, so AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET are not used")
    return {
      source: "configuration",
      settings,
      cloud: cloud.right,
      login: "MDE_TOKEN: a bearer token used as it is (no login)",
      auth: DefenderAuth.layerConfig(),
      problem: undefined,
      warnings
    }
  }
  const missing = LOGIN_NAMES.filter((n) => !values.has(n))
  if (missing.length > 0) {
    const message = `${missing.join(", ")} not set: ${TO_SET}`
    return {
      source: "configuration",
      settings,
      cloud: cloud.right,
      login: undefined,
      auth: undefined,
      problem: { error: ConfigError.MissingData([missing[0]!], message), line: `${message}${OR_SIMULATE}` },
      warnings
    }
  }
  return {
    source: "configuration",
    settings,
    cloud: cloud.right,
    login: `client secret (AZURE_CLIENT_SECRET) of app ${values.get("AZURE_CLIENT_ID")} in tenant ${
      values.get("AZURE_TENANT_ID")
    }, from ${cloud.right.authorityHost}`,
    auth: DefenderAuth.layerConfig(),
    problem: undefined,
    warnings
  }
})

const cloudMessage = (error: ConfigError.ConfigError): string =>
  ConfigError.isInvalidData(error) || ConfigError.isMissingData(error) ? error.message : String(error)

/** The in-process simulator's setup (`--simulate`): its app's client-secret login, no settings read. */
export const simulatedSetup: Setup = {
  source: "simulator",
  settings: [],
  cloud: DefenderCloud.commercial,
  login: "client secret of the simulated app (--simulate: an in-process simulated tenant, no settings read)",
  auth: DefenderSimulator.layerLogin(),
  problem: undefined,
  warnings: []
}

// ---------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------

const PROBE_PATH = "/api/machines?$top=1"

/** One cheap request (list machines, one row), for the clock and for what the API says of the token. */
const probe = (cloud: DefenderCloud.DefenderCloud, token: Redacted.Redacted<string>) =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const request = HttpClientRequest.get(`${cloud.apiBaseUrl}${PROBE_PATH}`).pipe(
      HttpClientRequest.acceptJson,
      HttpClientRequest.bearerToken(Redacted.value(token))
    )
    const sentAt = yield* Clock.currentTimeMillis
    const answer = yield* client.execute(request).pipe(Effect.timeout("30 seconds"), Effect.either)
    const answeredAt = yield* Clock.currentTimeMillis
    const shown = `GET ${PROBE_PATH}`
    if (Either.isLeft(answer)) {
      const error = answer.left
      const detail = error._tag === "TimeoutException"
        ? "no answer within 30 s"
        : HttpError.fromRequestError(error, { method: "GET", url: `${cloud.apiBaseUrl}/api/machines`, attempts: 1 })
          .detail
      return { request: shown, error: detail ?? "no answer" } satisfies Probe
    }
    const response = answer.right
    const date = response.headers["date"]
    const skew = clockSkew(sentAt, answeredAt, date)
    let code: string | undefined
    let message: string | undefined
    if (response.status >= 400) {
      const body = yield* Effect.orElseSucceed(response.json, () => undefined)
      const error = typeof body === "object" && body !== null ? (body as { error?: unknown }).error : undefined
      if (typeof error === "object" && error !== null) {
        code = text((error as { code?: unknown }).code)
        message = text((error as { message?: unknown }).message)
      }
    } else {
      yield* Effect.ignore(response.text)
    }
    return {
      request: shown,
      status: response.status,
      code,
      message,
      date,
      skewSeconds: skew === undefined ? undefined : Math.trunc(skew / 1000) || 0
    } satisfies Probe
  })

/** Which permission lines the token satisfies (`roles`, or a user token's `scp`). */
const checkPermissions = (granted: ReadonlyArray<string> | undefined): ReadonlyArray<PermissionCheck> =>
  PERMISSIONS.map((p) => ({ ...p, granted: granted === undefined ? undefined : p.anyOf.some((r) => granted.includes(r)) }))

const notWorkingOf = (checks: ReadonlyArray<PermissionCheck>): Report["notWorking"] => {
  const byCommand = new Map<string, Array<string>>()
  for (const check of checks) {
    if (check.granted !== false) continue
    for (const command of check.commands) {
      byCommand.set(command, [...(byCommand.get(command) ?? []), check.anyOf.join(" or ")])
    }
  }
  return [...byCommand].map(([command, needs]) => ({ command, needs }))
}

const iso = (seconds: number | undefined) => (seconds === undefined ? undefined : new Date(seconds * 1000).toISOString())

/**
 * Runs every check the setup allows: a token, its claims against `PERMISSIONS`, one API request
 * (its status and `Date` header). Never fails: what went wrong is in the report.
 */
export const diagnose = (setup: Setup): Effect.Effect<Report, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const base = {
      source: setup.source,
      settings: setup.settings,
      cloud: setup.cloud,
      login: setup.login,
      permissions: [] as ReadonlyArray<PermissionCheck>,
      notWorking: [] as Report["notWorking"]
    }
    const warnings = [...setup.warnings]
    if (setup.problem !== undefined || setup.auth === undefined || setup.cloud === undefined) {
      const line = setup.problem?.line ?? `${TO_SET}${OR_SIMULATE}`
      return { ...base, ok: false, exitCode: EXIT.config, problems: [line], warnings }
    }
    const token = yield* Effect.flatMap(DefenderAuth.DefenderAuth, (auth) => auth.token).pipe(
      Effect.provide(setup.auth),
      Effect.either
    )
    if (Either.isLeft(token)) {
      const error = token.left
      const line = ConfigError.isConfigError(error) ? `configuration: ${String(error)}` : `no token: ${error.message}`
      return { ...base, ok: false, exitCode: ConfigError.isConfigError(error) ? EXIT.config : EXIT.auth, problems: [line], warnings }
    }
    const problems: Array<string> = []
    let exitCode: number = EXIT.ok
    const claims = readClaims(Redacted.value(token.right))
    const now = yield* Clock.currentTimeMillis
    if (claims === undefined) {
      warnings.push("the token is not a JWT, so its permissions cannot be read from it; only the API's answer below tells")
    } else if (claims.expiresAt !== undefined && claims.expiresAt * 1000 <= now) {
      problems.push(`the token expired at ${iso(claims.expiresAt)}: get a new one (MDE_TOKEN), or use the client secret login`)
      exitCode = EXIT.auth
    }
    if (claims !== undefined && claims.roles === undefined && claims.scopes !== undefined) {
      warnings.push("a user's (delegated) token: its scp claim is read instead of roles, and the user's own Defender role applies too")
    }
    const granted = claims === undefined ? undefined : claims.roles ?? claims.scopes ?? []
    const permissions = checkPermissions(granted)
    const notWorking = notWorkingOf(permissions)
    if (notWorking.length > 0) {
      const lacking = [...new Set(permissions.filter((p) => p.granted === false && p.commands.length > 0).map((p) => p.anyOf.join(" or ")))]
      problems.push(
        `the token's roles lack ${lacking.join("; ")}: ${notWorking.map((n) => n.command).join(", ")} will not work; grant the app these application permissions of WindowsDefenderATP with admin consent (README: "Connecting a real tenant")`
      )
      if (exitCode === EXIT.ok) exitCode = EXIT.permission
    }
    const libraryOnly = permissions.filter((p) => p.granted === false && p.commands.length === 0)
    for (const p of libraryOnly) {
      warnings.push(`no ${p.anyOf.join(" or ")}: the library's ${p.library.join(", ")} will be refused (no CLI command needs it)`)
    }
    const api = yield* probe(setup.cloud, token.right)
    if (api.error !== undefined) {
      problems.push(`the API at ${setup.cloud.apiBaseUrl} did not answer: ${api.error}`)
      if (exitCode === EXIT.ok) exitCode = EXIT.http
    } else if (api.status === 401) {
      problems.push(
        `the API refused the token (401${api.code === undefined ? "" : ` ${api.code}`}): check that its audience (aud) is the API of this cloud (MDE_CLOUD, MDE_SCOPE)`
      )
      exitCode = EXIT.auth
    } else if (api.status === 403) {
      warnings.push(
        api.code === "DisabledFeature"
          ? "the API answered 403 DisabledFeature: turn live response on in Defender's advanced features"
          : `the API answered 403${api.code === undefined ? "" : ` ${api.code}`} to ${api.request} (it needs ${READ.join(" or ")})`
      )
    } else if (api.status !== undefined && api.status >= 400) {
      warnings.push(`the API answered ${api.status}${api.code === undefined ? "" : ` ${api.code}`} to ${api.request}`)
    }
    if (api.error === undefined && api.skewSeconds === undefined) {
      warnings.push("the API's answer had no Date header: the clock could not be compared")
    } else if (api.skewSeconds !== undefined && Math.abs(api.skewSeconds) * 1000 > SKEW_LIMIT_MILLIS) {
      warnings.push(
        `this machine's clock is ${Math.abs(api.skewSeconds)} s ${api.skewSeconds > 0 ? "behind" : "ahead of"} the API's: token and 30-minute link lifetimes are judged on it; set the clock (NTP)`
      )
    }
    return {
      ...base,
      ok: exitCode === EXIT.ok,
      exitCode,
      token: {
        jwt: claims !== undefined,
        tenantId: claims?.tenantId,
        appId: claims?.appId,
        audience: claims?.audience,
        expiresAt: iso(claims?.expiresAt),
        roles: claims?.roles,
        scopes: claims?.scopes
      },
      permissions,
      notWorking,
      api,
      problems,
      warnings
    }
  })

// ---------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------

const mark = (ok: boolean | undefined) => (ok === undefined ? "?" : ok ? "✓" : "✗")

/** The report for people: a few sections, ✓/✗/? lines, and what to fix. */
export const renderText = (report: Report): string => {
  const out: Array<string> = []
  if (report.source === "simulator") {
    out.push("settings: none read (--simulate)")
  } else {
    out.push("settings")
    for (const s of report.settings) {
      out.push(`  ${s.set ? "✓" : "·"} ${s.name.padEnd(21)} ${s.set ? s.value ?? "set (not shown)" : "not set"}`)
    }
  }
  if (report.cloud !== undefined) {
    out.push(
      `cloud: ${report.cloud.name}: API ${report.cloud.apiBaseUrl}, login ${report.cloud.authorityHost}, scope ${report.cloud.scope}`
    )
  }
  if (report.login !== undefined) out.push(`login: ${report.login}`)
  if (report.token !== undefined) {
    const t = report.token
    out.push(
      t.jwt
        ? `token: ✓ tenant (tid) ${t.tenantId ?? "?"}, app (appid) ${t.appId ?? "?"}, audience ${t.audience ?? "?"}, expires ${
          t.expiresAt ?? "?"
        }`
        : "token: ✓ had (not a JWT: its claims cannot be read)"
    )
    if (t.jwt) out.push(`  roles: ${t.roles === undefined ? "none (no roles claim)" : t.roles.join(", ") || "none"}`)
    if (t.scopes !== undefined) out.push(`  scp (delegated): ${t.scopes.join(", ")}`)
  }
  if (report.permissions.length > 0) {
    out.push("permissions (application permissions of WindowsDefenderATP, any one per line)")
    for (const p of report.permissions) {
      const who = p.commands.length > 0 ? p.commands.join(", ") : `library only: ${p.library.join(", ")}`
      out.push(`  ${mark(p.granted)} ${p.call.padEnd(39)} ${p.anyOf.join(" or ").padEnd(46)} ${who}`)
    }
  }
  if (report.api !== undefined) {
    const a = report.api
    out.push(
      a.error !== undefined
        ? `api: ✗ ${a.request}: ${a.error}`
        : `api: ${a.status !== undefined && a.status < 400 ? "✓" : "✗"} ${a.request} → ${a.status}${a.code === undefined ? "" : ` ${a.code}`}${
          a.message === undefined ? "" : `: ${a.message}`
        }`
    )
    if (a.skewSeconds !== undefined) {
      const off = Math.abs(a.skewSeconds)
      out.push(
        `clock: ${off * 1000 > SKEW_LIMIT_MILLIS ? "✗" : "✓"} ${
          off <= 1 ? "in step with the API's (within a second)" : `${off} s ${a.skewSeconds > 0 ? "behind" : "ahead of"} the API's`
        } (Date: ${a.date})`
      )
    }
  }
  for (const w of report.warnings) out.push(`warning: ${w}`)
  for (const p of report.problems) out.push(`problem: ${p}`)
  out.push(report.ok ? "ok: every command will work" : `not ok (exit ${report.exitCode})`)
  return out.join("\n")
}

// ---------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------

/** A doctor's finding that fails the command: the report has said the rest. */
class RolesLacking extends PermissionDenied {
  override get message(): string {
    return this.apiMessage ?? "the token's roles lack a permission"
  }
}

class TokenRefused extends AuthenticationError {
  override get message(): string {
    return this.description ?? "no usable token"
  }
}

/** The error that sets the exit code (main.ts's EXIT_CODES), the first problem as its line. */
const failureOf = (report: Report): ConfigError.ConfigError | AuthenticationError | PermissionDenied | HttpError | undefined => {
  const line = report.problems[0] ?? "not ok"
  switch (report.exitCode) {
    case EXIT.ok:
      return undefined
    case EXIT.config: {
      const missing = report.settings.find((s) => LOGIN_NAMES.some((n) => n === s.name) && !s.set)?.name ?? "MDE_TOKEN"
      // main adds the --simulate hint to a missing setting's error line itself.
      return ConfigError.MissingData([missing], line.endsWith(OR_SIMULATE) ? line.slice(0, -OR_SIMULATE.length) : line)
    }
    case EXIT.auth:
      return new TokenRefused({ reason: "Unauthorized", errorCodes: [], description: line })
    case EXIT.permission:
      return new RolesLacking({ apiMessage: line })
    default:
      return HttpError.transport({ method: "GET", url: report.cloud?.apiBaseUrl ?? "(the API)", attempts: 1, detail: line })
  }
}

/** `doctor [--format json|text] [--simulate]`. */
export const doctor: Command.Command<
  "doctor",
  never,
  ConfigError.ConfigError | AuthenticationError | PermissionDenied | HttpError,
  { readonly format: "json" | "text"; readonly simulate: boolean }
> = Command.make("doctor", { format: formatOption, simulate }, ({ format, simulate }) =>
  Effect.gen(function*() {
    const report = simulate
      ? yield* Effect.flatMap(DefenderSimulator.make(), (sim) =>
        diagnose(simulatedSetup).pipe(Effect.provide(DefenderSimulator.layerHttpClient(sim))))
      : yield* Effect.flatMap(readSetup, (setup) => diagnose(setup).pipe(Effect.provide(FetchHttpClient.layer)))
    yield* Console.log(format === "json" ? JSON.stringify(report) : renderText(report))
    const failure = failureOf(report)
    if (failure !== undefined) return yield* Effect.fail(failure)
  })).pipe(
    Command.withDescription(
      "check the settings, get a token, say which commands its roles allow, and compare this machine's clock with the API's"
    )
  )
