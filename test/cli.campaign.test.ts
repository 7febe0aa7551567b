// `campaign` as a black box: real CLI processes with `--simulate` (the in-process fleet, real time, scaled budgets), and its pure parts.
import { describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type * as CampaignStore from "../src/CampaignStore.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import {
  applyUpdate,
  type Counts,
  eta,
  initialView,
  outcomeOf,
  parseMachineList,
  renderView,
  statusOf,
  statusText,
  type ViewUpdate
} from "../cli/campaignView.ts"
import { CLI } from "./utils/cli.ts"

// ---------------------------------------------------------------------------
// Pure parts: the machine list, the view, the outcome, the status
// ---------------------------------------------------------------------------

const counts = (phases: Partial<Record<CampaignStore.MachinePhase["_tag"], number>>) => ({
  Waiting: 0,
  Submitting: 0,
  Alive: 0,
  Ended: 0,
  Collecting: 0,
  Finished: 0,
  NotRun: 0,
  ...phases
})

const progress = (
  phases: Partial<Record<CampaignStore.MachinePhase["_tag"], number>>,
  at: number,
  extra?: { alive?: number; nextRunAt?: number | undefined }
): ViewUpdate => ({
  _tag: "Progress",
  state: {
    campaignId: "cmp-0123456789abcdef",
    targets: Array.from({ length: 10 }, (_, i) => `m${i}`),
    machines: new Map(),
    counts: counts(phases),
    interruptions: 0,
    completed: false,
    events: 1
  },
  alive: extra?.alive ?? 0,
  maxSessions: 4,
  nextRunAt: extra?.nextRunAt,
  at
})

const summary = (over: Partial<Counts>): Counts => ({
  campaignId: "cmp-0123456789abcdef",
  succeeded: 0,
  failed: 0,
  timedOut: 0,
  cancelled: 0,
  notRun: 0,
  total: 0,
  ...over
})

describe("campaign: pure parts", () => {
  it("a --machines file: one id a line, blank lines and # comments ignored, duplicates dropped", () => {
    expect(parseMachineList("\uFEFF# fleet\r\nm1\n\n  m2  # the db\nm1\n#m3\n   \nm4")).toEqual(["m1", "m2", "m4"])
    expect(parseMachineList("# nothing\n\n")).toEqual([])
  })

  it("the view: machines by state, sessions of the cap, the next run permit, an ETA at this run's pace", () => {
    const t0 = Date.UTC(2026, 0, 1, 12, 0, 0)
    let view = applyUpdate(initialView, { _tag: "Started", campaignId: "cmp-0123456789abcdef", targets: 10, resumed: false }, t0)
    view = applyUpdate(view, progress({ Waiting: 8, Submitting: 1, Alive: 1 }, t0, { alive: 2, nextRunAt: t0 + 4000 }), t0)
    expect(renderView(view, t0)).toEqual([
      "cmp-0123456789abcdef · 10 machines",
      "waiting 8 · submitting 1 · alive 1 · collecting 0 · finished 0 · not run 0",
      "sessions 2/4 alive · next run permit in 4s (12:00:04 UTC) · ETA ?"
    ])
    // Ended and Collecting are both "collecting"; 4 done in 20 s leaves 6 at 0.2/s: 30 s.
    view = applyUpdate(view, progress({ Waiting: 3, Alive: 1, Ended: 1, Collecting: 1, Finished: 3, NotRun: 1 }, t0 + 20_000, { alive: 1 }), t0)
    expect(renderView(view, t0 + 20_000)[1]).toContain("collecting 2 · finished 3 · not run 1")
    expect(renderView(view, t0 + 20_000)[2]).toBe("sessions 1/4 alive · ETA 30s")
    expect(eta(view, t0 + 20_000)).toBe("30s")
    expect(renderView({ ...view, nextRunAt: t0 }, t0 + 20_000)[2]).toContain("next run permit now ·")
    expect(renderView({ ...view, nextRunAt: t0, alive: 4 }, t0 + 20_000)[2]).toContain("next run permit now (when a session ends)")
  })

  it("a resumed run's ETA counts only what this run did", () => {
    const t0 = 1_000_000
    let view = applyUpdate(initialView, { _tag: "Started", campaignId: "cmp-1", targets: 10, resumed: true }, t0)
    view = applyUpdate(view, progress({ Waiting: 4, Finished: 6 }, t0), t0)
    view = applyUpdate(view, progress({ Waiting: 2, Finished: 8 }, t0 + 10_000), t0)
    expect(eta(view, t0 + 10_000)).toBe("10s")
    expect(renderView(view, t0)[0]).toBe("cmp-1 (resumed) · 10 machines")
  })

  it("the exit: 0 when every machine succeeded, 20 when some failed/timed out/were cancelled, else 21 when some never ran", () => {
    expect(outcomeOf(summary({ succeeded: 5, total: 5 }), "out")._tag).toBe("Succeeded")
    expect(outcomeOf(summary({ succeeded: 3, failed: 1, notRun: 1, total: 5 }), "out")).toMatchObject({
      _tag: "CampaignFailed",
      message: expect.stringContaining("1 of 5 machines did not succeed")
    })
    expect(outcomeOf(summary({ succeeded: 3, timedOut: 1, total: 4 }), "out")._tag).toBe("CampaignFailed")
    expect(outcomeOf(summary({ succeeded: 3, cancelled: 1, total: 4 }), "out")._tag).toBe("CampaignFailed")
    expect(outcomeOf(summary({ succeeded: 3, notRun: 2, total: 5 }), "out")).toMatchObject({
      _tag: "CampaignNotRun",
      message: "2 of 5 machines never ran; see out/manifest.jsonl"
    })
  })

  it("status: counts per status, where the unfinished are, the folder", () => {
    const state = (progress({ Waiting: 2, Alive: 1, Finished: 6, NotRun: 1 }, 0) as Extract<ViewUpdate, { _tag: "Progress" }>).state
    const status = statusOf("/tmp/c", summary({ succeeded: 5, failed: 1, notRun: 1, total: 10 }), state)
    expect(status).toMatchObject({ unfinished: 3, completed: false, running: false, machines: { waiting: 2, alive: 1, finished: 6, "not run": 1 } })
    expect(statusText({ ...status, running: true })[2]).toBe("unfinished: waiting 2, alive 1 (being run now)")
    expect(statusText(status)).toEqual([
      "cmp-0123456789abcdef: not finished",
      "5 succeeded, 1 failed, 0 timed out, 0 cancelled, 1 not run, 3 unfinished (of 10)",
      "unfinished: waiting 2, alive 1; `campaign resume --out /tmp/c` finishes them",
      "folder: /tmp/c (manifest.jsonl, results/)"
    ])
  })
})

