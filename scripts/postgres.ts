/**
 * Starts a throwaway PostgreSQL (initdb + postgres from the PATH's `pg_ctl` folder) on a
 * free 127.0.0.1 port, its data in a temporary folder, trust authentication, no fsync,
 * for the tests and benchmarks that need a real PostgreSQL. `postgres` refuses to run as
 * root, so as root the cluster belongs to, and runs as, the `postgres` user (Debian's
 * package creates it; Node's spawn takes its uid and gid, so signals reach postgres itself).
 */
import { spawn, spawnSync } from "node:child_process"
import { chownSync, mkdtempSync, realpathSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { freePort } from "./redis.ts"

export interface RunningPostgres {
  readonly url: string
  /** Stops it (fast shutdown) and removes its data; resolves once it has exited. */
  readonly stop: () => Promise<void>
}

/** The folder holding `pg_ctl`, `initdb` and `postgres`: where the PATH's `pg_ctl` really is. */
const binDir = (): string => {
  const found = spawnSync("sh", ["-c", "command -v pg_ctl"], { encoding: "utf8" }).stdout.trim()
  if (found === "") throw new Error("no pg_ctl on the PATH")
  return dirname(realpathSync(found))
}

const ownerIds = (): { uid: number; gid: number } | undefined => {
  if (process.getuid?.() !== 0) return undefined
  const ids = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" }).stdout.trim()
  const gid = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" }).stdout.trim()
  return { uid: Number(ids), gid: Number(gid) }
}

export const startPostgres = async (): Promise<RunningPostgres> => {
  const bin = binDir()
  const dir = mkdtempSync(join(tmpdir(), "mde-postgres-"))
  const owner = ownerIds()
  if (owner !== undefined) chownSync(dir, owner.uid, owner.gid)
  const data = join(dir, "data")
  const as = owner === undefined ? {} : { uid: owner.uid, gid: owner.gid }
  const init = spawnSync(join(bin, "initdb"), ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"], {
    encoding: "utf8",
    cwd: dir,
    ...as
  })
  if (init.status !== 0) throw new Error(`initdb failed (${init.status}): ${init.stderr.trim()}`)
  const port = await freePort()
  const args = [
    ["-D", data, "-p", String(port), "-k", dir, "-c", "listen_addresses=127.0.0.1"],
    ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
  ].flat()
  const child = spawn(join(bin, "postgres"), args, { stdio: ["ignore", "ignore", "pipe"], cwd: dir, ...as })
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  await new Promise<void>((resolve, reject) => {
    let seen = ""
    child.once("exit", (code) => reject(new Error(`postgres exited with ${code}: ${seen.trim()}`)))
    child.stderr!.on("data", (chunk: Buffer) => {
      seen += chunk.toString()
      if (seen.includes("database system is ready to accept connections")) resolve()
    })
  })
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: async () => {
      // SIGINT is PostgreSQL's fast shutdown: open connections are closed, not waited for.
      child.kill("SIGINT")
      await exited
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
