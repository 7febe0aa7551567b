// Real time (`it.live`): the real @azure/identity (MSAL) logs in over real https sockets to the served simulator.
/**
 * `DefenderAuth.layerCredential` with the real `@azure/identity` credentials — a client secret,
 * a certificate, a caller's own assertion — against the simulator served over https on
 * 127.0.0.1 with a throwaway certificate made here (trusted through the credential's own
 * `tlsOptions`, the API client's through an https agent). What Entra ID refuses must arrive as
 * the client-secret login reports it: `TokenRequestFailed`, the AADSTS code, the trace and
 * correlation ids, the whole description, and no secret.
 */
import {
  AggregateAuthenticationError,
  AuthenticationError as IdentityAuthenticationError,
  ClientAssertionCredential,
  ClientCertificateCredential,
  ClientSecretCredential,
  CredentialUnavailableError
} from "@azure/identity"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { execFileSync, spawnSync } from "node:child_process"
import { createHash, createPrivateKey, type KeyObject, randomUUID, sign, X509Certificate } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderClient from "../src/DefenderClient.ts"
import * as DefenderCloud from "../src/DefenderCloud.ts"
import type { AuthenticationError } from "../src/DefenderError.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import * as LiveResponse from "../src/LiveResponse.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import { CANARY_SECRET, CANARY_TOKEN, CANARY_WRONG_SECRET, FIXED_CANARIES, leaks } from "./utils/canary.ts"

const hasOpenssl = spawnSync("openssl", ["version"]).status === 0
const { ACTIONS, SIMULATED_CLIENT_ID: CLIENT_ID, SIMULATED_TENANT: TENANT } = DefenderSimulator

interface KeyPair {
  /** The private key and the certificate, PEM, as `ClientCertificateCredential` takes them. */
  readonly pem: string
  readonly cert: string
  readonly key: KeyObject
}

let dir = ""
let tls = { key: "", cert: "" }
let app: KeyPair
let stranger: KeyPair

/** A throwaway self-signed certificate and its key, made with openssl. */
const makeCertificate = (name: string, subject: string, extra: ReadonlyArray<string> = []): KeyPair => {
  const keyFile = join(dir, `${name}.key`)
  const certFile = join(dir, `${name}.crt`)
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-days", "1",
    ...extra, "-keyout", keyFile, "-out", certFile
  ], { stdio: "ignore" })
  const key = readFileSync(keyFile, "utf8")
  const cert = readFileSync(certFile, "utf8")
  return { pem: `${key}\n${cert}`, cert, key: createPrivateKey(key) }
}

beforeAll(() => {
  if (!hasOpenssl) return
  dir = mkdtempSync(join(tmpdir(), "mde-identity-"))
  const server = makeCertificate("server", "/CN=127.0.0.1", ["-addext", "subjectAltName=IP:127.0.0.1"])
  tls = { key: server.pem, cert: server.cert }
  app = makeCertificate("app", "/CN=simulated-app")
  stranger = makeCertificate("stranger", "/CN=someone-else")
}, 30_000)

afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true })
})

/** The simulator on https, with the app's certificate registered. */
const served = Effect.gen(function*() {
  const sim = yield* DefenderSimulator.make({ clientCertificates: [app.cert] })
  const server = yield* DefenderSimulator.serve(sim, { tls })
  return { sim, server }
})

/** What `@azure/identity` needs to log in at the served simulator: its host, its CA, no instance discovery. */
const identityOptions = (server: DefenderSimulator.Served, trusted = true) => ({
  authorityHost: server.url,
  disableInstanceDiscovery: true,
  ...(trusted ? { tlsOptions: { ca: tls.cert } } : {}),
  retryOptions: { maxRetries: 0 }
})

/** The whole client over node:https trusting the throwaway CA, logged in by `credential`. */
const clientLayer = (
  server: DefenderSimulator.Served,
  credential: DefenderAuth.TokenCredential,
  cloud: DefenderCloud.DefenderCloud = server.cloud
) =>
  DefenderClient.layer({ cloud: server.cloud, downloadHosts: ["127.0.0.1"] }).pipe(
    Layer.provide(Layer.merge(DefenderAuth.layerCredential(credential, { cloud }), DefenderRateLimiter.layer())),
    Layer.provide(NodeHttpClient.layerWithoutAgent.pipe(Layer.provide(NodeHttpClient.makeAgentLayer({ ca: tls.cert }))))
  )

