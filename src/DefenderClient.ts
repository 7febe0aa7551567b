/**
 * The `DefenderClient` service: the Defender API's live response result calls
 * over `HttpClient`, with `DefenderAuth` tokens, the shared
 * `DefenderRateLimiter` budget, Retry-After aware retries, a download
 * allow-list and the one-time re-creation of an expired link.
 *
 * Most users call the programs in `LiveResponse` and provide this service
 * with `DefenderClient.layer()` or `DefenderClient.layerConfig()`.
 *
 * @module
 * @since 0.1.0
 */
import { type FileSystem, HttpClient } from "@effect/platform"
import { Config, ConfigError, Context, Duration, Effect, Either, Layer, Option, type Redacted, Schedule, type Stream } from "effect"
import { DefenderAuth } from "./DefenderAuth.ts"
import * as DefenderCloud from "./DefenderCloud.ts"
import type { DefenderError } from "./DefenderError.ts"
import { DefenderRateLimiter } from "./DefenderRateLimiter.ts"
import type { ClientContext } from "./internal/client/context.ts"
import { downloadToFile } from "./internal/client/downloadToFile.ts"
import { deleteLibraryFile, listLibraryFiles, uploadScript } from "./internal/client/library.ts"
import { listMachineActions, listMachines } from "./internal/client/listing.ts"
import { cancelMachineAction, getMachineAction, runLiveResponse } from "./internal/client/machineActions.ts"
import { getResultLink } from "./internal/client/resultLink.ts"
import * as paging from "./internal/client/paging.ts"
import * as retry from "./internal/client/retry.ts"
import { downloadResult, getTranscript } from "./internal/client/transcript.ts"
import { parseShortDuration } from "./internal/duration.ts"
import { noRedirects } from "./internal/noRedirects.ts"
import { DEFAULT_DOWNLOAD_HOSTS, parseHostList } from "./internal/url.ts"
import type * as Machine from "./Machine.ts"
import type * as MachineAction from "./MachineAction.ts"
import type * as Transcript from "./Transcript.ts"

/**
 * One command of a machine action: the action's id and the command's index
 * in its `commands` array.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommandRef {
  /** The machine action id (a GUID). */
  readonly machineActionId: string
  /** The command's position in the action's `commands` array, from 0. */
  readonly index: number
}

/**
 * A result's download link. The URL carries a SAS signature, so it stays
 * `Redacted` (it prints as `<redacted>`); `expiresAt` is read from its `se=`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResultLink {
  /** The SAS download URL; it prints as `<redacted>`. */
  readonly url: Redacted.Redacted<string>
  /** When the link expires (read from its `se=`), if it says. */
  readonly expiresAt: Date | undefined
}

/**
 * The live response result calls.
 *
 * @since 0.1.0
 * @category models
 */
export interface DefenderClient {
  /** The cloud the client talks to. */
  readonly cloud: DefenderCloud.DefenderCloud
  /** Asks for a 30-minute download link of one command's result. */
  readonly getResultLink: (ref: CommandRef) => Effect.Effect<ResultLink, DefenderError>
  /** Downloads one command's raw result (a GetFile file, or a transcript) as bytes. */
  readonly downloadResult: (ref: CommandRef) => Stream.Stream<Uint8Array, DefenderError>
  /** Downloads and decodes one RunScript command's transcript. */
  readonly getTranscript: (ref: CommandRef) => Effect.Effect<Transcript.Transcript, DefenderError>
  /** Reads a machine action (`GET /api/machineactions/{id}`). */
  readonly getMachineAction: (machineActionId: string) => Effect.Effect<MachineAction.MachineAction, DefenderError>
  /**
   * Starts a live response session (`POST /api/machines/{id}/runliveresponse`): one call,
   * retried only on a 429. A machine with a session running is `ActiveSessionExists`.
   */
  readonly runLiveResponse: (request: RunRequest) => Effect.Effect<MachineAction.MachineAction, DefenderError>
  /**
   * Saves one command's result to `path` with constant memory: resumed with `Range` +
   * `If-Match` when the connection breaks, a new link when it expires, the MD5 and length
   * verified; `path` appears only when complete, and nothing is left on failure.
   */
  readonly downloadToFile: (
    ref: CommandRef,
    path: string,
    options?: SaveOptions
  ) => Effect.Effect<SavedFile, DefenderError, FileSystem.FileSystem>
  /** Puts a script into the live response library (`POST /api/libraryfiles`, multipart). */
  readonly uploadScript: (upload: ScriptUpload) => Effect.Effect<LibraryFile, DefenderError>
  /** Asks Defender to cancel a machine action (`POST /api/machineactions/{id}/cancel`). */
  readonly cancelMachineAction: (
    machineActionId: string,
    comment: string
  ) => Effect.Effect<MachineAction.MachineAction, DefenderError>
  /**
   * The machines a `$filter` selects (`GET /api/machines`), every page through
   * `@odata.nextLink`, each page fetched when the stream needs it.
   */
  readonly listMachines: (options?: ListOptions) => Stream.Stream<Machine.Machine, DefenderError>
  /** The machine actions a `$filter` selects (`GET /api/machineactions`), paged like `listMachines`. */
  readonly listMachineActions: (options?: ListOptions) => Stream.Stream<MachineAction.MachineAction, DefenderError>
  /** Every file of the live response library (`GET /api/libraryfiles`). */
  readonly listLibraryFiles: () => Effect.Effect<ReadonlyArray<LibraryFileDetails>, DefenderError>
  /** Removes a file from the live response library (`DELETE /api/libraryfiles/{name}`); an unknown one is `NotFound`. */
  readonly deleteLibraryFile: (fileName: string) => Effect.Effect<void, DefenderError>
}

