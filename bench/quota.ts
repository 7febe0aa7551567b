/**
 * Benchmark 1 (and 5): quota utilisation. N transcripts through the
 * result-link quota, scaled down (100 per 2 s and 1500 per 30 s; quick: 50 per
 * 1 s and 200 per 4 s), concurrency 50, against the simulator served on
 * 127.0.0.1 by this process. Each client is its own process:
 *
 * - the library on Node, alone;
 * - the hand-written baseline (bench/baseline.ts) on Node, alone;
 * - the library in three Node processes sharing one budget on Redis;
 * - the library on Deno and on Bun, alone.
 *
 * Figures per run, against the theoretical minimum (the last call of a
 * zero-latency client that starts every call the moment the quota allows it):
 * the span from the first to the last accepted call as the simulator saw them
 * (what the quota governs: the utilisation target uses this) and the client's
 * elapsed time end to end (also connection set-up and the last transfers); 429s
 * received; the most accepted calls in any window of each limit; and accepted
 * calls over time (bench/chart.ts draws them).
 */
import { Effect, Exit, Redacted, Scope } from "effect"
import { execFile } from "node:child_process"
import { writeFileSync } from "node:fs"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import { locate, requiredLine, serversRequired, skipLine, use } from "../scripts/servers.ts"
import type { ClientReport } from "./baseline.ts"
import { type Series, svgChart } from "./chart.ts"
import { type BenchOptions, type BenchResult, round, type Target } from "./types.ts"
import { type Limit, maxInWindow, theoreticalMillis } from "./windows.ts"

const runtimes = {
  node: [process.execPath, "--import", "tsx"],
  deno: ["npx", "deno", "run", "-A"],
  bun: ["npx", "bun"]
} as const

const client = (runtime: keyof typeof runtimes, args: ReadonlyArray<string>): Promise<ClientReport> =>
  new Promise((resolve, reject) => {
    const [command, ...pre] = runtimes[runtime]
    execFile(
      command,
      [...pre, "bench/quota-client.ts", ...args],
      { maxBuffer: 16 * 1024 * 1024, env: { ...process.env, NODE_NO_WARNINGS: "1" } },
      (error, stdout, stderr) => {
        if (error !== null) return reject(new Error(`${runtime} client failed: ${error.message}\n${stderr}`))
        resolve(JSON.parse(stdout.trim().split("\n").pop()!) as ClientReport)
      }
    )
  })

interface RunSpec {
  readonly label: string
  readonly runtime: keyof typeof runtimes
  readonly mode: "library" | "baseline"
  readonly processes: number
  readonly redis?: string | undefined
}

interface RunResult {
  readonly label: string
  readonly elapsedMillis: number
  /** From the first to the last accepted call, as the simulator saw them: the stretch the quota governs. */
  readonly spanMillis: number
  readonly spanUtilisation: number
  readonly theoreticalMillis: number
  readonly utilisation: number
  readonly throttled: number
  readonly ok: number
  readonly failed: number
  readonly maxInWindows: ReadonlyArray<number>
  readonly accepted: ReadonlyArray<number>
}

