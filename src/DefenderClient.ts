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
import { FileSystem, HttpClient, HttpClientRequest } from "@effect/platform"
import type { HttpClientError, HttpClientResponse } from "@effect/platform"
import {
  Cause,
  Clock,
  Config,
  type ConfigError,
  Context,
  Duration,
  Effect,
  Either,
  Layer,
  Option,
  Redacted,
  Ref,
  Schedule,
  Schema,
  Stream
} from "effect"
import { DefenderAuth } from "./DefenderAuth.ts"
import * as DefenderCloud from "./DefenderCloud.ts"
import {
  ActiveSessionExists,
  AuthenticationError,
  type DefenderError,
  DownloadRefused,
  FileDownloadError,
  HttpError,
  InvalidArgument,
  NotFound,
  PermissionDenied,
  ResultLinkError,
  Throttled,
  TranscriptDecodeError
} from "./DefenderError.ts"
import { createHash } from "node:crypto"
import { type Bucket, DefenderRateLimiter } from "./DefenderRateLimiter.ts"
import { parseShortDuration } from "./internal/duration.ts"
import { noRedirects } from "./internal/noRedirects.ts"
import { DEFAULT_MAX_RETRY_AFTER_MILLIS, parseRetryAfter } from "./internal/retryAfter.ts"
import { checkSecureUrl, DEFAULT_DOWNLOAD_HOSTS, hostMatches, parseHostList, redactText, redactUrl } from "./internal/url.ts"
import * as MachineAction from "./MachineAction.ts"
import * as Transcript from "./Transcript.ts"

/**
 * One command of a machine action: the action's id and the command's index
 * in its `commands` array.
 *
 * @since 0.1.0
 */
export interface CommandRef {
  readonly machineActionId: string
  readonly index: number
}

/**
 * A result's download link. The URL carries a SAS signature, so it stays
 * `Redacted` (it prints as `<redacted>`); `expiresAt` is read from its `se=`.
 *
 * @since 0.1.0
 */
export interface ResultLink {
  readonly url: Redacted.Redacted<string>
  readonly expiresAt: Date | undefined
}

/**
 * The live response result calls.
 *
 * @since 0.1.0
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
}

/**
 * A script (or any file) to put into the live response library.
 *
 * @since 0.1.0
 */
export interface ScriptUpload {
  readonly fileName: string
  readonly content: string | Uint8Array
  readonly description?: string | undefined
  readonly parametersDescription?: string | undefined
  readonly hasParameters?: boolean | undefined
  /** Replace a library file of the same name; default false (then an existing file is a 400). */
  readonly overrideIfExists?: boolean | undefined
}

/**
 * Options of `downloadToFile`.
 *
 * @since 0.1.0
 */
export interface SaveOptions {
  /** How many broken connections one download survives; default 10. */
  readonly maxInterruptions?: number | undefined
}

/**
 * A result saved to disk.
 *
 * @since 0.1.0
 */
export interface SavedFile {
  readonly path: string
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
 */
export interface LibraryFile {
  readonly fileName: string
  readonly sha256: string | undefined
}

/**
 * What to run: the machine, its commands and the comment Defender records.
 *
 * @since 0.1.0
 */
export interface RunRequest {
  readonly machineId: string
  readonly commands: ReadonlyArray<MachineAction.Command>
  readonly comment: string
}

/**
 * The `DefenderClient` service tag.
 *
 * @since 0.1.0
 */
export const DefenderClient: Context.Tag<DefenderClient, DefenderClient> = Context.GenericTag<DefenderClient>(
  "mde-live-response/DefenderClient"
)

/**
 * Options of the client.
 *
 * @since 0.1.0
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
}

/**
 * The default time limit of one attempt: 30 seconds.
 *
 * @since 0.1.0
 */
export const DEFAULT_TIMEOUT: Duration.Duration = Duration.seconds(30)

/**
 * The default largest transcript: 64 MiB.
 *
 * @since 0.1.0
 */
export const DEFAULT_MAX_TRANSCRIPT_BYTES: number = 64 * 1024 * 1024

/**
 * The default retry schedule: exponential backoff from 1 s (doubling, jittered,
 * each wait at most 30 s), at most 6 retries — 7 attempts, about a minute in all
 * when no `Retry-After` is given.
 *
 * @since 0.1.0
 */
export const defaultRetrySchedule: Schedule.Schedule<unknown, DefenderError> = Schedule.exponential("1 second").pipe(
  Schedule.jittered,
  Schedule.modifyDelay((_, delay) => Duration.min(delay, Duration.seconds(30))),
  Schedule.intersect(Schedule.recurs(6)),
  Schedule.asVoid
)

const RETRYABLE_STATUS: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504])

/**
 * Whether the library retries an error: throttling, 408/429/500/502/503/504 and transport failures.
 *
 * @since 0.1.0
 */
export const isRetryable = (error: DefenderError): boolean =>
  error._tag === "Throttled" ||
  (error._tag === "HttpError" &&
    (error.reason === "Transport" ||
      (error.reason === "Status" && error.status !== undefined && RETRYABLE_STATUS.has(error.status))))

