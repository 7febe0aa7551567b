/**
 * Every failure the library can report, as typed errors in the `E` channel.
 *
 * One `_tag` per thing a caller handles differently; a `reason` literal for
 * sub-kinds. Each error keeps what Microsoft support asks for (the API's
 * `code` and `target`, Entra ID's `traceId` and `correlationId`) and never a
 * token, a client secret or the `sig=` of a download link.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LiveResponse } from "@mde/live-response"
 *
 * const program = LiveResponse.getTranscript({ machineActionId: "988cc94e-7a8f-4b28-ab65-54970c5d5018", index: 0 }).pipe(
 *   Effect.catchTag("NotFound", () => Effect.succeed(undefined)),
 *   Effect.catchTag("Throttled", (e) => Effect.logWarning(`gave up after ${e.attempts} attempts`))
 * )
 * ```
 *
 * @module
 * @since 0.1.0
 */
import type { HttpClientError } from "@effect/platform"
import { Schema } from "effect"
import { describeTransport } from "./internal/describeTransport.ts"
import { redactUrl } from "./internal/url.ts"

const optionalString: Schema.optional<typeof Schema.String> = Schema.optional(Schema.String)
const optionalNumber: Schema.optional<typeof Schema.Number> = Schema.optional(Schema.Number)

const suffix = (parts: ReadonlyArray<string | undefined>): string => {
  const kept = parts.filter((p): p is string => p !== undefined && p !== "")
  return kept.length === 0 ? "" : ` (${kept.join(", ")})`
}

/** The fields whose value is not `undefined` (an error keeps no key it has no value for). */
const definedOnly = <A extends object>(fields: A): A =>
  Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as A

/** What the API said and its request id, for the suffix of a message. */
const apiSuffix = (e: { readonly apiMessage?: string | undefined; readonly target?: string | undefined }): string =>
  suffix([e.apiMessage, e.target && `request id ${e.target}`])

/** `HTTP 403`, for the suffix of a message. */
const httpStatus = (status: number | undefined): string | undefined =>
  status === undefined ? undefined : `HTTP ${status}`

/** The schema class an error extends: its `_tag` and `Fields`. */
type Base<Self, Tag extends string, Fields extends Schema.Struct.Fields> = Schema.TaggedErrorClass<
  Self,
  Tag,
  { readonly _tag: Schema.tag<Tag> } & Fields
>

/** The API's error `code` and request id (`target`), kept by the errors of API answers. */
const apiIdFields: { readonly code: typeof optionalString; readonly target: typeof optionalString } = {
  code: optionalString,
  target: optionalString
}

const AADSTS_HINTS: Record<number, string> = {
  7000215: "the client secret is wrong: use the secret's value, not its ID (AZURE_CLIENT_SECRET)",
  7000222: "the client secret has expired: create a new one for the app registration",
  700016: "the app (AZURE_CLIENT_ID) is not registered in this tenant, or was not consented to",
  90002: "the tenant (AZURE_TENANT_ID) does not exist in this cloud",
  900023: "the tenant id is malformed (AZURE_TENANT_ID)",
  700024: "the client assertion is not within its valid time range"
}

// ---------------------------------------------------------------------------
// AuthenticationError
// ---------------------------------------------------------------------------

/**
 * Why authentication failed.
 *
 * - `TokenRequestFailed`: the Entra ID token endpoint refused the request (wrong secret, unknown app or tenant…).
 * - `TokenEndpointUnreachable`: no usable answer from the token endpoint (network, 5xx, unreadable body).
 * - `CredentialFailed`: a supplied `@azure/identity`-style credential threw or returned no token.
 * - `Unauthorized`: the Defender API answered 401 even with a freshly requested token, or to a
 *   static token (`MDE_TOKEN`, `layerToken`; then `staticToken` is true).
 *
 * @since 0.1.0
 * @category models
 */
export type AuthenticationErrorReason =
  | "TokenRequestFailed"
  | "TokenEndpointUnreachable"
  | "CredentialFailed"
  | "Unauthorized"

