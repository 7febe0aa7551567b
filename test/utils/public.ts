/**
 * What the Deno and Bun suites (`test/public.*.test.ts`) share: a fake Defender
 * (`HttpClient` with no sockets) and helpers over the in-process simulator, all
 * on the public API. Runtime-neutral: no Deno, Bun or vitest globals here.
 */
import { FileSystem, HttpClient, HttpClientResponse } from "@effect/platform"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Chunk, Clock, Effect, Fiber, Layer, Option, Redacted, Schedule, Stream, TestClock, TestContext } from "effect"
import { CampaignStore, DefenderAuth, DefenderClient, DefenderRateLimiter } from "../../mod.ts"
import { DefenderSimulator } from "../../testing.ts"

export const ACTION_ID = "988cc94e-7a8f-4b28-ab65-54970c5d5018"
export const API = "https://api.security.microsoft.com"
export const BLOB_HOST = "mdestore.blob.core.windows.net"
export const TOKEN = "public-suite-token-5e1f0a"
export const SIG = "publicSuiteSig0123456789abcXYZ%3D"

/** The seed page's example, verbatim: a raw newline inside script_output and escaped NULs. */
export const SEED = `{
    "script_name": "minidump.ps1",
    "exit_code": 0,
    "script_output": "Transcript started, output file is C:\\\\ProgramData\\\\Microsoft\\\\Windows Defender Advanced Threat Protection\\\\Temp\\\\PSScriptOutputs\\\\PSScript_Transcript_{TRANSCRIPT_ID}.txt
C:\\\\windows\\\\TEMP\\\\OfficeClickToRun.dmp.zip\\n51 MB\\n\\u0000\\u0000\\u0000",
    "script_error":""
}`
export const SEED_OUTPUT: string =
  "Transcript started, output file is C:\\ProgramData\\Microsoft\\Windows Defender Advanced Threat Protection\\Temp\\PSScriptOutputs\\PSScript_Transcript_{TRANSCRIPT_ID}.txt\n" +
  "C:\\windows\\TEMP\\OfficeClickToRun.dmp.zip\n51 MB\n"

export const blobUrl = (name: string, host: string = BLOB_HOST): string =>
  `https://${host}/investigation-actions-data/ID/CustomPlaybookCommandOutput/${name}?se=2021-02-04T16%3A13%3A50Z&sp=r&sv=2019-07-07&sr=b&sig=${SIG}`

export interface Sent {
  readonly url: URL
  readonly headers: Readonly<Record<string, string>>
}

/**
 * The fake Defender API and blob storage as an `HttpClient` (no sockets), recording every
 * request. The simulator tests below run the same API against `DefenderSimulator`.
 */
export const fakeDefender = (): { readonly client: HttpClient.HttpClient; readonly sent: Array<Sent> } => {
  const sent: Array<Sent> = []
  const json = (status: number, body: unknown) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } })
  const links: Record<string, string> = {
    [ACTION_ID]: blobUrl("transcript"),
    "not-json": blobUrl("not-json"),
    "elsewhere": blobUrl("transcript", "evil.example.com")
  }
  const answer = (url: URL): Response => {
    const link = /^\/api\/machineactions\/([^/]+)\/GetLiveResponseResultDownloadLink\(index=0\)$/.exec(url.pathname)
    if (url.origin === API && link !== null) {
      const id = decodeURIComponent(link[1]!)
      if (id === "forbidden") return json(403, { error: { code: "Forbidden", message: "Missing permission" } })
      const value = links[id]
      return value === undefined
        ? json(404, { error: { code: "ResourceNotFound", message: "Machine action not found", target: "req-1" } })
        : json(200, { "@odata.context": `${API}/api/$metadata#Edm.String`, value })
    }
    if (url.host === BLOB_HOST && url.pathname.endsWith("/transcript")) return new Response(SEED)
    if (url.host === BLOB_HOST && url.pathname.endsWith("/not-json")) return new Response("<html>maintenance</html>")
    return new Response("unexpected request", { status: 400 })
  }
  const client = HttpClient.make((request, url) => {
    sent.push({ url, headers: { ...request.headers } })
    return Effect.succeed(HttpClientResponse.fromWeb(request, answer(url)))
  })
  return { client, sent }
}

/** The public stack over an `HttpClient`; no retries, so nothing here ever waits. */
export const clientLayer = (client: HttpClient.HttpClient): Layer.Layer<DefenderClient.DefenderClient> =>
  DefenderClient.layer({ retry: Schedule.stop }).pipe(
    Layer.provide(Layer.merge(DefenderAuth.layerToken(Redacted.make(TOKEN)), DefenderRateLimiter.layer())),
    Layer.provide(Layer.succeed(HttpClient.HttpClient, client))
  )

export const run = <A, E>(
  client: HttpClient.HttpClient,
  program: Effect.Effect<A, E, DefenderClient.DefenderClient>
): Promise<A> => Effect.runPromise(Effect.provide(program, clientLayer(client)))

export const ref = (machineActionId: string): { machineActionId: string; index: number } => ({ machineActionId, index: 0 })


export const ACTIONS: typeof DefenderSimulator.ACTIONS = DefenderSimulator.ACTIONS

/** The public stack over the in-process simulator; static token unless `auth` is given, no retries. */
export const simLayer = (
  sim: DefenderSimulator.DefenderSimulator,
  auth: Layer.Layer<DefenderAuth.DefenderAuth, never, HttpClient.HttpClient> = DefenderAuth.layerToken(
    DefenderSimulator.STATIC_TOKEN
  )
): Layer.Layer<DefenderClient.DefenderClient> =>
  DefenderClient.layer({ retry: Schedule.stop }).pipe(
    Layer.provide(Layer.merge(auth, DefenderRateLimiter.layer())),
    Layer.provide(DefenderSimulator.layerHttpClient(sim))
  )