// ---------------------------------------------------------------------------
// The CLI as processes
// ---------------------------------------------------------------------------

/** Budgets scaled so that a few machines run in seconds (the simulated tenant gets the same quotas). */
const ENV = {
  PATH: process.env.PATH ?? "",
  MDE_RATE_LIMITS: "1000/1s",
  MDE_RUN_RATE_LIMITS: "100/1s",
  MDE_MACHINE_ACTION_RATE_LIMITS: "1000/1s"
}

/** `--simulate`'s fleet (the same ids every time): healthy machines that run briefly, one that fails, one offline. */
const FLEET = DefenderSimulator.fleet(50)
const healthy = FLEET.filter((m) =>
  m.online === undefined && m.outcome === undefined && m.busyUntil === undefined && Number(m.runFor) <= 8000 &&
  m.properties?.healthStatus === "Active"
).map((m) => m.id)
const failing = FLEET.find((m) => m.outcome === "Failed" && Number(m.runFor) <= 10_000)!.id
const offline = FLEET.find((m) => m.online !== undefined)!.id

/** Fast ticks, a short deadline. */
const FAST = ["--interval", "300ms", "--pending-timeout", "3s", "--script", "triage.ps1", "--simulate"]

interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const spawnCli = (args: ReadonlyArray<string>, input?: string) => {
  const child: ChildProcess = spawn(process.execPath, [...CLI, ...args], { env: ENV })
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (d: Buffer) => {
    stdout += d.toString()
  })
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString()
  })
  if (input !== undefined) child.stdin!.end(input)
  else child.stdin!.end()
  const done = new Promise<Ran>((resolve) => child.on("exit", (code) => resolve({ code, stdout, stderr })))
  return { child, done, stdout: () => stdout, stderr: () => stderr }
}

const cli = (args: ReadonlyArray<string>, input?: string): Promise<Ran> => spawnCli(args, input).done

const folder = () => join(mkdtempSync(join(tmpdir(), "mde-campaign-")), "out")

const manifest = (out: string): Array<CampaignStore.ManifestEntry> =>
  readFileSync(join(out, "manifest.jsonl"), "utf8").trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l))

const machinesFile = (ids: ReadonlyArray<string>) => {
  const file = join(mkdtempSync(join(tmpdir(), "mde-machines-")), "machines.txt")
  writeFileSync(file, `# the test's machines\n${ids.join("\n")}\n\n`)
  return file
}

/** Resolves once `check` holds (polled every 50 ms). */
const until = (check: () => boolean): Promise<void> =>
  new Promise((resolve) => {
    const poll = setInterval(() => {
      if (check()) {
        clearInterval(poll)
        resolve()
      }
    }, 50)
  })