/** Logs in (through one API call) and answers the `AuthenticationError`. */
const refusal = (
  server: DefenderSimulator.Served,
  credential: DefenderAuth.TokenCredential,
  cloud?: DefenderCloud.DefenderCloud
) =>
  Effect.flip(
    LiveResponse.getResultLink({ machineActionId: ACTIONS.runScript, index: 0 }).pipe(
      Effect.provide(clientLayer(server, credential, cloud))
    )
  ).pipe(
    Effect.map((error) => {
      expect(error._tag).toBe("AuthenticationError")
      return error as AuthenticationError
    })
  )

/** The Entra ID description as the simulator sends it, whole: the text and the ids Entra appends. */
const entraDescription = (code: number, text: string, error: AuthenticationError) =>
  new RegExp(
    `^AADSTS${code}: ${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\r\\nTrace ID: ${error.traceId}\\r\\nCorrelation ID: ${error.correlationId}\\r\\nTimestamp: \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z$`
  )

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

/** A client assertion made by hand: its header and claims, signed RS256 with `key`. */
const assertion = (header: Record<string, unknown>, claims: Record<string, unknown>, key: KeyObject) => {
  const signed = `${b64({ alg: "RS256", typ: "JWT", ...header })}.${b64(claims)}`
  return `${signed}.${sign("sha256", Buffer.from(signed), key).toString("base64url")}`
}

const x5t = (cert: string) => createHash("sha1").update(new X509Certificate(cert).raw).digest("base64url")

const claimsFor = (server: DefenderSimulator.Served, validFor: number) => {
  const now = Math.floor(Date.now() / 1000)
  return {
    aud: `${server.url}/${TENANT}/oauth2/v2.0/token`,
    iss: CLIENT_ID,
    sub: CLIENT_ID,
    jti: randomUUID(),
    nbf: now - 3600,
    exp: now + validFor
  }
}

