/**
 * The programs a user calls: get a command's result link, download its raw
 * result, or decode its RunScript transcript. Each needs a `DefenderClient`
 * in context; `LiveResponse.layerConfig()` builds the whole stack from the
 * environment.
 *
 * @example
 * ```ts
 * import { FetchHttpClient } from "@effect/platform"
 * import { Effect } from "effect"
 * import { LiveResponse } from "@mde/live-response"
 *
 * const program = Effect.gen(function*() {
 *   const transcript = yield* LiveResponse.getTranscript({ machineActionId: "988cc94e-7a8f-4b28-ab65-54970c5d5018", index: 0 })
 *   console.log(transcript.exitCode, transcript.output)
 * })
 *
 * program.pipe(Effect.provide(LiveResponse.layerConfig()), Effect.provide(FetchHttpClient.layer), Effect.runPromise)
 * ```
 *
 * @module
 * @since 0.1.0
 */
import type { FileSystem, HttpClient } from "@effect/platform"
import { Clock, type ConfigError, Duration, Effect, Exit, Layer, Schedule, Stream } from "effect"
import * as DefenderAuth from "./DefenderAuth.ts"
import * as DefenderClient from "./DefenderClient.ts"
import { type DefenderError, DeadlineExceeded, MachineActionFailed } from "./DefenderError.ts"
import { gunzipIfGzip } from "./internal/gzip.ts"
import * as MachineAction from "./MachineAction.ts"
import * as DefenderRateLimiter from "./DefenderRateLimiter.ts"
import type * as Machine from "./Machine.ts"
import type { Transcript } from "./Transcript.ts"

/**
 * One command of a machine action: `{ machineActionId, index }`.
 *
 * @since 0.1.0
 * @category models
 */
export type CommandRef = DefenderClient.CommandRef

/**
 * A result's download link (`url` is `Redacted`: it carries a SAS signature).
 *
 * @since 0.1.0
 * @category models
 */
export type ResultLink = DefenderClient.ResultLink

/**
 * Asks Defender for a 30-minute download link of one command's result
 * (`GET /api/machineactions/{id}/GetLiveResponseResultDownloadLink(index=N)`).
 *
 * @since 0.1.0
 * @category results
 */
export const getResultLink = (
  ref: CommandRef
): Effect.Effect<ResultLink, DefenderError, DefenderClient.DefenderClient> =>
  Effect.flatMap(DefenderClient.DefenderClient, (client) => client.getResultLink(ref))

/**
 * Downloads one command's raw result as a byte stream (a GetFile result, or
 * the transcript file itself). An expired link is re-created once.
 *
 * @since 0.1.0
 * @category results
 */
export const downloadResult = (
  ref: CommandRef
): Stream.Stream<Uint8Array, DefenderError, DefenderClient.DefenderClient> =>
  Stream.unwrap(Effect.map(DefenderClient.DefenderClient, (client) => client.downloadResult(ref)))

/**
 * Downloads and decodes one RunScript command's transcript.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LiveResponse } from "@mde/live-response"
 *
 * const exitCode = LiveResponse.getTranscript({ machineActionId: "988cc94e-7a8f-4b28-ab65-54970c5d5018", index: 0 }).pipe(
 *   Effect.map((t) => t.exitCode),
 *   Effect.catchTag("NotFound", () => Effect.succeed(-1))
 * )
 * ```
 *
 * @since 0.1.0
 * @category results
 */
export const getTranscript = (
  ref: CommandRef
): Effect.Effect<Transcript, DefenderError, DefenderClient.DefenderClient> =>
  Effect.flatMap(DefenderClient.DefenderClient, (client) => client.getTranscript(ref))

/**
 * Where `LiveResponse.layerConfig` reads each part's settings: the `LayerConfigOptions`
 * of the client, the login and the rate budget; each omitted one is read from the
 * environment as today.
 *
 * @since 0.1.0
 * @category config
 */
export interface LayerConfigOptions {
  /** The client's options (cloud, download hosts, limits, timeout, retry). */
  readonly client?: DefenderClient.LayerConfigOptions | undefined
  /** The login. */
  readonly auth?: DefenderAuth.LayerConfigOptions | undefined
  /** The rate budget (in memory or on Redis). */
  readonly rateLimiter?: DefenderRateLimiter.LayerConfigOptions | undefined
}

