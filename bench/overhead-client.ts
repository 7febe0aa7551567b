/**
 * The per-call overhead benchmark's client, its own process: `--n` link
 * retrievals one after another, by a raw `fetch` loop and by the library
 * (`DefenderClient.getResultLink`, rate limiter off), alternating in rounds,
 * with the wall and CPU time of each. Prints one JSON line.
 */
import { FetchHttpClient } from "@effect/platform"
import { Effect, Layer, Redacted } from "effect"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderClient from "../src/DefenderClient.ts"
import * as DefenderCloud from "../src/DefenderCloud.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"

const [url, token, nText, roundsText] = process.argv.slice(2)
const n = Number(nText)
const rounds = Number(roundsText ?? "2")
const ids = Array.from({ length: n }, (_, i) => `bench-${i % 100}`)
const linkUrl = (id: string) => `${url}/api/machineactions/${id}/GetLiveResponseResultDownloadLink(index=0)`

/** The raw loop: what a script does by hand. */
const raw = async (count: number) => {
  for (let i = 0; i < count; i++) {
    const response = await fetch(linkUrl(ids[i]!), { headers: { authorization: `Bearer ${token}` } })
    if (response.status !== 200) throw new Error(`HTTP ${response.status}`)
    const { value } = (await response.json()) as { value: string }
    if (typeof value !== "string") throw new Error("no link")
  }
}

const layer = DefenderClient.layer({
  cloud: { ...DefenderCloud.commercial, apiBaseUrl: url! },
  downloadHosts: ["127.0.0.1"]
}).pipe(
  Layer.provide(Layer.merge(
    DefenderAuth.layerToken(Redacted.make(token!)),
    DefenderRateLimiter.layer({ limits: [], machineActionLimits: [], runLimits: [] })
  )),
  Layer.provide(FetchHttpClient.layer)
)
const runtime = await Effect.runPromise(Layer.toRuntime(layer).pipe(Effect.scoped))
const library = (count: number) =>
  Effect.runPromise(
    Effect.flatMap(DefenderClient.DefenderClient, (client) =>
      Effect.forEach(ids.slice(0, count), (id) => client.getResultLink({ machineActionId: id, index: 0 }), {
        discard: true
      })).pipe(Effect.provide(runtime))
  )

const measure = async (body: () => Promise<void>) => {
  const cpu = process.cpuUsage()
  const started = performance.now()
  await body()
  const used = process.cpuUsage(cpu)
  return { wall: performance.now() - started, cpu: (used.user + used.system) / 1000 }
}

// Warm-up: connections, JIT.
await raw(300)
await library(300)
const totals = { raw: { wall: 0, cpu: 0 }, library: { wall: 0, cpu: 0 } }
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? (["raw", "library"] as const) : (["library", "raw"] as const)
  for (const which of order) {
    const m = await measure(() => (which === "raw" ? raw(n / rounds) : library(n / rounds)))
    totals[which].wall += m.wall
    totals[which].cpu += m.cpu
  }
}
process.stdout.write(JSON.stringify(totals) + "\n")
process.exit(0)