/**
 * What a list call asks for. Every page is one call on the machine-actions budget (100
 * per minute, 1500 per hour), retried like any read.
 *
 * @since 0.1.0
 * @category models
 */
export interface ListOptions {
  /**
   * An OData `$filter`, sent URL-encoded: e.g. `healthStatus eq 'Active'`,
   * `machineTags/any(t: t eq 'prod')` (see `Machine.filterByTag`), `status eq 'Pending'`,
   * `id in ('a','b')` (see `MachineAction.filterByIds`). String literals in it are the
   * caller's to quote (a `'` doubled).
   */
  readonly filter?: string | undefined
  /** At most this many entries (sent as `$top`, 1 to 10,000); default all. */
  readonly top?: number | undefined
  /**
   * The most pages one list reads; default `DEFAULT_MAX_PAGES` (1000). A server still
   * linking to a next page past it (or back to a page already read) fails the stream with
   * `HttpError` `"InvalidResponse"` after the entries read so far.
   */
  readonly maxPages?: number | undefined
}

/**
 * The default most pages one list reads: 1000 (10 million machines at the API's largest page).
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_PAGES: number = paging.DEFAULT_MAX_PAGES

/**
 * A script (or any file) to put into the live response library.
 *
 * @since 0.1.0
 * @category models
 */
export interface ScriptUpload {
  /** The library file name, e.g. `collect.ps1`: letters, digits, `-`, `_` and `.`. */
  readonly fileName: string
  /** The script's content (text is sent as UTF-8). */
  readonly content: string | Uint8Array
  /** What the script does, shown in the portal. */
  readonly description?: string | undefined
  /** What its parameters mean, shown in the portal; setting it implies `hasParameters`. */
  readonly parametersDescription?: string | undefined
  /** Whether the script takes parameters; default: whether `parametersDescription` is given. */
  readonly hasParameters?: boolean | undefined
  /** Replace a library file of the same name; default false (then an existing file is a 400). */
  readonly overrideIfExists?: boolean | undefined
}

/**
 * Options of `downloadToFile`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SaveOptions {
  /** How many broken connections one download survives; default 10. */
  readonly maxInterruptions?: number | undefined
}

/**
 * A result saved to disk.
 *
 * @since 0.1.0
 * @category models
 */
export interface SavedFile {
  /** Where the result was saved. */
  readonly path: string
  /** How many bytes it has. */
  readonly bytes: number
  /** Whether the storage declared an MD5 and the file matched it. */
  readonly md5Verified: boolean
  /** How many times the download was resumed. */
  readonly resumes: number
}

/**
 * A file in the live response library.
 *
 * @since 0.1.0
 * @category models
 */
export interface LibraryFile {
  /** The name the library stored the file under. */
  readonly fileName: string
  /** The file's SHA-256 as the API reports it, if it does. */
  readonly sha256: string | undefined
}

/**
 * A file in the live response library, as the library list reports it. Fields the API
 * sent as `null`, left out or sent with an unexpected type are `undefined`.
 *
 * @since 0.1.0
 * @category models
 */
