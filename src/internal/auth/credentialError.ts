/**
 * What an `@azure/identity`-style credential threw, as an `AuthenticationError` with the same
 * fields the client-secret login fills: Entra ID's refusal (`TokenRequestFailed`, its AADSTS
 * codes, trace and correlation ids), a token endpoint out of reach (`TokenEndpointUnreachable`),
 * or anything else (`CredentialFailed`). Never a secret, a token or an assertion.
 *
 * The shapes read, as `@azure/identity` 4 throws them:
 * - its `AuthenticationError`: `statusCode` and `errorResponse` (`error`, `errorDescription`,
 *   `errorCodes`, `traceId`, `correlationId`);
 * - MSAL's `ServerError` (`errorCode`, `errorMessage`, `status`), which `@azure/identity`
 *   re-throws as `AuthenticationRequiredError` keeping only the message, in MSAL's format
 *   `invalid_client: Error(s): 7000215 - Timestamp: … - Description: … - Correlation ID: … - Trace ID: …`;
 * - MSAL's `network_error` and `endpoints_resolution_error` (the token endpoint or the OpenID
 *   metadata could not be fetched), Node's system errors (`ECONNREFUSED`…), TLS failures;
 * - `AggregateAuthenticationError` (a chain of credentials): the most telling of its `errors`.
 *
 * @internal
 */
import { AuthenticationError } from "../../DefenderError.ts"
import { redactText } from "../url.ts"

/** Long enough for any Entra ID description; a longer message is cut between words, never inside one. */
const MAX_DESCRIPTION = 2000

const REDACTED = "<redacted>"

/** Form fields and JSON members that carry a credential. */
const SECRET_NAMES = "client_secret|client_assertion|assertion|access_token|refresh_token|id_token|password|code_verifier"
const SECRET_IN_FORM = new RegExp(`\\b(${SECRET_NAMES})=[^&\\s"'<>]*`, "gi")
const SECRET_IN_JSON = new RegExp(`("(?:${SECRET_NAMES})"\\s*:\\s*)"(?:[^"\\\\]|\\\\.)*"`, "gi")
const BEARER = /\b(Bearer\s+)[A-Za-z0-9._~+/=-]+/gi
// A JWT (a token or a client assertion): base64url header starting `{"`, payload, signature.
const JWT = /\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g
const PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g

/** @internal Hides credentials a message may hold: form fields, JSON members, bearer tokens, JWTs, keys, `sig=`. */
export const scrubCredentials = (text: string): string =>
  redactText(
    text
      .replace(PRIVATE_KEY, "<redacted private key>")
      .replace(SECRET_IN_JSON, `$1"${REDACTED}"`)
      .replace(SECRET_IN_FORM, `$1=${REDACTED}`)
      .replace(BEARER, `$1${REDACTED}`)
      .replace(JWT, REDACTED)
  )

/** @internal At most `MAX_DESCRIPTION` characters, cut at a space so no id or code is split. */
export const bounded = (text: string): string => {
  if (text.length <= MAX_DESCRIPTION) return text
  const cut = text.lastIndexOf(" ", MAX_DESCRIPTION)
  return `${text.slice(0, cut > MAX_DESCRIPTION / 2 ? cut : MAX_DESCRIPTION)} …`
}

/** @internal What an error may keep of a text from a login: credentials scrubbed, the length bounded. */
export const clean = (text: string): string => bounded(scrubCredentials(text))

type Fields = Record<string, unknown>

const isObject = (value: unknown): value is Fields => typeof value === "object" && value !== null

const stringField = (value: Fields, key: string): string | undefined => {
  const field = value[key]
  return typeof field === "string" && field !== "" ? field : undefined
}

const statusField = (value: Fields, ...keys: ReadonlyArray<string>): number | undefined => {
  for (const key of keys) {
    const field = value[key]
    if (typeof field === "number" && Number.isInteger(field) && field >= 100 && field <= 599) return field
  }
  return undefined
}

/** `[7000215]` from a number array, or from MSAL's `"7000215"` / `"7000215,50011"`. */
const codesOf = (value: unknown): ReadonlyArray<number> => {
  const parts = Array.isArray(value) ? value : typeof value === "string" ? value.split(/[,\s]+/) : []
  return parts.map(Number).filter((n) => Number.isInteger(n) && n > 0)
}

const NOT_AVAILABLE = "Not Available"

const available = (text: string | undefined): string | undefined => {
  const trimmed = text?.trim()
  return trimmed === undefined || trimmed === "" || trimmed === NOT_AVAILABLE ? undefined : trimmed
}

/** The parts of a refusal, before it becomes an error. */
interface Refusal {
  readonly error?: string | undefined
  readonly description?: string | undefined
  readonly errorCodes: ReadonlyArray<number>
  readonly traceId?: string | undefined
  readonly correlationId?: string | undefined
  readonly status?: number | undefined
}

const refused = (r: Refusal): AuthenticationError =>
  new AuthenticationError({
    reason: "TokenRequestFailed",
    errorCodes: [...r.errorCodes],
    ...(r.error === undefined ? {} : { error: clean(r.error) }),
    ...(r.description === undefined ? {} : { description: clean(r.description) }),
    ...(r.traceId === undefined ? {} : { traceId: clean(r.traceId) }),
    ...(r.correlationId === undefined ? {} : { correlationId: clean(r.correlationId) }),
    ...(r.status === undefined ? {} : { status: r.status })
  })

/** @internal No usable answer from the token endpoint (`description` cleaned). */
export const unreachable = (description: string, status?: number): AuthenticationError =>
  new AuthenticationError({
    reason: "TokenEndpointUnreachable",
    errorCodes: [],
    description: clean(description),
    ...(status === undefined ? {} : { status })
  })

