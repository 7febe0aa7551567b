/**
 * The harness of test/campaign.workers.test.ts: real `campaign work` processes on a PostgreSQL
 * and a Redis of the test's own — each on a free loopback port it keeps, so that the test can
 * stop and restart them (same data folder, same port) without disturbing any other test file —
 * against a simulator served on 127.0.0.1 by the test process, and the checks every fault run
 * must pass afterwards.
 *
 * Real time throughout: the servers and the workers are real processes.
 */
import { Effect, Exit, Redacted, Scope } from "effect"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { chownSync, existsSync, mkdtempSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { freePort } from "../../scripts/redis.ts"
import * as DefenderSimulator from "../../src/testing/DefenderSimulator.ts"
import { maxInWindow } from "../../bench/windows.ts"
import { sha256, simActions, startedPerMachine } from "./campaign.ts"
import { CLI } from "./cli.ts"

// Real seconds: servers are stopped and restarted, processes started and killed.
export const sleep = (millis: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, millis))

/** Resolves once `check` holds (polled every 10 ms); rejects with `what` after `timeout` ms. */
export const until = (what: string, check: () => boolean, timeout = 60_000): Promise<void> =>
  new Promise((resolve, reject) => {
    const started = Date.now()
    const poll = setInterval(() => {
      if (check()) {
        clearInterval(poll)
        resolve()
      } else if (Date.now() - started > timeout) {
        clearInterval(poll)
        reject(new Error(`timed out after ${timeout} ms waiting for ${what}`))
      }
    }, 10)
  })

/** Waits for `marker` on a starting server's output; rejects if it exits first. */
const ready = (child: ChildProcess, stream: "stdout" | "stderr", marker: string, name: string): Promise<void> =>
  new Promise<void>((resolve, reject) => {
    let seen = ""
    const onExit = (code: number | null) => reject(new Error(`${name} exited with ${code}: ${seen.trim().slice(-500)}`))
    child.once("exit", onExit)
    child[stream]!.on("data", (chunk: Buffer) => {
      seen += chunk.toString()
      if (seen.includes(marker)) {
        child.off("exit", onExit)
        resolve()
      }
    })
  })

const exitOf = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((resolve) => child.once("exit", () => resolve()))

/** A server of the test's own that it can restart. */
export interface Restartable {
  readonly url: string
  /** Stops it, waits `downMillis`, starts it again on the same port (and data, for PostgreSQL). */
  readonly restart: (downMillis: number) => Promise<void>
  /** Stops it for good and removes what it kept on disk. */
  readonly stop: () => Promise<void>
}

/**
 * A throwaway PostgreSQL cluster (initdb into a temporary folder, trust authentication, no
 * fsync) on a free loopback port. Unlike scripts/postgres.ts's, its `restart` stops it (fast
 * shutdown: open connections are cut) and starts the same cluster on the same port again.
 * `postgres` refuses to run as root: as root it belongs to, and runs as, the `postgres` user.
 */
export const startPostgresCluster = async (): Promise<Restartable> => {
  const found = spawnSync("sh", ["-c", "command -v pg_ctl"], { encoding: "utf8" }).stdout.trim()
  if (found === "") throw new Error("no pg_ctl on the PATH")
  const bin = dirname(realpathSync(found))
  const dir = mkdtempSync(join(tmpdir(), "mde-workers-pg-"))
  const root = process.getuid?.() === 0
  const as = root
    ? {
      uid: Number(spawnSync("id", ["-u", "postgres"], { encoding: "utf8" }).stdout.trim()),
      gid: Number(spawnSync("id", ["-g", "postgres"], { encoding: "utf8" }).stdout.trim())
    }
    : {}
  if (root) chownSync(dir, as.uid!, as.gid!)
  const data = join(dir, "data")
  const init = spawnSync(join(bin, "initdb"), ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"], {
    encoding: "utf8",
    cwd: dir,
    ...as
  })
  if (init.status !== 0) throw new Error(`initdb failed (${init.status}): ${init.stderr.trim()}`)
  const port = await freePort()
  const args = [
    ["-D", data, "-p", String(port), "-k", dir, "-c", "listen_addresses=127.0.0.1"],
    ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200"]
  ].flat()
  let child: ChildProcess
  const start = async () => {
    child = spawn(join(bin, "postgres"), args, { stdio: ["ignore", "ignore", "pipe"], cwd: dir, ...as })
    await ready(child, "stderr", "database system is ready to accept connections", "postgres")
  }
  const halt = async () => {
    // SIGINT is PostgreSQL's fast shutdown: open connections are closed, not waited for.
    child.kill("SIGINT")
    await exitOf(child)
  }
  await start()
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    restart: async (downMillis) => {
      await halt()
      await sleep(downMillis)
      await start()
    },
    stop: async () => {
      await halt()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

/**
 * A throwaway `redis-server` (no persistence) on a free loopback port; `restart` kills it
 * (SIGKILL: nothing saved, as a crashed one) and starts an empty one on the same port.
 */
export const startRedisServer = async (): Promise<Restartable> => {
  const port = await freePort()
  let child: ChildProcess
  const start = async () => {
    child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: ["ignore", "pipe", "ignore"]
    })
    await ready(child, "stdout", "Ready to accept connections", "redis-server")
  }
  const halt = async () => {
    child.kill("SIGKILL")
    await exitOf(child)
  }
  await start()
  return {
    url: `redis://127.0.0.1:${port}`,
    restart: async (downMillis) => {
      await halt()
      await sleep(downMillis)
      await start()
    },
    stop: halt
  }
}