/**
 * The schema classes the errors extend (a namespace, so that `deno doc` sees them as public).
 *
 * @ignore
 */
export namespace ErrorBases {
  /** The schema class `AuthenticationError` extends. */
  export const AuthenticationErrorBase: Base<AuthenticationError, "AuthenticationError", {
    readonly reason: Schema.Literal<["TokenRequestFailed", "TokenEndpointUnreachable", "CredentialFailed", "Unauthorized"]>
    readonly errorCodes: Schema.Array$<typeof Schema.Number>
    readonly error: typeof optionalString
    readonly description: typeof optionalString
    readonly traceId: typeof optionalString
    readonly correlationId: typeof optionalString
    readonly status: typeof optionalNumber
    readonly staticToken: Schema.optional<typeof Schema.Boolean>
  }> = Schema.TaggedError<AuthenticationError>()("AuthenticationError", {
    reason: Schema.Literal("TokenRequestFailed", "TokenEndpointUnreachable", "CredentialFailed", "Unauthorized"),
    errorCodes: Schema.Array(Schema.Number),
    error: optionalString,
    description: optionalString,
    traceId: optionalString,
    correlationId: optionalString,
    status: optionalNumber,
    // `Unauthorized` with a token given as is (`MDE_TOKEN`, `layerToken`), not one the library asked for.
    staticToken: Schema.optional(Schema.Boolean)
  })
}

/**
 * No usable bearer token: the token endpoint refused, a credential failed, or
 * the API answered 401 twice. `errorCodes` holds the AADSTS numbers to branch on.
 *
 * @since 0.1.0
 * @category errors
 */
export class AuthenticationError extends ErrorBases.AuthenticationErrorBase {
  /**
   * What went wrong and what to do about it, for people.
   *
   * @since 0.1.0
   */
  override get message(): string {
    const ids = suffix([
      httpStatus(this.status),
      this.errorCodes.length > 0 ? `AADSTS${this.errorCodes.join(",")}` : undefined,
      this.traceId && `trace id ${this.traceId}`,
      this.correlationId && `correlation id ${this.correlationId}`
    ])
    switch (this.reason) {
      case "TokenRequestFailed": {
        const hint = this.errorCodes.map((c) => AADSTS_HINTS[c]).find((h) => h !== undefined)
        return `Entra ID refused the token request: ${hint ?? this.error ?? "unknown error"}${ids}`
      }
      case "TokenEndpointUnreachable":
        return `The Entra ID token endpoint gave no usable answer: ${
          this.description ?? "check the network and AZURE_AUTHORITY_HOST"
        }${ids}`
      case "CredentialFailed":
        return `The supplied credential did not return a token: ${this.description ?? "no token"}${ids}`
      case "Unauthorized":
        return this.staticToken === true
          ? `The Defender API rejected the given token (401): it has expired, or was issued for another audience or tenant; get a new token for the API's cloud (MDE_TOKEN, MDE_SCOPE)${ids}`
          : `The Defender API rejected a freshly issued token (401): check that the token's audience matches the API's cloud (MDE_SCOPE)${ids}`
    }
  }
}

// ---------------------------------------------------------------------------
// PermissionDenied
// ---------------------------------------------------------------------------

/** More of the schema bases. @ignore */
export namespace ErrorBases {
  /** The schema class `PermissionDenied` extends. */
  export const PermissionDeniedBase: Base<PermissionDenied, "PermissionDenied", {
    readonly code: typeof apiIdFields.code
    readonly target: typeof apiIdFields.target
    readonly apiMessage: typeof optionalString
  }> = Schema.TaggedError<PermissionDenied>()("PermissionDenied", { ...apiIdFields, apiMessage: optionalString })
}

/**
 * The Defender API answered 403: the token is valid but lacks a permission
 * (`Machine.LiveResponse` / `Machine.ReadWrite.All`) or the feature is disabled
 * (`code: "DisabledFeature"`).
 *
 * @since 0.1.0
 * @category errors
 */
