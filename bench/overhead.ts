/**
 * Benchmark 2: per-call overhead of the library against a raw `fetch` loop on
 * loopback, rate limiter off: 5,000 link retrievals each (quick: 1,000), one
 * after another, in one client process (bench/overhead-client.ts) alternating
 * rounds, against the simulator served by this process. Wall and CPU time of
 * the client, as ratios.
 */
import { Effect, Exit, Redacted, Scope } from "effect"
import { execFile } from "node:child_process"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import { type BenchOptions, type BenchResult, round } from "./types.ts"

interface Totals {
  readonly raw: { readonly wall: number; readonly cpu: number }
  readonly library: { readonly wall: number; readonly cpu: number }
}

export const run = async (options: BenchOptions): Promise<BenchResult> => {
  const n = options.quick ? 1000 : 5000
  const scope = Effect.runSync(Scope.make())
  try {
    const served = await Effect.runPromise(
      Effect.gen(function*() {
        const sim = yield* DefenderSimulator.make({ rateLimits: [] })
        for (let i = 0; i < 100; i++) sim.addTranscripts(`bench-${i}`, ["{}"])
        return yield* DefenderSimulator.serve(sim)
      }).pipe(Scope.extend(scope))
    )
    const totals = await new Promise<Totals>((resolve, reject) =>
      execFile(
        process.execPath,
        ["--import", "tsx", "bench/overhead-client.ts", served.url, Redacted.value(DefenderSimulator.STATIC_TOKEN), String(n), "4"],
        { env: { ...process.env, NODE_NO_WARNINGS: "1" } },
        (error, stdout, stderr) => (error !== null ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(JSON.parse(stdout) as Totals))
      )
    )
    const wallRatio = totals.library.wall / totals.raw.wall
    const cpuRatio = totals.library.cpu / totals.raw.cpu
    return {
      name: "overhead",
      description: `${n} link retrievals one after another, library (rate limiter off) vs a raw fetch loop, one client process, simulator on 127.0.0.1`,
      figures: {
        calls: n,
        "raw.wallMs": Math.round(totals.raw.wall),
        "raw.cpuMs": Math.round(totals.raw.cpu),
        "library.wallMs": Math.round(totals.library.wall),
        "library.cpuMs": Math.round(totals.library.cpu),
        "raw.microsPerCall": round((totals.raw.wall * 1000) / n, 0),
        "library.microsPerCall": round((totals.library.wall * 1000) / n, 0),
        wallRatio: round(wallRatio, 3),
        cpuRatio: round(cpuRatio, 3)
      },
      targets: [
        { name: "wall time vs raw fetch", target: "<= 1.3x", measured: round(wallRatio, 2), unit: "x", met: wallRatio <= 1.3 },
        { name: "CPU time vs raw fetch", target: "<= 1.3x", measured: round(cpuRatio, 2), unit: "x", met: cpuRatio <= 1.3 }
      ]
    }
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await run({ quick: process.argv.includes("--quick") }), null, 2))
}