/**
 * The whole stack from configuration: `DefenderClient.layerConfig`,
 * `DefenderAuth.layerConfig` and `DefenderRateLimiter.layerConfig`, by default from
 * the environment. Provide an `HttpClient` (e.g. `FetchHttpClient.layer`) underneath.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (configs?: LayerConfigOptions): Layer.Layer<
  DefenderClient.DefenderClient,
  ConfigError.ConfigError,
  HttpClient.HttpClient
> =>
  DefenderClient.layerConfig(configs?.client).pipe(
    Layer.provide(Layer.merge(DefenderAuth.layerConfig(configs?.auth), DefenderRateLimiter.layerConfig(configs?.rateLimiter)))
  )

// ---------------------------------------------------------------------------
// Live response sessions
// ---------------------------------------------------------------------------

/**
 * What to run: `{ machineId, commands, comment }`, commands typed as
 * `PutFile | RunScript | GetFile` (in that order).
 *
 * @since 0.1.0
 * @category models
 */
export type RunRequest = DefenderClient.RunRequest

/**
 * Options of `runLiveResponse`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunOptions {
  /**
   * When the machine already has a session running, try again every `interval`
   * (default 30 s) until it has ended, for at most `deadline`; without this option
   * `ActiveSessionExists` fails at once.
   */
  readonly waitForActiveSession?: {
    readonly deadline: Duration.DurationInput
    readonly interval?: Duration.DurationInput | undefined
  } | undefined
}

/**
 * Starts a live response session on a machine and answers its machine action.
 * Calls for the same machine are serialised within one client; the run budget
 * (10 calls per minute) is the limiter's `run` bucket.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LiveResponse } from "@mde/live-response"
 *
 * const action = LiveResponse.runLiveResponse({
 *   machineId: "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
 *   commands: [{ type: "RunScript", scriptName: "minidump.ps1", args: "OfficeClickToRun" }, { type: "GetFile", path: "C:\\windows\\TEMP\\OfficeClickToRun.dmp.zip" }],
 *   comment: "incident 4711"
 * }, { waitForActiveSession: { deadline: "10 minutes" } })
 * ```
 *
 * @since 0.1.0
 * @category sessions
 */
export const runLiveResponse = (
  request: RunRequest,
  options?: RunOptions
): Effect.Effect<MachineAction.MachineAction, DefenderError, DefenderClient.DefenderClient> =>
  Effect.flatMap(DefenderClient.DefenderClient, (client) => {
    const run = client.runLiveResponse(request)
    const wait = options?.waitForActiveSession
    if (wait === undefined) return run
    return Effect.retry(run, {
      schedule: Schedule.spaced(wait.interval ?? "30 seconds").pipe(Schedule.upTo(wait.deadline)),
      while: (e) => e._tag === "ActiveSessionExists"
    })
  })

/**
 * Options of `awaitMachineAction`.
 *
 * @since 0.1.0
 * @category models
 */
export interface AwaitOptions {
  /** The wait before the first poll; default 5 seconds. */
  readonly firstDelay?: Duration.DurationInput | undefined
  /** The wait between polls; default 10 seconds. */
  readonly interval?: Duration.DurationInput | undefined
  /**
   * How long to wait in all; default 1 hour (RunScript may take 10 minutes and GetFile 30, and an
   * offline device holds the session queued). Past it the action is cancelled and the wait fails
   * with `DeadlineExceeded`.
   */
  readonly deadline?: Duration.DurationInput | undefined
  /** How long a 404 is taken as "not visible yet" for a new action; default 1 minute. */
  readonly notFoundGrace?: Duration.DurationInput | undefined
  /** The comment of the cancel sent on interruption; default "cancelled by mde-live-response". */
  readonly cancelComment?: string | undefined
}

const outcome = (action: MachineAction.MachineAction) =>
  action.commands.map((c) => ({ index: c.index, type: c.command.type, status: c.commandStatus, errors: c.errors }))

/**
 * Waits for a machine action to end. `Succeeded` answers the action; `Failed`,
 * `TimeOut` and `Cancelled` are a `MachineActionFailed` carrying each command's
 * status and errors. If the waiting fiber is interrupted (a timeout, Ctrl-C, a
 * closing scope) or the deadline passes, exactly one cancel is sent for the
 * action before it lets go — an action that ended meanwhile is left as it is.
 *
 * @since 0.1.0
 * @category sessions
 */
export const awaitMachineAction = (
  machineActionId: string,
  options?: AwaitOptions
): Effect.Effect<MachineAction.MachineAction, DefenderError, DefenderClient.DefenderClient> =>
  Effect.uninterruptibleMask((restore) => guardedWait(machineActionId, options, restore))