/** The wait a server asked for, on the errors that can carry one. */
const serverWait = (error: DefenderError): number | undefined =>
  error._tag === "Throttled" || error._tag === "HttpError" ? error.retryAfterMillis : undefined

const retryPolicy = (
  schedule: Schedule.Schedule<unknown, DefenderError>,
  retryable: (error: DefenderError) => boolean = isRetryable
): Schedule.Schedule<unknown, DefenderError> =>
  Schedule.intersect(schedule, Schedule.identity<DefenderError>()).pipe(
    Schedule.whileInput(retryable),
    // The server's Retry-After wins over the schedule's own wait.
    Schedule.modifyDelay(([, error], delay) => {
      const wait = serverWait(error)
      return wait === undefined ? delay : Duration.millis(wait)
    }),
    Schedule.onDecision(([, error], decision) =>
      decision._tag === "Continue"
        ? Effect.logDebug(`mde-live-response: retrying after ${error._tag}: ${error.message}`)
        : Effect.void
    )
  )

// ---------------------------------------------------------------------------
// Response bodies
// ---------------------------------------------------------------------------

const ODataError = Schema.Struct({
  error: Schema.Struct({
    code: Schema.optional(Schema.String),
    message: Schema.optional(Schema.String),
    target: Schema.optional(Schema.String)
  })
})
const decodeODataError = Schema.decodeUnknownOption(ODataError)

const LinkResponse = Schema.Struct({
  "@odata.context": Schema.optional(Schema.String),
  value: Schema.String
})
const decodeLinkResponse = Schema.decodeUnknownOption(LinkResponse)

interface ApiErrorInfo {
  readonly code?: string
  readonly target?: string
  readonly apiMessage?: string
}

const MAX_ERROR_BODY = 64 * 1024

/** Reads at most about 64 KiB of an error body, as text; never fails. */
const readErrorText = (response: HttpClientResponse.HttpClientResponse): Effect.Effect<string> =>
  Effect.suspend(() => {
    const decoder = new TextDecoder()
    return response.stream.pipe(
      Stream.runFoldWhile(
        "",
        (text) => text.length < MAX_ERROR_BODY,
        (text, chunk) => text + decoder.decode(chunk, { stream: true })
      ),
      Effect.orElseSucceed(() => "")
    )
  })

const apiErrorInfo = (response: HttpClientResponse.HttpClientResponse): Effect.Effect<ApiErrorInfo> =>
  Effect.map(readErrorText(response), (text) => {
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      return {}
    }
    return Option.match(decodeODataError(parsed), {
      onNone: () => ({}),
      onSome: ({ error }) => ({
        ...(error.code === undefined ? {} : { code: error.code }),
        ...(error.target === undefined ? {} : { target: error.target }),
        ...(error.message === undefined ? {} : { apiMessage: redactText(error.message).slice(0, 500) })
      })
    })
  })

/** A transport failure in a few words (`fetch failed: ECONNREFUSED`), never with the URL. */
const describeTransport = (error: HttpClientError.HttpClientError): string => {
  const cause = error.cause
  if (!(cause instanceof Error)) return error.reason
  const inner = (cause as { cause?: unknown }).cause
  const code = (value: unknown): string | undefined =>
    typeof value === "object" && value !== null && "code" in value && typeof value.code === "string"
      ? value.code
      : undefined
  const found = code(inner) ??
    (inner instanceof AggregateError ? inner.errors.map(code).find((c) => c !== undefined) : undefined)
  return redactText(found === undefined ? cause.message : `${cause.message}: ${found}`).slice(0, 300)
}

// ---------------------------------------------------------------------------
// Argument checks
// ---------------------------------------------------------------------------

const checkRef = (ref: CommandRef): Effect.Effect<CommandRef, InvalidArgument> => {
  const id = typeof ref.machineActionId === "string" ? ref.machineActionId.trim() : ""
  if (id === "" || id === "." || id === ".." || id.length > 256 || /[\u0000-\u001f\u007f]/.test(id)) {
    return Effect.fail(
      new InvalidArgument({
        argument: "machineActionId",
        detail: "must be a non-empty machine action id (a GUID), without control characters"
      })
    )
  }
  if (!Number.isSafeInteger(ref.index) || ref.index < 0) {
    return Effect.fail(
      new InvalidArgument({ argument: "index", detail: `must be a non-negative integer, got ${String(ref.index)}` })
    )
  }
  return Effect.succeed({ machineActionId: id, index: ref.index })
}

const linkExpiry = (url: URL): Date | undefined => {
  const se = url.searchParams.get("se")
  if (se === null) return undefined
  const date = new Date(se)
  return Number.isNaN(date.getTime()) ? undefined : date
}

// ---------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------

/** A transcript body that broke or stalled after its headers were in (internal: read again). */
class BodyBroken {
  constructor(readonly error: HttpError) {}
}

