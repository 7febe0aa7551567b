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
import { Clock, Duration, Effect, Layer, Redacted, type Scope } from "effect"
import * as DefenderAuth from "../DefenderAuth.ts"
import * as DefenderCloud from "../DefenderCloud.ts"
import type { RateLimit } from "../DefenderRateLimiter.ts"
import { handle } from "./internal/handle.ts"
import * as Fleet from "./internal/fleet.ts"
import * as Presets from "./internal/presets.ts"
import { listen } from "./internal/serve.ts"
import * as State from "./internal/state.ts"

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
 * @category models
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
 * @category models
 */
export interface Options {
  /** The tenant the token endpoint accepts; default `SIMULATED_TENANT`. */
  readonly tenantId?: string | undefined
  /** The app (client) id the token endpoint accepts; default `SIMULATED_CLIENT_ID`. */
  readonly clientId?: string | undefined
  /** The client secret the token endpoint accepts; default `SIMULATED_CLIENT_SECRET`. */
  readonly clientSecret?: Redacted.Redacted<string> | undefined
  /**
   * Certificates (PEM or DER) registered on the app for certificate login: the token endpoint
   * accepts a `client_assertion` signed (RS256 or PS256) with one's key, as Entra ID does. Default none.
   */
  readonly clientCertificates?: ReadonlyArray<string | Uint8Array> | undefined
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
  /**
   * The simulated fleet (see `fleet` for a ready-made one). With a fleet, `GET /api/machines`
   * lists it and run live response answers 404 `ResourceNotFound` for a machine not in it;
   * without one, the list is empty and any machine id can run.
   */
  readonly machines?: ReadonlyArray<MachineSpec> | undefined
  /**
   * Live response actions alive at once per tenant, `Pending` ones included (users report they
   * count); a run over the cap gets 429 `TooManyRequests` with a `Retry-After`. Default 50.
   */
  readonly sessionCap?: number | undefined
  /**
   * How long an action waits for an offline machine; then it ends `TimeOut` without having run.
   * Default 2 hours (the current docs).
   */
  readonly queueTimeout?: Duration.DurationInput | undefined
  /** The default and largest page (`$top`) of the list endpoints; default 10,000 (the docs). */
  readonly pageSize?: number | undefined
  /**
   * The application permissions the issued tokens' `roles` claim lists; default `ALL_ROLES`. An
   * endpoint whose permission is not among them answers 403 `Forbidden`, as Defender does, so a
   * test can give the app a token that lacks one. Static tokens are not checked.
   */
  readonly roles?: ReadonlyArray<string> | undefined
  /**
   * How many milliseconds the simulated service's clock runs ahead of the caller's (negative:
   * behind); default 0. It shows in every answer's `Date` header and in the issued tokens'
   * `iat`, `nbf` and `exp`, as a skewed local clock would look from the caller's side.
   */
  readonly clockOffset?: number | undefined
}

/**
 * A machine's health, as the machines list names it.
 *
 * @since 0.1.0
 * @category models
 */
export type HealthStatus =
  | "Active"
  | "Inactive"
  | "ImpairedCommunication"
  | "NoSensorData"
  | "NoSensorDataImpairedCommunication"
  | "Unknown"

/**
 * A machine's properties as `GET /api/machines` lists them; each one left out gets a default
 * (`computerDnsName` `{id}.contoso.example`, `healthStatus` `Active`, `osPlatform` `Windows11`,
 * `lastSeen` the moment the simulator was made, no tags…).
 *
 * @since 0.1.0
 * @category models
 */