/** Whether the journal in `out` has recorded a submitted action. */
const submitted = (out: string) => {
  const journal = join(out, "journal.jsonl")
  return existsSync(journal) && readFileSync(journal, "utf8").includes("\"Submitted\"")
}

// Independent processes on their own folders and simulators: run side by side.
describe.concurrent("campaign: the CLI", { timeout: 90_000 }, () => {
  it("start --simulate prints the id, writes a manifest line per machine, exits 20 when one failed; status reads it; a second start is refused", async () => {
    expect(healthy.length).toBeGreaterThanOrEqual(3)
    const out = folder()
    const ids = [...healthy.slice(0, 3), failing, offline]
    const run = await cli(["campaign", "start", "--machines", machinesFile(ids), "--out", out, "--deadline", "12s", ...FAST])
    expect(run.stdout.split("\n")[0]).toMatch(/^cmp-[0-9a-f]{16}$/)
    const id = run.stdout.split("\n")[0]!
    expect(run.stderr).toContain("error: CampaignFailed:")
    expect(run.code).toBe(20)
    const lines = manifest(out)
    expect(lines.map((l) => l.machineId).sort()).toEqual([...ids].sort())
    const byId = new Map(lines.map((l) => [l.machineId, l]))
    for (const m of healthy.slice(0, 3)) expect(byId.get(m)?.status).toBe("Succeeded")
    expect(byId.get(failing)?.status).toBe("Failed")
    expect(byId.get(offline)?.status).toBe("NotRun")

    const status = await cli(["campaign", "status", "--out", out, "--format", "json"])
    expect(status.code).toBe(0)
    expect(status.stdout.trim().split("\n")).toHaveLength(1)
    expect(JSON.parse(status.stdout)).toMatchObject({
      campaignId: id,
      folder: out,
      completed: true,
      succeeded: 3,
      failed: 1,
      notRun: 1,
      total: 5,
      unfinished: 0
    })
    const text = await cli(["campaign", "status", "--out", out])
    expect(text.stdout).toContain("3 succeeded, 1 failed, 0 timed out, 0 cancelled, 1 not run (of 5)")

    const again = await cli(["campaign", "start", "--machines", machinesFile(ids), "--out", out, ...FAST])
    expect(again.code).toBe(2)
    expect(again.stdout).toBe("")
    expect(again.stderr).toContain(`already holds campaign ${id}`)
    expect(again.stderr).toContain(`campaign resume --out ${out}`)
  })

  it("--machines - reads stdin; every machine succeeded: exit 0", async () => {
    const out = folder()
    const run = await cli(
      ["campaign", "start", "--machines", "-", "--out", out, "--deadline", "30s", ...FAST],
      `${healthy[3]}\n# comment\n${healthy[4]}\n`
    )
    expect(run.code).toBe(0)
    expect(manifest(out).map((l) => l.status)).toEqual(["Succeeded", "Succeeded"])
    expect(run.stderr).toContain("2 succeeded, 0 failed, 0 timed out, 0 cancelled, 0 not run (of 2)")
  })

  it("usage: both or neither target option, a bad duration, resume of an empty folder: exit 2, nothing on stdout", async () => {
    const both = await cli(["campaign", "start", "--machines", "-", "--query", "x eq 'y'", "--out", folder(), ...FAST], "m1\n")
    expect([both.code, both.stdout]).toEqual([2, ""])
    expect(both.stderr).toContain("exactly one of --machines")
    const bad = await cli(["campaign", "start", "--query", "healthStatus eq 'Active'", "--deadline", "soon", "--out", folder(), ...FAST])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain("--deadline must be a duration")
    const none = await cli(["campaign", "resume", "--out", folder(), "--simulate"])
    expect(none.code).toBe(2)
    expect(none.stderr).toContain("CampaignStoreError")
  })

  it("Ctrl-C drains (exit 130, nothing new started), then resume finishes the rest", async () => {
    const out = folder()
    const ids = healthy.slice(0, 4)
    const running = spawnCli([
      "campaign",
      "start",
      "--machines",
      machinesFile(ids),
      "--out",
      out,
      "--max-sessions",
      "1",
      "--deadline",
      "60s",
      ...FAST
    ])
    // Once the id is out and the first action has been submitted (its journal line is on disk).
    await until(() => running.stdout() !== "" && submitted(out))
    // status reads the journal of a folder the running campaign holds.
    const live = await cli(["campaign", "status", "--out", out, "--format", "json"])
    expect(live.code).toBe(0)
    expect(JSON.parse(live.stdout)).toMatchObject({ running: true, completed: false, total: ids.length })
    running.child.kill("SIGINT")
    const first = await running.done
    expect(first.code).toBe(130)
    expect(first.stderr).toContain("draining (SIGINT)")
    expect(first.stderr).toContain(`campaign resume --out ${out}`)
    const afterDrain = existsSync(join(out, "manifest.jsonl")) ? manifest(out) : []
    expect(afterDrain.length).toBeLessThan(ids.length)

    const resumed = await cli(["campaign", "resume", "--out", out, "--simulate"])
    expect(resumed.stdout.split("\n")[0]).toBe(first.stdout.split("\n")[0])
    expect(resumed.code).toBe(0)
    const lines = manifest(out)
    expect(lines.map((l) => l.machineId).sort()).toEqual([...ids].sort())
    expect(lines.every((l) => l.status === "Succeeded")).toBe(true)
  })

  it("SIGTERM interrupts at once (no drain): exit 143", async () => {
    const out = folder()
    const running = spawnCli(["campaign", "start", "--machines", machinesFile(healthy.slice(8, 10)), "--out", out, "--deadline", "60s", ...FAST])
    await until(() => submitted(out))
    running.child.kill("SIGTERM")
    const ended = await running.done
    expect(ended.code).toBe(143)
    expect(ended.stderr).not.toContain("draining")
    expect(ended.stderr).toContain("each alive machine action was cancelled once")
  })

  it("a second Ctrl-C interrupts: the alive action is cancelled, exit 130; resume finishes the rest", async () => {
    const out = folder()
    const ids = healthy.slice(5, 8)
    const running = spawnCli(["campaign", "start", "--machines", machinesFile(ids), "--out", out, "--deadline", "60s", ...FAST])
    await until(() => submitted(out))
    running.child.kill("SIGINT")
    await until(() => running.stderr().includes("draining (SIGINT)"))
    running.child.kill("SIGINT")
    const first = await running.done
    expect(first.code).toBe(130)
    expect(first.stderr).toContain("interrupted again (SIGINT)")
    expect(first.stderr).toContain("each alive machine action was cancelled once")
    const resumed = await cli(["campaign", "resume", "--out", out, "--simulate"])
    const lines = manifest(out)
    expect(lines.map((l) => l.machineId).sort()).toEqual([...ids].sort())
    // A machine whose action the interrupt cancelled after it started is recorded Cancelled (exit 20).
    expect([0, 20]).toContain(resumed.code)
    expect(lines.every((l) => l.status === "Succeeded" || l.status === "Cancelled")).toBe(true)
  })
})

