/**
 * The Entra ID token endpoint (client credentials grant with a secret or a certificate's signed
 * assertion, Entra's scope rules and `AADSTS` errors), the tenant's OpenID metadata that MSAL
 * reads first, and the check of the bearer tokens it issued.
 *
 * @internal
 */
import { Effect } from "effect"
import { Buffer } from "node:buffer"
import type { Endpoint } from "../DefenderSimulator.ts"
import { checkAssertion, JWT_BEARER } from "./assertion.ts"
import { json } from "./responses.ts"
import { type Call, nextId, type State } from "./state.ts"

/** Entra ID's error body: the AADSTS code, its description with the ids Entra appends, the ids again. */
const entraError = ({ now, requestId }: Call, status: number, error: string, code: number, description: string) =>
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

const tenantNotFound = (call: Call, tenant: string, error: "invalid_request" | "invalid_tenant") =>
  entraError(
    call,
    400,
    error,
    90002,
    `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`
  )

/**
 * The resources (application ID URIs) of the Defender API in every cloud, and its app id
 * (WindowsDefenderATP): the only ones the simulated tenant issues tokens for.
 */
const DEFENDER_RESOURCES: ReadonlySet<string> = new Set([
  "https://api.securitycenter.microsoft.com",
  "https://api.security.microsoft.com",
  "https://securitycenter.onmicrosoft.com/windowsatpservice",
  "https://api-gcc.securitycenter.microsoft.us",
  "https://api-gov.securitycenter.microsoft.us",
  "fc780465-2017-40d4-a0c5-307022471b92",
  "api://fc780465-2017-40d4-a0c5-307022471b92"
])

/** OpenID Connect scopes MSAL may add; they name no resource. */
const OIDC_SCOPES: ReadonlySet<string> = new Set(["openid", "profile", "offline_access", "email"])

/** The resource a scope that passed `scopeRefusal` names: its one `…/.default` scope without the suffix. */
const resourceOf = (scope: string | null): string =>
  (scope ?? "").split(/\s+/).find((s) => s.toLowerCase().endsWith("/.default"))!.slice(0, -"/.default".length).replace(/\/+$/, "")

const base64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url")

/**
 * A token as Entra ID shapes an app-only (v1) access token — three base64url segments whose middle
 * one holds the claims a caller may read: `aud`, `tid`, `appid`, `roles`, `iat`/`nbf`/`exp` (on the
 * service's clock) — but not signed: its JOSE header says `"alg": "none"` (and `kid`
 * `mde-live-response-simulator`), and its last segment is random, so it cannot pass for, or be
 * verified as, a real one; any JWT decoder reads it.
 */
const issueToken = (state: State, now: number, audience: string, appidacr: "1" | "2"): string => {
  const { clientId, clockOffset, roles, tenantId, tokenLifetime } = state.settings
  const id = nextId(state, "")
  const issuedAt = Math.floor((now + clockOffset) / 1000)
  const principal = `00000000-0000-4000-8000-${clientId.replace(/-/g, "").slice(-12)}`
  const claims = {
    aud: audience,
    iss: `https://sts.windows.net/${tenantId}/`,
    iat: issuedAt,
    nbf: issuedAt,
    exp: issuedAt + Math.floor(tokenLifetime / 1000),
    appid: clientId,
    appidacr,
    idtyp: "app",
    oid: principal,
    roles,
    sub: principal,
    tid: tenantId,
    uti: id,
    ver: "1.0"
  }
  const signature = Buffer.from(Array.from({ length: 16 }, () => Math.floor(state.dice() * 256))).toString("base64url")
  const header = { typ: "JWT", alg: "none", kid: "mde-live-response-simulator" }
  return `${base64url(header)}.${base64url(claims)}.${signature}`
}