export const onSim = <A, E>(
  sim: DefenderSimulator.DefenderSimulator,
  program: Effect.Effect<A, E, DefenderClient.DefenderClient>,
  auth?: Layer.Layer<DefenderAuth.DefenderAuth, never, HttpClient.HttpClient>
): Promise<A> => Effect.runPromise(Effect.provide(program, simLayer(sim, auth)))

export const newSim = (): Promise<DefenderSimulator.DefenderSimulator> => Effect.runPromise(DefenderSimulator.make())

export const simLogin = (
  clientSecret: Redacted.Redacted<string> = DefenderSimulator.SIMULATED_CLIENT_SECRET
): Layer.Layer<DefenderAuth.DefenderAuth, never, HttpClient.HttpClient> =>
  DefenderSimulator.layerLogin({ clientSecret })

export const concat = (chunks: ReadonlyArray<Uint8Array>): Uint8Array<ArrayBuffer> => {
  const out = new Uint8Array(chunks.reduce((n, chunk) => n + chunk.length, 0))
  let offset = 0
  for (const chunk of chunks) {
    out.set(chunk, offset)
    offset += chunk.length
  }
  return out
}

export const gunzip = async (bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array> =>
  new Uint8Array(await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).arrayBuffer())

/**
 * Two Redis-backed limiters (two "processes") on one fresh key with a budget of one
 * call per hour: the first takes it, the second must wait for it to leave the window.
 * Returns how long the second waits (TestClock time, read from its sleep) and whether
 * the first call ran. Redis is real; the wait is never slept.
 */
export const sharedRedisBudget = (url: string): Promise<{ readonly ran: boolean; readonly waitMillis: number }> =>
  Effect.gen(function*() {
    const options = { url, key: `public-${crypto.randomUUID()}`, limits: [{ limit: 1, window: "1 hour" as const }] }
    const a = yield* DefenderRateLimiter.makeRedis(options)
    const b = yield* DefenderRateLimiter.makeRedis(options)
    let ran = false
    yield* a.withPermit(Effect.sync(() => void (ran = true)))
    const waiting = yield* Effect.fork(b.withPermit(Effect.void))
    for (let round = 0; round < 5000; round++) {
      const sleeps = yield* TestClock.sleeps()
      if (Chunk.size(sleeps) > 0) {
        yield* Fiber.interrupt(waiting)
        return { ran, waitMillis: Chunk.unsafeHead(sleeps) - (yield* Clock.currentTimeMillis) }
      }
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 0)))
    }
    return yield* Effect.die("the second limiter never waited")
  }).pipe(Effect.scoped, Effect.provide(TestContext.TestContext), Effect.runPromise)

/**
 * The campaign folder store on this runtime: a campaign created, one machine run and its
 * transcript saved, the folder opened again by a second store — what it answers, with the
 * manifest line's sha256 read back from the file.
 */
export const campaignStoreRoundTrip = (dir: string): Promise<{
  readonly phase: string
  readonly manifest: ReadonlyArray<CampaignStore.ManifestEntry>
  readonly fileText: string
  readonly sha256Matches: boolean
}> =>
  Effect.runPromise(
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const definition: CampaignStore.CampaignDefinition = {
        campaignId: "cmp-0123456789abcdef",
        createdAt: 1_000,
        commands: [{ type: "RunScript", scriptName: "triage.ps1" }],
        comment: "runtime check",
        targets: { _tag: "Machines", machineIds: ["m1"] },
        options: { maxSessions: 1, deadline: 90_000, pendingTimeout: 60_000, interval: 1_000 }
      }
      const commands = [{ index: 0, type: "RunScript", status: "Completed", errors: [] }]
      yield* Effect.scoped(Effect.gen(function*() {
        const store = yield* CampaignStore.makeFolder(dir)
        yield* store.create(definition)
        yield* store.append({ _tag: "Submitting", machineId: "m1", attempt: 1, at: 2_000 })
        yield* store.append({ _tag: "Submitted", machineId: "m1", machineActionId: "a1", at: 2_001 })
        yield* store.append({ _tag: "ActionEnded", machineId: "m1", machineActionId: "a1", status: "Succeeded", commands, at: 3_000 })
        const saved = yield* store.saveResult("m1", 0, "0-transcript.json", Stream.make(new TextEncoder().encode("{\"exitCode\":0}")))
        const state = yield* store.append({
          _tag: "ResultSaved",
          machineId: "m1",
          machineActionId: "a1",
          type: "RunScript",
          md5Verified: false,
          at: 4_000,
          ...saved
        })
        const entry = Option.getOrThrow(CampaignStore.entryFor(state.machines.get("m1")!))
        yield* store.append({ _tag: "MachineFinished", entry, at: 5_000 })
      }))
      // A second store on the same folder: what the first wrote survives it.
      const reopened = yield* Effect.scoped(Effect.flatMap(CampaignStore.makeFolder(dir), (s) => Effect.zip(s.open, s.manifest)))
      const [campaign, manifest] = reopened
      const file = `${dir}/${manifest[0]!.commands[0]!.file}`
      const bytes = yield* fs.readFile(file)
      const digest = new Uint8Array(yield* Effect.promise(() => crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>)))
      const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("")
      return {
        phase: campaign.state.machines.get("m1")!.phase._tag,
        manifest,
        fileText: new TextDecoder().decode(bytes),
        sha256Matches: hex === manifest[0]!.commands[0]!.sha256
      }
    }).pipe(Effect.provide(NodeFileSystem.layer))
  )
