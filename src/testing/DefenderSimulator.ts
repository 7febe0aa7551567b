/**
 * A simulated Microsoft Defender for Endpoint tenant: the Entra ID token
 * endpoint, the Defender API's live response calls and the blob storage
 * behind result links, in one web handler `(Request) => Response`.
 *
 * Use it in-process (`layerHttpClient`: an `HttpClient` with no sockets, whose
 * time is the calling fiber's `Clock`, so `TestClock` drives rate windows, link
 * expiry and the machine-action lifecycle) or served on 127.0.0.1 (`serve`: the
 * demo, other processes, benchmarks). It records what it received, so tests
 * can assert on what was sent.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { DefenderAuth, DefenderClient, DefenderRateLimiter, LiveResponse } from "mde-live-response"
 * import { DefenderSimulator } from "mde-live-response/testing"
 *
 * const test = Effect.gen(function*() {
 *   const sim = yield* DefenderSimulator.make()
 *   const transcript = yield* LiveResponse.getTranscript({ machineActionId: DefenderSimulator.ACTIONS.runScript, index: 0 }).pipe(
 *     Effect.provide(DefenderClient.layer().pipe(
 *       Layer.provide(Layer.merge(DefenderAuth.layerToken(DefenderSimulator.STATIC_TOKEN), DefenderRateLimiter.layer())),
 *       Layer.provide(DefenderSimulator.layerHttpClient(sim))
 *     ))
 *   )
 *   // transcript.scriptName === "minidump.ps1"; sim.count("getResultLink") === 1
 * })
 * ```
 *
 * @module
 * @since 0.1.0
 */
import { HttpClient, HttpClientError, HttpClientResponse } from "@effect/platform"
import { Clock, Duration, Effect, Layer, Redacted, Runtime, type Scope, Stream } from "effect"
import { createHash } from "node:crypto"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import * as DefenderAuth from "../DefenderAuth.ts"
import * as DefenderCloud from "../DefenderCloud.ts"
import type { RateLimit } from "../DefenderRateLimiter.ts"

// ---------------------------------------------------------------------------
// Options and model
// ---------------------------------------------------------------------------

/**
 * Injectable faults, applied to every request at the given rates (0 to 1).
 * `dropRate`, `errorRate` and `throttleRate` share one roll of the dice, so
 * they add up (a request gets at most one of them); the download faults
 * (`cutRate`, `corruptRate`, `trickleRate`) are rolled on the successful
 * downloads. `sim.received` records which faults each request got.
 *
 * @since 0.1.0
 */
export interface Faults {
  /** The share of requests answered with a 500, 502 or 503. */
  readonly errorRate?: number | undefined
  /** The share of requests whose connection is dropped without an answer. */
  readonly dropRate?: number | undefined
  /**
   * The share of API requests (not token or storage requests) answered with 429
   * `TooManyRequests`, Defender's OData error body and a `Retry-After` of
   * `throttleRetryAfter`, whatever the quota says: a tenant busy with other callers.
   */
  readonly throttleRate?: number | undefined
  /**
   * The wait a `throttleRate` 429 asks for; default 1 second. Sent as `Retry-After` in whole
   * seconds (rounded up), plus `retry-after-ms` when it is not a whole number of seconds, as
   * some Azure services send (clients that read it can then wait less than a second).
   */
  readonly throttleRetryAfter?: Duration.DurationInput | undefined
  /** Added before every answer. */
  readonly latency?: Duration.DurationInput | undefined
  /** The share of successful downloads whose body trickles: 1 KiB at a time, `trickleDelay` apart. */
  readonly trickleRate?: number | undefined
  /** The pause between two trickled chunks; default 1 second. */
  readonly trickleDelay?: Duration.DurationInput | undefined
  /** The share of successful downloads whose connection breaks at a random byte of the body. */
  readonly cutRate?: number | undefined
  /** The share of successful downloads with one byte of the body changed (the MD5 header is not). */
  readonly corruptRate?: number | undefined
  /** Answer range requests with the whole file (200), as some proxies do. */
  readonly ignoreRange?: boolean | undefined
  /** Leave `Retry-After` out of 429 answers (the docs do not promise it on every one). */
  readonly omitRetryAfter?: boolean | undefined
  /** Seed of the fault dice, so a run can be repeated. */
  readonly seed?: number | undefined
}

/**
 * Options of the simulator. Every duration is simulated time: under `TestClock`
 * in-process, real time when served.
 *
 * @since 0.1.0
 */
export interface Options {
  /** The tenant the token endpoint accepts; default `SIMULATED_TENANT`. */
  readonly tenantId?: string | undefined
  /** The app (client) id the token endpoint accepts; default `SIMULATED_CLIENT_ID`. */
  readonly clientId?: string | undefined
  /** The client secret the token endpoint accepts; default `SIMULATED_CLIENT_SECRET`. */
  readonly clientSecret?: Redacted.Redacted<string> | undefined
  /** Tokens the API accepts without a login, default `[STATIC_TOKEN]`. */
  readonly staticTokens?: ReadonlyArray<Redacted.Redacted<string>> | undefined
  /** How long an issued token is valid; default 1 hour. */
  readonly tokenLifetime?: Duration.DurationInput | undefined
  /** The quota of the result-link and get-machine-action endpoints; default 100/min and 1500/h. */
  readonly rateLimits?: ReadonlyArray<RateLimit> | undefined
  /** The quota of run live response; default 10/min. */
  readonly runLimits?: ReadonlyArray<RateLimit> | undefined
  /** How long a result link is valid; default 30 minutes. */
  readonly linkLifetime?: Duration.DurationInput | undefined
  /** How long a new machine action stays `Pending`; default 2 seconds. */
  readonly pendingFor?: Duration.DurationInput | undefined
  /** How long a new machine action stays `InProgress`; default 5 seconds. */
  readonly runFor?: Duration.DurationInput | undefined
  /** How long get machine action answers 404 for a new action, as the API can for a moment; default 0. */
  readonly visibleAfter?: Duration.DurationInput | undefined
  /** Where result links point; `serve` sets its own origin. Default `https://simulator.blob.core.windows.net`. */
  readonly blobOrigin?: string | undefined
  /** Faults to inject. */
  readonly faults?: Faults | undefined
}