describe.skipIf(!hasOpenssl)("layerCredential with the real @azure/identity", () => {
  it.live("a client secret logs in at the https simulator (OpenID metadata, then the token) and a transcript comes back", () =>
    Effect.gen(function*() {
      const { server, sim } = yield* served
      const credential = new ClientSecretCredential(
        TENANT,
        CLIENT_ID,
        Redacted.value(DefenderSimulator.SIMULATED_CLIENT_SECRET),
        identityOptions(server)
      )
      const transcript = yield* LiveResponse.getTranscript({ machineActionId: ACTIONS.runScript, index: 0 }).pipe(
        Effect.provide(clientLayer(server, credential))
      )
      expect(transcript.scriptName).toBe("minidump.ps1")
      expect(sim.received.filter((r) => r.endpoint === "token").map((r) => [r.method, new URL(r.url).pathname, r.status]))
        .toEqual([
          ["GET", `/${TENANT}/v2.0/.well-known/openid-configuration`, 200],
          ["POST", `/${TENANT}/oauth2/v2.0/token`, 200]
        ])
      expect(sim.count("getResultLink", 200)).toBe(1)
      expect(sim.count("blob", 200)).toBe(1)
    }).pipe(Effect.scoped))

  // Old behaviour: CredentialFailed, no codes or ids, and the description cut at 300 characters (before the ids).
  it.live("a wrong secret: TokenRequestFailed with AADSTS7000215, the trace and correlation ids, the whole description", () =>
    Effect.gen(function*() {
      const { server } = yield* served
      const error = yield* refusal(server, new ClientSecretCredential(TENANT, CLIENT_ID, CANARY_WRONG_SECRET, identityOptions(server)))
      expect([error.reason, error.errorCodes, error.error]).toEqual(["TokenRequestFailed", [7000215], "invalid_client"])
      expect(error.traceId).toMatch(UUID)
      expect(error.correlationId).toMatch(UUID)
      expect(error.description).toMatch(entraDescription(
        7000215,
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        error
      ))
      expect(error.message).toContain("the client secret is wrong")
      expect(error.message).toContain(`trace id ${error.traceId}`)
      const shown = [error.message, JSON.stringify(error), String(error)].join("\n")
      expect(leaks(shown, new Map([["rejected client secret", CANARY_WRONG_SECRET]]))).toEqual([])
    }).pipe(Effect.scoped))

  // Old behaviour: the simulator issued a token for any scope; the library said CredentialFailed.
  it.live("a Graph scope is refused as Entra refuses a resource the tenant does not have: AADSTS500011", () =>
    Effect.gen(function*() {
      const { server, sim } = yield* served
      const credential = new ClientSecretCredential(
        TENANT,
        CLIENT_ID,
        Redacted.value(DefenderSimulator.SIMULATED_CLIENT_SECRET),
        identityOptions(server)
      )
      const error = yield* refusal(server, credential, { ...server.cloud, scope: "https://graph.microsoft.com/.default" })
      expect([error.reason, error.errorCodes, error.error]).toEqual(["TokenRequestFailed", [500011], "invalid_resource"])
      expect(error.description).toContain("The resource principal named https://graph.microsoft.com was not found")
      expect(sim.count("token", 400)).toBe(1)
    }).pipe(Effect.scoped))

  it.live("a certificate logs in (a signed client assertion, no secret) and a transcript comes back", () =>
    Effect.gen(function*() {
      const { server, sim } = yield* served
      const credential = new ClientCertificateCredential(TENANT, CLIENT_ID, { certificate: app.pem }, identityOptions(server))
      const transcript = yield* LiveResponse.getTranscript({ machineActionId: ACTIONS.runScript, index: 0 }).pipe(
        Effect.provide(clientLayer(server, credential))
      )
      expect(transcript.scriptName).toBe("minidump.ps1")
      expect(sim.count("token", 200)).toBe(2)
    }).pipe(Effect.scoped))

  // Old behaviour: the simulator never looked at the assertion (it asked for a secret: 7000215); CredentialFailed.
  it.live("a certificate the app does not have: AADSTS700027, the key was not found", () =>
    Effect.gen(function*() {
      const { server } = yield* served
      const credential = new ClientCertificateCredential(TENANT, CLIENT_ID, { certificate: stranger.pem }, identityOptions(server))
      const error = yield* refusal(server, credential)
      expect([error.reason, error.errorCodes, error.error]).toEqual(["TokenRequestFailed", [700027], "invalid_client"])
      expect(error.description).toContain("Client assertion contains an invalid signature. [Reason - The key was not found.")
      expect(error.traceId).toMatch(UUID)
    }).pipe(Effect.scoped))

  it.live("a forged assertion (the app's thumbprint, another key's signature): AADSTS700027", () =>
    Effect.gen(function*() {
      const { server } = yield* served
      const forged = assertion({ x5t: x5t(app.cert) }, claimsFor(server, 600), stranger.key)
      const credential = new ClientAssertionCredential(TENANT, CLIENT_ID, () => Promise.resolve(forged), identityOptions(server))
      const error = yield* refusal(server, credential)
      expect([error.reason, error.errorCodes]).toEqual(["TokenRequestFailed", [700027]])
      expect(error.description).toContain("The provided signature value did not match the expected signature value.")
      // The assertion is a credential: it shows nowhere.
      expect([error.message, JSON.stringify(error)].join("\n").includes(forged.split(".")[2]!)).toBe(false)
    }).pipe(Effect.scoped))

  it.live("an expired assertion, properly signed: AADSTS700024; one for another audience: AADSTS700023", () =>
    Effect.gen(function*() {
      const { server } = yield* served
      const expired = assertion({ x5t: x5t(app.cert) }, claimsFor(server, -60), app.key)
      const error = yield* refusal(
        server,
        new ClientAssertionCredential(TENANT, CLIENT_ID, () => Promise.resolve(expired), identityOptions(server))
      )
      expect([error.reason, error.errorCodes]).toEqual(["TokenRequestFailed", [700024]])
      expect(error.description).toContain("Client assertion is not within its valid time range.")
      expect(error.message).toContain("the client assertion is not within its valid time range")
      const elsewhere = assertion(
        { x5t: x5t(app.cert) },
        { ...claimsFor(server, 600), aud: `https://login.microsoftonline.com/${TENANT}/oauth2/v2.0/token` },
        app.key
      )
      const misaddressed = yield* refusal(
        server,
        new ClientAssertionCredential(TENANT, CLIENT_ID, () => Promise.resolve(elsewhere), identityOptions(server))
      )
      expect(misaddressed.errorCodes).toEqual([700023])
      // The control: the same assertion, addressed and in time, logs in.
      const good = assertion({ x5t: x5t(app.cert) }, claimsFor(server, 600), app.key)
      const link = yield* LiveResponse.getResultLink({ machineActionId: ACTIONS.runScript, index: 0 }).pipe(
        Effect.provide(clientLayer(server, new ClientAssertionCredential(TENANT, CLIENT_ID, () => Promise.resolve(good), identityOptions(server))))
      )
      expect(String(link.url)).toBe("<redacted>")
    }).pipe(Effect.scoped))

  // Old behaviour: CredentialFailed.
  it.live("a login host whose certificate is not trusted: TokenEndpointUnreachable", () =>
    Effect.gen(function*() {
      const { server, sim } = yield* served
      const credential = new ClientSecretCredential(
        TENANT,
        CLIENT_ID,
        Redacted.value(DefenderSimulator.SIMULATED_CLIENT_SECRET),
        identityOptions(server, false)
      )
      const error = yield* refusal(server, credential)
      expect([error.reason, error.errorCodes]).toEqual(["TokenEndpointUnreachable", []])
      expect(error.description).toContain("endpoints_resolution_error")
      expect(sim.count("token")).toBe(0)
    }).pipe(Effect.scoped))
})

