/**
 * `simulator` as a user meets it: a real CLI process serving the simulated tenant, its
 * stdout sourced by a real `sh`, and other CLI processes configured only by that environment.
 * Real processes and sockets, so these tests wait in real time (bounded by each test's timeout);
 * the client processes run concurrently against the one simulator, as a user's shells would.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { connect } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { failuresStep, layerSimulated, transcriptsStep } from "../cli/demo.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import { CLI } from "./utils/cli.ts"

const { ACTIONS } = DefenderSimulator
const GUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** The CLI as a child process with exactly `env` (and PATH). */
const cli = (args: ReadonlyArray<string>, env: Record<string, string>, input?: string): Promise<Run> =>
  new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [...CLI, ...args],
      { env: { PATH: process.env.PATH ?? "", ...env } },
      (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : null, stdout, stderr })
    )
    if (input !== undefined) child.stdin?.end(input)
  })

/** The text's last line: stdout is complete. */
const TEXT_DONE = (out: string) => out.includes("# Ctrl-C (SIGINT) or SIGTERM stops it\n")

/** A simulator process, and its stdout once `done` says it is complete. */
const startSimulator = (args: ReadonlyArray<string>, done: (stdout: string) => boolean = TEXT_DONE) => {
  const child: ChildProcess = spawn(process.execPath, [...CLI, "simulator", ...args], {
    env: { PATH: process.env.PATH ?? "" }
  })
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()))
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal }))
  )
  const ready = new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", () => {
      if (done(stdout)) resolve(stdout)
    })
    void exited.then(({ code }) => reject(new Error(`the simulator exited (${code}) before it was ready: ${stderr}`)))
  })
  // Awaited by the test that started it; an early exit is that test's failure, not an unhandled one.
  ready.catch(() => {})
  return { child, ready, exited, stderr: () => stderr }
}

/** The environment a POSIX shell has after sourcing `script`, starting from `env` (PATH added). */
const sourced = (script: string, env: Record<string, string>): Record<string, string> => {
  const file = join(mkdtempSync(join(tmpdir(), "mde-sim-env-")), "sim.env")
  writeFileSync(file, script)
  const result = spawnSync("sh", ["-c", `. "$1" && env`, "sh", file], {
    env: { PATH: process.env.PATH ?? "", ...env },
    encoding: "utf8"
  })
  expect(result.status).toBe(0)
  return Object.fromEntries(
    result.stdout.split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)])
  )
}

const refused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resolve(false)
    })
    socket.once("error", () => resolve(true))
  })

