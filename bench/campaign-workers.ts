/**
 * Issue 14's part of the campaign benchmark: one campaign on PostgreSQL worked by 1 and by 3
 * `campaign work` processes (the bundled CLI, built into a temporary folder as the tests' is),
 * their budgets shared on one Redis, against simulators served on 127.0.0.1 by this process:
 *
 * - one tenant: the tenant's run budget binds, so three workers should take about the time one
 *   takes (the budget, not the workers, sets the pace);
 * - three tenants (`--tenants t1,t2,t3`, a simulator and a budget each, the machines split
 *   evenly, `t1/<id>` lines in the machines file): three budgets, so close to three times the
 *   one tenant's throughput.
 *
 * The binding limit is the run budget, scaled to 10 runs a second per tenant (simulator
 * `runLimits` = `MDE_RUN_RATE_LIMITS`); reads are generous, actions short (pending 0.5 s, running
 * 1 s), so every machine succeeds and a run takes seconds. The campaign is defined with
 * `campaign start --detach` first; the wall time is from the workers' spawn to the last one's
 * exit (their start-up included), and the run-call span is the first to the last accepted run
 * call as the simulators saw them. Each run gets a database of its own and a Redis key of its own.
 *
 * Needs a PostgreSQL and a Redis (their URL variables, else `pg_ctl`/`redis-server` from the PATH):
 * without one this part is left out with one line (a failure under `MDE_REQUIRE_SERVERS=1`).
 *
 *   node --import tsx bench/campaign-workers.ts [--quick]
 */