/** A simulator served on 127.0.0.1 until `close`; it accepts each of `tokens` (and `STATIC_TOKEN`, for `simActions`). */
export const serveSimulator = async (
  options: DefenderSimulator.Options & { readonly tokens: ReadonlyArray<string> }
): Promise<{ sim: DefenderSimulator.DefenderSimulator; url: string; close: () => Promise<void> }> => {
  const scope = Effect.runSync(Scope.make())
  const { sim, served } = await Effect.runPromise(
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({
        ...options,
        staticTokens: [DefenderSimulator.STATIC_TOKEN, ...options.tokens.map((t) => Redacted.make(t))]
      })
      const served = yield* DefenderSimulator.serve(sim)
      return { sim, served }
    }).pipe(Scope.extend(scope))
  )
  return { sim, url: served.url, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

/** A CLI process: its output so far, and its end. */
export interface Running {
  readonly child: ChildProcess
  readonly done: Promise<Ran>
  readonly stdout: () => string
  readonly stderr: () => string
}

export interface Ran {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** Starts `node <CLI> …args` with exactly `env` (and PATH, HOME); killed with SIGKILL after `limit` ms. */
export const spawnCli = (args: ReadonlyArray<string>, env: Record<string, string>, limit = 80_000): Running => {
  const child = spawn(process.execPath, [...CLI, ...args], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? tmpdir(), NODE_NO_WARNINGS: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (d: Buffer) => {
    stdout += d.toString()
  })
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString()
  })
  // A watchdog, not a wait: it fires only if the process hangs.
  const watchdog = setTimeout(() => child.kill("SIGKILL"), limit)
  const done = new Promise<Ran>((resolve) =>
    child.on("close", (code, signal) => {
      clearTimeout(watchdog)
      resolve({ code, signal, stdout, stderr })
    })
  )
  return { child, done, stdout: () => stdout, stderr: () => stderr }
}

export const cli = (args: ReadonlyArray<string>, env: Record<string, string>, limit?: number): Promise<Ran> =>
  spawnCli(args, env, limit).done

/** What a process said, for an assertion's message (the tails only). */
export const told = (what: string, ran: Pick<Ran, "code" | "signal" | "stdout" | "stderr">): string =>
  `${what}: exit ${ran.code ?? ran.signal}\nstdout: ${ran.stdout.trim().slice(-1500)}\nstderr: ${ran.stderr.trim().slice(-3000)}`

/** A `--machines` file. */
export const machinesFile = (ids: ReadonlyArray<string>): string => {
  const file = join(mkdtempSync(join(tmpdir(), "mde-workers-machines-")), "machines.txt")
  writeFileSync(file, `${ids.join("\n")}\n`)
  return file
}

/** A run call Defender accepted (it created an action). */
export const accepted = (r: DefenderSimulator.Received): boolean => r.endpoint === "runLiveResponse" && r.status === 201

/** Every file under `dir`, relative to it. */
const filesUnder = (dir: string): Array<string> => {
  const out: Array<string> = []
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel))) {
      const p = rel === "" ? name : `${rel}/${name}`
      if (statSync(join(dir, p)).isDirectory()) walk(p)
      else out.push(p)
    }
  }
  if (existsSync(dir)) walk("")
  return out.sort()
}