/**
 * The wait, run with `restore` (the caller's interruptibility) and a guard: whatever
 * ends it short of a final status — an interruption, the deadline, an error while
 * polling — sends exactly one cancel. Entered while uninterruptible, so the guard is
 * in place before the wait can be interrupted.
 */
const guardedWait = (
  machineActionId: string,
  options: AwaitOptions | undefined,
  restore: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
): Effect.Effect<MachineAction.MachineAction, DefenderError, DefenderClient.DefenderClient> =>
  Effect.gen(function*() {
    const client = yield* DefenderClient.DefenderClient
    const interval = Duration.decode(options?.interval ?? "10 seconds")
    const deadline = Duration.decode(options?.deadline ?? "1 hour")
    const grace = Duration.toMillis(Duration.decode(options?.notFoundGrace ?? "1 minute"))
    let lastStatus: string | undefined
    let ended = false

    const poll: Effect.Effect<MachineAction.MachineAction, DefenderError> = Effect.gen(function*() {
      yield* Effect.sleep(options?.firstDelay ?? "5 seconds")
      // The 404 grace counts from the first poll, so a long first delay does not use it up.
      const firstPoll = yield* Clock.currentTimeMillis
      while (true) {
        const answer = yield* Effect.either(client.getMachineAction(machineActionId))
        const now = yield* Clock.currentTimeMillis
        if (answer._tag === "Left") {
          // A new action can be unknown to the API for a moment.
          if (answer.left._tag !== "NotFound" || now - firstPoll >= grace) return yield* answer.left
        } else {
          const action = answer.right
          lastStatus = action.status
          if (MachineAction.isFinal(action.status)) {
            ended = true
            if (action.status === "Succeeded") return action
            return yield* new MachineActionFailed({
              reason: action.status as "Failed" | "TimeOut" | "Cancelled",
              machineActionId,
              commands: outcome(action)
            })
          }
        }
        yield* Effect.sleep(interval)
      }
    })

    // Interruptible itself, so its own time limit holds even while the caller is being
    // interrupted; a 400 because the action ended meanwhile is fine.
    const cancel = Effect.interruptible(
      client.cancelMachineAction(machineActionId, options?.cancelComment ?? "cancelled by mde-live-response")
    ).pipe(Effect.timeout("30 seconds"), Effect.ignore, Effect.withSpan("LiveResponse.cancelOnGiveUp"))

    const exit = yield* Effect.exit(restore(
      poll.pipe(
        Effect.timeoutFail({
          duration: deadline,
          onTimeout: () =>
            new DeadlineExceeded({
              waitingFor: `machine action ${machineActionId}`,
              deadlineMillis: Duration.toMillis(deadline),
              ...(lastStatus === undefined ? {} : { lastStatus })
            })
        })
      )
    ))
    if (Exit.isFailure(exit) && !ended) yield* cancel
    return yield* exit
  }).pipe(Effect.withSpan("LiveResponse.awaitMachineAction", { attributes: { "mde.machine_action_id": machineActionId } }))

/**
 * One command's result.
 *
 * - RunScript: the decoded transcript.
 * - GetFile: the file as a byte stream (fetched when consumed); with `decompress`, a gzip file
 *   (detected by its magic bytes) arrives decompressed, and fails with `HttpError`
 *   `"InvalidResponse"` ("the gzip data expands past …") once it expands past
 *   `maxDecompressedBytes` (1 GiB) or, beyond its first MiB, `maxDecompressionRatio` (100:1).
 * - PutFile: no result.
 *
 * @since 0.1.0
 * @category models
 */
export type CommandResult =
  | { readonly index: number; readonly type: "RunScript"; readonly scriptName: string; readonly transcript: Transcript }
  | {
    readonly index: number
    readonly type: "GetFile"
    readonly path: string
    readonly bytes: Stream.Stream<Uint8Array, DefenderError, DefenderClient.DefenderClient>
  }
  | { readonly index: number; readonly type: "PutFile"; readonly fileName: string }

const param = (command: MachineAction.CommandState, key: string): string =>
  command.command.params.find((p) => p.key.toLowerCase() === key.toLowerCase())?.value ?? ""

/**
 * Every command's result of a succeeded machine action, one element per command
 * in index order, matched by index and type.
 *
 * @since 0.1.0
 * @category results
 */
