/**
 * Downloads from the blob storage behind result links: the host allow-list and
 * scheme rule checked before any request, no token and no redirect, storage
 * errors read (an expired SAS told apart from a refusal), the one-time
 * re-creation of an expired link, and bodies that may not stall.
 *
 * @internal
 */
import { HttpClientRequest, type HttpClientResponse } from "@effect/platform"
import { Clock, Duration, Effect, Redacted, Stream } from "effect"
import type { CommandRef, ResultLink } from "../../DefenderClient.ts"
import { type DefenderError, DownloadRefused, HttpError, ResultLinkError } from "../../DefenderError.ts"
import { checkSecureUrl, hostMatches, redactUrl } from "../url.ts"
import type { ClientContext } from "./context.ts"
import { getResultLink } from "./resultLink.ts"
import { retrying } from "./retry.ts"
import { readErrorText, retryAfterOf, timed } from "./transport.ts"

/** @internal What a GET of a link gave: the answer, or the link has expired, or the blob changed (412). */
export type Opened = HttpClientResponse.HttpClientResponse | "expired" | "changed"

const hostOf = (link: ResultLink): string | undefined => {
  try {
    return new URL(Redacted.value(link.url)).hostname
  } catch {
    return undefined
  }
}

/** Checks a link against the scheme rule and the allow-list, before any request. */
const checkDownloadUrl = (ctx: ClientContext, link: ResultLink): Effect.Effect<URL, DownloadRefused> => {
  const checked = checkSecureUrl(Redacted.value(link.url))
  if (checked._tag === "Left") {
    const host = hostOf(link)
    return Effect.fail(new DownloadRefused({ reason: checked.left, ...(host === undefined ? {} : { host }) }))
  }
  if (!hostMatches(checked.right.hostname, ctx.allowedHosts)) {
    return Effect.fail(new DownloadRefused({ reason: "HostNotAllowed", host: checked.right.hostname }))
  }
  return Effect.succeed(checked.right)
}

/** How far two clocks may disagree before a refused time frame is blamed on them. */
const SKEW_TOLERANCE_MILLIS = 5 * 60 * 1000

const timeOf = (text: string | undefined | null): number | undefined => {
  if (text === undefined || text === null) return undefined
  const millis = Date.parse(text)
  return Number.isNaN(millis) ? undefined : millis
}

const iso = (millis: number): string => new Date(millis).toISOString()

/**
 * @internal When a refused time frame comes from clocks that disagree, what the times were;
 * `undefined` when the link has simply expired. Read from the storage's message (real storage
 * names its times: "Start [...] - Expiry [...] - Current [...]", or "Signed expiry time [...]
 * must be after signed start time [...]", the start being its current time when the link has
 * none) and from the link's own `st=`, against `now`, this machine's clock. Only times are
 * kept, never the signature.
 */
export const clockSkew = (text: string, url: URL, now: number): string | undefined => {
  const here = `this machine's time is ${iso(now)}`
  const frame = /Start \[([^\]]+)\] - Expiry \[([^\]]+)\] - Current \[([^\]]+)\]/.exec(text)
  const start = timeOf(frame?.[1])
  const current = timeOf(frame?.[3])
  if (start !== undefined && current !== undefined && current < start) {
    return `the link starts at ${iso(start)}, after the storage's time ${iso(current)}; ${here}`
  }
  const order = /Signed expiry time \[([^\]]+)\] must be after signed start time \[([^\]]+)\]/.exec(text)
  const expiry = timeOf(order?.[1])
  const storageNow = timeOf(order?.[2]) ?? current
  if (expiry !== undefined && storageNow !== undefined && storageNow >= expiry && now < expiry - SKEW_TOLERANCE_MILLIS) {
    return `the storage's time ${iso(storageNow)} is past the link's expiry ${iso(expiry)}; ${here}`
  }
  const signedStart = timeOf(url.searchParams.get("st"))
  if (signedStart !== undefined && signedStart > now) {
    return `the link starts at ${iso(signedStart)}, in the future; ${here}`
  }
  return undefined
}

