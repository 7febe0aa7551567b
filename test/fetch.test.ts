/**
 * The library over the real `FetchHttpClient`, against HTTP servers on
 * 127.0.0.1: what actually goes over the wire.
 *
 * Real servers answer over real sockets, so these tests run on the real clock (`it.live`); none waits on a timer.
 */
import { FetchHttpClient } from "@effect/platform"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted, Schedule } from "effect"
import { createServer, type IncomingHttpHeaders, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderClient from "../src/DefenderClient.ts"
import * as DefenderCloud from "../src/DefenderCloud.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import * as LiveResponse from "../src/LiveResponse.ts"
import { ACTION_ID, CANARY_SECRET, CANARY_SIG, CANARY_TOKEN, SEED_TRANSCRIPT } from "./utils/fake.ts"

interface Hit {
  readonly path: string
  readonly headers: IncomingHttpHeaders
}

let main: Server
let elsewhere: Server
let base = ""
let elsewhereBase = ""
const hits: Array<Hit> = []
const elsewhereHits: Array<Hit> = []

const listen = (server: Server) =>
  new Promise<string>((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve(`${(server.address() as AddressInfo).port}`))
  )

beforeAll(async () => {
  main = createServer((req, res) => {
    const url = new URL(req.url ?? "/", base)
    hits.push({ path: url.pathname, headers: req.headers })
    const link = /GetLiveResponseResultDownloadLink\(index=(\d+)\)$/.exec(url.pathname)
    if (url.pathname === "/redirecting-tenant/oauth2/v2.0/token") {
      // A token endpoint that redirects: a 307 would make fetch send the secret along.
      res.writeHead(307, { location: `${elsewhereBase}/stolen-token` }).end()
    } else if (url.pathname.startsWith("/api/redirected/")) {
      // An API answer that redirects elsewhere: the bearer token must not follow.
      res.writeHead(307, { location: `${elsewhereBase}/api/machineactions/x/GetLiveResponseResultDownloadLink(index=0)` }).end()
    } else if (link !== null) {
      const name = link[1] === "0" ? "transcript" : "redirect"
      res.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({ value: `${base}/blob/${name}?se=2031-01-01T00%3A00%3A00Z&sig=${CANARY_SIG}` })
      )
    } else if (url.pathname === "/blob/transcript") {
      res.writeHead(200).end(SEED_TRANSCRIPT)
    } else if (url.pathname === "/blob/redirect") {
      res.writeHead(302, { location: `${elsewhereBase}/stolen${url.search}` }).end()
    } else {
      res.writeHead(404).end()
    }
  })
  elsewhere = createServer((req, res) => {
    elsewhereHits.push({ path: req.url ?? "", headers: req.headers })
    req.resume()
    res.writeHead(200).end(SEED_TRANSCRIPT)
  })
  base = `http://127.0.0.1:${await listen(main)}`
  // "localhost" is loopback, but not on the allow-list below.
  elsewhereBase = `http://localhost:${await listen(elsewhere)}`
})

afterAll(async () => {
  await new Promise((resolve) => main.close(resolve))
  await new Promise((resolve) => elsewhere.close(resolve))
})

const Live = () =>
  DefenderClient.layer({
    cloud: { ...DefenderCloud.commercial, apiBaseUrl: base },
    downloadHosts: ["127.0.0.1"]
  }).pipe(
    Layer.provide(Layer.merge(DefenderAuth.layerToken(Redacted.make(CANARY_TOKEN)), DefenderRateLimiter.layer())),
    Layer.provide(FetchHttpClient.layer)
  )

describe("over fetch and real sockets", () => {
  it.live("the API gets the bearer token; the storage gets none", () =>
    Effect.gen(function*() {
      hits.length = 0
      const transcript = yield* LiveResponse.getTranscript({ machineActionId: ACTION_ID, index: 0 })
      expect(transcript.scriptName).toBe("minidump.ps1")
      const [api, blob] = hits
      expect(api!.path).toContain("/api/machineactions/")
      expect(api!.headers.authorization).toBe(`Bearer ${CANARY_TOKEN}`)
      expect(blob!.path).toBe("/blob/transcript")
      expect(blob!.headers.authorization).toBeUndefined()
    }).pipe(Effect.provide(Live())))

  it.live("an API redirect to another origin is refused, and its target never contacted", () =>
    Effect.gen(function*() {
      elsewhereHits.length = 0
      const redirecting = DefenderClient.layer({
        cloud: { ...DefenderCloud.commercial, apiBaseUrl: `${base}/api/redirected` },
        downloadHosts: ["127.0.0.1"],
        retry: Schedule.stop
      }).pipe(
        Layer.provide(Layer.merge(DefenderAuth.layerToken(Redacted.make(CANARY_TOKEN)), DefenderRateLimiter.layer())),
        Layer.provide(FetchHttpClient.layer)
      )
      const error = yield* Effect.flip(LiveResponse.getResultLink({ machineActionId: ACTION_ID, index: 0 })).pipe(
        Effect.provide(redirecting)
      )
      // fetch would follow it (dropping Authorization) and trust the other origin's answer: it is not followed.
      expect(error._tag === "HttpError" && [error.reason, error.status, error.attempts]).toEqual(["Status", 307, 1])
      expect(error.message).toContain(`a redirect to ${elsewhereBase} was refused`)
      expect(elsewhereHits).toHaveLength(0)
    }))

  it.live("a token endpoint's redirect is refused (not retried), and the secret never goes to its target", () =>
    Effect.gen(function*() {
      elsewhereHits.length = 0
      hits.length = 0
      const error = yield* Effect.flip(DefenderAuth.requestClientSecretToken({
        tenantId: "redirecting-tenant",
        clientId: "c",
        clientSecret: Redacted.make(CANARY_SECRET),
        cloud: { ...DefenderCloud.commercial, authorityHost: base }
      })).pipe(Effect.provide(FetchHttpClient.layer))
      expect([error.reason, error.status]).toEqual(["TokenRequestFailed", 307])
      expect(error.message).toContain("never followed")
      expect(hits.filter((h) => h.path.endsWith("/token"))).toHaveLength(1)
      expect(elsewhereHits).toHaveLength(0)
    }))

  it.live("a redirect from the storage is refused, and its target never contacted", () =>
    Effect.gen(function*() {
      elsewhereHits.length = 0
      const error = yield* Effect.flip(LiveResponse.getTranscript({ machineActionId: ACTION_ID, index: 1 }))
      expect(error._tag === "DownloadRefused" && [error.reason, error.host]).toEqual(["Redirected", "127.0.0.1"])
      expect(elsewhereHits).toHaveLength(0)
    }).pipe(Effect.provide(Live())))
})