/** The most actions alive (Pending or InProgress) at one moment, from each action's creation to its end or cancel. */
export const maxAlive = (sim: DefenderSimulator.DefenderSimulator, actions: ReadonlyArray<any>): number => {
  const cancelAt = new Map<string, number>()
  for (const r of sim.received) {
    const m = /\/api\/machineactions\/([^/]+)\/cancel/.exec(r.url)
    if (r.endpoint === "cancel" && r.status === 200 && m !== null && !cancelAt.has(m[1]!)) cancelAt.set(m[1]!, r.at)
  }
  const edges: Array<[number, number]> = []
  for (const a of actions) {
    const from = Date.parse(a.creationDateTimeUtc)
    const to = Math.min(Date.parse(a.lastUpdateDateTimeUtc), cancelAt.get(a.id) ?? Number.POSITIVE_INFINITY)
    edges.push([from, 1], [to, -1])
  }
  // An end before a start at the same millisecond: a session freed and taken at once is not two.
  edges.sort((x, y) => x[0] - y[0] || x[1] - y[1])
  let alive = 0
  let most = 0
  for (const [, d] of edges) most = Math.max(most, (alive += d))
  return most
}

/** What a fault run is checked for; each a list of violations, empty when it held. */
export interface Invariants {
  /** Machines with more than one action that left Pending (machine → count). */
  readonly startedTwice: Array<string>
  /** Target machines with no action that ran at all. */
  readonly neverStarted: Array<string>
  /** Manifest lines per machine other than one, or manifest machines that are not targets. */
  readonly manifestLines: Array<string>
  /** Manifest files missing, or whose SHA-256 or length does not match. */
  readonly badFiles: Array<string>
  /** Result files on disk the manifest does not name (a second copy of a result). */
  readonly strayFiles: Array<string>
  /** The most accepted-or-refused run calls the simulator received in any run window. */
  readonly runsInWindow: number
  /** 429s the simulator answered (quota or session cap), by endpoint. */
  readonly throttled: Record<string, number>
  /** The most actions alive at once. */
  readonly alive: number
}

/** Checks a finished run: the simulator's actions and received log, the exported manifest and the results folder. */
export const check = async (options: {
  readonly sim: DefenderSimulator.DefenderSimulator
  readonly targets: ReadonlyArray<string>
  readonly manifest: ReadonlyArray<any>
  /** `<results>/<campaignId>`. */
  readonly folder: string
  readonly runWindow: number
}): Promise<Invariants> => {
  const { folder, manifest, sim, targets } = options
  const actions = await Effect.runPromise(simActions(sim))
  const started = startedPerMachine(sim, actions)
  const startedTwice = [...started].filter(([, n]) => n > 1).map(([m, n]) => `${m}: ${n}`)
  const neverStarted = targets.filter((m) => !started.has(m))
  const perMachine = new Map<string, number>()
  for (const e of manifest) perMachine.set(e.machineId, (perMachine.get(e.machineId) ?? 0) + 1)
  const manifestLines = [
    ...targets.filter((m) => perMachine.get(m) !== 1).map((m) => `${m}: ${perMachine.get(m) ?? 0} lines`),
    ...[...perMachine.keys()].filter((m) => !targets.includes(m)).map((m) => `${m}: not a target`)
  ]
  const badFiles: Array<string> = []
  const named = new Set<string>()
  for (const e of manifest) {
    for (const c of e.commands) {
      if (c.file === undefined || c.file === null) continue
      named.add(c.file)
      const path = join(folder, c.file)
      if (!existsSync(path)) badFiles.push(`${c.file}: missing`)
      else if (sha256(path) !== c.sha256 || statSync(path).size !== c.bytes) badFiles.push(`${c.file}: hash or length`)
    }
  }
  // Leftover temporary files of a killed worker (`*.partial-<hex>`) are not results.
  const strayFiles = filesUnder(join(folder, "results"))
    .map((f) => `results/${f}`)
    .filter((f) => !named.has(f) && !/\.partial-[0-9a-f]{24}$/.test(f))
  const runs = sim.received.filter((r) => r.endpoint === "runLiveResponse").map((r) => r.at)
  const throttled: Record<string, number> = {}
  for (const r of sim.received) if (r.status === 429) throttled[r.endpoint] = (throttled[r.endpoint] ?? 0) + 1
  return {
    startedTwice,
    neverStarted,
    manifestLines,
    badFiles,
    strayFiles,
    runsInWindow: maxInWindow(runs, options.runWindow),
    throttled,
    alive: maxAlive(sim, actions)
  }
}