describe("the simulated token endpoint's scope rules", () => {
  const login = (scope: string | undefined) =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make()
      const form = new URLSearchParams({
        grant_type: "client_credentials",
        client_id: CLIENT_ID,
        client_secret: Redacted.value(DefenderSimulator.SIMULATED_CLIENT_SECRET),
        ...(scope === undefined ? {} : { scope })
      })
      const response = yield* sim.handle(
        new Request(`https://login.microsoftonline.com/${TENANT}/oauth2/v2.0/token`, { method: "POST", body: form })
      )
      return [response!.status, ((yield* Effect.promise(() => response!.json())) as { error_codes?: Array<number> }).error_codes]
    })

  it.effect("no scope, a scope without /.default, two resources, Graph: refused with Entra's codes; every Defender cloud's scope: a token", () =>
    Effect.gen(function*() {
      expect(yield* login(undefined)).toEqual([400, [900144]])
      expect(yield* login("https://api.securitycenter.microsoft.com/Machine.Read.All")).toEqual([400, [1002012]])
      expect(yield* login("https://api.securitycenter.microsoft.com/.default https://graph.microsoft.com/.default"))
        .toEqual([400, [70011]])
      expect(yield* login("https://graph.microsoft.com/.default")).toEqual([400, [500011]])
      for (const cloud of [DefenderCloud.commercial, DefenderCloud.gcc, DefenderCloud.gccHigh]) {
        expect(yield* login(cloud.scope)).toEqual([200, undefined])
      }
    }))
})

/** A credential that throws what `@azure/identity`'s own credentials throw (no socket: the default TestClock). */
const throwing = (error: unknown): DefenderAuth.TokenCredential => ({ getToken: () => Promise.reject(error) })

const mapped = (error: unknown) =>
  Effect.flatMap(DefenderAuth.DefenderAuth, (auth) => Effect.flip(auth.token)).pipe(
    Effect.provide(DefenderAuth.layerCredential(throwing(error)))
  )

