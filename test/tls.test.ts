/**
 * An https Defender API on 127.0.0.1 (a throwaway self-signed certificate made at test time)
 * that redirects down to a plain-http server: the library must refuse the downgrade, and the
 * http server must receive nothing — over fetch and over node:https alike.
 */
import { FetchHttpClient, type HttpClient } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted, Schedule } from "effect"
import { execFile, spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from "node:http"
import { createServer as createHttpsServer } from "node:https"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
// undici is @effect/platform-node's own dependency; its Agent is how Node's fetch takes a CA.
import { Agent } from "undici"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderClient from "../src/DefenderClient.ts"
import * as DefenderCloud from "../src/DefenderCloud.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import * as LiveResponse from "../src/LiveResponse.ts"
import { ACTION_ID, blobUrl, CANARY_TOKEN } from "./utils/fake.ts"

const hasOpenssl = spawnSync("openssl", ["version"]).status === 0

interface Hit {
  readonly method: string
  readonly path: string
  readonly headers: IncomingHttpHeaders
}

let dir = ""
let ca: Buffer
let api: Server
let plain: Server
let apiBase = ""
let plainBase = ""
let agent: Agent | undefined
const apiHits: Array<Hit> = []
const plainHits: Array<Hit> = []

const listen = (server: Server) =>
  new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)))

beforeAll(async () => {
  if (!hasOpenssl) return
  dir = mkdtempSync(join(tmpdir(), "mde-tls-"))
  const key = join(dir, "key.pem")
  const cert = join(dir, "cert.pem")
  await promisify(execFile)("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
    "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", key, "-out", cert
  ])
  ca = readFileSync(cert)
  plain = createHttpServer((req, res) => {
    plainHits.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers })
    // What an attacker's server would answer: a link of its own choosing.
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ value: blobUrl("planted") }))
  })
  // `/ok/...` answers; `/redirect-<status>/...` sends the same path to the plain-http server.
  api = createHttpsServer({ key: readFileSync(key), cert: ca }, (req, res) => {
    apiHits.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers })
    const redirect = /^\/redirect-(\d{3})(\/.*)$/.exec(req.url ?? "")
    if (redirect !== null) {
      req.resume()
      return void res.writeHead(Number(redirect[1]), { location: `${plainBase}${redirect[2]}` }).end()
    }
    if ((req.url ?? "").startsWith("/ok/") && (req.url ?? "").includes("GetLiveResponseResultDownloadLink")) {
      return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ value: blobUrl() }))
    }
    res.writeHead(404).end()
  })
  plainBase = `http://127.0.0.1:${await listen(plain)}`
  apiBase = `https://127.0.0.1:${await listen(api)}`
  agent = new Agent({ connect: { ca } })
}, 30_000)

afterAll(async () => {
  await agent?.close()
  if (api !== undefined) await new Promise((resolve) => api.close(resolve))
  if (plain !== undefined) await new Promise((resolve) => plain.close(resolve))
  if (dir !== "") rmSync(dir, { recursive: true, force: true })
})

/**
 * The two ways to reach an https API from Node: fetch (it follows redirects unless told not
 * to) and node:https (it never follows). Each trusts the throwaway certificate.
 */
const transports: ReadonlyArray<{
  readonly name: string
  readonly http: () => Layer.Layer<HttpClient.HttpClient>
  readonly around: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}> = [
  {
    name: "fetch",
    http: () => FetchHttpClient.layer,
    // At the call site: the client's own RequestInit (redirect: "manual") keeps what it finds there.
    around: (self) =>
      Effect.provideService(self, FetchHttpClient.RequestInit, { dispatcher: agent } as globalThis.RequestInit)
  },
  {
    name: "node:https",
    http: () => NodeHttpClient.layerWithoutAgent.pipe(Layer.provide(NodeHttpClient.makeAgentLayer({ ca }))),
    around: (self) => self
  }
]

const client = (http: Layer.Layer<HttpClient.HttpClient>, prefix: string) =>
  DefenderClient.layer({
    cloud: { ...DefenderCloud.commercial, apiBaseUrl: `${apiBase}/${prefix}` },
    // Zero-delay retries: a retried refusal would show as more than one attempt, not as a wait.
    retry: Schedule.recurs(2)
  }).pipe(
    Layer.provide(Layer.merge(DefenderAuth.layerToken(Redacted.make(CANARY_TOKEN)), DefenderRateLimiter.layer())),
    Layer.provide(http)
  )

const reset = Effect.sync(() => {
  apiHits.length = 0
  plainHits.length = 0
})

describe.skipIf(!hasOpenssl)("https API redirected down to http", () => {
  for (const transport of transports) {
    describe(transport.name, () => {
      it.effect("control: the self-signed https API answers and gets the bearer token", () =>
        Effect.gen(function*() {
          yield* reset
          const link = yield* LiveResponse.getResultLink({ machineActionId: ACTION_ID, index: 0 }).pipe(
            Effect.provide(client(transport.http(), "ok")),
            transport.around
          )
          expect(new URL(Redacted.value(link.url)).pathname).toContain("/CustomPlaybookCommandOutput/result")
          expect(apiHits.map((h) => h.headers.authorization === `Bearer ${CANARY_TOKEN}`)).toEqual([true])
        }))

      for (const status of [301, 302, 307, 308]) {
        it.effect(`a ${status} to http is refused; the http server receives nothing`, () =>
          Effect.gen(function*() {
            yield* reset
            const error = yield* Effect.flip(
              LiveResponse.getResultLink({ machineActionId: ACTION_ID, index: 0 }).pipe(
                Effect.provide(client(transport.http(), `redirect-${status}`)),
                transport.around
              )
            )
            expect(error._tag === "HttpError" && [error.reason, error.status, error.attempts]).toEqual([
              "Status",
              status,
              1
            ])
            expect(error.message).toContain(`a redirect to ${plainBase} was refused`)
            expect(apiHits).toHaveLength(1)
            expect(plainHits).toEqual([])
            // Booleans, so a failure does not print the token either.
            expect(JSON.stringify(error).includes(CANARY_TOKEN) || error.message.includes(CANARY_TOKEN)).toBe(false)
          }))
      }

      it.effect("a 307 on a POST (its body would be sent again) is refused; the http server receives nothing", () =>
        Effect.gen(function*() {
          yield* reset
          const error = yield* Effect.flip(
            LiveResponse.runLiveResponse({
              machineId: "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
              commands: [{ type: "RunScript", scriptName: "triage.ps1", args: "-Secret canary-arg" }],
              comment: "tls test"
            }).pipe(Effect.provide(client(transport.http(), "redirect-307")), transport.around)
          )
          expect(error._tag === "HttpError" && [error.reason, error.status]).toEqual(["Status", 307])
          expect(apiHits.map((h) => h.method)).toEqual(["POST"])
          expect(plainHits).toEqual([])
        }))
    })
  }
})