export interface MachineProperties {
  /** The machine's fully qualified name. */
  readonly computerDnsName?: string | undefined
  /** When it was first seen (ISO 8601). */
  readonly firstSeen?: string | undefined
  /** When it was last seen (ISO 8601). */
  readonly lastSeen?: string | undefined
  /** Its operating system, e.g. `Windows11`, `WindowsServer2022`, `Linux`, `macOS`. */
  readonly osPlatform?: string | undefined
  /** Its operating system version. */
  readonly osVersion?: string | null | undefined
  /** Its processor, e.g. `x64`. */
  readonly osProcessor?: string | undefined
  /** Its architecture, e.g. `64-bit`. */
  readonly osArchitecture?: string | undefined
  /** Its operating system build. */
  readonly osBuild?: number | null | undefined
  /** Its operating system version name, e.g. `23H2`. */
  readonly version?: string | undefined
  /** Its last IP address on the local network. */
  readonly lastIpAddress?: string | undefined
  /** Its last IP address as seen from the internet. */
  readonly lastExternalIpAddress?: string | undefined
  /** Its sensor's health. */
  readonly healthStatus?: HealthStatus | undefined
  /** Its antivirus status, e.g. `Updated`. */
  readonly defenderAvStatus?: string | undefined
  /** Its device group's id. */
  readonly rbacGroupId?: number | undefined
  /** Its device group's name. */
  readonly rbacGroupName?: string | undefined
  /** Its risk score. */
  readonly riskScore?: "None" | "Informational" | "Low" | "Medium" | "High" | undefined
  /** Its exposure level. */
  readonly exposureLevel?: "None" | "Low" | "Medium" | "High" | undefined
  /** Whether it is onboarded. */
  readonly onboardingStatus?: "Onboarded" | "CanBeOnboarded" | "Unsupported" | "InsufficientInfo" | undefined
  /** Its value to the organisation. */
  readonly deviceValue?: "Normal" | "Low" | "High" | undefined
  /** Whether it is joined to Entra ID. */
  readonly isAadJoined?: boolean | undefined
  /** Its Entra ID device id. */
  readonly aadDeviceId?: string | null | undefined
  /** Its tags (`machineTags/any(t: t eq 'x')` filters on them). */
  readonly machineTags?: ReadonlyArray<string> | undefined
}

/**
 * One machine of a simulated fleet: its id, its properties, and how it behaves. Times are
 * milliseconds after the simulator was made (under `TestClock`: after the test's start).
 *
 * @since 0.1.0
 * @category models
 */
export interface MachineSpec {
  /** The machine id (Defender's are 40 hexadecimal characters; any text works). */
  readonly id: string
  /** What the machines list says about it. */
  readonly properties?: MachineProperties | undefined
  /**
   * When it is online: always (`true`, the default), never (`false`), or from `from` until
   * `until` (open-ended without). An action on an offline machine stays `Pending` until the
   * machine comes online, for at most `queueTimeout`.
   */
  readonly online?: boolean | { readonly from: number; readonly until?: number | undefined } | undefined
  /** How its actions end once they ran (default `Succeeded`; scripts named `*fail*`/`*timeout*` still do). */
  readonly outcome?: "Succeeded" | "Failed" | "TimeOut" | undefined
  /** Until then another session holds it: run live response answers 400 `ActiveRequestAlreadyExists`. */
  readonly busyUntil?: number | undefined
  /** How long its actions stay `InProgress`; default the simulator's `runFor`. */
  readonly runFor?: Duration.DurationInput | undefined
}

/**
 * The tenant id the simulator accepts by default.
 *
 * @since 0.1.0
 * @category constants
 */
export const SIMULATED_TENANT = "00000000-0000-4000-8000-00000000feed"
/**
 * The client id the simulator accepts by default.
 *
 * @since 0.1.0
 * @category constants
 */
export const SIMULATED_CLIENT_ID = "00000000-0000-4000-8000-00000000c11e"
/**
 * The client secret the simulator accepts by default.
 *
 * @since 0.1.0
 * @category constants
 */
export const SIMULATED_CLIENT_SECRET: Redacted.Redacted<string> = Redacted.make("simulated-client-secret")
/**
 * A bearer token the simulator's API accepts without a login.
 *
 * @since 0.1.0
 * @category constants
 */