/** The tenant id the simulator accepts by default. @since 0.1.0 */
export const SIMULATED_TENANT = "00000000-0000-4000-8000-00000000feed"
/** The client id the simulator accepts by default. @since 0.1.0 */
export const SIMULATED_CLIENT_ID = "00000000-0000-4000-8000-00000000c11e"
/** The client secret the simulator accepts by default. @since 0.1.0 */
export const SIMULATED_CLIENT_SECRET: Redacted.Redacted<string> = Redacted.make("simulated-client-secret")
/** A bearer token the simulator's API accepts without a login. @since 0.1.0 */
export const STATIC_TOKEN: Redacted.Redacted<string> = Redacted.make("simulated-static-token")

/**
 * The machine actions every simulator starts with (all `Succeeded` unless said).
 *
 * @since 0.1.0
 */
export const ACTIONS = {
  /** One RunScript command whose transcript is the one of Microsoft's docs (raw newlines, NUL padding). */
  runScript: "5e1d0000-0000-4000-8000-000000000001",
  /** Three RunScript commands, one per transcript variant: BOM + `name` + string exit code; `script_errors` + exit 1; plain. */
  variants: "5e1d0000-0000-4000-8000-000000000002",
  /** A GetFile command whose result is a gzip file. */
  getFile: "5e1d0000-0000-4000-8000-000000000003",
  /** A `Failed` action: its RunScript command failed and has no result. */
  failed: "5e1d0000-0000-4000-8000-000000000004",
  /** A `Succeeded` action whose result file is gone from storage (404 BlobNotFound). */
  blobGone: "5e1d0000-0000-4000-8000-000000000005"
} as const

/**
 * The endpoints the simulator counts requests by.
 *
 * @since 0.1.0
 */
export type Endpoint =
  | "token"
  | "getMachineAction"
  | "runLiveResponse"
  | "cancel"
  | "uploadLibraryFile"
  | "getResultLink"
  | "blob"
  | "unknown"

/**
 * One request the simulator received.
 *
 * @since 0.1.0
 */
export interface Received {
  readonly endpoint: Endpoint
  readonly method: string
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  /** Simulated time, epoch milliseconds. */
  readonly at: number
  /** The answer's status; 0 for a dropped connection. */
  readonly status: number
  /** The faults injected into this request's answer, if any. */
  readonly faults: ReadonlyArray<Fault>
}

/**
 * A fault injected into one answer (see `Faults`).
 *
 * @since 0.1.0
 */
export type Fault = "drop" | "error" | "throttle" | "cut" | "corrupt" | "trickle"

/**
 * A live response command as the API describes it.
 *
 * @since 0.1.0
 */
export interface CommandSpec {
  readonly type: "RunScript" | "GetFile" | "PutFile"
  readonly params: ReadonlyArray<{ readonly key: string; readonly value: string }>
}

/**
 * A simulated tenant.
 *
 * @since 0.1.0
 */
export interface DefenderSimulator {
  /** Answers one request; time is the calling fiber's `Clock`. A dropped connection is `undefined`. */
  readonly handle: (request: Request) => Effect.Effect<Response | undefined>
  /** Every request received so far, in order. */
  readonly received: ReadonlyArray<Received>
  /** How many requests an endpoint received (optionally only those answered with `status`). */
  readonly count: (endpoint: Endpoint, status?: number) => number
  /** Adds a `Succeeded` machine action whose RunScript commands answer with the given transcripts. */
  readonly addTranscripts: (id: string, transcripts: ReadonlyArray<string | Uint8Array>) => void
  /**
   * Adds a `Succeeded` machine action whose GetFile commands answer with the given files. The
   * bytes are kept as given, not copied (only hashed once), so a benchmark can serve a 1 GiB result.
   */
  readonly addFiles: (id: string, files: ReadonlyArray<{ readonly path: string; readonly bytes: Uint8Array }>) => void
  /** Replaces a command's result file in storage (a new ETag), as if it had been rewritten. */
  readonly replaceResult: (id: string, index: number, bytes: Uint8Array) => void
  /** Changes the injected faults from now on. */
  readonly setFaults: (faults: Faults | undefined) => void
  /** Where result links point (set by `serve`). */
  blobOrigin: string
}

// ---------------------------------------------------------------------------
// Content
// ---------------------------------------------------------------------------

const SEED_TRANSCRIPT = `{
    "script_name": "minidump.ps1",
    "exit_code": 0,
    "script_output": "Transcript started, output file is C:\\\\ProgramData\\\\Microsoft\\\\Windows Defender Advanced Threat Protection\\\\Temp\\\\PSScriptOutputs\\\\PSScript_Transcript_{TRANSCRIPT_ID}.txt
C:\\\\windows\\\\TEMP\\\\OfficeClickToRun.dmp.zip\\n51 MB\\n\u0000\u0000\u0000",
    "script_error":""
}`

const encoder = new TextEncoder()

