/**
 * The demo (`npm start`): a simulated Defender tenant on 127.0.0.1, and the
 * library run against it end to end over real HTTP, with a readable account
 * of what happened. Also the `--simulate` layer of the other commands.
 */
import { FetchHttpClient } from "@effect/platform"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Console, Duration, Effect, Layer, type Scope, Stream } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  Campaign,
  CampaignStore,
  DefenderAuth,
  DefenderClient,
  type DefenderError,
  DefenderRateLimiter,
  LiveResponse
} from "../mod.ts"
import { DefenderSimulator } from "../testing.ts"

const { ACTIONS } = DefenderSimulator

/**
 * The library over an in-process simulator (no sockets, no configuration):
 * what `--simulate` gives the other commands.
 */
export const layerSimulated: Layer.Layer<DefenderClient.DefenderClient | DefenderRateLimiter.DefenderRateLimiter> =
  Layer.unwrapEffect(
    Effect.map(DefenderSimulator.make(), (sim) =>
      DefenderClient.layer().pipe(
        Layer.provideMerge(
          Layer.merge(DefenderAuth.layerToken(DefenderSimulator.STATIC_TOKEN), DefenderRateLimiter.layer())
        ),
        Layer.provide(DefenderSimulator.layerHttpClient(sim))
      ))
  )