export const results = (
  action: MachineAction.MachineAction,
  options?: {
    readonly decompress?: boolean | undefined
    /** With `decompress`: the most bytes a gzip file may expand to; default 1 GiB. */
    readonly maxDecompressedBytes?: number | undefined
    /** With `decompress`: the most bytes out per compressed byte, past the first MiB; default 100. */
    readonly maxDecompressionRatio?: number | undefined
  }
): Stream.Stream<CommandResult, DefenderError, DefenderClient.DefenderClient> =>
  Stream.fromIterable([...action.commands].sort((a, b) => a.index - b.index)).pipe(
    Stream.mapEffect((command): Effect.Effect<CommandResult, DefenderError, DefenderClient.DefenderClient> => {
      const ref = { machineActionId: action.id, index: command.index }
      switch (command.command.type) {
        case "RunScript":
          return Effect.map(getTranscript(ref), (transcript) => ({
            index: command.index,
            type: "RunScript" as const,
            scriptName: param(command, "ScriptName"),
            transcript
          }))
        case "GetFile": {
          const raw = downloadResult(ref)
          return Effect.succeed({
            index: command.index,
            type: "GetFile" as const,
            path: param(command, "Path"),
            bytes: options?.decompress === true
              ? gunzipIfGzip(raw, { maxBytes: options.maxDecompressedBytes, maxRatio: options.maxDecompressionRatio })
              : raw
          })
        }
        default:
          return Effect.succeed({ index: command.index, type: "PutFile" as const, fileName: param(command, "FileName") })
      }
    })
  )

/**
 * Starts a session and waits for it to end, with no gap between the two where an
 * interruption could leave the started action running: once Defender has answered
 * the start, any way the wait ends short of a final status sends one cancel.
 * `onStarted` runs as soon as the action exists (e.g. to print its id).
 *
 * @since 0.1.0
 * @category sessions
 */
export const runAndAwait = (
  request: RunRequest,
  options?: RunOptions & AwaitOptions & {
    readonly onStarted?: ((action: MachineAction.MachineAction) => Effect.Effect<void>) | undefined
  }
): Effect.Effect<MachineAction.MachineAction, DefenderError, DefenderClient.DefenderClient> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const started = yield* restore(runLiveResponse(request, options))
      if (options?.onStarted !== undefined) yield* options.onStarted(started)
      return yield* guardedWait(started.id, options, restore)
    })
  )

/**
 * A whole session in one call: run, wait, and every command's result.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LiveResponse } from "@mde/live-response"
 *
 * const session = LiveResponse.runAndCollect({
 *   machineId: "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
 *   commands: [{ type: "RunScript", scriptName: "collect.ps1" }],
 *   comment: "triage"
 * }).pipe(Effect.map(({ results }) => results))
 * ```
 *
 * @since 0.1.0
 * @category sessions
 */
export const runAndCollect = (
  request: RunRequest,
  options?: RunOptions & AwaitOptions & { readonly decompress?: boolean | undefined }
): Effect.Effect<
  { readonly action: MachineAction.MachineAction; readonly results: ReadonlyArray<CommandResult> },
  DefenderError,
  DefenderClient.DefenderClient
> =>
  Effect.gen(function*() {
    const action = yield* runAndAwait(request, options)
    const collected = yield* Stream.runCollect(results(action, options))
    return { action, results: [...collected] }
  })

/**
 * Asks Defender to cancel a machine action.
 *
 * @since 0.1.0
 * @category sessions
 */
export const cancelMachineAction = (
  machineActionId: string,
  comment: string
): Effect.Effect<MachineAction.MachineAction, DefenderError, DefenderClient.DefenderClient> =>
  Effect.flatMap(DefenderClient.DefenderClient, (client) => client.cancelMachineAction(machineActionId, comment))

/**
 * Reads a machine action.
 *
 * @since 0.1.0
 * @category sessions
 */
export const getMachineAction = (
  machineActionId: string
): Effect.Effect<MachineAction.MachineAction, DefenderError, DefenderClient.DefenderClient> =>
  Effect.flatMap(DefenderClient.DefenderClient, (client) => client.getMachineAction(machineActionId))

/**
 * Puts a script into the live response library (`POST /api/libraryfiles`), so a
 * program can push a script, run it and collect its results.
 *
 * @since 0.1.0
 * @category library
 */