/** Entra's scope rules for the client credentials grant: one resource, `/.default`, one this tenant has. */
const scopeRefusal = (call: Call, tenant: string, scope: string | null): Response | undefined => {
  const scopes = (scope ?? "").split(/\s+/).filter((s) => s !== "" && !OIDC_SCOPES.has(s.toLowerCase()))
  if (scopes.length === 0) {
    return entraError(call, 400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
  }
  const notDefault = scopes.find((s) => !s.toLowerCase().endsWith("/.default"))
  if (notDefault !== undefined) {
    return entraError(
      call,
      400,
      "invalid_scope",
      1002012,
      `The provided value for scope ${notDefault} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`
    )
  }
  if (scopes.length > 1) {
    return entraError(
      call,
      400,
      "invalid_scope",
      70011,
      `The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope ${
        scopes.join(" ")
      } is not valid.`
    )
  }
  const resource = scopes[0]!.slice(0, -"/.default".length).replace(/\/+$/, "")
  if (!DEFENDER_RESOURCES.has(resource.toLowerCase())) {
    return entraError(
      call,
      400,
      "invalid_resource",
      500011,
      `The resource principal named ${resource} was not found in the tenant named ${tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`
    )
  }
  return undefined
}

/** One of Entra's refusals: the status, `error`, the AADSTS code and its description. */
type Refusal = readonly [status: number, error: string, code: number, description: string]

const NO_ASSERTION_TYPE: Refusal = [
  400,
  "invalid_request",
  900144,
  "The request body must contain the following parameter: 'client_assertion_type'."
]
const NO_CREDENTIAL: Refusal = [
  401,
  "invalid_client",
  7000218,
  "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
]
const WRONG_SECRET: Refusal = [
  401,
  "invalid_client",
  7000215,
  "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."
]

const refuse = (call: Call, [status, error, code, description]: Refusal): Response =>
  entraError(call, status, error, code, description)

/** The secret or the certificate's signed assertion; `undefined` when it is accepted. */
const credentialRefusal = (call: Call, form: URLSearchParams): Response | undefined => {
  const { clientCertificates, clientId, clientSecret } = call.state.settings
  const assertion = form.get("client_assertion")
  if (assertion !== null && assertion !== "") {
    if (form.get("client_assertion_type") !== JWT_BEARER) return refuse(call, NO_ASSERTION_TYPE)
    const refusal = checkAssertion(assertion, {
      audience: `${call.url.origin}${call.url.pathname}`,
      clientId,
      now: call.now,
      certificates: clientCertificates ?? []
    })
    return refusal === undefined
      ? undefined
      : entraError(call, refusal.status, refusal.error, refusal.code, refusal.description)
  }
  const secret = form.get("client_secret")
  if (secret === null || secret === "") return refuse(call, NO_CREDENTIAL)
  return secret === clientSecret ? undefined : refuse(call, WRONG_SECRET)
}

/** @internal Answers `POST /{tenant}/oauth2/v2.0/token`: a token for the simulated app, or Entra's error. */
export const tokenEndpoint = (call: Call, tenant: string): Effect.Effect<Response> =>
  Effect.map(Effect.promise(() => call.request.text()), (text): Response => {
    const { now, state } = call
    const { clientId, tenantId, tokenLifetime } = state.settings
    const form = new URLSearchParams(text)
    if (tenant !== tenantId) return tenantNotFound(call, tenant, "invalid_request")
    if (form.get("grant_type") !== "client_credentials") {
      return entraError(call, 400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
    }
    if (form.get("client_id") !== clientId) {
      return entraError(
        call,
        400,
        "unauthorized_client",
        700016,
        `Application with identifier '${form.get("client_id")}' was not found in the directory '${tenant}'.`
      )
    }
    const refusal = credentialRefusal(call, form) ?? scopeRefusal(call, tenant, form.get("scope"))
    if (refusal !== undefined) return refusal
    const token = issueToken(state, now, resourceOf(form.get("scope")), form.has("client_assertion") ? "2" : "1")
    state.tokens.set(token, now + tokenLifetime)
    return json(200, {
      token_type: "Bearer",
      expires_in: Math.floor(tokenLifetime / 1000),
      ext_expires_in: Math.floor(tokenLifetime / 1000),
      access_token: token
    })
  })

/**
 * @internal Answers `GET /{tenant}/v2.0/.well-known/openid-configuration` as Entra ID does (MSAL
 * reads its `token_endpoint` before it logs in): the endpoints on the host it was asked on.
 */
export const openidConfiguration = (call: Call, tenant: string): Effect.Effect<Response> =>
  Effect.sync(() => {
    const { tenantId } = call.state.settings
    if (tenant !== tenantId) return tenantNotFound(call, tenant, "invalid_tenant")
    const base = `${call.url.origin}/${tenantId}`
    return json(200, {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
      jwks_uri: `${call.url.origin}/${tenantId}/discovery/v2.0/keys`,
      response_modes_supported: ["query", "fragment", "form_post"],
      subject_types_supported: ["pairwise"],
      id_token_signing_alg_values_supported: ["RS256"],
      response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
      scopes_supported: ["openid", "profile", "email", "offline_access"],
      issuer: `${base}/v2.0`,
      request_uri_parameter_supported: false,
      userinfo_endpoint: "https://graph.microsoft.com/oidc/userinfo",
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      claims_supported: ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "tid", "ver", "oid"],
      kerberos_endpoint: `${base}/kerberos`,
      tenant_region_scope: "NA",
      cloud_instance_name: "microsoftonline.com",
      cloud_graph_host_name: "graph.windows.net",
      msgraph_host: "graph.microsoft.com",
      rbac_url: "https://pas.windows.net"
    })
  })

const bearer = (request: Request): string => {
  const header = request.headers.get("authorization") ?? ""
  return header.startsWith("Bearer ") ? header.slice(7) : ""
}

/** @internal Whether the request's bearer token is a static token or an issued one not yet expired. */
export const authorized = ({ now, request, state }: Call): boolean => {
  const token = bearer(request)
  if (state.settings.staticTokens.has(token)) return true
  const expires = state.tokens.get(token)
  return expires !== undefined && expires > now
}

const LIVE_RESPONSE = ["Machine.LiveResponse"]
const READ = ["Machine.Read.All", "Machine.ReadWrite.All"]
const LIBRARY = ["Library.Manage"]

/** The application permissions that let a call through, any one of them (the docs' table per call). */
const PERMISSIONS: Partial<Record<Endpoint, ReadonlyArray<string>>> = {
  getResultLink: ["Machine.LiveResponse", "Machine.ReadWrite.All"],
  runLiveResponse: LIVE_RESPONSE,
  cancel: LIVE_RESPONSE,
  getMachineAction: READ,
  listMachineActions: READ,
  listMachines: READ,
  uploadLibraryFile: LIBRARY,
  listLibraryFiles: LIBRARY,
  deleteLibraryFile: LIBRARY
}

/**
 * @internal The permissions an authorized request's issued token lacks for `endpoint` (any one of
 * them would do); `undefined` when it has one, or the token is a static one.
 */
export const missingPermission = ({ request, state }: Call, endpoint: Endpoint): ReadonlyArray<string> | undefined => {
  const needed = PERMISSIONS[endpoint]
  if (needed === undefined || state.settings.staticTokens.has(bearer(request))) return undefined
  return needed.some((role) => state.settings.roles.includes(role)) ? undefined : needed
}
