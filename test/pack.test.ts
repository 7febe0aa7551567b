/**
 * The package as a user installs it: `npm pack`, the tarball installed in an
 * empty folder, and its `bin` run through `npx` — `--version`, then the
 * `simulator` command served on a free port and `transcript` against it.
 *
 * Real processes (npm, the installed CLI, a served simulator), so real time.
 * The install is offline (`--offline`) and skips peer resolution
 * (`--legacy-peer-deps`): the `bin` is one bundled file that needs no
 * dependency, and no test reaches beyond 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { ACTIONS } from "../src/testing/DefenderSimulator.ts"

const exec = promisify(execFile)
const npm = process.platform === "win32" ? "npm.cmd" : "npm"
const npx = process.platform === "win32" ? "npx.cmd" : "npx"
const { version } = JSON.parse(readFileSync("package.json", "utf8")) as { version: string }

let dir = ""
/** The environment of a process in the install folder: no configuration of the developer's leaks in. */
const cleanEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(AZURE_|MDE_)/.test(name)) env[name] = value
  }
  return { ...env, ...extra }
}

/** Whether dist/ was built after every source changed (`npm test` builds just before vitest). */
const distIsFresh = (): boolean => {
  const newest = (path: string): number =>
    statSync(path).isDirectory()
      ? Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))))
      : statSync(path).mtimeMs
  const bin = "dist/cli/mde-live-response.js"
  if (!existsSync(bin) || !existsSync("dist/entry/mod.js")) return false
  const built = Math.min(statSync(bin).mtimeMs, statSync("dist/entry/mod.js").mtimeMs)
  return ["src", "cli", "mod.ts", "testing.ts", "package.json"].every((path) => newest(path) <= built)
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "mde-pack-"))
  const app = join(dir, "app")
  // `npm pack` runs the prepack build, so the tarball holds what this checkout builds; a dist/
  // newer than every source is that build already.
  const scripts = distIsFresh() ? ["--ignore-scripts"] : []
  const packed = await exec(npm, ["pack", ...scripts, "--json", "--pack-destination", dir], { maxBuffer: 64 * 1024 * 1024 })
  const [report] = JSON.parse(packed.stdout) as Array<{ filename: string }>
  await exec("mkdir", [app])
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true }))
  await exec(npm, ["install", "--offline", "--legacy-peer-deps", "--no-audit", "--no-fund", join(dir, report!.filename)], {
    cwd: app
  })
}, 180_000)

afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true })
})

/** `npx mde-live-response …` in the install folder. */
const cli = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = cleanEnv()) =>
  exec(npx, ["--offline", "mde-live-response", ...args], { cwd: join(dir, "app"), env })

/** Reads the `export NAME=value` lines the simulator prints (values may be single-quoted). */
const exportsOf = (text: string): Record<string, string> =>
  Object.fromEntries(
    [...text.matchAll(/^export ([A-Z_][A-Z0-9_]*)=(.*)$/gm)].map(([, name, value]) => [
      name!,
      value!.startsWith("'") && value!.endsWith("'") ? value!.slice(1, -1).replace(/'\\''/g, "'") : value!
    ])
  )

/** Starts the installed `simulator` and resolves with its exports once it has printed the API's. */
const startSimulator = (): Promise<{ child: ChildProcess; env: Record<string, string> }> =>
  new Promise((resolve, reject) => {
    const child = spawn(join(dir, "app", "node_modules", ".bin", "mde-live-response"), ["simulator", "--port", "0"], {
      env: cleanEnv()
    })
    let out = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk
      const env = exportsOf(out)
      if (env["MDE_API_URL"] !== undefined && out.endsWith("\n")) resolve({ child, env })
    })
    child.on("exit", (code) => reject(new Error(`the simulator exited (${code}) before printing its exports:\n${out}`)))
  })

describe("the npm tarball", () => {
  it("installs a bin that answers --version with the package's version", async () => {
    const { stdout } = await cli(["--version"])
    expect(stdout.trim()).toBe(version)
  }, 60_000)

  it("answers as `npm run --silent cli --` does from a checkout (cli/main.ts through tsx)", async () => {
    const [installed, checkout] = await Promise.all([
      cli(["--help"]),
      exec(npm, ["run", "--silent", "cli", "--", "--help"], { env: cleanEnv() })
    ])
    expect(installed.stdout).toContain("Usage: mde-live-response <command>")
    expect(installed.stdout).toBe(checkout.stdout)
  }, 60_000)

  it("serves the simulator; transcript against its exports decodes the ready-made RunScript result", async () => {
    const { child, env } = await startSimulator()
    try {
      expect(env["MDE_API_URL"]).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      const { stdout } = await cli(["transcript", "--action", ACTIONS.runScript, "--format", "json"], cleanEnv(env))
      const transcript = JSON.parse(stdout) as { scriptName: string; exitCode: number }
      expect(transcript).toMatchObject({ scriptName: "minidump.ps1", exitCode: 0 })
    } finally {
      child.kill("SIGINT")
    }
  }, 60_000)
})