const firstLine = (text: string) => {
  const line = text.split("\n").find((l) => l.trim() !== "") ?? ""
  return line.length > 48 ? `${line.slice(0, 45)}…` : line
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/**
 * 1: four RunScript transcripts of the ready-made actions, each line with its full machine action
 * id, so it can be copied into `transcript --action` against `simulator`.
 */
export const transcriptsStep: Effect.Effect<void, DefenderError, DefenderClient.DefenderClient> = Effect.gen(function*() {
  yield* Console.log("1. RunScript transcripts (login, link, download, tolerant decoding)")
  const refs = [
    { machineActionId: ACTIONS.runScript, index: 0 },
    { machineActionId: ACTIONS.variants, index: 0 },
    { machineActionId: ACTIONS.variants, index: 1 },
    { machineActionId: ACTIONS.variants, index: 2 }
  ]
  const transcripts = yield* Effect.forEach(refs, (ref) => LiveResponse.getTranscript(ref), { concurrency: 4 })
  for (const [i, t] of transcripts.entries()) {
    yield* Console.log(
      `   ${refs[i]!.machineActionId} #${refs[i]!.index}  ${t.scriptName.padEnd(14)} exit ${t.exitCode}  ${
        JSON.stringify(firstLine(t.output))
      }${t.error === "" ? "" : `  stderr: ${JSON.stringify(firstLine(t.error))}`}`
    )
  }
  yield* Console.log(
    "   (raw newlines and NULs inside the JSON, a BOM, `name`/`script_errors`, a string exit code: all decoded)\n"
  )
})

/** 4: the ready-made failed action and the one whose result is gone, as typed errors, with their full ids. */
export const failuresStep: Effect.Effect<void, never, DefenderClient.DefenderClient> = Effect.gen(function*() {
  yield* Console.log("4. Failures are typed errors")
  for (const ref of [{ machineActionId: ACTIONS.failed, index: 0 }, { machineActionId: ACTIONS.blobGone, index: 0 }]) {
    const outcome = yield* Effect.either(LiveResponse.getTranscript(ref))
    yield* Console.log(
      `   ${ref.machineActionId}  ${
        outcome._tag === "Left" ? `${outcome.left._tag}: ${outcome.left.message.slice(0, 90)}…` : "unexpectedly succeeded"
      }`
    )
  }
  yield* Console.log("")
})

/** Runs the demo: about thirty-five seconds of real time (twelve of them the campaign's deadline). */
export const demo: Effect.Effect<void, DefenderError | CampaignStore.CampaignStoreError> = Effect.gen(function*() {
  const started = Date.now()
  // A minute of quota scaled down to two seconds, so the throttled stretch is short.
  const quota = { limit: 10, window: Duration.seconds(2) }
  const sim = yield* DefenderSimulator.make({ rateLimits: [quota] })
  const served = yield* DefenderSimulator.serve(sim)
  const cloud = served.cloud
  const client = (limits: ReadonlyArray<DefenderRateLimiter.RateLimit>) =>
    DefenderClient.layer({ cloud, downloadHosts: ["127.0.0.1"] }).pipe(
      Layer.provide(Layer.merge(
        DefenderSimulator.layerLogin({ cloud }),
        DefenderRateLimiter.layer({ limits })
      )),
      Layer.provide(FetchHttpClient.layer)
    )

  yield* Console.log(`mde-live-response demo: a simulated Defender tenant on ${served.url}`)
  yield* Console.log(`(API, Entra ID login and blob storage; quota scaled to ${quota.limit} calls per 2 s)\n`)

  yield* Effect.gen(function*() {
    yield* transcriptsStep

    yield* Console.log("2. A GetFile result, streamed to disk")
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "mde-demo-"))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )
    const file = join(dir, "OfficeClickToRun.dmp.zip.gz")
    const chunks: Array<Uint8Array> = []
    yield* Stream.runForEach(
      LiveResponse.downloadResult({ machineActionId: ACTIONS.getFile, index: 0 }),
      (chunk) => Effect.sync(() => chunks.push(chunk))
    )
    const bytes = Buffer.concat(chunks)
    writeFileSync(file, bytes)
    yield* Console.log(
      `   ${bytes.length} bytes (gzip: ${bytes[0] === 0x1f && bytes[1] === 0x8b}) → ${file} (removed when the demo ends)\n`
    )

    yield* Console.log("3. A whole session: upload a script, run it with a GetFile, wait, collect")
    const uploaded = yield* LiveResponse.uploadScript({
      fileName: "triage.ps1",
      content: "Get-Process | Select-Object -First 5",
      description: "demo triage script",
      overrideIfExists: true
    })
    const sessionStart = Date.now()
    const { action, results } = yield* LiveResponse.runAndCollect({
      machineId: "demo-machine-01",
      commands: [
        { type: "RunScript", scriptName: uploaded.fileName, args: "-Quick" },
        { type: "GetFile", path: "C:\\Windows\\Temp\\triage.log" }
      ],
      comment: "mde-live-response demo"
    }, { firstDelay: "1 second", interval: "1 second" })
    yield* Console.log(`   machine action ${action.id}: ${action.status} after ${seconds(Date.now() - sessionStart)}`)
    for (const result of results) {
      if (result.type === "RunScript") {
        yield* Console.log(`   #${result.index} ${result.scriptName}: exit ${result.transcript.exitCode}, ${JSON.stringify(firstLine(result.transcript.output.split("\n")[1] ?? ""))}`)
      } else if (result.type === "GetFile") {
        const size = yield* Stream.runFold(result.bytes, 0, (n, c) => n + c.length)
        yield* Console.log(`   #${result.index} ${result.path}: ${size} bytes`)
      }
    }
    yield* Console.log("")

    yield* failuresStep
  }).pipe(Effect.provide(client([quota])))

  yield* Console.log(`5. A burst of 30 calls with the client's budget set too high (20 per 2 s, the quota is 10)`)
  const before = sim.count("getResultLink", 429)
  const burstStart = Date.now()
  yield* Effect.forEach(
    Array.from({ length: 30 }),
    () => LiveResponse.getResultLink({ machineActionId: ACTIONS.runScript, index: 0 }),
    { concurrency: 30, discard: true }
  ).pipe(Effect.provide(client([{ limit: 20, window: Duration.seconds(2) }])))
  const throttled = sim.count("getResultLink", 429) - before
  yield* Console.log(
    `   ${throttled} answers were 429 + Retry-After; each one paused every caller until it had passed; all 30 done in ${
      seconds(Date.now() - burstStart)
    }\n`
  )

  // Let the simulator's window empty, so the next burst starts from a clean quota.
  yield* Effect.sleep(quota.window)
  yield* Console.log("6. The same burst with the budget at the quota (the default: 100/min and 1500/h)")
  const before2 = sim.count("getResultLink", 429)
  const calmStart = Date.now()
  yield* Effect.forEach(
    Array.from({ length: 30 }),
    () => LiveResponse.getResultLink({ machineActionId: ACTIONS.runScript, index: 0 }),
    { concurrency: 30, discard: true }
  ).pipe(Effect.provide(client([quota])))
  yield* Console.log(
    `   ${sim.count("getResultLink", 429) - before2} answers were 429: callers waited for a permit instead; all 30 done in ${
      seconds(Date.now() - calmStart)
    }\n`
  )

  const blobAuth = sim.received.filter((r) => r.endpoint === "blob" && r.headers["authorization"] !== undefined).length
  yield* Console.log(
    `Summary: ${sim.received.length} requests to the simulator (${sim.count("token")} token, ${
      sim.count("getResultLink")
    } result links, ${sim.count("blob")} downloads); Authorization headers sent to storage: ${blobAuth}; ${
      seconds(Date.now() - started)
    } in all.\n`
  )

  yield* campaignDemo
}).pipe(Effect.scoped)