export class PermissionDenied extends ErrorBases.PermissionDeniedBase {
  /**
   * What went wrong and what to do about it, for people.
   *
   * @since 0.1.0
   */
  override get message(): string {
    const what = this.code === "DisabledFeature"
      ? "live response is disabled for this tenant or device group: enable it in Defender's advanced features"
      : "grant the app the Machine.LiveResponse (or Machine.ReadWrite.All) application permission with admin consent"
    return `The Defender API refused the call (403${this.code ? ` ${this.code}` : ""}): ${what}${apiSuffix(this)}`
  }
}

// ---------------------------------------------------------------------------
// NotFound
// ---------------------------------------------------------------------------

/** More of the schema bases. @ignore */
export namespace ErrorBases {
  /** The schema class `NotFound` extends. */
  export const NotFoundBase: Base<NotFound, "NotFound", {
    readonly resource: typeof Schema.String
    readonly code: typeof apiIdFields.code
    readonly target: typeof apiIdFields.target
    readonly apiMessage: typeof optionalString
  }> = Schema.TaggedError<NotFound>()("NotFound", {
    resource: Schema.String,
    ...apiIdFields,
    apiMessage: optionalString
  })
}

/**
 * The Defender API answered 404: unknown machine action, or no result at that command index.
 *
 * @since 0.1.0
 * @category errors
 */
export class NotFound extends ErrorBases.NotFoundBase {
  /**
   * What went wrong and what to do about it, for people.
   *
   * @since 0.1.0
   */
  override get message(): string {
    const code = this.code ? ` ${this.code}` : ""
    return `Defender does not know ${this.resource} (404${code}): check the id and the command index${apiSuffix(this)}`
  }
}

// ---------------------------------------------------------------------------
// Throttled
// ---------------------------------------------------------------------------

/** More of the schema bases. @ignore */
export namespace ErrorBases {
  /** The schema class `Throttled` extends. */
  export const ThrottledBase: Base<Throttled, "Throttled", {
    readonly attempts: typeof Schema.Number
    readonly retryAfterMillis: typeof optionalNumber
    readonly code: typeof apiIdFields.code
    readonly target: typeof apiIdFields.target
  }> = Schema.TaggedError<Throttled>()("Throttled", {
    attempts: Schema.Number,
    retryAfterMillis: optionalNumber,
    ...apiIdFields
  })
}

/**
 * The Defender API kept answering 429 until the retry schedule was exhausted.
 * `attempts` counts the calls made; `retryAfterMillis` is the last wait the API asked for.
 *
 * @since 0.1.0
 * @category errors
 */
export class Throttled extends ErrorBases.ThrottledBase {
  /**
   * What went wrong and what to do about it, for people.
   *
   * @since 0.1.0
   */
  override get message(): string {
    return `The Defender API is throttling this app (429) and ${this.attempts} attempt(s) did not get through: lower the concurrency or the rate limits (MDE_RATE_LIMITS)${
      suffix([
        this.retryAfterMillis === undefined ? undefined : `asked to wait ${Math.ceil(this.retryAfterMillis / 1000)} s`,
        this.target && `request id ${this.target}`
      ])
    }`
  }
}

// ---------------------------------------------------------------------------
// DownloadRefused
// ---------------------------------------------------------------------------

/** More of the schema bases. @ignore */
export namespace ErrorBases {
  /** The schema class `DownloadRefused` extends. */
  export const DownloadRefusedBase: Base<DownloadRefused, "DownloadRefused", {
    readonly reason: Schema.Literal<["HostNotAllowed", "InsecureScheme", "InvalidUrl", "Redirected"]>
    readonly host: typeof optionalString
  }> = Schema.TaggedError<DownloadRefused>()("DownloadRefused", {
    reason: Schema.Literal("HostNotAllowed", "InsecureScheme", "InvalidUrl", "Redirected"),
    host: optionalString
  })
}

