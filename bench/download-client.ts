/**
 * The client side of the download benchmark: one `LiveResponse.downloadToFile` over the
 * real `FetchHttpClient`, in a fresh process so its peak RSS is the library's alone.
 *
 *   node --import tsx bench/download-client.ts <api url> <machine action id> <index> <path>
 *
 * Prints one JSON line (`ClientFigures`). The timed span starts before the result link is
 * asked for, so it includes that API call, which curl's figure does not.
 */
import { FetchHttpClient } from "@effect/platform"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Effect, Layer } from "effect"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderClient from "../src/DefenderClient.ts"
import * as DefenderCloud from "../src/DefenderCloud.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import * as LiveResponse from "../src/LiveResponse.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"

/** What one client run reports. */
export interface ClientFigures {
  readonly bytes: number
  readonly millis: number
  readonly md5Verified: boolean
  readonly resumes: number
  /** process.resourceUsage().maxRSS, in KiB (Linux), at the end of the run. */
  readonly maxRssKiB: number
  /** The same before the download: the process with its modules loaded. */
  readonly startRssKiB: number
  /** CPU time (user + system) the download took, all threads of the process. */
  readonly cpuMillis: number
}

const [apiUrl, machineActionId, index, path] = process.argv.slice(2)
if (apiUrl === undefined || machineActionId === undefined || index === undefined || path === undefined) {
  process.stderr.write("usage: download-client.ts <api url> <machine action id> <index> <path>\n")
  process.exit(2)
}

const cloud: DefenderCloud.DefenderCloud = { ...DefenderCloud.commercial, name: "simulator", apiBaseUrl: apiUrl, authorityHost: apiUrl }
const live = Layer.merge(
  DefenderClient.layer({ cloud, downloadHosts: ["127.0.0.1"] }).pipe(
    Layer.provide(Layer.merge(DefenderAuth.layerToken(DefenderSimulator.STATIC_TOKEN), DefenderRateLimiter.layer())),
    Layer.provide(FetchHttpClient.layer)
  ),
  NodeFileSystem.layer
)

const program = Effect.gen(function*() {
  const before = process.resourceUsage()
  const start = performance.now()
  const saved = yield* LiveResponse.downloadToFile({ machineActionId, index: Number(index) }, path)
  const millis = performance.now() - start
  const usage = process.resourceUsage()
  const figures: ClientFigures = {
    bytes: saved.bytes,
    millis,
    md5Verified: saved.md5Verified,
    resumes: saved.resumes,
    maxRssKiB: usage.maxRSS,
    startRssKiB: before.maxRSS,
    cpuMillis: (usage.userCPUTime + usage.systemCPUTime - before.userCPUTime - before.systemCPUTime) / 1000
  }
  process.stdout.write(`${JSON.stringify(figures)}\n`)
})

// Exits at once: fetch's pooled connection would hold the process open for its keep-alive.
Effect.runPromise(Effect.provide(program, live)).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`)
    process.exit(1)
  }
)