export const uploadScript = (
  upload: DefenderClient.ScriptUpload
): Effect.Effect<DefenderClient.LibraryFile, DefenderError, DefenderClient.DefenderClient> =>
  Effect.flatMap(DefenderClient.DefenderClient, (client) => client.uploadScript(upload))

/**
 * Saves one command's result (typically a large GetFile result) to `path` with
 * constant memory: a broken connection is resumed with `Range` + `If-Match`, an
 * expired link is re-created, and the MD5 (when the storage declares one) and the
 * length are verified. `path` appears only when the file is complete and verified;
 * on failure or interruption nothing is left. Needs a `FileSystem` (e.g.
 * `NodeFileSystem.layer` from `@effect/platform-node`).
 *
 * @since 0.1.0
 * @category results
 */
export const downloadToFile = (
  ref: CommandRef,
  path: string,
  options?: DefenderClient.SaveOptions
): Effect.Effect<DefenderClient.SavedFile, DefenderError, DefenderClient.DefenderClient | FileSystem.FileSystem> =>
  Effect.flatMap(DefenderClient.DefenderClient, (client) => client.downloadToFile(ref, path, options))

// ---------------------------------------------------------------------------
// Lists: machines, machine actions, library files
// ---------------------------------------------------------------------------

/**
 * The machines a `$filter` selects (`GET /api/machines`), as a stream: every page is
 * read through `@odata.nextLink` (only on the API's own origin), one page at a time as
 * the stream is consumed, each page a call on the machine-actions budget.
 *
 * @example
 * ```ts
 * import { Stream } from "effect"
 * import { LiveResponse, Machine } from "@mde/live-response"
 *
 * const targets = LiveResponse.listMachines({
 *   filter: `${Machine.filterByTag("prod")} and healthStatus eq 'Active' and osPlatform eq 'Windows10'`
 * }).pipe(Stream.map((m) => m.id), Stream.runCollect)
 * ```
 *
 * @since 0.1.0
 * @category lists
 */
export const listMachines = (
  options?: DefenderClient.ListOptions
): Stream.Stream<Machine.Machine, DefenderError, DefenderClient.DefenderClient> =>
  Stream.unwrap(Effect.map(DefenderClient.DefenderClient, (client) => client.listMachines(options)))

/**
 * The machine actions a `$filter` selects (`GET /api/machineactions`), paged like
 * `listMachines`. To poll many actions, read them in one call with
 * `MachineAction.filterByIds` (about 100 ids a call) rather than one `getMachineAction` each.
 *
 * @example
 * ```ts
 * import { Stream } from "effect"
 * import { LiveResponse } from "@mde/live-response"
 *
 * const pending = LiveResponse.listMachineActions({
 *   filter: "type eq 'LiveResponse' and status eq 'Pending' and creationDateTimeUtc gt 2024-01-01T00:00:00Z"
 * }).pipe(Stream.runCollect)
 * ```
 *
 * @since 0.1.0
 * @category lists
 */
export const listMachineActions = (
  options?: DefenderClient.ListOptions
): Stream.Stream<MachineAction.MachineAction, DefenderError, DefenderClient.DefenderClient> =>
  Stream.unwrap(Effect.map(DefenderClient.DefenderClient, (client) => client.listMachineActions(options)))

/**
 * Every file of the live response library (`GET /api/libraryfiles`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LiveResponse } from "@mde/live-response"
 *
 * const hasTriage = LiveResponse.listLibraryFiles().pipe(
 *   Effect.map((files) => files.some((f) => f.fileName === "triage.ps1"))
 * )
 * ```
 *
 * @since 0.1.0
 * @category library
 */
export const listLibraryFiles = (): Effect.Effect<
  ReadonlyArray<DefenderClient.LibraryFileDetails>,
  DefenderError,
  DefenderClient.DefenderClient
> => Effect.flatMap(DefenderClient.DefenderClient, (client) => client.listLibraryFiles())

/**
 * Removes a file from the live response library (`DELETE /api/libraryfiles/{name}`); a
 * name the library does not hold is `NotFound`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LiveResponse } from "@mde/live-response"
 *
 * const cleanUp = LiveResponse.deleteLibraryFile("triage.ps1").pipe(Effect.catchTag("NotFound", () => Effect.void))
 * ```
 *
 * @since 0.1.0
 * @category library
 */
export const deleteLibraryFile = (
  fileName: string
): Effect.Effect<void, DefenderError, DefenderClient.DefenderClient> =>
  Effect.flatMap(DefenderClient.DefenderClient, (client) => client.deleteLibraryFile(fileName))