/**
 * The library refused to download a result link: its host is not on the
 * allow-list, it is not https (outside loopback), or it is not a URL — all
 * without contacting it — or the storage answered with a redirect, which is not followed.
 *
 * @since 0.1.0
 * @category errors
 */
export class DownloadRefused extends ErrorBases.DownloadRefusedBase {
  /**
   * What went wrong and what to do about it, for people.
   *
   * @since 0.1.0
   */
  override get message(): string {
    switch (this.reason) {
      case "HostNotAllowed":
        return `Refused to download from ${this.host ?? "an unknown host"}: it is not on the download allow-list (add it with the downloadHosts option or MDE_DOWNLOAD_HOSTS if you trust it)`
      case "InsecureScheme":
        return `Refused to download from ${this.host ?? "an unknown host"}: only https is allowed outside loopback`
      case "InvalidUrl":
        return "Refused to download: the result link is not a valid URL"
      case "Redirected":
        return `Refused to follow a redirect from ${this.host ?? "the storage"}: result downloads are never redirected by Azure Storage`
    }
  }
}

// ---------------------------------------------------------------------------
// ResultLinkError
// ---------------------------------------------------------------------------

/**
 * Why a result link could not be used.
 *
 * - `Expired`: the storage rejected the link's time frame, also after one re-created link.
 * - `BlobNotFound`: the storage has no file behind the link.
 * - `Forbidden`: the storage refused the link for another reason.
 * - `InvalidLink`: the API's answer did not hold a usable link.
 * - `ClockSkew`: the storage refused the link's time frame, but the times it (or the link) gives
 *   show clocks that disagree — a link not valid yet, or one the storage calls expired while this
 *   machine's clock says it has long to run — so a re-created link would be refused too.
 *
 * @since 0.1.0
 * @category models
 */
export type ResultLinkErrorReason = "Expired" | "BlobNotFound" | "Forbidden" | "InvalidLink" | "ClockSkew"

/** More of the schema bases. @ignore */
export namespace ErrorBases {
  /** The schema class `ResultLinkError` extends. */
  export const ResultLinkErrorBase: Base<ResultLinkError, "ResultLinkError", {
    readonly reason: Schema.Literal<["Expired", "BlobNotFound", "Forbidden", "InvalidLink", "ClockSkew"]>
    readonly status: typeof optionalNumber
    readonly storageCode: typeof optionalString
    readonly detail: typeof optionalString
  }> = Schema.TaggedError<ResultLinkError>()("ResultLinkError", {
    reason: Schema.Literal("Expired", "BlobNotFound", "Forbidden", "InvalidLink", "ClockSkew"),
    status: optionalNumber,
    storageCode: optionalString,
    detail: optionalString
  })
}

/**
 * The result's download link was expired (even after re-creating it once),
 * pointed at no file, was refused by the storage, or was not a link at all.
 *
 * @since 0.1.0
 * @category errors
 */
export class ResultLinkError extends ErrorBases.ResultLinkErrorBase {
  /**
   * What went wrong and what to do about it, for people.
   *
   * @since 0.1.0
   */
  override get message(): string {
    const ids = suffix([httpStatus(this.status), this.storageCode, this.detail])
    switch (this.reason) {
      case "Expired":
        return `The result link had expired and a re-created link was refused too: check this machine's clock${ids}`
      case "BlobNotFound":
        return `The result file is no longer in storage: results are kept for a limited time; run the live response again${ids}`
      case "Forbidden":
        return `The storage refused the result link${ids}`
      case "InvalidLink":
        return `The Defender API did not answer with a usable download link${ids}`
      case "ClockSkew":
        return `The storage refused the result link's time frame, and the storage's clock and this machine's disagree: check this machine's clock (is it synchronised?); a re-created link would be refused the same way${ids}`
    }
  }
}

// ---------------------------------------------------------------------------
// TranscriptDecodeError
// ---------------------------------------------------------------------------

