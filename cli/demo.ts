/**
 * The demo (`npm start`): a simulated Defender tenant on 127.0.0.1, and the
 * library run against it end to end over real HTTP, with a readable account
 * of what happened. Also the `--simulate` layer of the other commands.
 */
import { FetchHttpClient } from "@effect/platform"
import { Console, Duration, Effect, Layer, Stream } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DefenderAuth, DefenderClient, type DefenderError, DefenderRateLimiter, LiveResponse } from "../mod.ts"
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

const short = (id: string) => `${id.slice(0, 8)}…${id.slice(-4)}`

const firstLine = (text: string) => {
  const line = text.split("\n").find((l) => l.trim() !== "") ?? ""
  return line.length > 60 ? `${line.slice(0, 57)}…` : line
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/** Runs the demo: about ten seconds of real time. */
export const demo: Effect.Effect<void, DefenderError> = Effect.gen(function*() {
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
        `   ${short(refs[i]!.machineActionId)} #${refs[i]!.index}  ${t.scriptName.padEnd(14)} exit ${t.exitCode}  ${
          JSON.stringify(firstLine(t.output))
        }${t.error === "" ? "" : `  stderr: ${JSON.stringify(firstLine(t.error))}`}`
      )
    }
    yield* Console.log(
      "   (raw newlines and NULs inside the JSON, a BOM, `name`/`script_errors`, a string exit code: all decoded)\n"
    )

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
    yield* Console.log(`   machine action ${short(action.id)}: ${action.status} after ${seconds(Date.now() - sessionStart)}`)
    for (const result of results) {
      if (result.type === "RunScript") {
        yield* Console.log(`   #${result.index} ${result.scriptName}: exit ${result.transcript.exitCode}, ${JSON.stringify(firstLine(result.transcript.output.split("\n")[1] ?? ""))}`)
      } else if (result.type === "GetFile") {
        const size = yield* Stream.runFold(result.bytes, 0, (n, c) => n + c.length)
        yield* Console.log(`   #${result.index} ${result.path}: ${size} bytes`)
      }
    }
    yield* Console.log("")

    yield* Console.log("4. Failures are typed errors")
    for (const ref of [{ machineActionId: ACTIONS.failed, index: 0 }, { machineActionId: ACTIONS.blobGone, index: 0 }]) {
      const outcome = yield* Effect.either(LiveResponse.getTranscript(ref))
      yield* Console.log(
        `   ${short(ref.machineActionId)}  ${
          outcome._tag === "Left" ? `${outcome.left._tag}: ${outcome.left.message.slice(0, 90)}…` : "unexpectedly succeeded"
        }`
      )
    }
    yield* Console.log("")
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
    } in all.`
  )
}).pipe(Effect.scoped)