describe("simulator", { timeout: 180_000 }, () => {
  let sim: ReturnType<typeof startSimulator>
  let stdout = ""
  /** Only what the simulator's lines set: nothing of this process's own configuration. */
  let env: Record<string, string> = {}
  let port = 0

  beforeAll(async () => {
    sim = startSimulator(["--port", "0"])
    stdout = await sim.ready
    // A real tenant's token and shared budget in the shell must not follow the user to the simulator.
    const shell = sourced(stdout, { MDE_TOKEN: "a-real-tenant-token", MDE_REDIS_URL: "redis://127.0.0.1:1" })
    env = Object.fromEntries(
      Object.entries(shell).filter(([k]) => k.startsWith("AZURE_") || k.startsWith("MDE_"))
    )
    port = Number(new URL(env["MDE_API_URL"]!).port)
  }, 90_000)

  afterAll(() => {
    if (sim.child.exitCode === null && sim.child.signalCode === null) sim.child.kill("SIGKILL")
  })

  it("prints export lines a POSIX shell sources, then # lines with the ready-made ids", () => {
    expect(env).toEqual({
      AZURE_TENANT_ID: DefenderSimulator.SIMULATED_TENANT,
      AZURE_CLIENT_ID: DefenderSimulator.SIMULATED_CLIENT_ID,
      AZURE_CLIENT_SECRET: "simulated-client-secret",
      AZURE_AUTHORITY_HOST: `http://127.0.0.1:${port}`,
      MDE_CLOUD: "commercial",
      MDE_API_URL: `http://127.0.0.1:${port}`,
      MDE_DOWNLOAD_HOSTS: "127.0.0.1",
      MDE_RATE_LIMITS: "100/1m,1500/1h",
      MDE_RUN_RATE_LIMITS: "30/1m"
    })
    expect(port).toBeGreaterThan(0)
    const lines = stdout.trimEnd().split("\n")
    expect(lines.every((l) => /^(export [A-Z_]+=|unset |#)/.test(l))).toBe(true)
    for (const id of Object.values(ACTIONS)) expect(stdout).toMatch(new RegExp(`^#   ${id}  \\S`, "m"))
  })

  it.concurrent("transcript, with only that environment, prints the ready-made transcript", async () => {
    const run = await cli(["transcript", "--action", ACTIONS.runScript], env)
    expect(run.stderr).toBe("")
    expect(run.code).toBe(0)
    expect(run.stdout.startsWith("# minidump.ps1 exited with 0\nTranscript started")).toBe(true)
    expect(run.stdout).toContain("OfficeClickToRun.dmp.zip\n51 MB\n")
  })

  it.concurrent("batch answers ready-made ids, the failed ones with their typed errors", async () => {
    const input = [
      { action: ACTIONS.variants, index: 0 },
      { action: ACTIONS.failed },
      { action: ACTIONS.blobGone },
      { action: ACTIONS.variants, index: 1 }
    ].map((request) => JSON.stringify(request)).join("\n")
    const run = await cli(["batch"], env, `${input}\n`)
    expect(run.code).toBe(0)
    const answers = run.stdout.trim().split("\n").map((l) => JSON.parse(l)).sort((a, b) => a.line - b.line)
    expect(answers.map((a) => [a.ok, a.ok ? a.transcript.scriptName : a.error.tag])).toEqual([
      [true, "collect.ps1"],
      [false, "NotFound"],
      [false, "ResultLinkError"],
      [true, "audit.ps1"]
    ])
  })

  it.concurrent("keeps its state: run prints the new action's full id, and transcript in another process finds it", async () => {
    // The fleet's quickest healthy machine (the same ids on every start: the fleet is seeded).
    const machine = DefenderSimulator.fleet(50)
      .filter((m) => m.online === undefined && m.outcome === undefined && m.busyUntil === undefined)
      .sort((a, b) => Number(a.runFor) - Number(b.runFor))[0]!
    const run = await cli(
      ["run", "--machine", machine.id, "--script", "triage.ps1", "--interval", "1", "--format", "json"],
      env
    )
    expect(run.stderr).toMatch(new RegExp(`^started machine action ${GUID.source} on ${machine.id}\n`))
    expect(run.code).toBe(0)
    const line = JSON.parse(run.stdout.trim())
    expect(line.machineActionId).toMatch(new RegExp(`^${GUID.source}$`))
    expect(run.stderr).toContain(`started machine action ${line.machineActionId} on`)
    expect(line.transcript.scriptName).toBe("triage.ps1")

    const again = await cli(["transcript", "--action", line.machineActionId, "--format", "json"], env)
    expect(again.code).toBe(0)
    // The same transcript run printed: the action the other process started, found in this one.
    const { error, exitCode, output, scriptName } = line.transcript
    expect(JSON.parse(again.stdout)).toEqual({ scriptName, exitCode, output, error })
    expect(output).toContain("triage.ps1")
  })

  it.concurrent("a port in use is a usage error (2) that says what to do, as JSON under --format json", async () => {
    const second = await cli(["simulator", "--port", String(port), "--format", "json"], {})
    expect(second.code).toBe(2)
    expect(second.stdout).toBe("")
    expect(JSON.parse(second.stderr)).toEqual({
      error: {
        tag: "Usage",
        message: `cannot listen on 127.0.0.1:${port} (EADDRINUSE): give another --port, or --port 0 for a free one`,
        exitCode: 2
      }
    })
  })

  it.concurrent("--format json prints the same as one JSON object; SIGTERM stops it with 143", async () => {
    const other = startSimulator(["--format", "json"], (out) => out.endsWith("\n"))
    try {
      const parsed = JSON.parse(await other.ready)
      const url = parsed.url as string
      expect(parsed.env).toEqual({ ...env, AZURE_AUTHORITY_HOST: url, MDE_API_URL: url })
      expect(parsed.unset).toEqual(["MDE_TOKEN", "MDE_SCOPE", "MDE_REDIS_URL", "MDE_MACHINE_ACTION_RATE_LIMITS"])
      expect(parsed.actions.map((a: { id: string }) => a.id)).toEqual(Object.values(ACTIONS))
      expect(parsed.quotas).toEqual({ rateLimits: "100/1m,1500/1h", runRateLimits: "30/1m", sessionCap: 50 })
      other.child.kill("SIGTERM")
      expect(await other.exited).toEqual({ code: 143, signal: null })
      expect(await refused(Number(new URL(url).port))).toBe(true)
    } finally {
      if (other.child.exitCode === null && other.child.signalCode === null) other.child.kill("SIGKILL")
    }
  })

  it("SIGINT stops it: exit 130, and the port is closed", async () => {
    expect(await refused(port)).toBe(false)
    sim.child.kill("SIGINT")
    expect(await sim.exited).toEqual({ code: 130, signal: null })
    expect(await refused(port)).toBe(true)
  })
})

describe("the demo's ids", () => {
  it.effect("the transcripts and failures steps print full machine action ids, ready to copy", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const console = yield* Effect.console
      const capture = { ...console, log: (...args: ReadonlyArray<unknown>) => Effect.sync(() => void lines.push(args.join(" "))) }
      yield* Effect.zipRight(transcriptsStep, failuresStep).pipe(Effect.withConsole(capture), Effect.provide(layerSimulated))
      const text = lines.join("\n")
      for (const id of [ACTIONS.runScript, ACTIONS.variants, ACTIONS.failed, ACTIONS.blobGone]) {
        expect(text).toMatch(new RegExp(`^   ${id} `, "m"))
      }
      expect(text).not.toContain("…0001")
    }))
})