/**
 * What was wrong with a transcript.
 *
 * @since 0.1.0
 * @category models
 */
export type TranscriptDecodeErrorReason = "InvalidJson" | "NotAnObject" | "MissingField" | "InvalidField" | "TooLarge"

/** More of the schema bases. @ignore */
export namespace ErrorBases {
  /** The schema class `TranscriptDecodeError` extends. */
  export const TranscriptDecodeErrorBase: Base<TranscriptDecodeError, "TranscriptDecodeError", {
    readonly reason: Schema.Literal<["InvalidJson", "NotAnObject", "MissingField", "InvalidField", "TooLarge"]>
    readonly field: typeof optionalString
    readonly detail: typeof Schema.String
  }> = Schema.TaggedError<TranscriptDecodeError>()("TranscriptDecodeError", {
    reason: Schema.Literal("InvalidJson", "NotAnObject", "MissingField", "InvalidField", "TooLarge"),
    field: optionalString,
    detail: Schema.String
  })
}

/**
 * A RunScript transcript could not be decoded; `reason`, `field` and `detail` say what was wrong.
 *
 * @since 0.1.0
 * @category errors
 */
export class TranscriptDecodeError extends ErrorBases.TranscriptDecodeErrorBase {
  /**
   * What went wrong and what to do about it, for people.
   *
   * @since 0.1.0
   */
  override get message(): string {
    const where = this.field === undefined ? "" : ` (field ${this.field})`
    const hint = this.reason === "TooLarge"
      ? ": raise maxTranscriptBytes, or use downloadResult to stream the raw file"
      : ""
    return `The transcript could not be decoded, ${this.reason}${where}: ${this.detail}${hint}`
  }
}

// ---------------------------------------------------------------------------
// HttpError
// ---------------------------------------------------------------------------

/**
 * What went wrong at the HTTP level.
 *
 * - `Transport`: no answer (connection refused or dropped, DNS, TLS).
 * - `Status`: an HTTP status no other error covers (400, 5xx after retries…).
 * - `InvalidResponse`: a 2xx answer whose body was not what the API documents.
 * - `TooLarge`: a download larger than `maxResultBytes` allows.
 *
 * @since 0.1.0
 * @category models
 */
export type HttpErrorReason = "Transport" | "Status" | "InvalidResponse" | "TooLarge"

/**
 * The request an `HttpError` is about, as its constructors take it: the URL may hold a
 * SAS signature, which the constructors redact.
 *
 * @since 0.1.0
 * @category errors
 */
export interface HttpErrorRequest {
  /** The HTTP method. */
  readonly method: string
  /** The URL (redacted by the constructor), or a placeholder such as `(result download)`. */
  readonly url: string | URL
  /** How many calls were made. */
  readonly attempts: number
}

/**
 * What an answer said beyond its status: the server's wait, the API's `code` and `target`,
 * and a `detail` for people.
 *
 * @since 0.1.0
 * @category errors
 */
export interface HttpErrorDetails {
  /** The wait the server asked for, in milliseconds. */
  readonly retryAfterMillis?: number | undefined
  /** The API's or the storage's error code. */
  readonly code?: string | undefined
  /** The API's request id. */
  readonly target?: string | undefined
  /** What went wrong, in a few words. */
  readonly detail?: string | undefined
}

/** More of the schema bases. @ignore */
export namespace ErrorBases {
  /** The schema class `HttpError` extends. */
  export const HttpErrorBase: Base<HttpError, "HttpError", {
    readonly reason: Schema.Literal<["Transport", "Status", "InvalidResponse", "TooLarge"]>
    readonly method: typeof Schema.String
    readonly url: typeof Schema.String
    readonly attempts: typeof Schema.Number
    readonly status: typeof optionalNumber
    readonly retryAfterMillis: typeof optionalNumber
    readonly code: typeof apiIdFields.code
    readonly target: typeof apiIdFields.target
    readonly detail: typeof optionalString
  }> = Schema.TaggedError<HttpError>()("HttpError", {
    reason: Schema.Literal("Transport", "Status", "InvalidResponse", "TooLarge"),
    method: Schema.String,
    url: Schema.String,
    attempts: Schema.Number,
    status: optionalNumber,
    retryAfterMillis: optionalNumber,
    ...apiIdFields,
    detail: optionalString
  })
}