import { Effect, Exit, Redacted, Scope } from "effect"
import { execFile, execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { freshDatabase as freshDb } from "../test/utils/postgres.ts"
import { locate, requiredLine, type RunningServer, type ServerName, serversRequired, skipLine, use } from "../scripts/servers.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import { round, type Target } from "./types.ts"
import { maxInWindow, theoreticalMillis } from "./windows.ts"

/** Each tenant's run budget: the binding limit. */
const RUN_LIMIT = { limit: 10, millis: 1_000 }
/** Reads (links, polls, lists): far from binding. */
const READ_LIMIT = { limit: 200, millis: 1_000 }
const TENANT_NAMES = ["t1", "t2", "t3"] as const
/** A worker that has not ended by then is stuck: killed, and the run fails. */
const WORKER_TIMEOUT_MILLIS = 180_000

const limitText = (l: { readonly limit: number; readonly millis: number }) => `${l.limit}/${l.millis}ms`

interface Exited {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const cli = (bin: string, args: ReadonlyArray<string>, env: Record<string, string>): Promise<Exited> =>
  new Promise((done) => {
    execFile(
      process.execPath,
      [bin, ...args],
      {
        // Only what the run sets: no MDE_* of the caller's shell leaks in.
        env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? tmpdir(), NODE_NO_WARNINGS: "1", ...env },
        maxBuffer: 64 * 1024 * 1024,
        timeout: WORKER_TIMEOUT_MILLIS
      },
      (error, stdout, stderr) =>
        done({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr })
    )
  })

const describeExit = (what: string, exited: Exited) =>
  `${what} exited with ${exited.code}\nstdout: ${exited.stdout.trim().slice(-2000)}\nstderr: ${exited.stderr.trim().slice(-2000)}`

/** A database of its own for each run, on the server at `url` (the tests' helper). */
const freshDatabase = (url: string, name: string): Promise<string> => Effect.runPromise(freshDb(url, name))

/** A tenant's 40-hex machine ids, the same every run. */
const machineIds = (tenant: string, n: number): Array<string> =>
  Array.from({ length: n }, (_, i) => createHash("sha1").update(`${tenant}-${i}`).digest("hex"))

interface Run {
  readonly tenants: number
  readonly workers: number
  readonly machines: number
  /** `campaign start --detach`: the definition (migrations, targets, jobs). */
  readonly startMillis: number
  /** From the workers' spawn to the last one's exit. */
  readonly wallMillis: number
  /** First to last accepted run call, over every tenant. */
  readonly runSpanMillis: number
  /** First accepted run call to the last result-link or download call (the last transcript collected). */
  readonly campaignSpanMillis: number
  readonly machinesPerSecond: number
  readonly runCalls: number
  readonly throttledRuns: number
  /** The most accepted run calls of one tenant in any window of the run budget. */
  readonly maxRunsInWindow: number
  readonly succeeded: number
  readonly total: number
  /** This process's CPU (the simulators) over the workers' run, seconds. */
  readonly simulatorCpuSeconds: number
}

const runOnce = async (
  bin: string,
  postgresUrl: string,
  redisUrl: string,
  tenants: number,
  workers: number,
  perTenant: number
): Promise<Run> => {
  const names = TENANT_NAMES.slice(0, tenants)
  const tag = `t${tenants}w${workers}_${Date.now()}`
  const store = await freshDatabase(postgresUrl, `bench_${tag}`)
  const dir = mkdtempSync(join(process.platform === "linux" ? "/dev/shm" : tmpdir(), "mde-bench-workers-"))
  const scope = Effect.runSync(Scope.make())
  try {
    const served = await Effect.runPromise(
      Effect.forEach(names, (name) =>
        Effect.gen(function*() {
          const ids = machineIds(name, perTenant)
          const sim = yield* DefenderSimulator.make({
            machines: ids.map((id) => ({ id })),
            rateLimits: [{ limit: READ_LIMIT.limit, window: READ_LIMIT.millis }],
            runLimits: [{ limit: RUN_LIMIT.limit, window: RUN_LIMIT.millis }],
            pendingFor: "500 millis",
            runFor: "1 second"
          })
          const server = yield* DefenderSimulator.serve(sim)
          return { name, ids, sim, url: server.url }
        })).pipe(Scope.extend(scope))
    )
    const machinesFile = join(dir, "machines.txt")
    const lines = served.flatMap((t) => tenants === 1 ? t.ids : t.ids.map((id) => `${t.name}/${id}`))
    writeFileSync(machinesFile, lines.join("\n") + "\n")
    const token = Redacted.value(DefenderSimulator.STATIC_TOKEN)
    const env: Record<string, string> = {
      MDE_DOWNLOAD_HOSTS: "127.0.0.1",
      MDE_RATE_LIMITS: limitText(READ_LIMIT),
      MDE_MACHINE_ACTION_RATE_LIMITS: limitText(READ_LIMIT),
      MDE_RUN_RATE_LIMITS: limitText(RUN_LIMIT),
      MDE_REDIS_URL: redisUrl,
      MDE_REDIS_KEY: `bench-${tag}`,
      ...(tenants === 1
        ? { MDE_API_URL: served[0]!.url, MDE_TOKEN: token }
        : Object.fromEntries(served.flatMap((t) => [
          [`MDE_${t.name.toUpperCase()}_API_URL`, t.url],
          [`MDE_${t.name.toUpperCase()}_TOKEN`, token]
        ])))
    }
    const common = ["--store", store, "--results", join(dir, "results"), ...(tenants === 1 ? [] : ["--tenants", names.join(",")])]
    const t0 = performance.now()
    const start = await cli(
      bin,
      ["campaign", "start", ...common, "--machines", machinesFile, "--script", "triage.ps1", "--interval", "1s", "--detach"],
      env
    )
    const startMillis = performance.now() - t0
    const campaignId = start.stdout.split("\n")[0]!.trim()
    if (start.code !== 0 || !/^cmp-[0-9a-f]{16}$/.test(campaignId)) throw new Error(describeExit("campaign start --detach", start))

    const cpu0 = process.cpuUsage()
    const t1 = performance.now()
    const exits = await Promise.all(Array.from({ length: workers }, () =>
      cli(bin, ["campaign", "work", ...common, "--campaign", campaignId], env)))
    const wallMillis = performance.now() - t1
    const cpu = process.cpuUsage(cpu0)
    exits.forEach((exited, i) => {
      if (exited.code !== 0) throw new Error(describeExit(`campaign work (worker ${i + 1} of ${workers})`, exited))
    })

    const status = await cli(bin, ["campaign", "status", "--store", store, "--campaign", campaignId, "--format", "json"], env)
    if (status.code !== 0) throw new Error(describeExit("campaign status", status))
    const counts = JSON.parse(status.stdout.trim()) as { readonly total: number; readonly succeeded: number }

    const runs = served.flatMap((t) => t.sim.received.filter((r) => r.endpoint === "runLiveResponse"))
    const accepted = runs.filter((r) => r.status >= 200 && r.status < 300).map((r) => r.at)
    const collected = served.flatMap((t) =>
      t.sim.received.filter((r) => (r.endpoint === "getResultLink" || r.endpoint === "blob") && r.status >= 200 && r.status < 300)
    )
    const first = Math.min(...accepted)
    return {
      tenants,
      workers,
      machines: lines.length,
      startMillis,
      wallMillis,
      runSpanMillis: Math.max(...accepted) - first,
      campaignSpanMillis: Math.max(...collected.map((r) => r.at)) - first,
      machinesPerSecond: lines.length / (wallMillis / 1000),
      runCalls: runs.length,
      throttledRuns: runs.filter((r) => r.status === 429).length,
      maxRunsInWindow: Math.max(...served.map((t) =>
        maxInWindow(
          t.sim.received.filter((r) => r.endpoint === "runLiveResponse" && r.status >= 200 && r.status < 300).map((r) => r.at),
          RUN_LIMIT.millis
        )
      )),
      succeeded: counts.succeeded,
      total: counts.total,
      simulatorCpuSeconds: (cpu.user + cpu.system) / 1e6
    }
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The server `name` (its URL variable, else its binary), or why there is none; a throw under MDE_REQUIRE_SERVERS=1. */
const serverIfAny = async (name: ServerName): Promise<RunningServer | string> => {
  const located = locate(name)
  if (located.missing === undefined) return await use(name, located)
  if (serversRequired()) throw new Error(requiredLine(name, located.missing))
  return skipLine(name, "the campaign on PostgreSQL across worker processes", located.missing)
}

/** Builds the CLI bundle users install from the current sources (as test/setup/cli.ts does); its path and a cleanup. */
const buildCli = (): { readonly bin: string; readonly remove: () => void } => {
  // Inside the checkout, so the bundle finds ioredis (kept outside it) in node_modules.
  mkdirSync("node_modules/.cache", { recursive: true })
  const dir = mkdtempSync(join("node_modules/.cache", "mde-bench-cli-"))
  const bin = resolve(dir, "mde-live-response.js")
  execFileSync(process.execPath, ["scripts/build-cli.mjs", bin], { stdio: "inherit" })
  return { bin, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** What this part adds to the campaign benchmark's result: figures (prefixed `pg.`), targets, one line for the description. */
export interface WorkersPart {
  readonly description: string
  readonly figures: Record<string, number | string | boolean>
  readonly targets: ReadonlyArray<Target>
}

const skipped = (why: string): WorkersPart => {
  process.stderr.write(`  ${why}\n`)
  return { description: "", figures: { "pg.skipped": why }, targets: [] }
}

export const runWorkers = async (options: { readonly quick: boolean }): Promise<WorkersPart> => {
  const perTenant = options.quick ? 20 : 60
  const postgres = await serverIfAny("postgres")
  if (typeof postgres === "string") return skipped(postgres)
  const redis = await serverIfAny("redis").catch(async (e: unknown) => {
    await postgres.stop()
    throw e
  })
  if (typeof redis === "string") {
    await postgres.stop()
    return skipped(redis)
  }
  const cliBuild = buildCli()
  const results: Array<Run> = []
  try {
    for (const [tenants, workers] of [[1, 1], [1, 3], [3, 1], [3, 3]] as const) {
      const r = await runOnce(cliBuild.bin, postgres.url, redis.url, tenants, workers, perTenant)
      results.push(r)
      process.stderr.write(
        `  PostgreSQL, ${tenants} tenant(s), ${workers} worker(s): ${r.machines} machines in ${(r.wallMillis / 1000).toFixed(1)} s ` +
          `(${r.machinesPerSecond.toFixed(1)}/s; run calls spanned ${(r.runSpanMillis / 1000).toFixed(1)} s), ` +
          `${r.succeeded}/${r.total} succeeded, ${r.throttledRuns} × 429 on run\n`
      )
    }
  } finally {
    cliBuild.remove()
    await redis.stop()
    await postgres.stop()
  }
  const find = (tenants: number, workers: number) => results.find((r) => r.tenants === tenants && r.workers === workers)!
  // The zero-latency bound of one tenant's run calls under its budget (each tenant has its own).
  const minimumSeconds = theoreticalMillis(perTenant, [RUN_LIMIT]) / 1000
  const figures: Record<string, number | string | boolean> = {
    "pg.machinesPerTenant": perTenant,
    "pg.runBudgetPerTenant": `${RUN_LIMIT.limit}/${RUN_LIMIT.millis}ms`,
    "pg.readBudgetPerTenant": `${READ_LIMIT.limit}/${READ_LIMIT.millis}ms`,
    "pg.runCallsMinimumSeconds": round(minimumSeconds, 1)
  }
  for (const r of results) {
    const key = `pg.tenants${r.tenants}.workers${r.workers}`
    figures[`${key}.machines`] = r.machines
    figures[`${key}.wallSeconds`] = round(r.wallMillis / 1000, 2)
    figures[`${key}.machinesPerSecond`] = round(r.machinesPerSecond, 2)
    figures[`${key}.runSpanSeconds`] = round(r.runSpanMillis / 1000, 2)
    figures[`${key}.campaignSpanSeconds`] = round(r.campaignSpanMillis / 1000, 2)
    figures[`${key}.startDetachSeconds`] = round(r.startMillis / 1000, 2)
    figures[`${key}.runCalls`] = r.runCalls
    figures[`${key}.throttledRuns`] = r.throttledRuns
    figures[`${key}.maxRunsInWindow`] = r.maxRunsInWindow
    figures[`${key}.succeeded`] = `${r.succeeded}/${r.total}`
    figures[`${key}.simulatorCpuSeconds`] = round(r.simulatorCpuSeconds, 2)
  }
  const ratio = (tenants: number) => find(tenants, 3).machinesPerSecond / find(tenants, 1).machinesPerSecond
  const tenantsRatio = find(3, 3).machinesPerSecond / find(1, 3).machinesPerSecond
  figures["pg.tenants1.ratio3v1Workers"] = round(ratio(1))
  figures["pg.tenants3.ratio3v1Workers"] = round(ratio(3))
  figures["pg.workers1.ratio3v1Tenants"] = round(find(3, 1).machinesPerSecond / find(1, 1).machinesPerSecond)
  figures["pg.workers3.ratio3v1Tenants"] = round(tenantsRatio)
  const allSucceeded = results.every((r) => r.succeeded === r.total && r.total === r.machines)
  const within = results.every((r) => r.throttledRuns === 0 && r.maxRunsInWindow <= RUN_LIMIT.limit)
  const targets: Array<Target> = [
    {
      name: "PostgreSQL, one tenant: 3 workers vs 1, machines/s (the tenant's budget binds)",
      target: "0.8–1.25x",
      measured: round(ratio(1)),
      unit: `x (${find(1, 1).machinesPerSecond.toFixed(1)} → ${find(1, 3).machinesPerSecond.toFixed(1)} machines/s)`,
      met: ratio(1) >= 0.8 && ratio(1) <= 1.25
    },
    {
      name: "PostgreSQL, three tenants vs one, 3 workers, machines/s",
      target: ">= 2.5x",
      measured: round(tenantsRatio),
      unit: `x (${find(1, 3).machinesPerSecond.toFixed(1)} → ${find(3, 3).machinesPerSecond.toFixed(1)} machines/s; ` +
        `3 workers vs 1 on three tenants: ${round(ratio(3))}x)`,
      met: tenantsRatio >= 2.5
    },
    {
      name: "PostgreSQL runs: every machine succeeded, no 429 on a run call, never over a tenant's run budget",
      target: "all, 0, <= 10/1 s",
      measured: results.reduce((a, r) => a + r.throttledRuns, 0),
      unit: `× 429 (succeeded ${results.map((r) => `${r.succeeded}/${r.total}`).join(", ")}; ` +
        `most runs in 1 s: ${Math.max(...results.map((r) => r.maxRunsInWindow))})`,
      met: allSucceeded && within
    }
  ]
  return {
    description: `; on PostgreSQL, ${perTenant} machines per tenant (run budget ${RUN_LIMIT.limit}/s each, real time) ` +
      "worked by 1 and by 3 `campaign work` processes sharing budgets on Redis, for one tenant and for three",
    figures,
    targets
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const part = await runWorkers({ quick: process.argv.includes("--quick") })
  console.log(JSON.stringify(part, null, 2))
}