/**
 * 7: a short campaign on a fleet of 12 served over loopback — the cap, the run budget, a failing,
 * an offline and a busy machine — into a temporary folder, with its manifest. The fleet's run
 * times are capped at 4 s so that it fits the demo.
 */
const campaignDemo: Effect.Effect<void, DefenderError | CampaignStore.CampaignStoreError, Scope.Scope> = Effect.gen(
  function*() {
    yield* Console.log("7. A campaign: one live response on a fleet of 12, at most 6 sessions, deadline 12 s")
    const machines = DefenderSimulator.fleet(12, { now: Date.now() }).map((m) => ({
      ...m,
      runFor: Math.min(Duration.toMillis(m.runFor ?? 4000), 4000)
    }))
    const runQuota = { limit: 10, window: Duration.seconds(2) }
    const sim = yield* DefenderSimulator.make({ machines, runLimits: [runQuota], pendingFor: "1 second" })
    const served = yield* DefenderSimulator.serve(sim)
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "mde-demo-campaign-"))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )
    const layer = Layer.merge(
      DefenderClient.layer({ cloud: served.cloud, downloadHosts: ["127.0.0.1"] }).pipe(
        Layer.provide(Layer.merge(
          DefenderSimulator.layerLogin({ cloud: served.cloud }),
          DefenderRateLimiter.layer({ runLimits: [runQuota] })
        )),
        Layer.provide(FetchHttpClient.layer)
      ),
      CampaignStore.layerFolder(dir)
    )
    const began = Date.now()
    let peak = 0
    const summary = yield* Campaign.start({
      commands: [{ type: "RunScript", scriptName: "triage.ps1" }],
      comment: "mde-live-response demo campaign",
      targets: { _tag: "Machines", machineIds: machines.map((m) => m.id) },
      maxSessions: 6,
      deadline: "12 seconds",
      pendingTimeout: "3 seconds",
      interval: "500 millis"
    }).pipe(
      Stream.tap((u) => Effect.sync(() => {
        if (u._tag === "Progress") peak = Math.max(peak, u.alive)
      })),
      Stream.runFold(undefined as Campaign.Summary | undefined, (s, u) => (u._tag === "Completed" ? u.summary : s)),
      Effect.provide(layer),
      Effect.provide(NodeFileSystem.layer)
    )
    const store = yield* Effect.provide(
      Effect.flatMap(CampaignStore.CampaignStore, (s) => s.manifest),
      Layer.provide(CampaignStore.layerFolder(dir), NodeFileSystem.layer)
    )
    if (summary !== undefined) {
      yield* Console.log(
        `   ${summary.campaignId}: ${summary.succeeded} succeeded, ${summary.failed} failed, ${summary.timedOut} timed out, ${summary.cancelled} cancelled, ${summary.notRun} never ran, in ${
          seconds(Date.now() - began)
        }; at most ${peak} sessions alive at once (the cap: 6)`
      )
    }
    const first = store.find((e) => e.status === "Succeeded")
    const notRun = store.find((e) => e.status === "NotRun")
    if (first !== undefined) {
      const c = first.commands[0]
      yield* Console.log(`   manifest: machine ${first.machineId} Succeeded (${c?.bytes} bytes, sha256 ${c?.sha256?.slice(0, 12)}…)`)
      yield* Console.log(`             → ${c?.file}`)
    }
    if (notRun !== undefined) yield* Console.log(`   manifest: machine ${notRun.machineId} NotRun: ${notRun.error?.message}`)
    yield* Console.log("   (the CLI: `campaign start --simulate …`, `campaign status`, `campaign resume`; see README)")
    yield* Console.log(
      "\nTo try the commands yourself: `mde-live-response simulator` serves such a tenant (the ready-made ids of 1 and 4 included) until Ctrl-C."
    )
  }
)
