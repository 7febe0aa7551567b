/**
 * Expired result links against a real Azure Storage emulator (Azurite) with real SAS
 * signatures, and a fake Defender API on 127.0.0.1 that hands the links out. A link is made
 * already expired (`expiresOn` in the past) instead of waiting for one to expire.
 * `it.live`, not the TestClock: the SAS times are checked against Azurite's wall clock, so the
 * client's clock must be the same wall clock (every retry here is zero-delay, nothing waits).
 */
import { FetchHttpClient } from "@effect/platform"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Redacted, Schedule } from "effect"
import { createHash } from "node:crypto"
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderClient from "../src/DefenderClient.ts"
import * as DefenderCloud from "../src/DefenderCloud.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import * as LiveResponse from "../src/LiveResponse.ts"
import { type Azurite, startAzurite } from "./utils/azurite.ts"
import { ACTION_ID, CANARY_TOKEN, SEED_TRANSCRIPT } from "./utils/fake.ts"

const CONTAINER = "investigation-actions-data"
const MISSING = "CustomPlaybookCommandOutput/missing.json"
const HOUR = 60 * 60 * 1000

let azurite: Azurite
let api: Server
let apiBase = ""
/** The links the fake API hands out next, one per call. */
let links: Array<string> = []
/** Every link it handed out, to look for their signatures in errors. */
const handedOut: Array<string> = []
const linkCalls: Array<{ readonly path: string; readonly authorization: string | undefined }> = []
let tempDir = ""

const expiredLink = (blob: string) =>
  azurite.sasUrl(CONTAINER, blob, new Date(Date.now() - 2 * HOUR), new Date(Date.now() - HOUR))
const notYetValidLink = (blob: string) =>
  azurite.sasUrl(CONTAINER, blob, new Date(Date.now() + HOUR), new Date(Date.now() + 2 * HOUR))
const validLink = (blob: string) =>
  azurite.sasUrl(CONTAINER, blob, new Date(Date.now() - 5 * 60 * 1000), new Date(Date.now() + 30 * 60 * 1000))

beforeAll(async () => {
  tempDir = mkdtempSync(join(tmpdir(), "mde-azurite-"))
  azurite = await startAzurite()
  await azurite.service.getContainerClient(CONTAINER).create()
  api = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://127.0.0.1").pathname
    if (!/\/GetLiveResponseResultDownloadLink\(index=\d+\)$/.test(path)) return void res.writeHead(404).end()
    linkCalls.push({ path, authorization: req.headers.authorization })
    const link = links.shift()
    if (link === undefined) {
      return void res.writeHead(500, { "content-type": "application/json" }).end(
        JSON.stringify({ error: { code: "NoLinkScripted", message: "the test scripted no more links" } })
      )
    }
    handedOut.push(link)
    res.writeHead(200, { "content-type": "application/json" }).end(
      JSON.stringify({ "@odata.context": `${apiBase}/api/$metadata#Edm.String`, value: link })
    )
  })
  await new Promise<void>((resolve) => api.listen(0, "127.0.0.1", resolve))
  apiBase = `http://127.0.0.1:${(api.address() as AddressInfo).port}`
}, 30_000)

afterAll(async () => {
  await new Promise((resolve) => api?.close(resolve))
  await azurite?.stop()
  if (tempDir !== "") rmSync(tempDir, { recursive: true, force: true })
})

/** Each test's own blob (so Azurite's log tells the tests apart), holding the docs' transcript. */
const upload = (name: string) =>
  Effect.promise(async () => {
    const blob = `CustomPlaybookCommandOutput/${name}.json`
    const bytes = Buffer.from(SEED_TRANSCRIPT)
    await azurite.service.getContainerClient(CONTAINER).getBlockBlobClient(blob).uploadData(bytes, {
      blobHTTPHeaders: { blobContentType: "application/json", blobContentMD5: createHash("md5").update(bytes).digest() }
    })
    return blob
  })