const transcriptFor = (script: string, args: string, variant: number): Uint8Array => {
  const output = `Transcript started, output file is C:\\ProgramData\\Microsoft\\Windows Defender Advanced Threat Protection\\Temp\\PSScriptOutputs\\PSScript_Transcript_${variant}.txt\n` +
    `${script} ${args}`.trim() + "\nDone.\n"
  const rawOutput = JSON.stringify(output).slice(1, -1).replace(/\\n/g, "\n") + "\u0000".repeat(8)
  switch (variant % 3) {
    case 0:
      return encoder.encode(
        `\uFEFF{"name": "${script}", "exit_code": "0", "script_output": "${rawOutput}", "script_error": ""}`
      )
    case 1:
      return encoder.encode(
        `{"script_name": "${script}", "exit_code": 1, "script_output": "${rawOutput}", "script_errors": "Access is denied.\n\u0000\u0000"}`
      )
    default:
      return encoder.encode(JSON.stringify({ script_name: script, exit_code: 0, script_output: output, script_error: "" }))
  }
}

/** Deterministic, compressible file content for GetFile results. */
const fileContent = (path: string, size: number): Uint8Array => {
  const line = encoder.encode(`${path}: simulated file content, line `)
  const out = new Uint8Array(size)
  let n = 0
  for (let i = 0; i < size;) {
    const text = encoder.encode(`${n++}\n`)
    for (const chunk of [line, text]) {
      out.set(chunk.subarray(0, Math.min(chunk.length, size - i)), i)
      i += chunk.length
      if (i >= size) break
    }
  }
  return out
}

const gzip = (bytes: Uint8Array): Effect.Effect<Uint8Array> =>
  Effect.promise(async () => {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream("gzip"))
    return new Uint8Array(await new Response(stream).arrayBuffer())
  })

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

type Status = "Pending" | "InProgress" | "Succeeded" | "Failed" | "TimeOut" | "Cancelled"

interface SimCommand {
  readonly spec: CommandSpec
  /** The blob holding the result, if the command has one. */
  blob: string | undefined
  errors: Array<string>
}

interface SimAction {
  readonly id: string
  readonly machineId: string
  readonly comment: string
  readonly createdAt: number
  /** When the action leaves Pending and when it ends; `Infinity` never. */
  readonly startsAt: number
  readonly endsAt: number
  readonly outcome: "Succeeded" | "Failed" | "TimeOut"
  cancelledAt: number | undefined
  readonly commands: Array<SimCommand>
}

interface Blob {
  readonly bytes: Uint8Array
  readonly md5: string
  readonly etag: string
  readonly contentType: string
}

/** A sliding-log window, as Defender counts calls. */
const makeWindows = (limits: ReadonlyArray<RateLimit>) => {
  const windows = limits.map((l) => ({
    limit: l.limit,
    millis: Duration.toMillis(Duration.decode(l.window)),
    granted: [] as Array<number>
  }))
  /** 0 when the call is allowed (and counted), else the milliseconds until it would be. */
  return (now: number): number => {
    let wait = 0
    for (const w of windows) {
      while (w.granted.length > 0 && w.granted[0]! <= now - w.millis) w.granted.shift()
      if (w.granted.length >= w.limit) wait = Math.max(wait, w.granted[0]! + w.millis - now)
    }
    if (wait > 0) return wait
    for (const w of windows) w.granted.push(now)
    return 0
  }
}

/** A small seeded PRNG (mulberry32), so fault runs repeat. */
const prng = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `decodeURIComponent` that answers the text as it is when it is not valid percent-encoding. */
const safeDecode = (text: string): string => {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

const json = (status: number, body: unknown, headers?: Record<string, string>): Response =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers }
  })

const odata = (status: number, code: string, message: string, requestId: string, headers?: Record<string, string>) =>
  json(status, { error: { code, message, target: requestId } }, headers)

const storageError = (status: number, code: string, message: string, requestId: string): Response =>
  new Response(
    `\uFEFF<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${message}\nRequestId:${requestId}\nTime:${
      new Date().toISOString()
    }</Message></Error>`,
    { status, headers: { "content-type": "application/xml", "x-ms-error-code": code, "x-ms-request-id": requestId } }
  )

// ---------------------------------------------------------------------------
// The simulator
// ---------------------------------------------------------------------------

/**
 * Creates a simulated tenant with the preset machine actions of `ACTIONS`.
 *
 * @since 0.1.0
 */