// The simulator's fleet is what the test picks machines from: keep the assumption visible.
it("the simulate fleet has what the tests pick", () => {
  expect(FLEET).toHaveLength(50)
  expect(healthy.length).toBeGreaterThanOrEqual(5)
})

// The shared store's options, used wrongly: each a usage error before anything is defined.
describe.concurrent("campaign: the shared store's options", { timeout: 60_000 }, () => {
  const ids = () => machinesFile(["m1"])
  const usage = async (args: ReadonlyArray<string>, says: RegExp) => {
    const ran = await cli(args)
    expect(ran.code, ran.stderr).toBe(2)
    expect(ran.stderr).toMatch(says)
  }

  it("start needs --out or --store, not both; --detach and --tenants need --store", async () => {
    await usage(["campaign", "start", "--machines", ids(), "--script", "a.ps1"], /give --out <folder> .* or --store <postgres-url>/)
    await usage(
      ["campaign", "start", "--machines", ids(), "--script", "a.ps1", "--out", folder(), "--store", "postgres://127.0.0.1:1/db"],
      /not both/
    )
    await usage(["campaign", "start", "--machines", ids(), "--script", "a.ps1", "--out", folder(), "--detach"], /--detach is for .*--store/)
    await usage(["campaign", "start", "--machines", ids(), "--script", "a.ps1", "--out", folder(), "--tenants", "a,b"], /--tenants is for/)
  })

  it("work and export need --store; status --store needs --campaign", async () => {
    await usage(["campaign", "work"], /give --store postgres:/)
    await usage(["campaign", "export", "--campaign", "cmp-0123456789abcdef"], /give --store postgres:/)
    await usage(["campaign", "status", "--store", "postgres://127.0.0.1:1/db"], /give --campaign <id>/)
    await usage(["campaign", "status"], /give --out <folder>, or --store/)
  })

  it("a store that cannot be reached is exit 12, and its password is never printed", async () => {
    const ran = await cli(["campaign", "work", "--store", "postgres://mde:hunter2-secret@127.0.0.1:1/db", "--format", "json"])
    expect(ran.code, ran.stderr).toBe(12)
    expect(JSON.parse(ran.stderr.trim().split("\n").at(-1)!).error.tag).toBe("CampaignStoreError")
    expect(ran.stdout + ran.stderr).not.toContain("hunter2")
  })
})
