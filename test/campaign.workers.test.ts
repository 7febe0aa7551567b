/**
 * Issue 14, faults with real processes: one campaign on PostgreSQL worked by three real
 * `campaign work` processes (the bundled CLI), their budgets shared on one Redis, against a
 * simulator served on 127.0.0.1 by this process — and, mid-campaign, (a) one worker killed
 * with SIGKILL, (b) PostgreSQL restarted, (c) Redis restarted. Each time: no machine ran
 * more than one action, every manifest result is saved once and matches its SHA-256, no
 * budget was exceeded (run calls within the run quota's window, no 429, the session cap),
 * and the campaign finishes with every machine in its manifest.
 *
 * Real time, not the TestClock, and why: the workers, PostgreSQL and Redis are real
 * processes on the real clock (a crash, a restart). The budgets are scaled to seconds so the
 * file takes about a minute: the tenant's run quota (the simulator's and the workers') is
 * 4 calls a second, tight enough that three workers with budgets of their own would
 * overrun it when six sessions free up at once; reads are far from binding.
 *
 * Each test has a PostgreSQL cluster and a Redis of its own on loopback ports it keeps
 * (test/utils/workers.ts), so restarting them disturbs no other test file.
 */
import { describe, expect, it } from "@effect/vitest"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import { needServerBinary } from "./utils/servers.ts"
import {
  accepted,
  check,
  cli,
  machinesFile,
  type Ran,
  type Restartable,
  type Running,
  spawnCli,
  startPostgresCluster,
  startRedisServer,
  serveSimulator,
  told,
  until
} from "./utils/workers.ts"

const postgres = needServerBinary("postgres")
const redis = needServerBinary("redis")

const WORKERS = 3
const MACHINES = 24
const MAX_SESSIONS = 6
/** The tenant's run quota, on both sides: the workers' budget and the simulator's quota. */
const RUN = { limit: 4, window: 1_000 }
const READS = { limit: 1_000, window: 1_000 }
/** A fault comes once this many actions were created: a third of the way in. */
const FAULT_AFTER = 8

/**
 * Healthy machines of the simulator's fleet (online, no failing or busy ones, active). Their
 * actions are shortened to 1–2 s: the fleet's 3–30 s would make a run of 24 machines at six
 * sessions take minutes.
 */
const TARGETS: ReadonlyArray<DefenderSimulator.MachineSpec> = DefenderSimulator.fleet(50, { now: Date.now() })
  .filter((m) =>
    m.online === undefined && m.outcome === undefined && m.busyUntil === undefined &&
    m.properties?.healthStatus === "Active"
  )
  .slice(0, MACHINES)
  .map((m, i) => ({ ...m, runFor: 1_000 + (i % 3) * 500 }))

/** The campaign's timing: fast ticks, a short pending timeout, claims that expire in 3 s. */
const TIMING = ["--interval", "300ms", "--pending-timeout", "3s", "--claim-expiry", "3s"]

type Fault = (run: {
  readonly workers: ReadonlyArray<Running>
  readonly tokens: ReadonlyArray<string>
  readonly sim: DefenderSimulator.DefenderSimulator
  readonly pg: Restartable
  readonly redis: Restartable
}) => Promise<{ readonly killed?: number }>

/**
 * Defines the campaign (`campaign start --detach`), starts three workers (each with a token
 * of its own, so the simulator's log tells whose call it was), applies `fault` once
 * `FAULT_AFTER` actions exist, waits for the workers, and checks the outcome.
 */