const entraBody = {
  error: "invalid_client",
  error_description:
    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '00000000-0000-4000-8000-00000000c11e'.\r\nTrace ID: 0a1b2c3d-0000-4000-8000-000000000001\r\nCorrelation ID: 0a1b2c3d-0000-4000-8000-000000000002\r\nTimestamp: 2026-12-01 10:00:00Z",
  error_codes: [7000215],
  timestamp: "2026-12-01 10:00:00Z",
  trace_id: "0a1b2c3d-0000-4000-8000-000000000001",
  correlation_id: "0a1b2c3d-0000-4000-8000-000000000002"
}

// Old behaviour for every one: CredentialFailed, no codes or ids, `name: message` cut at 300 characters.
describe("layerCredential maps the errors @azure/identity defines", () => {
  it.effect("its AuthenticationError (errorResponse, statusCode): TokenRequestFailed with everything, the description whole", () =>
    Effect.gen(function*() {
      const error = yield* mapped(new IdentityAuthenticationError(401, entraBody))
      expect(error).toMatchObject({
        reason: "TokenRequestFailed",
        status: 401,
        errorCodes: [7000215],
        error: "invalid_client",
        description: entraBody.error_description,
        traceId: entraBody.trace_id,
        correlationId: entraBody.correlation_id
      })
    }))

  it.effect("its AuthenticationError for a 503 that was not Entra's JSON: TokenEndpointUnreachable with the status", () =>
    Effect.gen(function*() {
      const error = yield* mapped(new IdentityAuthenticationError(503, "<html>Service Unavailable</html>"))
      expect([error.reason, error.status, error.errorCodes]).toEqual(["TokenEndpointUnreachable", 503, []])
    }))

  it.effect("a chain's AggregateAuthenticationError: the refusal among its errors, not the first unavailable one", () =>
    Effect.gen(function*() {
      const error = yield* mapped(
        new AggregateAuthenticationError(
          [
            new CredentialUnavailableError("EnvironmentCredential is unavailable. No underlying credential could be used."),
            new IdentityAuthenticationError(401, entraBody)
          ],
          "ChainedTokenCredential authentication failed."
        )
      )
      expect([error.reason, error.errorCodes, error.traceId]).toEqual(["TokenRequestFailed", [7000215], entraBody.trace_id])
    }))

  it.effect("CredentialUnavailableError: CredentialFailed with its whole message, not cut at 300 characters", () =>
    Effect.gen(function*() {
      const text = `ManagedIdentityCredential: ${"the managed identity endpoint is not available here; ".repeat(8)}id 0a1b2c3d-0000-4000-8000-000000000003`
      const error = yield* mapped(new CredentialUnavailableError(text))
      expect([error.reason, error.description]).toEqual(["CredentialFailed", `CredentialUnavailableError: ${text}`])
    }))

  it.effect("a message holding a secret, a bearer token, a JWT or a private key shows none of them", () =>
    Effect.gen(function*() {
      const jwt = `${b64({ alg: "RS256" })}.${b64({ sub: CANARY_TOKEN })}.c2lnbmF0dXJlLWNhbmFyeQ`
      const error = yield* mapped(
        new Error(
          `request failed: client_secret=${CANARY_SECRET}&scope=x; Authorization: Bearer ${CANARY_TOKEN}; {"access_token":"${CANARY_TOKEN}"} assertion ${jwt} -----BEGIN PRIVATE KEY-----\nMIIEcanary\n-----END PRIVATE KEY-----`
        )
      )
      expect(error.reason).toBe("CredentialFailed")
      expect(leaks([error.message, JSON.stringify(error), String(error)].join("\n"), FIXED_CANARIES)).toEqual([])
      expect(error.description).toContain("client_secret=<redacted>")
    }))

  it.effect("a very long message is bounded between two words, never inside an id", () =>
    Effect.gen(function*() {
      const id = "0a1b2c3d-0000-4000-8000-000000000004"
      const error = yield* mapped(new Error(Array(200).fill(`step ${id} failed;`).join(" ")))
      const words = error.description!.split(" ")
      expect(error.description!.length).toBeLessThanOrEqual(2002)
      expect(words.at(-1)).toBe("…")
      expect(words.filter((w) => w.startsWith("0a1b")).every((w) => w === id)).toBe(true)
    }))
})