/**
 * A transport failure (or no answer in time), an unexpected HTTP status, or an
 * unreadable answer. `url` has any `sig=` redacted; `attempts` counts the calls
 * made; `retryAfterMillis` is the wait the server asked for, if it did.
 *
 * @since 0.1.0
 * @category errors
 */
export class HttpError extends ErrorBases.HttpErrorBase {
  /**
   * No answer: `detail` says why (a refused connection, a stall, a time limit). The URL's
   * `sig=` is redacted here, so no call site can forget it.
   *
   * @since 0.1.0
   * @category constructors
   */
  static transport(request: HttpErrorRequest & { readonly detail: string }): HttpError {
    return new HttpError({ ...definedOnly(request), reason: "Transport", url: redactUrl(request.url) })
  }

  /**
   * A request the platform `HttpClient` could not complete, described in a few words
   * (`fetch failed: ECONNREFUSED`), never with the URL the platform error holds.
   *
   * @since 0.1.0
   * @category constructors
   */
  static fromRequestError(error: HttpClientError.HttpClientError, request: HttpErrorRequest): HttpError {
    return HttpError.transport({ ...request, detail: describeTransport(error) })
  }

  /**
   * An answer with a status no other error covers.
   *
   * @since 0.1.0
   * @category constructors
   */
  static status(
    request: HttpErrorRequest & { readonly status: number } & HttpErrorDetails
  ): HttpError {
    return new HttpError({ ...definedOnly(request), reason: "Status", url: redactUrl(request.url) })
  }

  /**
   * A 2xx answer whose body is not what the API documents; `detail` says what was wrong.
   *
   * @since 0.1.0
   * @category constructors
   */
  static invalidResponse(
    request: HttpErrorRequest & { readonly status?: number | undefined; readonly detail: string }
  ): HttpError {
    return new HttpError({ ...definedOnly(request), reason: "InvalidResponse", url: redactUrl(request.url) })
  }

  /**
   * A download larger than the `maxResultBytes` limit; `detail` says by how much.
   *
   * @since 0.1.0
   * @category constructors
   */
  static tooLarge(request: HttpErrorRequest & { readonly detail: string }): HttpError {
    return new HttpError({ ...definedOnly(request), reason: "TooLarge", url: redactUrl(request.url) })
  }

  /**
   * What went wrong and what to do about it, for people.
   *
   * @since 0.1.0
   */
  override get message(): string {
    const ids = suffix([
      this.code,
      this.detail,
      this.target && `request id ${this.target}`,
      this.attempts > 1 ? `${this.attempts} attempts` : undefined
    ])
    switch (this.reason) {
      case "Transport":
        return `${this.method} ${this.url} got no answer: check the network${ids}`
      case "Status":
        return `${this.method} ${this.url} answered HTTP ${this.status ?? "?"}${ids}`
      case "InvalidResponse":
        return `${this.method} ${this.url} answered with a body the library does not understand${ids}`
      case "TooLarge":
        return `${this.method} ${this.url} answered with more than the library may read: raise maxResultBytes if it is expected${ids}`
    }
  }
}

// ---------------------------------------------------------------------------
// InvalidArgument
// ---------------------------------------------------------------------------

/** More of the schema bases. @ignore */
export namespace ErrorBases {
  /** The schema class `InvalidArgument` extends. */
  export const InvalidArgumentBase: Base<InvalidArgument, "InvalidArgument", {
    readonly argument: typeof Schema.String
    readonly detail: typeof Schema.String
  }> = Schema.TaggedError<InvalidArgument>()("InvalidArgument", { argument: Schema.String, detail: Schema.String })
}