const runOnce = async (spec: RunSpec, n: number, limits: ReadonlyArray<Limit>, concurrency: number) => {
  const scope = Effect.runSync(Scope.make())
  try {
    const { served, sim } = await Effect.runPromise(
      Effect.gen(function*() {
        const sim = yield* DefenderSimulator.make({
          rateLimits: limits.map((l) => ({ limit: l.limit, window: l.millis }))
        })
        for (let i = 0; i < n; i++) {
          sim.addTranscripts(`bench-${i}`, [
            JSON.stringify({ script_name: "collect.ps1", exit_code: 0, script_output: `item ${i}\n`.repeat(8), script_errors: "" })
          ])
        }
        const served = yield* DefenderSimulator.serve(sim)
        return { sim, served }
      }).pipe(Scope.extend(scope))
    )
    const limitText = limits.map((l) => `${l.limit}/${l.millis}ms`).join(",")
    const share = Math.ceil(n / spec.processes)
    // One budget name for all of this run's processes, a new one for every run.
    const key = `bench-${Date.now()}`
    const reports = await Promise.all(Array.from({ length: spec.processes }, (_, p) =>
      client(spec.runtime, [
        "--url", served.url,
        "--token", Redacted.value(DefenderSimulator.STATIC_TOKEN),
        "--from", String(p * share),
        "--to", String(Math.min(n, (p + 1) * share)),
        "--concurrency", String(concurrency),
        "--mode", spec.mode,
        "--limits", limitText,
        ...(spec.redis === undefined ? [] : ["--redis", spec.redis, "--key", key])
      ])))
    const links = sim.received.filter((r) => r.endpoint === "getResultLink")
    const accepted = links.filter((r) => r.status === 200).map((r) => r.at)
    const first = Math.min(...links.map((r) => r.at))
    // From the first process's start to the last one's end.
    const elapsedMillis = Math.max(...reports.map((r) => r.startedAt + r.millis)) - Math.min(...reports.map((r) => r.startedAt))
    const spanMillis = Math.max(...accepted) - Math.min(...accepted)
    const theoretical = theoreticalMillis(n, limits)
    return {
      label: spec.label,
      elapsedMillis: Math.round(elapsedMillis),
      theoreticalMillis: theoretical,
      utilisation: round(theoretical / elapsedMillis, 4),
      spanMillis,
      spanUtilisation: round(theoretical / Math.max(1, spanMillis), 4),
      throttled: links.filter((r) => r.status === 429).length,
      ok: reports.reduce((a, r) => a + r.ok, 0),
      failed: reports.reduce((a, r) => a + r.failed, 0),
      maxInWindows: limits.map((l) => maxInWindow(accepted, l.millis)),
      accepted: accepted.map((t) => t - first)
    } satisfies RunResult
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/**
 * The Redis for the three-process run (its URL variable, else redis-server from the PATH), or
 * none: then that run is left out with one line, or fails under MDE_REQUIRE_SERVERS=1.
 */
const redisIfAny = async () => {
  const located = locate("redis")
  if (located.missing === undefined) return await use("redis", located)
  if (serversRequired()) throw new Error(requiredLine("redis", located.missing))
  process.stderr.write(`  ${skipLine("redis", "the 3-process Redis run", located.missing)}\n`)
  return undefined
}

export const run = async (options: BenchOptions & { readonly runtimes?: boolean }): Promise<BenchResult> => {
  const limits: ReadonlyArray<Limit> = options.quick
    ? [{ limit: 50, millis: 1_000 }, { limit: 200, millis: 4_000 }]
    : [{ limit: 100, millis: 2_000 }, { limit: 1500, millis: 30_000 }]
  const n = options.quick ? 300 : 3000
  const concurrency = 50
  const redis = await redisIfAny()
  const specs: Array<RunSpec> = [
    { label: "library (Node)", runtime: "node", mode: "library", processes: 1 },
    { label: "baseline (Node, fetch + exponential backoff)", runtime: "node", mode: "baseline", processes: 1 },
    ...(redis === undefined ? [] : [
      { label: "library, 3 processes on Redis", runtime: "node" as const, mode: "library" as const, processes: 3, redis: redis.url }
    ]),
    ...(options.runtimes === false ? [] : [
      { label: "library (Deno)", runtime: "deno" as const, mode: "library" as const, processes: 1 },
      { label: "library (Bun)", runtime: "bun" as const, mode: "library" as const, processes: 1 }
    ])
  ]
  const results: Array<RunResult> = []
  try {
    for (const spec of specs) {
      const result = await runOnce(spec, n, limits, concurrency)
      results.push(result)
      process.stderr.write(
        `  ${result.label}: ${(result.elapsedMillis / 1000).toFixed(1)} s (minimum ${(result.theoreticalMillis / 1000).toFixed(1)} s, ` +
          `${(result.utilisation * 100).toFixed(1)} %; calls spanned ${(result.spanMillis / 1000).toFixed(1)} s, ` +
          `${(result.spanUtilisation * 100).toFixed(1)} %), ${result.throttled} × 429, ${result.ok}/${n} ok\n`
      )
    }
  } finally {
    await redis?.stop()
  }

  const byLabel = (prefix: string) => results.find((r) => r.label.startsWith(prefix))
  const lib = byLabel("library (Node)")!
  const base = byLabel("baseline")!
  const shared = byLabel("library, 3 processes")
  const quotaLine = Math.min(...limits.map((l) => (l.limit * 1000) / l.millis))
  const bin = Math.min(...limits.map((l) => l.millis))
  const series: Array<Series> = results.map((r) => ({ label: r.label, times: r.accepted }))
  const chartFile = options.quick ? ".tmp/bench-quota-quick.svg" : "bench/quota.svg"
  writeFileSync(
    chartFile,
    svgChart({
      title: `Accepted result-link calls per second (quota ${limits.map((l) => `${l.limit}/${l.millis / 1000} s`).join(" and ")}, N = ${n}, concurrency ${concurrency})`,
      series,
      binMillis: bin,
      quotaPerSecond: quotaLine
    })
  )

  const figures: Record<string, number | string | boolean> = {
    n,
    concurrency,
    limits: limits.map((l) => `${l.limit}/${l.millis}ms`).join(","),
    theoreticalSeconds: round(lib.theoreticalMillis / 1000, 2)
  }
  for (const r of results) {
    const key = r.label.replace(/\W+/g, "_").replace(/^_|_$/g, "")
    figures[`${key}.seconds`] = round(r.elapsedMillis / 1000, 2)
    figures[`${key}.utilisation`] = r.utilisation
    figures[`${key}.callSpanSeconds`] = round(r.spanMillis / 1000, 2)
    figures[`${key}.callSpanUtilisation`] = r.spanUtilisation
    figures[`${key}.throttled`] = r.throttled
    figures[`${key}.ok`] = r.ok
    figures[`${key}.maxInWindows`] = r.maxInWindows.join("/")
  }
  const targets: Array<Target> = [
    {
      name: "utilisation, library alone",
      target: ">= 97 % with zero 429s",
      measured: round(lib.spanUtilisation * 100, 1),
      unit: `% of the theoretical maximum over the calls' span (${lib.throttled} × 429; end to end ${round(lib.utilisation * 100, 1)} %)`,
      met: lib.spanUtilisation >= 0.97 && lib.throttled === 0
    },
    {
      name: "speed-up over the baseline, end to end",
      target: ">= 1.5x",
      measured: round(base.elapsedMillis / lib.elapsedMillis, 2),
      unit: `x (baseline ${(base.elapsedMillis / 1000).toFixed(1)} s with ${base.throttled} × 429)`,
      met: base.elapsedMillis / lib.elapsedMillis >= 1.5
    }
  ]
  if (shared !== undefined) {
    targets.push({
      name: "utilisation, 3 processes on Redis",
      target: ">= 97 % with zero 429s",
      measured: round(shared.spanUtilisation * 100, 1),
      unit: `% of the theoretical maximum over the calls' span (${shared.throttled} × 429; end to end ${round(shared.utilisation * 100, 1)} %)`,
      met: shared.spanUtilisation >= 0.97 && shared.throttled === 0
    })
  }
  for (const rt of ["Deno", "Bun"]) {
    const r = byLabel(`library (${rt})`)
    if (r !== undefined) {
      targets.push({
        name: `utilisation, library on ${rt}`,
        target: ">= 97 % with zero 429s",
        measured: round(r.spanUtilisation * 100, 1),
        unit: `% of the theoretical maximum over the calls' span (${r.throttled} × 429; end to end ${round(r.utilisation * 100, 1)} %)`,
        met: r.spanUtilisation >= 0.97 && r.throttled === 0
      })
    }
  }
  return {
    name: "quota",
    description: `${n} transcripts through the scaled result-link quota, concurrency ${concurrency}, simulator on 127.0.0.1`,
    figures,
    targets,
    files: [chartFile]
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await run({ quick: process.argv.includes("--quick") })
  console.log(JSON.stringify(result, null, 2))
}