const MSAL_SERVER_ERROR =
  /^(?:([\w.-]+): )?Error\(s\): ([\s\S]*?) - Timestamp: ([\s\S]*?) - Description: ([\s\S]*) - Correlation ID: ([\s\S]*?) - Trace ID: ([\s\S]*?)$/

/**
 * MSAL's `ServerError` text (`Error(s): … - Trace ID: …`, with or without its `errorCode: `
 * prefix). The description is everything between `Description:` and the last
 * `- Correlation ID:`, so a description holding ` - ` is kept whole.
 */
const parseMsalServerError = (text: string, status?: number): AuthenticationError | undefined => {
  const match = MSAL_SERVER_ERROR.exec(text.trim())
  if (match === null) return undefined
  const [, error, codes, , description, correlationId, traceId] = match
  return refused({
    error: available(error),
    description: available(description),
    errorCodes: codesOf(codes),
    traceId: available(traceId),
    correlationId: available(correlationId),
    status
  })
}

/** MSAL's codes for "the token endpoint (or its OpenID metadata) could not be fetched". */
const MSAL_NETWORK_CODES: ReadonlySet<string> = new Set([
  "network_error",
  "endpoints_resolution_error",
  "openid_config_error",
  "unable_to_get_openid_config_error",
  "network_request_failed"
])

/** Node's system error codes of a connection that failed, and the TLS ones of a certificate not trusted. */
const NETWORK_CODE =
  /^(?:E(?:CONNREFUSED|CONNRESET|CONNABORTED|HOSTUNREACH|NETUNREACH|NOTFOUND|AI_AGAIN|TIMEDOUT|PIPE)|UND_ERR_\w+|REQUEST_SEND_ERROR|(?:UNABLE_TO|DEPTH_ZERO|SELF_SIGNED|CERT|ERR_TLS|ERR_SSL)\w*)$/

const msalCodeOf = (text: string): string | undefined => /^([a-z][a-z0-9_]*): /.exec(text)?.[1]

/** The error itself, read for one of the shapes above; `undefined` when it is none of them. */
const readOne = (e: Fields): AuthenticationError | undefined => {
  const name = stringField(e, "name") ?? "Error"
  const message = stringField(e, "message") ?? ""
  const status = statusField(e, "statusCode", "status")
  const response = e["errorResponse"]
  if (isObject(response) && stringField(response, "error") !== undefined) {
    const error = stringField(response, "error")!
    const errorCodes = codesOf(response["errorCodes"] ?? response["error_codes"])
    // `@azure/identity` makes up `unknown_error` when the body was not Entra's JSON: no refusal, then.
    if ((status !== undefined && status >= 500) || (errorCodes.length === 0 && /^unknown(_error)?$/.test(error))) {
      return unreachable(`the token endpoint answered ${status === undefined ? "something unreadable" : `HTTP ${status}`} (${name})`, status)
    }
    return refused({
      error,
      description: stringField(response, "errorDescription") ?? stringField(response, "error_description"),
      errorCodes,
      traceId: stringField(response, "traceId") ?? stringField(response, "trace_id"),
      correlationId: stringField(response, "correlationId") ?? stringField(response, "correlation_id"),
      status
    })
  }
  const msalCode = stringField(e, "errorCode") ?? msalCodeOf(message)
  if (msalCode !== undefined && MSAL_NETWORK_CODES.has(msalCode)) {
    return unreachable(`the credential could not reach the token endpoint or its OpenID metadata (${name}: ${msalCode})`, status)
  }
  const errorMessage = stringField(e, "errorMessage")
  const parsed = (errorMessage === undefined ? undefined : parseMsalServerError(errorMessage, status)) ??
    parseMsalServerError(message, status)
  if (parsed !== undefined) {
    return parsed.error === undefined && msalCode !== undefined ? refused({ ...parsed, error: msalCode }) : parsed
  }
  const code = stringField(e, "code")
  if (code !== undefined && NETWORK_CODE.test(code)) {
    return unreachable(`the credential could not reach the token endpoint (${name}: ${code})`, status)
  }
  return undefined
}

const failed = (description: string): AuthenticationError =>
  new AuthenticationError({ reason: "CredentialFailed", errorCodes: [], description: clean(description) })

const RANK: Record<AuthenticationError["reason"], number> = {
  TokenRequestFailed: 0,
  TokenEndpointUnreachable: 1,
  CredentialFailed: 2,
  Unauthorized: 3
}

/**
 * @internal What a credential's `getToken` threw, as an `AuthenticationError`: the error and the
 * errors in its `cause` chain are read for Entra ID's refusal or a network failure, a chain of
 * credentials (`errors`) gives its most telling one, and anything else is `CredentialFailed`
 * with the error's name and message.
 */
export const fromCredentialError = (thrown: unknown, depth = 0): AuthenticationError => {
  if (!isObject(thrown)) return failed(`the credential threw a ${typeof thrown}, not an Error`)
  const errors = thrown["errors"]
  if (Array.isArray(errors) && errors.length > 0 && depth < 3) {
    const mapped = errors.map((inner) => fromCredentialError(inner, depth + 1))
    const best = mapped.reduce((a, b) => (RANK[b.reason] < RANK[a.reason] ? b : a))
    if (best.reason !== "CredentialFailed") return best
  }
  let current: unknown = thrown
  for (let i = 0; i < 5 && isObject(current); i++, current = current["cause"]) {
    const found = readOne(current)
    if (found !== undefined) return found
  }
  const name = stringField(thrown, "name") ?? "Error"
  const message = stringField(thrown, "message")
  return failed(message === undefined ? name : `${name}: ${message}`)
}