/** Sets the links the fake API hands out next. */
const script = (...next: ReadonlyArray<string>) =>
  Effect.sync(() => {
    links = [...next]
    linkCalls.length = 0
  })

/**
 * What Azurite was sent for `blob` after its upload (the test's own PUT), as "METHOD status",
 * once every answered request is logged.
 */
const seenBy = (blob: string) =>
  Effect.promise(() => azurite.settled()).pipe(
    Effect.map((all) =>
      all
        .filter((r) => r.path === `/devstoreaccount1/${CONTAINER}/${blob}` && r.method !== "PUT")
        .map((r) => `${r.method} ${r.status}`)
    )
  )

// A zero-delay retry budget: a hidden retry would show in the counts, not as a wait.
const client = (downloadHosts: ReadonlyArray<string> = ["127.0.0.1"]) =>
  DefenderClient.layer({
    cloud: { ...DefenderCloud.commercial, apiBaseUrl: apiBase },
    downloadHosts,
    retry: Schedule.recurs(2)
  }).pipe(
    Layer.provide(Layer.merge(DefenderAuth.layerToken(Redacted.make(CANARY_TOKEN)), DefenderRateLimiter.layer())),
    Layer.provide(FetchHttpClient.layer)
  )

const ref = { machineActionId: ACTION_ID, index: 0 }

