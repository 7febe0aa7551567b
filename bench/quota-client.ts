/**
 * One client of the quota benchmark, run as its own process (on Node, Deno or
 * Bun): fetches the transcripts of `--from`…`--to` (action ids `bench-<n>`,
 * index 0) from the served simulator at `--url`, `--concurrency` at a time,
 * and prints one JSON line: `{ ok, failed, millis, tags }`.
 *
 * `--mode library` is this library with its rate budget (`--limits`, e.g.
 * `100/2s,1500/30s`; shared on Redis with `--redis <url> --key <key>`).
 * `--mode baseline` is the hand-written loop most integrations use: see
 * bench/baseline.ts.
 */
import { FetchHttpClient } from "@effect/platform"
import { Effect, Either, Layer, Redacted } from "effect"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderClient from "../src/DefenderClient.ts"
import * as DefenderCloud from "../src/DefenderCloud.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import * as LiveResponse from "../src/LiveResponse.ts"
import { baseline } from "./baseline.ts"

const args = new Map<string, string>()
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i += 2) args.set(argv[i]!.replace(/^--/, ""), argv[i + 1] ?? "")
const arg = (name: string): string => {
  const value = args.get(name)
  if (value === undefined) throw new Error(`--${name} is required`)
  return value
}

const url = arg("url")
const token = arg("token")
const from = Number(arg("from"))
const to = Number(arg("to"))
const concurrency = Number(arg("concurrency"))
const ids = Array.from({ length: to - from }, (_, i) => `bench-${from + i}`)

const library = async () => {
  const limits = DefenderRateLimiter.parseLimits(arg("limits"))
  if (Either.isLeft(limits)) throw new Error(limits.left)
  const redis = args.get("redis")
  const limiter = redis === undefined || redis === ""
    ? DefenderRateLimiter.layer({ limits: limits.right })
    : DefenderRateLimiter.layerRedis({ url: redis, key: arg("key"), limits: limits.right })
  const layer = DefenderClient.layer({
    cloud: { ...DefenderCloud.commercial, apiBaseUrl: url },
    downloadHosts: ["127.0.0.1"]
  }).pipe(
    Layer.provide(Layer.merge(DefenderAuth.layerToken(Redacted.make(token)), limiter)),
    Layer.provide(FetchHttpClient.layer)
  )
  const tags: Record<string, number> = {}
  let ok = 0
  const startedAt = Date.now()
  const started = performance.now()
  await Effect.forEach(
    ids,
    (id) =>
      LiveResponse.getTranscript({ machineActionId: id, index: 0 }).pipe(
        Effect.match({
          onFailure: (e) => void (tags[e._tag] = (tags[e._tag] ?? 0) + 1),
          onSuccess: () => void ok++
        })
      ),
    { concurrency, discard: true }
  ).pipe(Effect.provide(layer), Effect.runPromise)
  return { ok, failed: ids.length - ok, millis: performance.now() - started, startedAt, tags }
}

const result = arg("mode") === "baseline" ? await baseline({ url, token, ids, concurrency }) : await library()
process.stdout.write(JSON.stringify(result) + "\n")
// ioredis and keep-alive sockets must not hold the process open.
process.exit(0)
