/**
 * The check of a certificate login's `client_assertion`, as Entra ID makes it: a JWT signed
 * (RS256 or PS256) with the key of a certificate registered on the app, found by its `x5t` /
 * `x5t#S256` thumbprint, with `aud` the token endpoint, `iss` = `sub` = the client id, and a
 * validity (`nbf`…`exp`) that holds now. Refusals carry Entra's AADSTS codes.
 *
 * @internal
 */
import { Buffer } from "node:buffer"
import { constants, createHash, verify, X509Certificate } from "node:crypto"

/** @internal The `client_assertion_type` of a JWT client assertion. */
export const JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

/** @internal What the token endpoint answers for an assertion it refuses. */
export interface Refusal {
  readonly status: number
  readonly error: string
  readonly code: number
  readonly description: string
}

/** @internal What the assertion must match. */
export interface Expected {
  /** The token endpoint's URL, which `aud` must be. */
  readonly audience: string
  readonly clientId: string
  /** Epoch milliseconds. */
  readonly now: number
  /** The certificates registered on the app (PEM or DER). */
  readonly certificates: ReadonlyArray<string | Uint8Array>
}

/** Entra ID's tolerance for a client's clock running ahead, on `nbf`. */
const CLOCK_SKEW = 5 * 60 * 1000

const KEYS_HELP =
  "Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id"

const decodeJson = (part: string | undefined): Record<string, unknown> | undefined => {
  try {
    const value: unknown = JSON.parse(Buffer.from(part ?? "", "base64url").toString("utf8"))
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? value as Record<string, unknown>
      : undefined
  } catch {
    return undefined
  }
}

const parseCertificate = (certificate: string | Uint8Array): X509Certificate | undefined => {
  try {
    return new X509Certificate(certificate)
  } catch {
    return undefined
  }
}

const thumbprint = (cert: X509Certificate, algorithm: "sha1" | "sha256"): string =>
  createHash(algorithm).update(cert.raw).digest("base64url")

/** A base64url thumbprint as Entra prints it: upper-case hex. */
const hex = (thumb: string): string => Buffer.from(thumb, "base64url").toString("hex").toUpperCase()

const iso = (seconds: unknown): string =>
  typeof seconds === "number" && Number.isFinite(seconds) ? new Date(seconds * 1000).toISOString() : "(none)"

const invalidClient = (code: number, description: string): Refusal => ({
  status: 401,
  error: "invalid_client",
  code,
  description
})

const signatureValid = (alg: string, signed: string, signature: Buffer, cert: X509Certificate): boolean => {
  try {
    const key = alg === "PS256"
      ? { key: cert.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }
      : cert.publicKey
    return verify("sha256", Buffer.from(signed), key, signature)
  } catch {
    return false
  }
}

/** @internal `undefined` when Entra ID would accept the assertion, else its refusal. */
export const checkAssertion = (assertion: string, expected: Expected): Refusal | undefined => {
  const parts = assertion.split(".")
  const header = decodeJson(parts[0])
  const claims = decodeJson(parts[1])
  if (parts.length !== 3 || header === undefined || claims === undefined || parts[2] === "") {
    return { status: 400, error: "invalid_request", code: 50027, description: "JWT token is invalid or malformed." }
  }
  const alg = typeof header["alg"] === "string" ? header["alg"] : ""
  if (alg !== "RS256" && alg !== "PS256") {
    return invalidClient(
      700027,
      `Client assertion contains an invalid signature. [Reason - The signing algorithm '${alg}' is not supported.]`
    )
  }
  const x5tS256 = typeof header["x5t#S256"] === "string" ? header["x5t#S256"] : undefined
  const x5t = typeof header["x5t"] === "string" ? header["x5t"] : undefined
  const registered = expected.certificates.map(parseCertificate).filter((c) => c !== undefined)
  const candidates = registered.filter((cert) =>
    x5tS256 !== undefined
      ? thumbprint(cert, "sha256") === x5tS256
      : x5t !== undefined
      ? thumbprint(cert, "sha1") === x5t
      : true
  )
  const used = x5tS256 ?? x5t
  const usedText = used === undefined ? "(none)" : hex(used)
  if (candidates.length === 0) {
    return invalidClient(
      700027,
      `Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '${usedText}', ${KEYS_HELP} '${expected.clientId}'.]`
    )
  }
  const signature = Buffer.from(parts[2]!, "base64url")
  const signer = candidates.find((cert) => signatureValid(alg, `${parts[0]}.${parts[1]}`, signature, cert))
  if (signer === undefined) {
    return invalidClient(
      700027,
      `Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '${usedText}', ${KEYS_HELP} '${expected.clientId}'.]`
    )
  }
  if (new Date(signer.validTo).getTime() <= expected.now) {
    return invalidClient(
      700027,
      `Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '${usedText}', Found key 'Start=${signer.validFrom}, End=${signer.validTo}']`
    )
  }
  if (claims["iss"] !== expected.clientId || claims["sub"] !== expected.clientId) {
    return invalidClient(
      700021,
      "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."
    )
  }
  const audience = typeof claims["aud"] === "string" ? claims["aud"].replace(/\/+$/, "") : ""
  if (audience.toLowerCase() !== expected.audience.toLowerCase()) {
    return invalidClient(
      700023,
      "Client assertion audience claim does not match Realm issuer. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."
    )
  }
  const exp = claims["exp"]
  const nbf = claims["nbf"]
  if (
    typeof exp !== "number" || exp * 1000 <= expected.now ||
    (nbf !== undefined && (typeof nbf !== "number" || nbf * 1000 > expected.now + CLOCK_SKEW))
  ) {
    return invalidClient(
      700024,
      `Client assertion is not within its valid time range. Current time: ${
        new Date(expected.now).toISOString()
      }, assertion valid from ${iso(nbf)}, expiry time of assertion ${iso(exp)}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .`
    )
  }
  return undefined
}
