/**
 * Three worker processes, one tenant quota: real `batch` processes against one
 * simulator served on loopback, sharing their budget in a real Redis (see
 * test/setup/servers.ts; skipped without one). The quota is scaled down to 20 calls per 2 seconds so
 * the run takes seconds; the simulator counts calls the way Defender does, in a
 * rolling window, and answers 429 beyond it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Redacted, Scope } from "effect"
import { execFile } from "node:child_process"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import { maxInWindow } from "../bench/windows.ts"
import { needServer } from "./utils/servers.ts"
import { CLI } from "./utils/cli.ts"

const redis = needServer("redis")
const url = redis.url
const WORKERS = 3
const PER_WORKER = 20
const QUOTA = { limit: 20, window: 2_000 }

interface Worker {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const worker = (input: string, env: Record<string, string>): Promise<Worker> =>
  new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [...CLI, "batch", "--concurrency", "20"],
      { env: { PATH: process.env.PATH ?? "", ...env }, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr })
    )
    child.stdin!.end(input)
  })


/** Serves a fresh simulator with the scaled quota, runs three workers on disjoint inputs, and reports. */
const runWorkers = async (env: (n: number) => Record<string, string>) => {
  const scope = Effect.runSync(Scope.make())
  try {
    const { served, sim } = await Effect.runPromise(
      Effect.gen(function*() {
        const sim = yield* DefenderSimulator.make({ rateLimits: [{ limit: QUOTA.limit, window: QUOTA.window }] })
        const served = yield* DefenderSimulator.serve(sim)
        return { sim, served }
      }).pipe(Scope.extend(scope))
    )
    const ids = Array.from({ length: WORKERS * PER_WORKER }, (_, i) => `0000beef-0000-4000-8000-${i.toString(16).padStart(12, "0")}`) // batch takes GUIDs only
    for (const id of ids) {
      sim.addTranscripts(id, [JSON.stringify({ script_name: "a.ps1", exit_code: 0, script_output: id, script_errors: "" })])
    }
    const runs = await Promise.all(Array.from({ length: WORKERS }, (_, n) => {
      const mine = ids.slice(n * PER_WORKER, (n + 1) * PER_WORKER)
      const input = mine.map((id) => JSON.stringify({ action: id, index: 0 })).join("\n") + "\n"
      return worker(input, {
        MDE_API_URL: served.url,
        MDE_TOKEN: Redacted.value(DefenderSimulator.STATIC_TOKEN),
        MDE_DOWNLOAD_HOSTS: "127.0.0.1",
        MDE_RATE_LIMITS: `${QUOTA.limit}/${QUOTA.window}ms`,
        ...env(n)
      })
    }))
    const links = sim.received.filter((r) => r.endpoint === "getResultLink")
    return { ids, runs, links, throttled: sim.count("getResultLink", 429) }
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

describe.skipIf(redis.skip)("three batch workers on one quota", () => {
  it("sharing the budget on Redis: no 429, never above the quota in any window, every input once", async () => {
    const key = `workers-${crypto.randomUUID()}`
    const { ids, links, runs, throttled } = await runWorkers(() => ({ MDE_REDIS_URL: url, MDE_REDIS_KEY: key }))
    const answered: Array<string> = []
    for (const run of runs) {
      expect(run.stderr).not.toContain("error:")
      expect(run.code).toBe(0)
      for (const line of run.stdout.trim().split("\n")) {
        const answer = JSON.parse(line)
        expect(answer.ok).toBe(true)
        answered.push(answer.transcript.output)
      }
    }
    expect(answered.sort()).toEqual([...ids].sort())
    expect(throttled).toBe(0)
    expect(links).toHaveLength(ids.length)
    expect(maxInWindow(links.map((r) => r.at), QUOTA.window)).toBeLessThanOrEqual(QUOTA.limit)
  }, 60_000)

  it("control: the same workers each with its own in-memory budget overrun the quota", async () => {
    const { runs, throttled } = await runWorkers(() => ({ MDE_REDIS_URL: "" }))
    // Each worker keeps to 20 per 2 s on its own; together they send 60 at once.
    expect(throttled).toBeGreaterThan(0)
    // …and still answer every input (the 429s are retried after their Retry-After).
    const lines = runs.flatMap((run) => run.stdout.trim().split("\n"))
    expect(lines).toHaveLength(WORKERS * PER_WORKER)
  }, 60_000)
})