export interface LibraryFileDetails extends LibraryFile {
  /** What the file does, shown in the portal. */
  readonly description: string | undefined
  /** When the file was uploaded, as the API sends it. */
  readonly creationTime: string | undefined
  /** When the file was last replaced, as the API sends it. */
  readonly lastUpdatedTime: string | undefined
  /** Who uploaded it. */
  readonly createdBy: string | undefined
  /** Whether the script takes parameters; `false` when the API does not say. */
  readonly hasParameters: boolean
  /** What its parameters mean. */
  readonly parametersDescription: string | undefined
}

/**
 * What to run: the machine, its commands and the comment Defender records.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunRequest {
  /** The machine (device) id to run on. */
  readonly machineId: string
  /** The commands, in the order PutFile, RunScript, GetFile. */
  readonly commands: ReadonlyArray<MachineAction.Command>
  /** The comment Defender records with the action (required). */
  readonly comment: string
}

/**
 * The `DefenderClient` service tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const DefenderClient: Context.Tag<DefenderClient, DefenderClient> = Context.GenericTag<DefenderClient>(
  "mde-live-response/DefenderClient"
)

/**
 * Options of the client.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The cloud to call; default commercial. */
  readonly cloud?: DefenderCloud.DefenderCloud | undefined
  /**
   * When to retry a retryable failure (429, 408, 500, 502, 503, 504, transport errors); default
   * `defaultRetrySchedule`. Other failures are never retried. A 429's `Retry-After` replaces the
   * schedule's wait for that retry.
   */
  readonly retry?: Schedule.Schedule<unknown, DefenderError> | undefined
  /** Download hosts allowed on top of `*.blob.core.windows.net` and `*.blob.core.usgovcloudapi.net`. */
  readonly downloadHosts?: ReadonlyArray<string> | undefined
  /** The largest transcript `getTranscript` reads into memory; default 64 MiB. */
  readonly maxTranscriptBytes?: number | undefined
  /**
   * How long one attempt may wait for an answer (for API calls: the whole answer; for
   * downloads: the status and headers, then each pause between two chunks of the body);
   * default 30 seconds. A timeout is retried like a transport error (a stalled download is
   * resumed by `downloadToFile`).
   */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * How long one read of a download's body may take in all, from its headers to its last byte
   * (besides `timeout`, which bounds each pause); default `DEFAULT_BODY_DEADLINE`, 10 minutes. A
   * body that misses it is a transport error: `getTranscript` reads it again only as the retry
   * schedule allows, `downloadToFile` resumes where it stopped (one interruption). For
   * `downloadResult` the time your program takes to consume the stream counts too.
   */
  readonly bodyDeadline?: Duration.DurationInput | undefined
  /**
   * The largest result `downloadResult`, `downloadToFile` (and `getTranscript`) accept, in bytes;
   * default none. A declared size over it fails before the body is read, a body that grows past it
   * as soon as it does, with `HttpError` `"TooLarge"` (not retried, not resumed).
   */
  readonly maxResultBytes?: number | undefined
}

/**
 * The default time limit of one read of a download's body: 10 minutes — a 1 GiB GetFile at
 * 5 MB/s takes about 3.5 minutes, a 64 MiB transcript needs about 110 KB/s. A slower
 * `downloadToFile` is resumed where the deadline stopped it.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_BODY_DEADLINE: Duration.Duration = Duration.minutes(10)

/**
 * The default time limit of one attempt: 30 seconds.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_TIMEOUT: Duration.Duration = Duration.seconds(30)

/**
 * The default largest transcript: 64 MiB.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_TRANSCRIPT_BYTES: number = 64 * 1024 * 1024

/**
 * The default retry schedule: exponential backoff from 1 s (doubling, jittered,
 * each wait at most 30 s), at most 6 retries — 7 attempts, about a minute in all
 * when no `Retry-After` is given.
 *
 * @since 0.1.0
 * @category retries
 */
export const defaultRetrySchedule: Schedule.Schedule<unknown, DefenderError> = Schedule.exponential("1 second").pipe(
  Schedule.jittered,
  Schedule.modifyDelay((_, delay) => Duration.min(delay, Duration.seconds(30))),
  Schedule.intersect(Schedule.recurs(6)),
  Schedule.asVoid
)

/**
 * Whether the library retries an error: throttling, 408/429/500/502/503/504 and transport failures.
 *
 * @since 0.1.0
 * @category retries
 */
export const isRetryable: (error: DefenderError) => boolean = retry.isRetryable