describe("expired links against Azurite", () => {
  it.live("premise: Azurite answers an expired SAS with 403 AuthorizationFailure, a valid one with the blob", () =>
    Effect.gen(function*() {
      const blob = yield* upload("premise")
      const expired = yield* Effect.promise(() => fetch(expiredLink(blob)))
      expect([expired.status, expired.headers.get("x-ms-error-code")]).toEqual([403, "AuthorizationFailure"])
      yield* Effect.promise(() => expired.arrayBuffer())
      const valid = yield* Effect.promise(() => fetch(validLink(blob)))
      expect(valid.status).toBe(200)
      expect(yield* Effect.promise(() => valid.text())).toBe(SEED_TRANSCRIPT)
      expect(yield* seenBy(blob)).toEqual(["GET 403", "GET 200"])
    }))

  it.live("getTranscript: an expired link is re-created once and the transcript arrives", () =>
    Effect.gen(function*() {
      const blob = yield* upload("recreated")
      yield* script(expiredLink(blob), validLink(blob))
      const transcript = yield* LiveResponse.getTranscript(ref).pipe(Effect.provide(client()))
      expect(transcript).toMatchObject({ scriptName: "minidump.ps1", exitCode: 0, error: "" })
      expect(transcript.output).toContain("OfficeClickToRun.dmp.zip\n51 MB")
      // Exactly one re-created link, each asked for with the bearer token.
      expect(linkCalls.map((c) => c.authorization)).toEqual([`Bearer ${CANARY_TOKEN}`, `Bearer ${CANARY_TOKEN}`])
      // Azurite saw the expired request (and refused it), then the fresh one.
      expect(yield* seenBy(blob)).toEqual(["GET 403", "GET 200"])
    }))

  it.live("a link that is expired every time ends in ResultLinkError Expired, without its signature", () =>
    Effect.gen(function*() {
      const blob = yield* upload("always-expired")
      handedOut.length = 0
      yield* script(expiredLink(blob), expiredLink(blob), expiredLink(blob))
      const error = yield* Effect.flip(LiveResponse.getTranscript(ref).pipe(Effect.provide(client())))
      expect(error._tag === "ResultLinkError" && error.reason).toBe("Expired")
      // Re-created once, never in a loop: the third scripted link is never asked for.
      expect(linkCalls).toHaveLength(2)
      expect(yield* seenBy(blob)).toEqual(["GET 403", "GET 403"])
      const shown = [error.message, JSON.stringify(error), String(error), JSON.stringify(error.toJSON())].join("\n")
      expect(handedOut).toHaveLength(2)
      for (const link of handedOut) {
        const sig = new URL(link).searchParams.get("sig")!
        expect(sig.length).toBeGreaterThan(20)
        // Booleans, so a failure does not print the signature either.
        expect(shown.includes(sig)).toBe(false)
        expect(shown.includes(encodeURIComponent(sig))).toBe(false)
      }
      expect(shown.includes("sig=")).toBe(false)
    }))

  it.live("a SAS that starts in the future is ClockSkew (this machine's clock named), with no re-created link", () =>
    Effect.gen(function*() {
      const blob = yield* upload("not-yet-valid")
      handedOut.length = 0
      yield* script(notYetValidLink(blob), validLink(blob))
      const error = yield* Effect.flip(LiveResponse.getTranscript(ref).pipe(Effect.provide(client())))
      expect(error._tag === "ResultLinkError" && [error.reason, error.storageCode]).toEqual(["ClockSkew", "AuthorizationFailure"])
      expect(error.message).toContain("check this machine's clock")
      expect(error.message).toMatch(/the link starts at \S+, in the future; this machine's time is /)
      // Azurite refused it once; the second scripted link is never asked for.
      expect(linkCalls).toHaveLength(1)
      expect(yield* seenBy(blob)).toEqual(["GET 403"])
      const sig = new URL(handedOut[0]!).searchParams.get("sig")!
      expect([error.message, JSON.stringify(error)].join("\n").includes(sig)).toBe(false)
    }))

  it.live("a valid link to a blob that is not there is BlobNotFound, with no re-created link", () =>
    Effect.gen(function*() {
      yield* script(validLink(MISSING))
      const error = yield* Effect.flip(LiveResponse.getTranscript(ref).pipe(Effect.provide(client())))
      expect(error._tag === "ResultLinkError" && [error.reason, error.storageCode]).toEqual(["BlobNotFound", "BlobNotFound"])
      expect(linkCalls).toHaveLength(1)
      expect(yield* seenBy(MISSING)).toEqual(["GET 404"])
    }))

  it.live("without 127.0.0.1 on the download allow-list, Azurite is never contacted", () =>
    Effect.gen(function*() {
      const blob = yield* upload("not-allowed")
      yield* script(validLink(blob))
      const error = yield* Effect.flip(LiveResponse.getTranscript(ref).pipe(Effect.provide(client([]))))
      expect(error._tag === "DownloadRefused" && [error.reason, error.host]).toEqual(["HostNotAllowed", "127.0.0.1"])
      expect(linkCalls).toHaveLength(1)
      expect(yield* seenBy(blob)).toEqual([])
    }))

  it.live("downloadToFile (configured from MDE_API_URL / MDE_DOWNLOAD_HOSTS): a new link on expiry, MD5 verified", () =>
    Effect.gen(function*() {
      const blob = yield* upload("to-file")
      yield* script(expiredLink(blob), validLink(blob))
      const path = join(tempDir, "transcript.json")
      const configured = DefenderClient.layerConfig({ retry: Schedule.recurs(2) }).pipe(
        Layer.provide(Layer.merge(DefenderAuth.layerToken(Redacted.make(CANARY_TOKEN)), DefenderRateLimiter.layer())),
        Layer.provide(FetchHttpClient.layer),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(
          new Map([["MDE_API_URL", apiBase], ["MDE_DOWNLOAD_HOSTS", "127.0.0.1"]])
        )))
      )
      const saved = yield* LiveResponse.downloadToFile(ref, path).pipe(
        Effect.provide(Layer.merge(configured, NodeFileSystem.layer))
      )
      expect(saved).toEqual({ path, bytes: Buffer.byteLength(SEED_TRANSCRIPT), md5Verified: true, resumes: 0 })
      expect(readFileSync(path, "utf8")).toBe(SEED_TRANSCRIPT)
      expect(readdirSync(tempDir)).toEqual(["transcript.json"])
      expect(linkCalls).toHaveLength(2)
      expect(yield* seenBy(blob)).toEqual(["GET 403", "GET 200"])
    }))
})