/**
 * An argument was rejected before any request was sent (e.g. an empty machine action id or a negative index).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidArgument extends ErrorBases.InvalidArgumentBase {
  /**
   * What went wrong and what to do about it, for people.
   *
   * @since 0.1.0
   */
  override get message(): string {
    return `Invalid ${this.argument}: ${this.detail}`
  }
}

// ---------------------------------------------------------------------------
// Live response sessions
// ---------------------------------------------------------------------------

/** More of the schema bases. @ignore */
export namespace ErrorBases {
  /** The schema class `ActiveSessionExists` extends. */
  export const ActiveSessionExistsBase: Base<ActiveSessionExists, "ActiveSessionExists", {
    readonly machineId: typeof Schema.String
    readonly target: typeof optionalString
  }> = Schema.TaggedError<ActiveSessionExists>()("ActiveSessionExists", {
    machineId: Schema.String,
    target: optionalString
  })
}

/**
 * The machine already has a live response session running (400 `ActiveRequestAlreadyExists`).
 *
 * @since 0.1.0
 * @category errors
 */
export class ActiveSessionExists extends ErrorBases.ActiveSessionExistsBase {
  /**
   * What went wrong and what to do about it, for people.
   *
   * @since 0.1.0
   */
  override get message(): string {
    return `Machine ${this.machineId} already has a live response session running: wait for it to end (the waitForActiveSession option), or cancel it${
      suffix([this.target && `request id ${this.target}`])
    }`
  }
}

const CommandOutcome: Schema.Struct<{
  index: typeof Schema.Number
  type: typeof Schema.String
  status: typeof Schema.String
  errors: Schema.Array$<typeof Schema.String>
}> = Schema.Struct({
  index: Schema.Number,
  type: Schema.String,
  status: Schema.String,
  errors: Schema.Array(Schema.String)
})

/** More of the schema bases. @ignore */
export namespace ErrorBases {
  /** The schema class `MachineActionFailed` extends. */
  export const MachineActionFailedBase: Base<MachineActionFailed, "MachineActionFailed", {
    readonly reason: Schema.Literal<["Failed", "TimeOut", "Cancelled"]>
    readonly machineActionId: typeof Schema.String
    readonly commands: Schema.Array$<typeof CommandOutcome>
  }> = Schema.TaggedError<MachineActionFailed>()("MachineActionFailed", {
    reason: Schema.Literal("Failed", "TimeOut", "Cancelled"),
    machineActionId: Schema.String,
    commands: Schema.Array(CommandOutcome)
  })
}

/**
 * A machine action ended without succeeding: `Failed`, `TimeOut` or `Cancelled`.
 * `commands` holds each command's status and errors.
 *
 * @since 0.1.0
 * @category errors
 */
export class MachineActionFailed extends ErrorBases.MachineActionFailedBase {
  /**
   * What went wrong and what to do about it, for people.
   *
   * @since 0.1.0
   */
  override get message(): string {
    const failed = this.commands.find((c) => c.errors.length > 0)
    const what = this.reason === "TimeOut"
      ? "timed out (RunScript has 10 minutes, GetFile 30)"
      : this.reason === "Cancelled"
      ? "was cancelled"
      : "failed"
    return `Machine action ${this.machineActionId} ${what}${
      failed === undefined ? "" : `: command ${failed.index} (${failed.type}) ${failed.errors.join("; ").slice(0, 300)}`
    }`
  }
}

/** More of the schema bases. @ignore */
export namespace ErrorBases {
  /** The schema class `DeadlineExceeded` extends. */
  export const DeadlineExceededBase: Base<DeadlineExceeded, "DeadlineExceeded", {
    readonly waitingFor: typeof Schema.String
    readonly deadlineMillis: typeof Schema.Number
    readonly lastStatus: typeof optionalString
  }> = Schema.TaggedError<DeadlineExceeded>()("DeadlineExceeded", {
    waitingFor: Schema.String,
    deadlineMillis: Schema.Number,
    lastStatus: optionalString
  })
}