export const STATIC_TOKEN: Redacted.Redacted<string> = Redacted.make("simulated-static-token")

/**
 * Every application permission of the Defender API the library's calls need (see the README's
 * "Connecting a real tenant"): the `roles` of the simulator's tokens unless `Options.roles` says otherwise.
 *
 * @since 0.1.0
 * @category constants
 */
export const ALL_ROLES: ReadonlyArray<string> = ["Machine.LiveResponse", "Machine.ReadWrite.All", "Machine.Read.All", "Library.Manage"]

/**
 * The machine actions every simulator starts with (all `Succeeded` unless said).
 *
 * @since 0.1.0
 * @category constants
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
 * @category models
 */
export type Endpoint =
  | "token"
  | "getMachineAction"
  | "runLiveResponse"
  | "cancel"
  | "uploadLibraryFile"
  | "getResultLink"
  | "listMachines"
  | "listMachineActions"
  | "listLibraryFiles"
  | "deleteLibraryFile"
  | "blob"
  | "unknown"

/**
 * One request the simulator received.
 *
 * @since 0.1.0
 * @category models
 */
export interface Received {
  /** The endpoint the request was routed to. */
  readonly endpoint: Endpoint
  /** The HTTP method. */
  readonly method: string
  /** The whole URL, query included. */
  readonly url: string
  /** The request's headers, names in lower case. */
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
 * @category models
 */
export type Fault = "drop" | "error" | "throttle" | "cut" | "corrupt" | "trickle"

/**
 * A live response command as the API describes it.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommandSpec {
  /** The command. */
  readonly type: "RunScript" | "GetFile" | "PutFile"
  /** Its parameters, such as `ScriptName` and `Args`, or `Path`. */
  readonly params: ReadonlyArray<{ readonly key: string; readonly value: string }>
}