export const make = (options?: Options): Effect.Effect<DefenderSimulator> =>
  Effect.gen(function*() {
    const tenantId = options?.tenantId ?? SIMULATED_TENANT
    const clientId = options?.clientId ?? SIMULATED_CLIENT_ID
    const clientSecret = Redacted.value(options?.clientSecret ?? SIMULATED_CLIENT_SECRET)
    const staticTokens = new Set((options?.staticTokens ?? [STATIC_TOKEN]).map(Redacted.value))
    const tokenLifetime = Duration.toMillis(Duration.decode(options?.tokenLifetime ?? "1 hour"))
    const linkLifetime = Duration.toMillis(Duration.decode(options?.linkLifetime ?? "30 minutes"))
    const pendingFor = Duration.toMillis(Duration.decode(options?.pendingFor ?? "2 seconds"))
    const runFor = Duration.toMillis(Duration.decode(options?.runFor ?? "5 seconds"))
    const visibleAfter = Duration.toMillis(Duration.decode(options?.visibleAfter ?? 0))
    const resultQuota = makeWindows(
      options?.rateLimits ?? [{ limit: 100, window: "1 minute" }, { limit: 1500, window: "1 hour" }]
    )
    const actionQuota = makeWindows(
      options?.rateLimits ?? [{ limit: 100, window: "1 minute" }, { limit: 1500, window: "1 hour" }]
    )
    const runQuota = makeWindows(options?.runLimits ?? [{ limit: 10, window: "1 minute" }])
    let faults = options?.faults
    const dice = prng(faults?.seed ?? 1)
    const latency = () => (faults?.latency === undefined ? 0 : Duration.toMillis(Duration.decode(faults.latency)))
    const trickleDelay = () => Duration.decode(faults?.trickleDelay ?? "1 second")

    /** The same answer with its body sent 1 KiB at a time, paced on the simulator's clock. */
    const trickle = (response: Response) =>
      Effect.map(Effect.runtime<never>(), (runtime) => {
        if (response.body === null) return response
        const body = Stream.fromReadableStream({
          evaluate: () => response.body!,
          onError: (cause) => cause
        }).pipe(
          Stream.mapConcat((chunk) => Array.from({ length: Math.ceil(chunk.length / 1024) }, (_, i) =>
            chunk.subarray(i * 1024, (i + 1) * 1024))),
          Stream.tap(() => Effect.sleep(trickleDelay()))
        )
        return new Response(Stream.toReadableStreamRuntime(body, runtime), {
          status: response.status,
          headers: response.headers
        })
      })

    const tokens = new Map<string, number>()
    const library = new Map<string, string>()
    const actions = new Map<string, SimAction>()
    const blobs = new Map<string, Blob>()
    const links = new Map<string, { readonly blob: string; readonly expiresAt: number }>()
    const received: Array<Received> = []
    let sequence = 0
    const nextId = (prefix: string) => `${prefix}${(++sequence).toString(16).padStart(12, "0")}`

    const putBlob = (bytes: Uint8Array, contentType: string): string => {
      const id = nextId("blob-")
      const md5 = createHash("md5").update(bytes).digest("base64")
      blobs.set(id, { bytes, md5, etag: `"0x8D${createHash("md5").update(id).digest("hex").slice(0, 12).toUpperCase()}"`, contentType })
      return id
    }

    const addAction = (
      id: string,
      specs: ReadonlyArray<CommandSpec>,
      results: ReadonlyArray<Uint8Array | undefined>,
      outcome: SimAction["outcome"] = "Succeeded",
      at = 0
    ) => {
      actions.set(id, {
        id,
        machineId: `machine-${id.slice(-4)}`,
        comment: "preset",
        createdAt: at,
        startsAt: at,
        endsAt: at,
        outcome,
        cancelledAt: undefined,
        commands: specs.map((spec, i) => ({
          spec,
          blob: results[i] === undefined ? undefined : putBlob(results[i]!, "application/octet-stream"),
          errors: outcome === "Failed" ? ["Script execution failed: the script threw an exception"] : []
        }))
      })
    }

    const runScript = (name: string): CommandSpec => ({
      type: "RunScript",
      params: [{ key: "ScriptName", value: name }]
    })

    // Presets.
    addAction(ACTIONS.runScript, [runScript("minidump.ps1")], [encoder.encode(SEED_TRANSCRIPT)])
    addAction(
      ACTIONS.variants,
      [runScript("collect.ps1"), runScript("audit.ps1"), runScript("inventory.ps1")],
      [transcriptFor("collect.ps1", "", 0), transcriptFor("audit.ps1", "", 1), transcriptFor("inventory.ps1", "", 2)]
    )
    const dumpPath = "C:\\windows\\TEMP\\OfficeClickToRun.dmp.zip"
    addAction(
      ACTIONS.getFile,
      [{ type: "GetFile", params: [{ key: "Path", value: dumpPath }] }],
      [yield* gzip(fileContent(dumpPath, 1024 * 1024))]
    )
    addAction(ACTIONS.failed, [runScript("broken.ps1")], [undefined], "Failed")
    addAction(ACTIONS.blobGone, [runScript("old.ps1")], [encoder.encode(SEED_TRANSCRIPT)])
    blobs.delete(actions.get(ACTIONS.blobGone)!.commands[0]!.blob!)

    const statusAt = (action: SimAction, now: number): Status => {
      if (action.cancelledAt !== undefined && action.cancelledAt < action.endsAt) return "Cancelled"
      if (now < action.startsAt) return "Pending"
      if (now < action.endsAt) return "InProgress"
      return action.outcome
    }

    const actionJson = (action: SimAction, now: number) => {
      const status = statusAt(action, now)
      const iso = (t: number) => new Date(t).toISOString()
      return {
        "@odata.context": "https://api.security.microsoft.com/api/$metadata#MachineActions/$entity",
        id: action.id,
        type: "LiveResponse",
        title: null,
        requestor: "simulator@contoso.example",
        requestorComment: action.comment,
        status,
        machineId: action.machineId,
        computerDnsName: `${action.machineId}.contoso.example`,
        creationDateTimeUtc: iso(action.createdAt),
        lastUpdateDateTimeUtc: iso(Math.min(now, action.endsAt)),
        commands: action.commands.map((c, index) => {
          const done = status === "Succeeded" || (status === "Failed" && index > 0)
          return {
            index,
            startTime: status === "Pending" ? null : iso(action.startsAt),
            endTime: done ? iso(action.endsAt) : null,
            commandStatus: status === "Succeeded"
              ? "Completed"
              : status === "Failed" && index === 0
              ? "Failed"
              : status === "Pending"
              ? "Created"
              : status === "InProgress"
              ? "InProgress"
              : "Created",
            errors: status === "Failed" && index === 0 ? c.errors : [],
            command: { type: c.spec.type, params: c.spec.params }
          }
        })
      }
    }

    const throttled = (wait: number, requestId: string) =>
      odata(
        429,
        "TooManyRequests",
        "Rate limit is exceeded. Try again later.",
        requestId,
        faults?.omitRetryAfter === true ? {} : { "retry-after": String(Math.max(1, Math.ceil(wait / 1000))) }
      )

    const throttledFault = (requestId: string) => {
      const wait = Math.max(0, Math.ceil(Duration.toMillis(Duration.decode(faults?.throttleRetryAfter ?? "1 second"))))
      const response = throttled(wait, requestId)
      if (faults?.omitRetryAfter !== true && wait % 1000 !== 0) response.headers.set("retry-after-ms", String(wait))
      return response
    }

    const authorized = (request: Request, now: number): boolean => {
      const header = request.headers.get("authorization") ?? ""
      const token = header.startsWith("Bearer ") ? header.slice(7) : ""
      if (staticTokens.has(token)) return true
      const expires = tokens.get(token)
      return expires !== undefined && expires > now
    }

    const tokenEndpoint = (request: Request, tenant: string, now: number, requestId: string) =>
      Effect.map(Effect.promise(() => request.text()), (text): Response => {
        const form = new URLSearchParams(text)
        const fail = (status: number, error: string, code: number, description: string) =>
          json(status, {
            error,
            error_description: `AADSTS${code}: ${description}\r\nTrace ID: ${requestId}\r\nCorrelation ID: ${requestId}\r\nTimestamp: ${
              new Date(now).toISOString()
            }`,
            error_codes: [code],
            timestamp: new Date(now).toISOString(),
            trace_id: requestId,
            correlation_id: requestId
          })
        if (tenant !== tenantId) return fail(400, "invalid_request", 90002, `Tenant '${tenant}' not found.`)
        if (form.get("grant_type") !== "client_credentials") {
          return fail(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        }
        if (form.get("client_id") !== clientId) {
          return fail(
            400,
            "unauthorized_client",
            700016,
            `Application with identifier '${form.get("client_id")}' was not found in the directory '${tenant}'.`
          )
        }
        if (form.get("client_secret") !== clientSecret) {
          return fail(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."
          )
        }
        const token = `sim-token-${nextId("")}-${Math.floor(dice() * 1e9).toString(36)}`
        tokens.set(token, now + tokenLifetime)
        return json(200, {
          token_type: "Bearer",
          expires_in: Math.floor(tokenLifetime / 1000),
          ext_expires_in: Math.floor(tokenLifetime / 1000),
          access_token: token
        })
      })

    const resultLink = (id: string, index: number, now: number, requestId: string): Response => {
      const action = actions.get(id)
      if (action === undefined) return odata(404, "ResourceNotFound", `Machine action ${id} was not found`, requestId)
      const command = action.commands[index]
      if (command === undefined) {
        return odata(404, "ResourceNotFound", `Machine action ${id} has no command at index ${index}`, requestId)
      }
      if (statusAt(action, now) !== "Succeeded" || command.blob === undefined) {
        return odata(404, "ResourceNotFound", `Command ${index} of machine action ${id} has no result`, requestId)
      }
      const sig = createHash("sha256").update(`${command.blob}:${now}:${dice()}`).digest("base64")
      links.set(sig, { blob: command.blob, expiresAt: now + linkLifetime })
      const se = new Date(now + linkLifetime).toISOString().replace(/\.\d{3}Z$/, "Z")
      const url = `${sim.blobOrigin}/blob/investigation-actions-data/${id}/CustomPlaybookCommandOutput/${command.blob}` +
        `?se=${encodeURIComponent(se)}&sp=r&sv=2019-07-07&sr=b&sig=${encodeURIComponent(sig)}`
      return json(200, { "@odata.context": "https://api.security.microsoft.com/api/$metadata#Edm.String", value: url })
    }

    const blobEndpoint = (request: Request, url: URL, now: number, requestId: string): Response => {
      // The SAS is the credential; a bearer token sent along is an error (and a leak).
      if (request.headers.has("authorization")) {
        return storageError(400, "InvalidAuthenticationInfo", "Authentication information is not given in the correct format.", requestId)
      }
      const name = url.pathname.split("/").pop() ?? ""
      const link = links.get(url.searchParams.get("sig") ?? "")
      if (link === undefined || link.blob !== name) {
        return storageError(
          403,
          "AuthenticationFailed",
          "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
          requestId
        )
      }
      if (now >= link.expiresAt) {
        return storageError(
          403,
          "AuthenticationFailed",
          `Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature. Signed expiry time [${
            new Date(link.expiresAt).toUTCString()
          }] must be after signed start time [${new Date(now).toUTCString()}]. Signature not valid in the specified time frame`,
          requestId
        )
      }
      const blob = blobs.get(name)
      if (blob === undefined) return storageError(404, "BlobNotFound", "The specified blob does not exist.", requestId)
      const ifMatch = request.headers.get("if-match")
      if (ifMatch !== null && ifMatch !== "*" && ifMatch !== blob.etag) {
        return storageError(412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.", requestId)
      }
      const headers: Record<string, string> = {
        "content-type": blob.contentType,
        "etag": blob.etag,
        "accept-ranges": "bytes",
        "x-ms-request-id": requestId,
        "x-ms-blob-type": "BlockBlob",
        "x-ms-blob-content-md5": blob.md5
      }
      // `ignoreRange` plays a storage (or proxy) that answers a range request with the whole file.
      const range = faults?.ignoreRange === true ? null : /^bytes=(\d+)-(\d*)$/.exec(request.headers.get("range") ?? "")
      if (range !== null) {
        const start = Number(range[1])
        const end = range[2] === "" ? blob.bytes.length - 1 : Math.min(Number(range[2]), blob.bytes.length - 1)
        if (start >= blob.bytes.length || end < start) {
          return new Response(null, { status: 416, headers: { "content-range": `bytes */${blob.bytes.length}` } })
        }
        return new Response(blob.bytes.slice(start, end + 1) as Uint8Array<ArrayBuffer>, {
          status: 206,
          headers: {
            ...headers,
            "content-range": `bytes ${start}-${end}/${blob.bytes.length}`,
            "content-length": String(end + 1 - start)
          }
        })
      }
      return new Response(blob.bytes as Uint8Array<ArrayBuffer>, {
        status: 200,
        headers: { ...headers, "content-md5": blob.md5, "content-length": String(blob.bytes.length) }
      })
    }

    const runLiveResponse = (request: Request, machineId: string, now: number, requestId: string) =>
      Effect.map(Effect.promise(() => request.text()), (text): Response => {
        let body: { Commands?: unknown; Comment?: unknown }
        try {
          body = JSON.parse(text)
        } catch {
          return odata(400, "InvalidRequestBody", "The request body is not valid JSON", requestId)
        }
        if (typeof body !== "object" || body === null) {
          return odata(400, "InvalidRequestBody", "The request body must be a JSON object", requestId)
        }
        const commands = Array.isArray(body.Commands) ? body.Commands : undefined
        const valid = commands !== undefined && commands.length > 0 && commands.every((c: any) =>
          (c?.type === "RunScript" || c?.type === "GetFile" || c?.type === "PutFile") && Array.isArray(c.params) &&
          c.params.every((p: any) => typeof p?.key === "string" && typeof p?.value === "string")
        )
        if (!valid || typeof body.Comment !== "string") {
          return odata(400, "InvalidRequestBody", "Commands (type, params) and Comment are required", requestId)
        }
        for (const action of actions.values()) {
          const status = statusAt(action, now)
          if (action.machineId === machineId && (status === "Pending" || status === "InProgress")) {
            return odata(
              400,
              "ActiveRequestAlreadyExists",
              `Action is already in progress on machine ${machineId}`,
              requestId
            )
          }
        }
        const specs = commands as Array<CommandSpec>
        const id = crypto.randomUUID()
        const scriptFails = specs.some((c) => c.params.some((p) => /fail/i.test(p.value)))
        const timesOut = specs.some((c) => c.params.some((p) => /timeout/i.test(p.value)))
        const action: SimAction = {
          id,
          machineId,
          comment: body.Comment,
          createdAt: now,
          startsAt: now + pendingFor,
          endsAt: timesOut ? now + pendingFor + 10 * 60_000 : now + pendingFor + runFor,
          outcome: scriptFails ? "Failed" : timesOut ? "TimeOut" : "Succeeded",
          cancelledAt: undefined,
          commands: []
        }
        let failed = false
        for (const spec of specs) {
          const param = (key: string) => spec.params.find((p) => p.key === key)?.value ?? ""
          let result: Uint8Array | undefined
          if (!failed && spec.type === "RunScript") {
            result = transcriptFor(param("ScriptName"), param("Args"), sequence)
          }
          if (!failed && spec.type === "GetFile") result = fileContent(param("Path"), 64 * 1024)
          if (scriptFails) failed = true
          action.commands.push({
            spec,
            blob: result === undefined || failed ? undefined : putBlob(result, "application/octet-stream"),
            errors: failed ? ["Script execution failed"] : []
          })
        }
        actions.set(id, action)
        return json(201, actionJson(action, now))
      })

    const uploadLibraryFile = (request: Request, requestId: string) =>
      Effect.map(
        Effect.promise(() => request.formData().catch(() => undefined)),
        (form): Response => {
          const file = form?.get("file")
          if (form === undefined || file === null || file === undefined || typeof file === "string") {
            return odata(400, "InvalidRequestBody", "A multipart body with a file is required", requestId)
          }
          const name = (file as File).name
          if (library.has(name) && form.get("OverrideIfExists") !== "true") {
            return odata(400, "FileAlreadyExists", `A library file named ${name} already exists`, requestId)
          }
          library.set(name, String(form.get("Description") ?? ""))
          return json(200, {
            "@odata.context": "https://api.security.microsoft.com/api/$metadata#LibraryFiles/$entity",
            fileName: name,
            sha256: createHash("sha256").update(name).digest("hex"),
            description: form.get("Description"),
            hasParameters: form.get("HasParameters") === "true",
            parametersDescription: form.get("ParametersDescription")
          })
        }
      )

    const route = (request: Request, url: URL, now: number, requestId: string) => {
      const path = url.pathname
      const login = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(path)
      if (login !== null && request.method === "POST") {
        return { endpoint: "token" as const, answer: tokenEndpoint(request, safeDecode(login[1]!), now, requestId) }
      }
      if (path.startsWith("/blob/") && request.method === "GET") {
        return { endpoint: "blob" as const, answer: Effect.succeed(blobEndpoint(request, url, now, requestId)) }
      }
      const api = (endpoint: Endpoint, quota: ((now: number) => number) | undefined, answer: () => Effect.Effect<Response>) => {
        if (!authorized(request, now)) {
          return {
            endpoint,
            answer: Effect.succeed(odata(401, "Unauthorized", "Authorization token is missing, invalid or expired", requestId))
          }
        }
        const wait = quota === undefined ? 0 : quota(now)
        return { endpoint, answer: wait > 0 ? Effect.succeed(throttled(wait, requestId)) : answer() }
      }
      const link = /^\/api\/machineactions\/([^/]+)\/GetLiveResponseResultDownloadLink\(index=(\d+)\)$/.exec(path)
      if (link !== null && request.method === "GET") {
        return api("getResultLink", resultQuota, () =>
          Effect.succeed(resultLink(safeDecode(link[1]!), Number(link[2]), now, requestId)))
      }
      const cancel = /^\/api\/machineactions\/([^/]+)\/cancel$/.exec(path)
      if (cancel !== null && request.method === "POST") {
        return api("cancel", actionQuota, () =>
          Effect.sync(() => {
            const action = actions.get(safeDecode(cancel[1]!))
            if (action === undefined) return odata(404, "ResourceNotFound", "Machine action was not found", requestId)
            const status = statusAt(action, now)
            if (status !== "Pending" && status !== "InProgress") {
              return odata(400, "InvalidRequest", `Machine action is already ${status}`, requestId)
            }
            action.cancelledAt = now
            return json(200, actionJson(action, now))
          }))
      }
      const get = /^\/api\/machineactions\/([^/]+)$/.exec(path)
      if (get !== null && request.method === "GET") {
        return api("getMachineAction", actionQuota, () =>
          Effect.sync(() => {
            const action = actions.get(safeDecode(get[1]!))
            return action === undefined || now < action.createdAt + visibleAfter
              ? odata(404, "ResourceNotFound", "Machine action was not found", requestId)
              : json(200, actionJson(action, now))
          }))
      }
      if (path === "/api/libraryfiles" && request.method === "POST") {
        return api("uploadLibraryFile", actionQuota, () => uploadLibraryFile(request, requestId))
      }
      const run = /^\/api\/machines\/([^/]+)\/runliveresponse$/.exec(path)
      if (run !== null && request.method === "POST") {
        return api("runLiveResponse", runQuota, () =>
          runLiveResponse(request, safeDecode(run[1]!), now, requestId))
      }
      return {
        endpoint: "unknown" as const,
        answer: Effect.succeed(odata(404, "ResourceNotFound", `No such endpoint: ${request.method} ${path}`, requestId))
      }
    }

    const handle = (request: Request): Effect.Effect<Response | undefined> =>
      Effect.gen(function*() {
        if (latency() > 0) yield* Effect.sleep(Duration.millis(latency()))
        const now = yield* Clock.currentTimeMillis
        const url = new URL(request.url)
        const requestId = crypto.randomUUID()
        const { answer, endpoint } = route(request, url, now, requestId)
        const headers: Record<string, string> = {}
        request.headers.forEach((value, key) => {
          headers[key] = value
        })
        const roll = dice()
        const drop = roll < (faults?.dropRate ?? 0)
        const error = !drop && roll < (faults?.dropRate ?? 0) + (faults?.errorRate ?? 0)
        // Only the Defender API throttles with 429: storage throttles with 503, and the token endpoint is left alone.
        const throttle = !drop && !error && endpoint !== "token" && endpoint !== "blob" && endpoint !== "unknown" &&
          roll < (faults?.dropRate ?? 0) + (faults?.errorRate ?? 0) + (faults?.throttleRate ?? 0)
        const injected: Array<Fault> = drop ? ["drop"] : error ? ["error"] : throttle ? ["throttle"] : []
        let response = drop
          ? undefined
          : error
          ? odata([500, 502, 503][Math.floor(dice() * 3)]!, "InternalServerError", "Simulated fault", requestId)
          : throttle
          ? throttledFault(requestId)
          : yield* answer
        if (response !== undefined && endpoint === "blob" && response.ok) {
          const cut = dice() < (faults?.cutRate ?? 0)
          const corrupt = dice() < (faults?.corruptRate ?? 0)
          if (cut) injected.push("cut")
          if (corrupt) injected.push("corrupt")
          if (cut || corrupt) {
            const original = response
            const bytes = new Uint8Array(yield* Effect.promise(() => original.arrayBuffer()))
            if (corrupt && bytes.length > 0) bytes[Math.floor(dice() * bytes.length)] ^= 0xff
            const at = Math.floor(dice() * bytes.length)
            let delivered = 0
            response = new Response(
              new ReadableStream<Uint8Array>({
                // Pulled, not started: erroring a stream drops what is still queued in it,
                // and the bytes before the cut must reach the client.
                pull(controller) {
                  if (!cut) {
                    controller.enqueue(bytes)
                    controller.close()
                  } else if (delivered === 0 && at > 0) {
                    delivered = at
                    controller.enqueue(bytes.slice(0, at))
                  } else {
                    controller.error(new Error("the simulator cut the connection"))
                  }
                }
              }),
              { status: original.status, headers: original.headers }
            )
          }
          if (dice() < (faults?.trickleRate ?? 0)) {
            injected.push("trickle")
            response = yield* trickle(response)
          }
        }
        received.push({
          endpoint,
          method: request.method,
          url: request.url,
          headers,
          at: now,
          status: response?.status ?? 0,
          faults: injected
        })
        return response
      })

    const sim: DefenderSimulator = {
      handle,
      received,
      count: (endpoint, status) =>
        received.filter((r) => r.endpoint === endpoint && (status === undefined || r.status === status)).length,
      replaceResult: (id, index, bytes) => {
        const blob = actions.get(id)?.commands[index]?.blob
        if (blob === undefined) throw new Error(`no result at ${id} #${index}`)
        const md5 = createHash("md5").update(bytes).digest("base64")
        blobs.set(blob, { bytes, md5, etag: `"0x8D${md5.slice(0, 12)}"`, contentType: "application/octet-stream" })
      },
      setFaults: (next) => {
        faults = next
      },
      addTranscripts: (id, transcripts) =>
        addAction(
          id,
          transcripts.map((_, i) => runScript(`script-${i}.ps1`)),
          transcripts.map((t) => (typeof t === "string" ? encoder.encode(t) : t))
        ),
      addFiles: (id, files) =>
        addAction(
          id,
          files.map((file) => ({ type: "GetFile", params: [{ key: "Path", value: file.path }] })),
          files.map((file) => file.bytes)
        ),
      blobOrigin: options?.blobOrigin ?? "https://simulator.blob.core.windows.net"
    }
    return sim
  })

// ---------------------------------------------------------------------------
// Ways to use it
// ---------------------------------------------------------------------------

/**
 * An `HttpClient` answered by the simulator in-process: no sockets, and the
 * simulator's time is the calling fiber's `Clock` (so `TestClock` drives it).
 * Every host reaches the simulator, so the default cloud's URLs work unchanged.
 *
 * @since 0.1.0
 */
export const httpClient = (sim: DefenderSimulator): HttpClient.HttpClient =>
  HttpClient.make((request, url) =>
    Effect.gen(function*() {
      let body: BodyInit | null
      switch (request.body._tag) {
        case "Uint8Array":
          body = request.body.body as Uint8Array<ArrayBuffer>
          break
        case "Raw":
          body = request.body.body as BodyInit
          break
        case "FormData":
          body = request.body.formData
          break
        default:
          body = null
      }
      const headers = new Headers(request.headers as Record<string, string>)
      if (request.body._tag === "Uint8Array") headers.set("content-type", request.body.contentType)
      const response = yield* sim.handle(new Request(url, { method: request.method, headers, body }))
      if (response === undefined) {
        return yield* new HttpClientError.RequestError({
          request,
          reason: "Transport",
          cause: new Error("the simulator dropped the connection")
        })
      }
      return HttpClientResponse.fromWeb(request, response)
    })
  )

/**
 * The simulator as the `HttpClient` layer.
 *
 * @since 0.1.0
 */
export const layerHttpClient = (sim: DefenderSimulator): Layer.Layer<HttpClient.HttpClient> =>
  Layer.succeed(HttpClient.HttpClient, httpClient(sim))

/**
 * The simulator as a web handler on the real clock, for servers such as
 * `Deno.serve` or `Bun.serve`. A dropped connection is a rejected promise.
 *
 * @since 0.1.0
 */
export const toWebHandler = (sim: DefenderSimulator): (request: Request) => Promise<Response> => (request) =>
  Effect.runPromise(sim.handle(request)).then((response) => {
    if (response === undefined) throw new Error("the simulator dropped the connection")
    return response
  })

/**
 * A running simulator server.
 *
 * @since 0.1.0
 */
export interface Served {
  /** `http://127.0.0.1:PORT`: the API base, the login host and the link host at once. */
  readonly url: string
  readonly port: number
  /** The commercial cloud with its API base and login host pointed at this server. */
  readonly cloud: DefenderCloud.DefenderCloud
}

/**
 * The client-credentials login of the simulated app (`SIMULATED_TENANT`,
 * `SIMULATED_CLIENT_ID`, `SIMULATED_CLIENT_SECRET` unless another secret is given),
 * against `cloud`'s login host (a served simulator's `cloud`; in-process any host works).
 *
 * @since 0.1.0
 */
export const layerLogin = (options?: {
  readonly cloud?: DefenderCloud.DefenderCloud | undefined
  readonly clientSecret?: Redacted.Redacted<string> | undefined
}): Layer.Layer<DefenderAuth.DefenderAuth, never, HttpClient.HttpClient> =>
  DefenderAuth.layerClientSecret({
    tenantId: SIMULATED_TENANT,
    clientId: SIMULATED_CLIENT_ID,
    clientSecret: options?.clientSecret ?? SIMULATED_CLIENT_SECRET,
    cloud: options?.cloud
  })

/**
 * Serves the simulator on 127.0.0.1 (a free port unless `port` is given) with
 * `node:http`, which Node, Deno and Bun all provide; result links point at the
 * same server. The server stops when the scope closes.
 *
 * @since 0.1.0
 */
export const serve = (
  sim: DefenderSimulator,
  options?: { readonly port?: number | undefined }
): Effect.Effect<Served, never, Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const run = Runtime.runPromise(runtime)
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Array<Uint8Array> = []
      req.on("data", (chunk: Uint8Array) => chunks.push(chunk))
      req.on("end", () => {
        let request: Request
        try {
          const headers = new Headers()
          for (const [key, value] of Object.entries(req.headers)) {
            if (typeof value === "string") headers.set(key, value)
            else if (Array.isArray(value)) headers.set(key, value.join(", "))
          }
          const method = req.method ?? "GET"
          request = new Request(new URL(req.url ?? "/", sim.blobOrigin), {
            method,
            headers,
            body: method === "GET" || method === "HEAD" ? null : Buffer.concat(chunks)
          })
        } catch {
          // A request the web `Request` cannot represent (a TRACE, a broken URL).
          res.writeHead(400).end()
          return
        }
        run(sim.handle(request))
          .then(async (response) => {
            if (response === undefined) {
              req.socket.destroy()
              return
            }
            const out: Record<string, string> = {}
            response.headers.forEach((value, key) => {
              out[key] = value
            })
            res.writeHead(response.status, out)
            // Status and headers go out now, as a real server's do, not with the first chunk
            // of the body: a trickling body then stalls after the headers, not before them.
            res.flushHeaders()
            if (response.body !== null) {
              const reader = response.body.getReader()
              let closed = false
              res.once("close", () => {
                closed = true
                res.emit("drain")
              })
              for (let next = await reader.read(); !next.done; next = await reader.read()) {
                // Respect back-pressure: a 1 GiB result must not pile up in memory; a client
                // that went away ends the loop (and the body) instead of waiting forever.
                if (!res.write(next.value)) await new Promise((resolve) => res.once("drain", resolve))
                if (closed) {
                  await reader.cancel()
                  return
                }
              }
            }
            res.end()
          })
          .catch(() => req.socket.destroy())
      })
    })
    const port = yield* Effect.async<number>((resume) => {
      server.once("error", (error) => resume(Effect.die(error)))
      server.listen(options?.port ?? 0, "127.0.0.1", () => resume(Effect.succeed((server.address() as AddressInfo).port)))
    })
    const url = `http://127.0.0.1:${port}`
    sim.blobOrigin = url
    yield* Effect.addFinalizer(() =>
      Effect.async<void>((resume) => {
        server.closeAllConnections?.()
        server.close(() => resume(Effect.void))
      })
    )
    return { url, port, cloud: { ...DefenderCloud.commercial, name: "simulator", apiBaseUrl: url, authorityHost: url } }
  })