/**
 * The library stopped waiting after the deadline the caller gave (the action was cancelled).
 *
 * @since 0.1.0
 * @category errors
 */
export class DeadlineExceeded extends ErrorBases.DeadlineExceededBase {
  /**
   * What went wrong and what to do about it, for people.
   *
   * @since 0.1.0
   */
  override get message(): string {
    return `Gave up waiting for ${this.waitingFor} after ${Math.round(this.deadlineMillis / 1000)} s${
      this.lastStatus === undefined ? "" : ` (last status ${this.lastStatus})`
    }: raise the deadline if the device may be offline`
  }
}

/** More of the schema bases. @ignore */
export namespace ErrorBases {
  /** The schema class `FileDownloadError` extends. */
  export const FileDownloadErrorBase: Base<FileDownloadError, "FileDownloadError", {
    readonly reason: Schema.Literal<["Md5Mismatch", "LengthMismatch", "TooManyInterruptions", "FileSystem"]>
    readonly path: typeof Schema.String
    readonly detail: typeof Schema.String
  }> = Schema.TaggedError<FileDownloadError>()("FileDownloadError", {
    reason: Schema.Literal("Md5Mismatch", "LengthMismatch", "TooManyInterruptions", "FileSystem"),
    path: Schema.String,
    detail: Schema.String
  })
}

/**
 * A result could not be saved to a file: its MD5 or length did not match what the
 * storage declared, the connection broke too often, or the file could not be
 * written. The partial file has been removed.
 *
 * @since 0.1.0
 * @category errors
 */
export class FileDownloadError extends ErrorBases.FileDownloadErrorBase {
  /**
   * What went wrong and what to do about it, for people.
   *
   * @since 0.1.0
   */
  override get message(): string {
    const what = this.reason === "Md5Mismatch"
      ? "the downloaded bytes do not match the storage's Content-MD5"
      : this.reason === "LengthMismatch"
      ? "the download's length does not match the storage's Content-Length"
      : this.reason === "TooManyInterruptions"
      ? "the connection broke too many times"
      : "the file could not be written"
    return `Could not save the result to ${this.path}: ${what} (${this.detail}); nothing was left on disk`
  }
}

// ---------------------------------------------------------------------------
// RateLimiterUnavailable
// ---------------------------------------------------------------------------

/** More of the schema bases. @ignore */
export namespace ErrorBases {
  /** The schema class `RateLimiterUnavailable` extends. */
  export const RateLimiterUnavailableBase: Base<RateLimiterUnavailable, "RateLimiterUnavailable", {
    readonly store: Schema.Literal<["redis"]>
    readonly detail: typeof Schema.String
  }> = Schema.TaggedError<RateLimiterUnavailable>()("RateLimiterUnavailable", {
    store: Schema.Literal("redis"),
    detail: Schema.String
  })
}

/**
 * The shared rate budget's store (Redis) could not be reached, so the call was not
 * made: running it without the budget could overrun the tenant's quota for every
 * worker. `detail` is the store's own error, without the store's address or password.
 *
 * @since 0.1.0
 * @category errors
 */
export class RateLimiterUnavailable extends ErrorBases.RateLimiterUnavailableBase {
  /**
   * What went wrong and what to do about it, for people.
   *
   * @since 0.1.0
   */
  override get message(): string {
    return `The shared rate budget (${this.store}) could not be reached, so no call was made (${this.detail}): ` +
      "check MDE_REDIS_URL, or allow the in-memory fallback (MDE_REDIS_FALLBACK=memory)"
  }
}

/**
 * Every error the library's programs can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type DefenderError =
  | AuthenticationError
  | PermissionDenied
  | NotFound
  | Throttled
  | DownloadRefused
  | ResultLinkError
  | TranscriptDecodeError
  | HttpError
  | InvalidArgument
  | ActiveSessionExists
  | MachineActionFailed
  | DeadlineExceeded
  | FileDownloadError
  | RateLimiterUnavailable