/**
 * A simulated tenant.
 *
 * @since 0.1.0
 * @category models
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
// The simulator: its parts are in ./internal/ (state, login, api, machineActions,
// library, quota, storage, faults, content, presets, handle, serve)
// ---------------------------------------------------------------------------

const millis = (duration: Duration.DurationInput): number => Duration.toMillis(Duration.decode(duration))

/**
 * Creates a simulated tenant with the preset machine actions of `ACTIONS`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: Options): Effect.Effect<DefenderSimulator> =>
  Effect.gen(function*() {
    const startedAt = yield* Clock.currentTimeMillis
    const state = State.makeState(
      {
        tenantId: options?.tenantId ?? SIMULATED_TENANT,
        clientId: options?.clientId ?? SIMULATED_CLIENT_ID,
        clientSecret: Redacted.value(options?.clientSecret ?? SIMULATED_CLIENT_SECRET),
        clientCertificates: options?.clientCertificates,
        staticTokens: new Set((options?.staticTokens ?? [STATIC_TOKEN]).map(Redacted.value)),
        tokenLifetime: millis(options?.tokenLifetime ?? "1 hour"),
        linkLifetime: millis(options?.linkLifetime ?? "30 minutes"),
        pendingFor: millis(options?.pendingFor ?? "2 seconds"),
        runFor: millis(options?.runFor ?? "5 seconds"),
        visibleAfter: millis(options?.visibleAfter ?? 0),
        rateLimits: options?.rateLimits ?? [{ limit: 100, window: "1 minute" }, { limit: 1500, window: "1 hour" }],
        runLimits: options?.runLimits ?? [{ limit: 10, window: "1 minute" }],
        sessionCap: options?.sessionCap ?? 50,
        queueTimeout: millis(options?.queueTimeout ?? "2 hours"),
        pageSize: options?.pageSize ?? 10_000,
        machines: options?.machines === undefined ? undefined : new Map(options.machines.map((m) => [m.id, m])),
        startedAt,
        roles: options?.roles ?? ALL_ROLES,
        clockOffset: options?.clockOffset ?? 0
      },
      options?.faults,
      () => sim.blobOrigin
    )
    yield* Presets.addPresets(state, ACTIONS)
    const sim: DefenderSimulator = {
      handle: (request) => handle(state, request),
      received: state.received,
      count: (endpoint, status) =>
        state.received.filter((r) => r.endpoint === endpoint && (status === undefined || r.status === status)).length,
      replaceResult: (id, index, bytes) => State.replaceResult(state, id, index, bytes),
      setFaults: (next) => {
        state.faults = next
      },
      addTranscripts: (id, transcripts) => Presets.addTranscripts(state, id, transcripts),
      addFiles: (id, files) => Presets.addFiles(state, id, files),
      blobOrigin: options?.blobOrigin ?? "https://simulator.blob.core.windows.net"
    }
    return sim
  })

/**
 * A ready-made fleet of `size` machines, the same for the same `seed` (default 1): most online
 * and `Active`; about a tenth offline for a day (`Inactive`, seen days ago: their actions stay
 * `Pending` and end `TimeOut` after the queueing time); about 6% whose actions fail, 4% that time
 * out and 6% busy with another session for 1 to 10 minutes (`ActiveRequestAlreadyExists`); some
 * `ImpairedCommunication` or `NoSensorData`; varied `lastSeen` (before `now`, default the epoch:
 * `TestClock`'s start), `osPlatform`, `machineTags` (`prod`, `test`, `finance`, `web`, `db`, `dc`),
 * `computerDnsName`, `riskScore`, `exposureLevel`, `rbacGroupId` and run time (3 to 30 seconds).
 *
 * @example
 * ```ts
 * import { DefenderSimulator } from "mde-live-response/testing"
 *
 * const sim = DefenderSimulator.make({ machines: DefenderSimulator.fleet(50), sessionCap: 50 })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const fleet = (
  size: number,
  options?: { readonly seed?: number | undefined; readonly now?: number | undefined }
): ReadonlyArray<MachineSpec> => Fleet.fleet(size, options?.seed ?? 1, options?.now ?? 0)

// ---------------------------------------------------------------------------
// Ways to use it
// ---------------------------------------------------------------------------

/**
 * An `HttpClient` answered by the simulator in-process: no sockets, and the
 * simulator's time is the calling fiber's `Clock` (so `TestClock` drives it).
 * Every host reaches the simulator, so the default cloud's URLs work unchanged.
 *
 * @since 0.1.0
 * @category constructors
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
 * @category layers
 */
export const layerHttpClient = (sim: DefenderSimulator): Layer.Layer<HttpClient.HttpClient> =>
  Layer.succeed(HttpClient.HttpClient, httpClient(sim))

/**
 * The simulator as a web handler on the real clock, for servers such as
 * `Deno.serve` or `Bun.serve`. A dropped connection is a rejected promise.
 *
 * @since 0.1.0
 * @category constructors
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
 * @category models
 */
export interface Served {
  /** `http://127.0.0.1:PORT` (`https://` when served with `tls`): the API base, the login host and the link host at once. */
  readonly url: string
  /** The port it listens on. */
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
 * @category layers
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
 * `node:http`, which Node, Deno and Bun all provide — or `node:https` with `tls`'s
 * key and certificate (PEM), as MSAL (`@azure/identity`) needs an https login host;
 * result links point at the same server. The server stops when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const serve = (
  sim: DefenderSimulator,
  options?: {
    readonly port?: number | undefined
    readonly tls?: { readonly key: string; readonly cert: string } | undefined
  }
): Effect.Effect<Served, never, Scope.Scope> =>
  Effect.gen(function*() {
    const port = yield* listen(sim, options?.port, options?.tls)
    const url = `${options?.tls === undefined ? "http" : "https"}://127.0.0.1:${port}`
    sim.blobOrigin = url
    return { url, port, cloud: { ...DefenderCloud.commercial, name: "simulator", apiBaseUrl: url, authorityHost: url } }
  })