/**
 * Builds the client from its dependencies.
 *
 * @since 0.1.0
 */
export const make = (
  options?: Options
): Effect.Effect<DefenderClient, never, DefenderAuth | DefenderRateLimiter | HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const auth = yield* DefenderAuth
    const limiter = yield* DefenderRateLimiter
    // API calls and downloads alike follow no redirect (see internal/noRedirects.ts).
    const http = HttpClient.transformResponse(yield* HttpClient.HttpClient, noRedirects)
    // The platform's client span records the full URL, which for a download holds the SAS
    // signature: storage requests get our own span with the signature redacted instead.
    const storage = HttpClient.withTracerDisabledWhen(http, () => true)
    const cloud = options?.cloud ?? DefenderCloud.commercial
    const policy = retryPolicy(options?.retry ?? defaultRetrySchedule)
    // A POST that may have been carried out is not repeated: only a 429 (never executed) is.
    const postPolicy = retryPolicy(options?.retry ?? defaultRetrySchedule, (e) => e._tag === "Throttled")
    const allowedHosts = [...DEFAULT_DOWNLOAD_HOSTS, ...(options?.downloadHosts ?? [])]
    const maxTranscriptBytes = options?.maxTranscriptBytes ?? DEFAULT_MAX_TRANSCRIPT_BYTES

    const timeout = Duration.decode(options?.timeout ?? DEFAULT_TIMEOUT)

    /** Runs `attempt(n)` with the retry policy; `n` counts the attempts from 1. */
    const retrying = <A>(
      attempt: (n: number) => Effect.Effect<A, DefenderError>,
      schedule: Schedule.Schedule<unknown, DefenderError> = policy
    ): Effect.Effect<A, DefenderError> =>
      Effect.flatMap(Ref.make(0), (counter) => {
        const once: Effect.Effect<A, DefenderError> = Effect.flatMap(Ref.updateAndGet(counter, (n) => n + 1), attempt)
        return Effect.retry(once, schedule)
      })

    const transportError = (method: string, url: string, attempts: number) => (e: HttpClientError.HttpClientError) =>
      new HttpError({ reason: "Transport", method, url: redactUrl(url), attempts, detail: describeTransport(e) })

    /** Limits one attempt in time; a timeout is a (retryable) transport failure. */
    const timed = <A>(method: string, url: string, attempts: number) => (self: Effect.Effect<A, DefenderError>) =>
      Effect.timeoutFail(self, {
        duration: timeout,
        onTimeout: () =>
          new HttpError({
            reason: "Transport",
            method,
            url: redactUrl(url),
            attempts,
            detail: `no answer within ${Duration.format(timeout)}`
          })
      })

    /**
     * One authorized API call: a token, a permit, the request and `handle` of its answer
     * (only these last two are timed), and one repeat with a new token after a 401.
     */
    const sendAuthorized = <A>(
      request: HttpClientRequest.HttpClientRequest,
      attempts: number,
      bucket: Bucket,
      handle: (response: HttpClientResponse.HttpClientResponse) => Effect.Effect<A, DefenderError>
    ) =>
      Effect.gen(function*() {
        for (let renewed = false;; renewed = true) {
          // The token first: the permit is taken right before the request goes out, so a
          // slow token request cannot bunch up calls beyond the rolling window; the call
          // counts in the window from when its answer is in (see DefenderRateLimiter).
          const token = yield* auth.token
          const outcome = yield* limiter.withPermit(http.execute(HttpClientRequest.bearerToken(request, token)).pipe(
            Effect.mapError(transportError(request.method, request.url, attempts)),
            Effect.flatMap((response): Effect.Effect<
              { readonly value: A } | { readonly unauthorized: ApiErrorInfo },
              DefenderError
            > =>
              response.status === 401
                ? Effect.map(apiErrorInfo(response), (info) => ({ unauthorized: info }))
                : Effect.map(handle(response), (value) => ({ value }))
            ),
            timed(request.method, request.url, attempts)
          ), bucket)
          if ("value" in outcome) return outcome.value
          if (renewed || !(yield* auth.invalidate(token))) {
            const description = outcome.unauthorized.apiMessage
            return yield* new AuthenticationError({
              reason: "Unauthorized",
              status: 401,
              errorCodes: [],
              ...(description === undefined ? {} : { description })
            })
          }
        }
      })

    /** The wait a response's `Retry-After` (or `retry-after-ms`…) asks for. */
    const retryAfterOf = (response: HttpClientResponse.HttpClientResponse) =>
      Effect.map(Clock.currentTimeMillis, (now) =>
        Option.getOrUndefined(parseRetryAfter(response.headers, now, DEFAULT_MAX_RETRY_AFTER_MILLIS)))

    /** Turns a non-2xx API answer into its typed error. */
    const apiFailure = (
      response: HttpClientResponse.HttpClientResponse,
      request: HttpClientRequest.HttpClientRequest,
      resource: string,
      attempts: number,
      bucket: Bucket
    ) =>
      Effect.gen(function*() {
        /** An answer no other error covers, as an `HttpError` with this status. */
        const statusError = (fields: Partial<Pick<HttpError, "retryAfterMillis" | "code" | "target" | "detail">>) =>
          new HttpError({
            reason: "Status",
            method: request.method,
            url: redactUrl(request.url),
            attempts,
            status: response.status,
            ...fields
          })
        if (response.status >= 300 && response.status < 400) {
          // Not followed (see noRedirects): only the target's origin is shown, never its path or query.
          let target = "another address"
          try {
            target = new URL(response.headers["location"] ?? "", request.url).origin
          } catch {
            // an unparsable Location: keep the generic wording
          }
          return yield* statusError({
            detail: `a redirect to ${target} was refused: the Defender API does not redirect, check the API base URL`
          })
        }
        const retryAfter = yield* retryAfterOf(response)
        // Every caller of this budget waits, not only the one that was told to, and at
        // once: before this answer's body has even been read.
        if (response.status === 429 && retryAfter !== undefined) {
          yield* limiter.pause(Duration.millis(retryAfter), bucket)
        }
        const info = yield* apiErrorInfo(response)
        const wait = retryAfter === undefined ? {} : { retryAfterMillis: retryAfter }
        switch (response.status) {
          case 403:
            return yield* new PermissionDenied(info)
          case 404:
            return yield* new NotFound({ resource, ...info })
          case 429:
            return yield* new Throttled({
              attempts,
              ...wait,
              ...(info.code === undefined ? {} : { code: info.code }),
              ...(info.target === undefined ? {} : { target: info.target })
            })
          default:
            return yield* statusError({
              ...wait,
              ...(info.code === undefined ? {} : { code: info.code }),
              ...(info.target === undefined ? {} : { target: info.target }),
              ...(info.apiMessage === undefined ? {} : { detail: info.apiMessage })
            })
        }
      })

    /** One API call, retried; its body as text, or the typed error of a non-2xx answer. */
    const apiCall = (
      request: HttpClientRequest.HttpClientRequest,
      resource: string,
      bucket: Bucket = "results",
      idempotent: boolean = request.method === "GET"
    ) =>
      retrying(
        (attempts) =>
          sendAuthorized(request.pipe(HttpClientRequest.acceptJson), attempts, bucket, (response) =>
            response.status < 200 || response.status >= 300
              ? apiFailure(response, request, resource, attempts, bucket)
              // Read inside the attempt, so a connection lost mid-body is retried too.
              : Effect.map(
                Effect.mapError(response.text, transportError(request.method, request.url, attempts)),
                (text) => ({ text, status: response.status, attempts })
              )),
        idempotent ? policy : postPolicy
      )

    /** Parses an API answer's JSON; an unreadable one is an `InvalidResponse`. */
    const parseJson = (answer: { readonly text: string; readonly status: number; readonly attempts: number }, method: string, url: string) => {
      try {
        return Effect.succeed(JSON.parse(answer.text) as unknown)
      } catch {
        return Effect.fail(
          new HttpError({
            reason: "InvalidResponse",
            method,
            url: redactUrl(url),
            attempts: answer.attempts,
            status: answer.status,
            detail: "the body is not JSON"
          })
        )
      }
    }

    const machineAction = (answer: { readonly text: string; readonly status: number; readonly attempts: number }, method: string, url: string) =>
      Effect.flatMap(parseJson(answer, method, url), (json) =>
        Either.match(MachineAction.decode(json), {
          onLeft: (detail) =>
            Effect.fail(
              new HttpError({
                reason: "InvalidResponse",
                method,
                url: redactUrl(url),
                attempts: answer.attempts,
                status: answer.status,
                detail: `not a machine action: ${detail}`
              })
            ),
          onRight: Effect.succeed
        }))

    const actionUrl = (id: string) => `${cloud.apiBaseUrl}/api/machineactions/${encodeURIComponent(id)}`

    const getMachineAction = Effect.fn("DefenderClient.getMachineAction")(function*(machineActionId: string) {
      const { machineActionId: id } = yield* checkRef({ machineActionId, index: 0 })
      yield* Effect.annotateCurrentSpan("mde.machine_action_id", id)
      const url = actionUrl(id)
      const answer = yield* apiCall(HttpClientRequest.get(url), `machine action ${id}`, "machineActions")
      return yield* machineAction(answer, "GET", url)
    })

    // Run calls for the same machine go one at a time within this client, so two fibers
    // never race each other into ActiveRequestAlreadyExists.
    const machineLocks = new Map<string, Effect.Semaphore>()
    const machineLock = (machineId: string) => {
      let lock = machineLocks.get(machineId)
      if (lock === undefined) {
        lock = Effect.unsafeMakeSemaphore(1)
        machineLocks.set(machineId, lock)
      }
      return lock.withPermits(1)
    }

    const runLiveResponse = Effect.fn("DefenderClient.runLiveResponse")(function*(request: RunRequest) {
      const machineId = typeof request.machineId === "string" ? request.machineId.trim() : ""
      if (machineId === "" || machineId === "." || machineId === ".." || /[\u0000-\u001f]/.test(machineId)) {
        return yield* new InvalidArgument({ argument: "machineId", detail: "must be a non-empty machine id" })
      }
      const body = MachineAction.toRequestBody(request.commands, request.comment)
      if (Either.isLeft(body)) return yield* new InvalidArgument({ argument: "commands", detail: body.left })
      yield* Effect.annotateCurrentSpan("mde.machine_id", machineId)
      const url = `${cloud.apiBaseUrl}/api/machines/${encodeURIComponent(machineId)}/runliveresponse`
      const answer = yield* apiCall(
        HttpClientRequest.post(url).pipe(HttpClientRequest.bodyUnsafeJson(body.right)),
        `machine ${machineId}`,
        "run"
      ).pipe(
        machineLock(machineId),
        Effect.catchIf(
          (e): e is HttpError => e._tag === "HttpError" && e.status === 400 && e.code === "ActiveRequestAlreadyExists",
          (e) => Effect.fail(new ActiveSessionExists({ machineId, ...(e.target === undefined ? {} : { target: e.target }) }))
        )
      )
      const action = yield* machineAction(answer, "POST", url)
      yield* Effect.annotateCurrentSpan("mde.machine_action_id", action.id)
      return action
    })

    const cancelMachineAction = Effect.fn("DefenderClient.cancelMachineAction")(
      function*(machineActionId: string, comment: string) {
        const { machineActionId: id } = yield* checkRef({ machineActionId, index: 0 })
        yield* Effect.annotateCurrentSpan("mde.machine_action_id", id)
        const url = `${actionUrl(id)}/cancel`
        const answer = yield* apiCall(
          HttpClientRequest.post(url).pipe(HttpClientRequest.bodyUnsafeJson({ Comment: comment })),
          `machine action ${id}`,
          "machineActions",
          // Cancelling twice does no harm, so a cancel is retried like a read.
          true
        )
        return yield* machineAction(answer, "POST", url)
      }
    )

    const getResultLink = Effect.fn("DefenderClient.getResultLink")(function*(input: CommandRef) {
      const ref = yield* checkRef(input)
      yield* Effect.annotateCurrentSpan({
        "mde.machine_action_id": ref.machineActionId,
        "mde.command_index": ref.index
      })
      const url = `${cloud.apiBaseUrl}/api/machineactions/${
        encodeURIComponent(ref.machineActionId)
      }/GetLiveResponseResultDownloadLink(index=${ref.index})`
      const { attempts, status, text } = yield* apiCall(
        HttpClientRequest.get(url),
        `machine action ${ref.machineActionId} (command index ${ref.index})`
      )
      const invalid = (detail: string) =>
        new HttpError({ reason: "InvalidResponse", method: "GET", url, attempts, status, detail })
      let body: unknown
      try {
        body = JSON.parse(text)
      } catch {
        return yield* invalid("the body is not JSON")
      }
      const decoded = decodeLinkResponse(body)
      if (Option.isNone(decoded)) return yield* invalid("the body has no string `value`")
      let link: URL
      try {
        link = new URL(decoded.value.value)
      } catch {
        return yield* new ResultLinkError({ reason: "InvalidLink", detail: "the `value` is not a URL" })
      }
      yield* Effect.annotateCurrentSpan("mde.result_link", redactUrl(link))
      return { url: Redacted.make(link.href), expiresAt: linkExpiry(link) } satisfies ResultLink
    })

    /** Checks a link against the scheme rule and the allow-list, before any request. */
    const checkDownloadUrl = (link: ResultLink): Effect.Effect<URL, DownloadRefused> => {
      const checked = checkSecureUrl(Redacted.value(link.url))
      if (checked._tag === "Left") {
        let host: string | undefined
        try {
          host = new URL(Redacted.value(link.url)).hostname
        } catch {
          host = undefined
        }
        return Effect.fail(new DownloadRefused({ reason: checked.left, ...(host === undefined ? {} : { host }) }))
      }
      if (!hostMatches(checked.right.hostname, allowedHosts)) {
        return Effect.fail(new DownloadRefused({ reason: "HostNotAllowed", host: checked.right.hostname }))
      }
      return Effect.succeed(checked.right)
    }

    /** One GET of a link, retried on transient failures; `"expired"` when the SAS time frame is over. */
    const openLink = (link: ResultLink, headers?: Record<string, string>) =>
      Effect.gen(function*() {
        const url = yield* checkDownloadUrl(link)
        const shown = redactUrl(url)
        yield* Effect.annotateCurrentSpan({ "url.full": shown, "server.address": url.host })
        // No Authorization header: the SAS in the URL is the storage's credential.
        const request = HttpClientRequest.get(url).pipe(HttpClientRequest.setHeaders(headers ?? {}))
        return yield* retrying((attempts) =>
          Effect.gen(function*() {
            // `storage` is `http`, which follows no redirect.
            const response = yield* storage.execute(request).pipe(Effect.mapError(transportError("GET", shown, attempts)))
            if (response.status === 200 || response.status === 206) return response
            // If-Match failed: the blob changed under a resumed download.
            if (response.status === 412 && headers?.["if-match"] !== undefined) return "changed" as const
            if (response.status >= 300 && response.status < 400) {
              return yield* new DownloadRefused({ reason: "Redirected", host: url.hostname })
            }
            const retryAfter = yield* retryAfterOf(response)
            const text = yield* readErrorText(response)
            const storageCode = response.headers["x-ms-error-code"] ?? /<Code>([^<]*)<\/Code>/.exec(text)?.[1]
            const codeField = storageCode === undefined ? {} : { storageCode }
            if (response.status === 403) {
              // Real storage: AuthenticationFailed + "Signature not valid in the specified time frame";
              // the Azurite emulator answers an expired SAS with AuthorizationFailure.
              const expired = storageCode === "AuthorizationFailure" ||
                /not valid in the specified time frame|signed expiry time|has expired/i.test(text)
              if (expired) return "expired" as const
              return yield* new ResultLinkError({ reason: "Forbidden", status: 403, ...codeField })
            }
            if (response.status === 404) {
              return yield* new ResultLinkError({ reason: "BlobNotFound", status: 404, ...codeField })
            }
            return yield* new HttpError({
              reason: "Status",
              method: "GET",
              url: shown,
              attempts,
              status: response.status,
              ...(retryAfter === undefined ? {} : { retryAfterMillis: retryAfter }),
              ...(storageCode === undefined ? {} : { code: storageCode })
            })
          }).pipe(timed("GET", shown, attempts))
        )
      })

    /**
     * A link, then its body; an expired link is re-created once, never in a loop. `held`
     * keeps the link between calls, so a body read again does not spend another API call.
     */
    // Untraced: its value is the storage response, whose request holds the SAS URL, and a
    // span would hand it to the tracer; its callers' spans get the (redacted) link instead.
    const openResult = Effect.fnUntraced(function*(
      ref: CommandRef,
      held: { link: ResultLink | undefined; recreated: boolean } = { link: undefined, recreated: false }
    ) {
      held.link ??= yield* getResultLink(ref)
      const first = yield* openLink(held.link)
      if (first !== "expired" && first !== "changed") return first
      if (!held.recreated) {
        held.recreated = true
        yield* Effect.annotateCurrentSpan("mde.link_recreated", true)
        held.link = yield* getResultLink(ref)
        const second = yield* openLink(held.link)
        if (second !== "expired" && second !== "changed") return second
      }
      return yield* new ResultLinkError({
        reason: "Expired",
        status: 403,
        detail: "the storage said the signature is not valid in its time frame"
      })
    })

    const broken = (detail: string) =>
      new HttpError({ reason: "Transport", method: "GET", url: "(result download)", attempts: 1, detail })
    // getTranscript reads a body that broke or stalled again (the same link: the result is
    // still there), on the retry schedule.
    const bodyRetryPolicy = Schedule.mapInput(
      retryPolicy(options?.retry ?? defaultRetrySchedule, () => true),
      (e: DefenderError | BodyBroken) => (e instanceof BodyBroken ? e.error : e)
    )

    /** A response's body, failing as a transport error when it stalls longer than the timeout. */
    const body = (response: HttpClientResponse.HttpClientResponse): Stream.Stream<Uint8Array, HttpError> =>
      Stream.mapError(response.stream, (e) => broken(describeTransport(e))).pipe(
        Stream.timeoutFailCause(() => Cause.fail(broken(`the body stalled for ${Duration.format(timeout)}`)), timeout)
      )

    const downloadResult = (ref: CommandRef): Stream.Stream<Uint8Array, DefenderError> =>
      Stream.unwrap(
        Effect.map(openResult(ref), (response) => body(response))
      ).pipe(Stream.withSpan("DefenderClient.downloadResult"))

    const getTranscript = Effect.fn("DefenderClient.getTranscript")(function*(ref: CommandRef) {
      // A body that breaks or stalls is read again from the same link, on the retry schedule.
      const held = { link: undefined, recreated: false }
      let reads = 0
      return yield* Effect.suspend(() => {
        reads++
        return readTranscript(ref, held)
      }).pipe(
        Effect.retry({ schedule: bodyRetryPolicy, while: (e) => e instanceof BodyBroken }),
        Effect.mapError((e) => (e instanceof BodyBroken ? new HttpError({ ...e.error, attempts: reads }) : e))
      )
    })

    const readTranscript = Effect.fnUntraced(function*(
      ref: CommandRef,
      held: { link: ResultLink | undefined; recreated: boolean }
    ) {
      const response = yield* openResult(ref, held)
      const tooLarge = (size: string) =>
        new TranscriptDecodeError({
          reason: "TooLarge",
          detail: `the transcript is ${size}, over the ${maxTranscriptBytes}-byte limit`
        })
      const declared = Number(response.headers["content-length"])
      if (Number.isFinite(declared) && declared > maxTranscriptBytes) return yield* tooLarge(`${declared} bytes`)
      const chunks: Array<Uint8Array> = []
      let size = 0
      yield* Stream.runForEach(
        Stream.mapError(body(response), (error) => new BodyBroken(error)),
        (chunk) => {
          size += chunk.length
          if (size > maxTranscriptBytes) return Effect.fail(tooLarge("larger"))
          chunks.push(chunk)
          return Effect.void
        }
      )
      const bytes = new Uint8Array(size)
      let offset = 0
      for (const chunk of chunks) {
        bytes.set(chunk, offset)
        offset += chunk.length
      }
      return yield* Transcript.decode(bytes)
    })

    const downloadToFile = Effect.fn("DefenderClient.downloadToFile")(
      function*(ref: CommandRef, path: string, saveOptions?: SaveOptions) {
        const fs = yield* FileSystem.FileSystem
        yield* Effect.annotateCurrentSpan({ "mde.machine_action_id": ref.machineActionId, "mde.command_index": ref.index })
        const maxInterruptions = saveOptions?.maxInterruptions ?? 10
        const fail = (reason: FileDownloadError["reason"], detail: string) =>
          new FileDownloadError({ reason, path, detail })
        const fileError = (e: { readonly message: string }) => fail("FileSystem", e.message.slice(0, 200))
        // Written beside the target and renamed when complete and verified, so `path` is
        // never half a file; removed on any failure or interruption.
        const temp = `${path}.partial-${Math.random().toString(36).slice(2, 10)}`
        const save = Effect.scoped(Effect.gen(function*() {
          const file = yield* fs.open(temp, { flag: "w" }).pipe(Effect.mapError(fileError))
          let link = yield* getResultLink(ref)
          let renewals = 0
          let interruptions = 0
          let offset = 0
          let etag: string | undefined
          let md5: string | undefined
          let total: number | undefined
          let hash = createHash("md5")
          const restart = Effect.gen(function*() {
            offset = 0
            etag = undefined
            md5 = undefined
            total = undefined
            hash = createHash("md5")
            yield* file.truncate(0).pipe(Effect.mapError(fileError))
            yield* file.seek(0, "start")
          })
          while (true) {
            const resume = offset > 0
              ? { range: `bytes=${offset}-`, ...(etag === undefined ? {} : { "if-match": etag }) }
              : undefined
            const opened = yield* openLink(link, resume)
            if (opened === "expired") {
              // Re-created as often as it expires during one download, within reason.
              if (++renewals > 5) {
                return yield* new ResultLinkError({ reason: "Expired", status: 403, detail: "the link kept expiring" })
              }
              link = yield* getResultLink(ref)
              continue
            }
            if (opened === "changed") {
              yield* restart
              continue
            }
            const response = opened
            const range = /^bytes (\d+)-\d+\/(\d+)$/.exec(response.headers["content-range"] ?? "")
            if (response.status === 206 && (range === null || Number(range[1]) !== offset ||
              (total !== undefined && Number(range[2]) !== total)))
            {
              // Another part than the one asked for: its bytes belong elsewhere. Start over,
              // without reading this body.
              yield* restart
              if (++interruptions > maxInterruptions) {
                return yield* fail("TooManyInterruptions", "the storage kept answering with the wrong range")
              }
              continue
            }
            if (offset > 0 && response.status === 200) {
              // The storage sent the whole file: start over from byte 0 with it.
              yield* restart
            }
            etag = response.headers["etag"] ?? etag
            md5 = response.headers["x-ms-blob-content-md5"] ??
              (response.status === 200 ? response.headers["content-md5"] : undefined) ?? md5
            const length = Number(response.headers["content-length"])
            total = range !== null ? Number(range[2]) : Number.isFinite(length) ? offset + length : total
            const read = yield* Stream.runForEach(body(response), (chunk) =>
              Effect.zipRight(
                file.writeAll(chunk).pipe(Effect.mapError(fileError)),
                Effect.sync(() => {
                  hash.update(chunk)
                  offset += chunk.length
                })
              )).pipe(Effect.either)
            if (read._tag === "Left" && read.left._tag === "FileDownloadError") return yield* read.left
            const short = total !== undefined && offset < total
            // A reset right after the last byte: complete (the length and MD5 checks decide).
            const complete = total !== undefined && offset === total
            if ((read._tag === "Left" && !complete) || short) {
              // The connection broke mid-body: resume where it stopped.
              if (++interruptions > maxInterruptions) {
                return yield* fail("TooManyInterruptions", `${interruptions - 1} resumes at ${offset} bytes`)
              }
              yield* Effect.annotateCurrentSpan("mde.resumes", interruptions)
              continue
            }
            break
          }
          if (total !== undefined && offset !== total) {
            return yield* fail("LengthMismatch", `got ${offset} bytes, expected ${total}`)
          }
          const digest = hash.digest("base64")
          if (md5 !== undefined && digest !== md5) {
            return yield* fail("Md5Mismatch", `got ${digest}, expected ${md5}`)
          }
          return { path, bytes: offset, md5Verified: md5 !== undefined, resumes: interruptions } satisfies SavedFile
        }))
        // Verified bytes are renamed into place in the same protected region, so neither a
        // failure nor an interruption can leave the temporary file behind.
        return yield* Effect.zipLeft(save, fs.rename(temp, path).pipe(Effect.mapError(fileError))).pipe(
          Effect.onExit((exit) => (exit._tag === "Failure" ? fs.remove(temp).pipe(Effect.ignore) : Effect.void))
        )
      }
    )

    const uploadScript = Effect.fn("DefenderClient.uploadScript")(function*(upload: ScriptUpload) {
      const fileName = typeof upload.fileName === "string" ? upload.fileName.trim() : ""
      if (fileName === "" || /[\\/\u0000-\u001f]/.test(fileName)) {
        return yield* new InvalidArgument({ argument: "fileName", detail: "must be a plain file name such as collect.ps1" })
      }
      yield* Effect.annotateCurrentSpan("mde.file_name", fileName)
      const form = new FormData()
      const bytes = typeof upload.content === "string" ? new TextEncoder().encode(upload.content) : upload.content
      form.append("file", new Blob([bytes as Uint8Array<ArrayBuffer>]), fileName)
      form.append("Description", upload.description ?? "")
      if (upload.parametersDescription !== undefined) form.append("ParametersDescription", upload.parametersDescription)
      form.append("HasParameters", String(upload.hasParameters ?? upload.parametersDescription !== undefined))
      form.append("OverrideIfExists", String(upload.overrideIfExists ?? false))
      const url = `${cloud.apiBaseUrl}/api/libraryfiles`
      const answer = yield* apiCall(
        HttpClientRequest.post(url).pipe(HttpClientRequest.bodyFormData(form)),
        `library file ${fileName}`,
        "machineActions"
      )
      const json = yield* parseJson(answer, "POST", url)
      const value = typeof json === "object" && json !== null ? json as Record<string, unknown> : {}
      return {
        fileName: typeof value.fileName === "string" ? value.fileName : fileName,
        sha256: typeof value.sha256 === "string" ? value.sha256 : undefined
      } satisfies LibraryFile
    })

    return DefenderClient.of({
      downloadToFile,
      uploadScript,
      cloud,
      getResultLink,
      downloadResult,
      getTranscript,
      getMachineAction,
      runLiveResponse,
      cancelMachineAction
    })
  })