/** A storage answer other than 200/206/412 as its typed error, or `"expired"`. */
const storageFailure = (
  response: HttpClientResponse.HttpClientResponse,
  url: URL,
  shown: string,
  attempts: number
): Effect.Effect<"expired", DefenderError> =>
  Effect.gen(function*() {
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
      if (!expired) return yield* new ResultLinkError({ reason: "Forbidden", status: 403, ...codeField })
      const skew = clockSkew(text, url, yield* Clock.currentTimeMillis)
      if (skew === undefined) return "expired" as const
      return yield* new ResultLinkError({ reason: "ClockSkew", status: 403, ...codeField, detail: skew })
    }
    if (response.status === 404) {
      return yield* new ResultLinkError({ reason: "BlobNotFound", status: 404, ...codeField })
    }
    return yield* HttpError.status({
      method: "GET",
      url: shown,
      attempts,
      status: response.status,
      retryAfterMillis: retryAfter,
      code: storageCode
    })
  })

/** @internal One GET of a link, retried on transient failures; `headers` for a resume. */
export const openLink = (
  ctx: ClientContext,
  link: ResultLink,
  headers?: Record<string, string>
): Effect.Effect<Opened, DefenderError> =>
  Effect.gen(function*() {
    const url = yield* checkDownloadUrl(ctx, link)
    const shown = redactUrl(url)
    yield* Effect.annotateCurrentSpan({ "url.full": shown, "server.address": url.host })
    // No Authorization header: the SAS in the URL is the storage's credential.
    const request = HttpClientRequest.get(url).pipe(HttpClientRequest.setHeaders(headers ?? {}))
    return yield* retrying((attempts) =>
      Effect.gen(function*() {
        // `storage` is `http`, which follows no redirect.
        const response = yield* ctx.storage.execute(request).pipe(
          Effect.mapError((e) => HttpError.fromRequestError(e, { method: "GET", url: shown, attempts }))
        )
        if (response.status === 200 || response.status === 206) return yield* checkDeclaredSize(ctx, response)
        // If-Match failed: the blob changed under a resumed download.
        if (response.status === 412 && headers?.["if-match"] !== undefined) return "changed" as const
        return yield* storageFailure(response, url, shown, attempts)
      }).pipe(timed(ctx.timeout, "GET", shown, attempts)), ctx.readPolicy)
  })

/** @internal The link a download holds between reads, and whether it was re-created already. */
export interface HeldLink {
  link: ResultLink | undefined
  recreated: boolean
}

/**
 * @internal A link, then its body; an expired link is re-created once, never in a loop.
 * `held` keeps the link between calls, so a body read again does not spend another API call.
 */
// Untraced: its value is the storage response, whose request holds the SAS URL, and a
// span would hand it to the tracer; its callers' spans get the (redacted) link instead.
export const openResult = (ctx: ClientContext): (
  ref: CommandRef,
  held?: HeldLink
) => Effect.Effect<HttpClientResponse.HttpClientResponse, DefenderError> => {
  const linkFor = getResultLink(ctx)
  return Effect.fnUntraced(function*(ref: CommandRef, held: HeldLink = { link: undefined, recreated: false }) {
    held.link ??= yield* linkFor(ref)
    const first = yield* openLink(ctx, held.link)
    if (first !== "expired" && first !== "changed") return first
    if (!held.recreated) {
      held.recreated = true
      yield* Effect.annotateCurrentSpan("mde.link_recreated", true)
      held.link = yield* linkFor(ref)
      const second = yield* openLink(ctx, held.link)
      if (second !== "expired" && second !== "changed") return second
    }
    return yield* new ResultLinkError({
      reason: "Expired",
      status: 403,
      detail: "the storage said the signature is not valid in its time frame"
    })
  })
}

