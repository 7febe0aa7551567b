/**
 * The Entra ID token endpoint (client credentials grant, with Entra's `AADSTS` errors) and the
 * check of the bearer tokens it issued.
 *
 * @internal
 */
import { Effect } from "effect"
import { json } from "./responses.ts"
import { type Call, nextId } from "./state.ts"

/** @internal Answers `POST /{tenant}/oauth2/v2.0/token`: a token for the simulated app, or Entra's error. */
export const tokenEndpoint = ({ now, request, requestId, state }: Call, tenant: string): Effect.Effect<Response> =>
  Effect.map(Effect.promise(() => request.text()), (text): Response => {
    const { clientId, clientSecret, tenantId, tokenLifetime } = state.settings
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
    const token = `sim-token-${nextId(state, "")}-${Math.floor(state.dice() * 1e9).toString(36)}`
    state.tokens.set(token, now + tokenLifetime)
    return json(200, {
      token_type: "Bearer",
      expires_in: Math.floor(tokenLifetime / 1000),
      ext_expires_in: Math.floor(tokenLifetime / 1000),
      access_token: token
    })
  })

/** @internal Whether the request's bearer token is a static token or an issued one not yet expired. */
export const authorized = ({ now, request, state }: Call): boolean => {
  const header = request.headers.get("authorization") ?? ""
  const token = header.startsWith("Bearer ") ? header.slice(7) : ""
  if (state.settings.staticTokens.has(token)) return true
  const expires = state.tokens.get(token)
  return expires !== undefined && expires > now
}