/**
 * The client as a layer; it needs `DefenderAuth`, `DefenderRateLimiter` and an `HttpClient`.
 *
 * @since 0.1.0
 */
export const layer = (
  options?: Options
): Layer.Layer<DefenderClient, never, DefenderAuth | DefenderRateLimiter | HttpClient.HttpClient> =>
  Layer.effect(DefenderClient, make(options))

/**
 * Reads the client's options from the environment: the cloud (`MDE_CLOUD`,
 * `MDE_API_URL`, `MDE_SCOPE`, `AZURE_AUTHORITY_HOST`), `MDE_DOWNLOAD_HOSTS`
 * (a comma list), `MDE_MAX_TRANSCRIPT_BYTES` and `MDE_TIMEOUT` (the `timeout`
 * option: `30s`, `500ms`, `2m` or `"30 seconds"`). `retry` can still be given in code.
 *
 * @since 0.1.0
 */
export const layerConfig = (
  options?: Pick<Options, "retry">
): Layer.Layer<
  DefenderClient,
  ConfigError.ConfigError,
  DefenderAuth | DefenderRateLimiter | HttpClient.HttpClient
> =>
  Layer.unwrapEffect(
    Effect.map(
      Config.all({
        cloud: DefenderCloud.config,
        downloadHosts: Config.string("MDE_DOWNLOAD_HOSTS").pipe(Config.withDefault(""), Config.map(parseHostList)),
        maxTranscriptBytes: Config.integer("MDE_MAX_TRANSCRIPT_BYTES").pipe(
          Config.validate({ message: "must be a positive integer", validation: (n) => n > 0 }),
          Config.withDefault(DEFAULT_MAX_TRANSCRIPT_BYTES)
        ),
        timeout: Config.string("MDE_TIMEOUT").pipe(
          Config.mapAttempt((text) => {
            const short = parseShortDuration(text)
            const duration = short === undefined
              ? Option.getOrUndefined(Duration.decodeUnknown(text.trim()))
              : Duration.millis(short)
            if (duration === undefined || !Duration.isFinite(duration) || Duration.toMillis(duration) <= 0) {
              throw new Error(`must be a positive duration (30s, 500ms, 2m or 2 minutes), got: ${text}`)
            }
            return duration
          }),
          Config.withDefault(DEFAULT_TIMEOUT)
        )
      }),
      (config) => layer({ ...config, retry: options?.retry })
    )
  )