/** Where a 206 starts and the whole blob's size, from `Content-Range: bytes a-b/total`. */
const rangeOf = (response: HttpClientResponse.HttpClientResponse): { start: number; total: number | undefined } => {
  const match = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(response.headers["content-range"] ?? "")
  if (response.status !== 206 || match === null) return { start: 0, total: undefined }
  return { start: Number(match[1]), total: match[2] === "*" ? undefined : Number(match[2]) }
}

const resultTooLarge = (ctx: ClientContext, size: string): HttpError =>
  HttpError.tooLarge({
    method: "GET",
    url: "(result download)",
    attempts: 1,
    detail: `the result is ${size}, over the maxResultBytes limit of ${ctx.maxResultBytes} bytes`
  })

/** Fails before the body is read when the storage declares a result over `maxResultBytes`. */
const checkDeclaredSize = (
  ctx: ClientContext,
  response: HttpClientResponse.HttpClientResponse
): Effect.Effect<HttpClientResponse.HttpClientResponse, HttpError> => {
  const limit = ctx.maxResultBytes
  if (limit === undefined) return Effect.succeed(response)
  const declared = response.status === 206 ? rangeOf(response).total : Number(response.headers["content-length"])
  return declared !== undefined && Number.isFinite(declared) && declared > limit
    ? Effect.fail(resultTooLarge(ctx, `${declared} bytes`))
    : Effect.succeed(response)
}

/** @internal A body that broke (or stalled) after its headers were in. */
export const brokenBody = (detail: string): HttpError =>
  HttpError.transport({ method: "GET", url: "(result download)", attempts: 1, detail })

/**
 * @internal A response's body, failing as a transport error when it stalls longer than the
 * timeout or takes longer than the body deadline in all, and with `TooLarge` as soon as it
 * (counted from where a 206 starts) grows past `maxResultBytes`.
 */
export const body = (
  ctx: ClientContext,
  response: HttpClientResponse.HttpClientResponse
): Stream.Stream<Uint8Array, HttpError> => {
  // The stall check is a watchdog beside the stream, not `Stream.timeoutFailCause`: that one
  // races a timer against every pull, which cost more CPU than the bytes themselves on a fast
  // download (thousands of chunks a second). The watchdog looks every quarter of the timeout
  // whether a chunk arrived, so a stall is found between 1 and 1.25 timeouts after the last one.
  let arrived = 0
  const step = Duration.toMillis(ctx.timeout) / 4
  const stalled = Effect.gen(function*() {
    let quiet = 0
    let seen = -1
    while (quiet < 4) {
      yield* Effect.sleep(step)
      quiet = arrived === seen ? quiet + 1 : 0
      seen = arrived
    }
    return yield* Effect.fail(brokenBody(`the body stalled for ${Duration.format(ctx.timeout)}`))
  })
  const bytes = Stream.mapError(
    response.stream,
    (e) => HttpError.fromRequestError(e, { method: "GET", url: "(result download)", attempts: 1 })
  ).pipe(
    Stream.mapChunks((chunk) => {
      arrived++
      return chunk
    }),
    // One interrupter for both limits: each `interruptWhen` is a layer every chunk goes through.
    Stream.interruptWhen(Effect.raceFirst(
      stalled,
      Effect.delay(
        Effect.fail(brokenBody(`the body took longer than ${Duration.format(ctx.bodyDeadline)} in all`)),
        ctx.bodyDeadline
      )
    ))
  )
  const limit = ctx.maxResultBytes
  if (limit === undefined) return bytes
  // The bytes up to the cap are handed on before the failure: a `downloadToFile` that resumes
  // after it asks for the rest with `Range`, and that answer declares the whole size.
  return Stream.suspend(() => {
    let size = rangeOf(response).start
    return Stream.flatMap(bytes, (chunk) => {
      const before = size
      size += chunk.length
      if (size <= limit) return Stream.succeed(chunk)
      const within = before < limit ? Stream.succeed(chunk.subarray(0, limit - before)) : Stream.empty
      return Stream.concat(within, Stream.fail(resultTooLarge(ctx, "larger")))
    })
  })
}