/**
 * Builds the client from its dependencies: the parts in `internal/client/` share one
 * context (dependencies, options, retry policies) and are wired here.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options?: Options
): Effect.Effect<DefenderClient, never, DefenderAuth | DefenderRateLimiter | HttpClient.HttpClient> =>
  Effect.gen(function*() {
    // API calls and downloads alike follow no redirect (see internal/noRedirects.ts).
    const http = HttpClient.transformResponse(yield* HttpClient.HttpClient, noRedirects)
    const schedule = options?.retry ?? defaultRetrySchedule
    const cloud = options?.cloud ?? DefenderCloud.commercial
    const ctx: ClientContext = {
      auth: yield* DefenderAuth,
      limiter: yield* DefenderRateLimiter,
      http,
      // The platform's client span records the full URL, which for a download holds the SAS
      // signature: storage requests get our own span with the signature redacted instead.
      storage: HttpClient.withTracerDisabledWhen(http, () => true),
      cloud,
      cloudProblem: Either.getLeft(DefenderCloud.validateBaseUrl(cloud.apiBaseUrl)).pipe(Option.getOrUndefined),
      schedule,
      readPolicy: retry.retryPolicy(schedule),
      // A POST that may have been carried out is not repeated: only a 429 (never executed) is.
      postPolicy: retry.retryPolicy(schedule, (e) => e._tag === "Throttled"),
      allowedHosts: [...DEFAULT_DOWNLOAD_HOSTS, ...(options?.downloadHosts ?? [])],
      maxTranscriptBytes: options?.maxTranscriptBytes ?? DEFAULT_MAX_TRANSCRIPT_BYTES,
      timeout: Duration.decode(options?.timeout ?? DEFAULT_TIMEOUT),
      bodyDeadline: Duration.decode(options?.bodyDeadline ?? DEFAULT_BODY_DEADLINE),
      maxResultBytes: options?.maxResultBytes
    }
    return DefenderClient.of({
      cloud: ctx.cloud,
      getResultLink: getResultLink(ctx),
      downloadResult: downloadResult(ctx),
      getTranscript: getTranscript(ctx),
      getMachineAction: getMachineAction(ctx),
      runLiveResponse: runLiveResponse(ctx),
      downloadToFile: downloadToFile(ctx),
      uploadScript: uploadScript(ctx),
      cancelMachineAction: cancelMachineAction(ctx),
      listMachines: listMachines(ctx),
      listMachineActions: listMachineActions(ctx),
      listLibraryFiles: listLibraryFiles(ctx),
      deleteLibraryFile: deleteLibraryFile(ctx)
    })
  })

/**
 * The client as a layer; it needs `DefenderAuth`, `DefenderRateLimiter` and an `HttpClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<DefenderClient, never, DefenderAuth | DefenderRateLimiter | HttpClient.HttpClient> =>
  Layer.effect(DefenderClient, make(options))

const timeoutFromText = (text: string): Duration.Duration => {
  const short = parseShortDuration(text)
  const duration = short === undefined
    ? Option.getOrUndefined(Duration.decodeUnknown(text.trim()))
    : Duration.millis(short)
  if (duration === undefined || !Duration.isFinite(duration) || Duration.toMillis(duration) <= 0) {
    throw new Error(`must be a positive duration (30s, 500ms, 2m or 2 minutes), got: ${text}`)
  }
  return duration
}

/** A URL's query, fragment and user info never reach a message (a pasted SAS link carries its `sig=`). */
const shownEntry = (entry: string): string => entry.replace(/[?#].*$/s, "").replace(/\/\/[^/]*@/, "//")

/**
 * A host list whose every entry can match: a host name, an IP address or a `*.suffix`
 * pattern. A URL, a path, a port or a stray `*` would match nothing, silently.
 */
const hostListFromText = (
  name: string,
  text: string
): Either.Either<ReadonlyArray<string>, ConfigError.ConfigError> => {
  const hosts = parseHostList(text)
  const bad = hosts.find((host) =>
    /[/?#@\\]/.test(host) ||
    (host.includes("*") && !/^\*\.[^*]+$/.test(host)) ||
    /^[^:[\]]+:\d*$/.test(host)
  )
  return bad === undefined
    ? Either.right(hosts)
    : Either.left(ConfigError.InvalidData(
      [name],
      `"${shownEntry(bad)}" is not a host name: list host names or *.suffix patterns, without scheme, port or ` +
        "path, e.g. *.blob.core.windows.net,127.0.0.1"
    ))
}

/**
 * The `Config`s `layerConfig` reads by default: the cloud (`MDE_CLOUD`, `MDE_API_URL`,
 * `MDE_SCOPE`, `AZURE_AUTHORITY_HOST`), `MDE_DOWNLOAD_HOSTS` (a comma list),
 * `MDE_MAX_TRANSCRIPT_BYTES`, `MDE_TIMEOUT` (`30s`, `500ms`, `2m` or `"30 seconds"`) and
 * `MDE_BODY_DEADLINE` (the same spellings; default `10m`).
 *
 * @since 0.1.0
 * @category config
 */
export const config: {
  readonly cloud: Config.Config<DefenderCloud.DefenderCloud>
  readonly downloadHosts: Config.Config<ReadonlyArray<string>>
  readonly maxTranscriptBytes: Config.Config<number>
  readonly timeout: Config.Config<Duration.Duration>
  readonly bodyDeadline: Config.Config<Duration.Duration>
} = {
  cloud: DefenderCloud.config,
  downloadHosts: Config.string("MDE_DOWNLOAD_HOSTS").pipe(
    Config.withDefault(""),
    Config.mapOrFail((text) => hostListFromText("MDE_DOWNLOAD_HOSTS", text))
  ),
  maxTranscriptBytes: Config.integer("MDE_MAX_TRANSCRIPT_BYTES").pipe(
    Config.validate({ message: "must be a positive integer", validation: (n) => n > 0 }),
    Config.withDefault(DEFAULT_MAX_TRANSCRIPT_BYTES)
  ),
  timeout: Config.string("MDE_TIMEOUT").pipe(Config.mapAttempt(timeoutFromText), Config.withDefault(DEFAULT_TIMEOUT)),
  bodyDeadline: Config.string("MDE_BODY_DEADLINE").pipe(
    Config.mapAttempt(timeoutFromText),
    Config.withDefault(DEFAULT_BODY_DEADLINE)
  )
}

/**
 * Where `layerConfig` reads each option: a `Config` per option, each optional (an omitted
 * one is read as in `config`), so an app with its own names or `ConfigProvider` can use
 * it; `retry` is given in code.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { DefenderClient } from "@mde/live-response"
 *
 * const client = DefenderClient.layerConfig({
 *   downloadHosts: Config.succeed(["127.0.0.1"]),
 *   maxTranscriptBytes: Config.integer("APP_TRANSCRIPT_LIMIT")
 * })
 * ```
 *
 * @since 0.1.0
 * @category config
 */
export interface LayerConfigOptions {
  /** The cloud; default `DefenderCloud.config`. */
  readonly cloud?: Config.Config<DefenderCloud.DefenderCloud> | undefined
  /** Extra download hosts; default `MDE_DOWNLOAD_HOSTS`. */
  readonly downloadHosts?: Config.Config<ReadonlyArray<string>> | undefined
  /** The largest transcript; default `MDE_MAX_TRANSCRIPT_BYTES`. */
  readonly maxTranscriptBytes?: Config.Config<number> | undefined
  /** The time limit of one attempt; default `MDE_TIMEOUT`. */
  readonly timeout?: Config.Config<Duration.Duration> | undefined
  /** The time limit of one read of a body; default `MDE_BODY_DEADLINE`. */
  readonly bodyDeadline?: Config.Config<Duration.Duration> | undefined
  /** When to retry (in code, not configuration); default `defaultRetrySchedule`. */
  readonly retry?: Schedule.Schedule<unknown, DefenderError> | undefined
}

/**
 * The client with its options read from configuration: by default the environment
 * variables of `config`; any of them can be replaced with another `Config` (see
 * `LayerConfigOptions`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  configs?: LayerConfigOptions
): Layer.Layer<
  DefenderClient,
  ConfigError.ConfigError,
  DefenderAuth | DefenderRateLimiter | HttpClient.HttpClient
> =>
  Layer.unwrapEffect(
    Effect.map(
      Config.all({
        cloud: configs?.cloud ?? config.cloud,
        downloadHosts: configs?.downloadHosts ?? config.downloadHosts,
        maxTranscriptBytes: configs?.maxTranscriptBytes ?? config.maxTranscriptBytes,
        timeout: configs?.timeout ?? config.timeout,
        bodyDeadline: configs?.bodyDeadline ?? config.bodyDeadline
      }),
      (read) => layer({ ...read, retry: configs?.retry })
    )
  )