const faultRun = async (fault: Fault) => {
  const pg = await startPostgresCluster()
  const rd = await startRedisServer()
  const tokens = Array.from({ length: WORKERS + 1 }, () => `worker-${crypto.randomUUID()}`)
  const served = await serveSimulator({
    machines: TARGETS,
    pendingFor: "500 millis",
    rateLimits: [READS],
    runLimits: [RUN],
    tokens
  })
  const results = join(mkdtempSync(join(tmpdir(), "mde-workers-")), "results")
  const env = (token: string) => ({
    MDE_API_URL: served.url,
    MDE_TOKEN: token,
    MDE_DOWNLOAD_HOSTS: "127.0.0.1",
    MDE_RATE_LIMITS: `${READS.limit}/${READS.window}ms`,
    MDE_MACHINE_ACTION_RATE_LIMITS: `${READS.limit}/${READS.window}ms`,
    MDE_RUN_RATE_LIMITS: `${RUN.limit}/${RUN.window}ms`,
    MDE_REDIS_URL: rd.url,
    MDE_REDIS_KEY: `workers-${crypto.randomUUID()}`
  })
  const runEnv = env(tokens[WORKERS]!)
  // One Redis key for all: the workers share one budget.
  const shared = (n: number) => ({ ...env(tokens[n]!), MDE_REDIS_KEY: runEnv.MDE_REDIS_KEY })
  const store = ["--store", pg.url]
  const workers: Array<Running> = []
  try {
    const define = await cli([
      "campaign",
      "start",
      ...store,
      "--results",
      results,
      "--machines",
      machinesFile(TARGETS.map((m) => m.id)),
      "--script",
      "triage.ps1",
      "--max-sessions",
      String(MAX_SESSIONS),
      "--deadline",
      "2m",
      ...TIMING,
      "--detach"
    ], runEnv, 30_000)
    expect(define.code, told("campaign start --detach", define)).toBe(0)
    const campaignId = define.stdout.split("\n")[0]!
    expect(campaignId).toMatch(/^cmp-[0-9a-f]{16}$/)
    for (let n = 0; n < WORKERS; n++) {
      workers.push(spawnCli(
        ["campaign", "work", ...store, "--results", results, "--campaign", campaignId],
        shared(n)
      ))
    }
    await until(`${FAULT_AFTER} actions`, () => served.sim.received.filter(accepted).length >= FAULT_AFTER, 40_000)
    const createdBeforeFault = served.sim.received.filter(accepted).length
    const { killed } = await fault({ workers, tokens, sim: served.sim, pg, redis: rd })
    const ended: ReadonlyArray<Ran> = await Promise.all(workers.map((w) => w.done))
    for (const [n, w] of ended.entries()) {
      if (n === killed) expect(w.signal, told(`worker ${n} (killed)`, w)).toBe("SIGKILL")
      else expect(w.code, told(`worker ${n}`, w)).toBe(0)
    }
    const status = await cli(["campaign", "status", ...store, "--campaign", campaignId, "--format", "json"], runEnv, 30_000)
    expect(status.code, told("campaign status", status)).toBe(0)
    const exported = await cli(["campaign", "export", ...store, "--campaign", campaignId], runEnv, 30_000)
    expect(exported.code, told("campaign export", exported)).toBe(0)
    const manifest = exported.stdout.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l))
    const invariants = await check({
      sim: served.sim,
      targets: TARGETS.map((m) => m.id),
      manifest,
      folder: join(results, campaignId),
      runWindow: RUN.window
    })
    return { campaignId, status: JSON.parse(status.stdout), manifest, invariants, createdBeforeFault }
  } finally {
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill("SIGKILL")
    await Promise.all(workers.map((w) => w.done))
    await served.close()
    await rd.stop()
    await pg.stop()
  }
}

/** What every fault run must show. */
const expectHeld = (run: Awaited<ReturnType<typeof faultRun>>) => {
  const { createdBeforeFault, invariants, manifest, status } = run
  // The fault came mid-campaign: some actions existed, not all.
  expect(createdBeforeFault).toBeGreaterThanOrEqual(FAULT_AFTER)
  expect(createdBeforeFault).toBeLessThan(MACHINES)
  // No machine ran twice, and each ran.
  expect(invariants.startedTwice).toEqual([])
  expect(invariants.neverStarted).toEqual([])
  // Every machine once in the manifest, every result there once, its file's SHA-256 and length matching.
  expect(invariants.manifestLines).toEqual([])
  expect(manifest.map((e: any) => e.status)).toEqual(Array(MACHINES).fill("Succeeded"))
  expect(manifest.every((e: any) => e.commands.length === 1 && typeof e.commands[0].file === "string")).toBe(true)
  expect(invariants.badFiles).toEqual([])
  expect(invariants.strayFiles).toEqual([])
  // No budget exceeded: the run quota in every window, no 429 from any quota, the session cap.
  expect(invariants.runsInWindow).toBeLessThanOrEqual(RUN.limit)
  expect(invariants.throttled).toEqual({})
  expect(invariants.alive).toBeLessThanOrEqual(MAX_SESSIONS)
  // The campaign finished.
  expect(status).toMatchObject({
    campaignId: run.campaignId,
    completed: true,
    total: MACHINES,
    succeeded: MACHINES,
    failed: 0,
    timedOut: 0,
    cancelled: 0,
    notRun: 0
  })
}

// One after another: each test starts nine processes and two servers on a two-core machine.
describe.skipIf(postgres.skip || redis.skip)("campaign workers: faults with real processes", { timeout: 90_000 }, () => {
  it("a worker killed with SIGKILL right after Defender accepted its run: the others adopt its machines and finish", async () => {
    const run = await faultRun(async ({ sim, tokens, workers }) => {
      // The worker whose run call was answered last: mid-submit, its action not yet recorded, claims held.
      const last = sim.received.filter(accepted).at(-1)!
      const killed = tokens.findIndex((t) => last.headers["authorization"] === `Bearer ${t}`)
      expect(killed).toBeGreaterThanOrEqual(0)
      workers[killed]!.child.kill("SIGKILL")
      return { killed }
    })
    expectHeld(run)
  })

  it("PostgreSQL restarted (3 s down) mid-campaign: the workers ride it out and finish", async () => {
    const run = await faultRun(async ({ pg }) => {
      await pg.restart(3_000)
      return {}
    })
    expectHeld(run)
  })

  it("Redis restarted empty (1.5 s down, longer than the run window) mid-campaign: calls wait for it, the budget holds", async () => {
    const run = await faultRun(async ({ redis }) => {
      // Down longer than the run window: the restarted Redis has forgotten only calls that are out of it anyway.
      await redis.restart(1_500)
      return {}
    })
    expectHeld(run)
  })
})

// A guard on the test's own assumption: the fleet has enough healthy machines.
it("the fleet has the machines the fault runs pick", () => {
  expect(TARGETS).toHaveLength(MACHINES)
  expect(new Set(TARGETS.map((m) => m.id)).size).toBe(MACHINES)
})
