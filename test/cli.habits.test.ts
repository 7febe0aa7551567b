/**
 * The CLI's habits (issue 13, item 4): help, colour, `--format json` and its errors, global
 * options anywhere, a closed stdout, shell completion, GUID action ids, the poll interval's
 * floor. Real processes (`node --import tsx cli/main.ts`), so real time: a child process
 * cannot run on the TestClock. The pure parts (help rendering, colour rules) run in-process.
 */
import { Command } from "@effect/cli"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { execFile, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, openSync, writeFileSync } from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { download } from "../cli/download.ts"
import { colorEnabled, errorLine, stripColor } from "../cli/format.ts"
import * as Help from "../cli/help.ts"
import { isGuid, machineActionId } from "../cli/ids.ts"
import { ACTIONS } from "../src/testing/DefenderSimulator.ts"
import { CLI } from "./utils/cli.ts"

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** No configuration but what a test gives: `--simulate` needs none. */
const cli = (args: ReadonlyArray<string>, env: Record<string, string> = {}, input = ""): Promise<Run> =>
  new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [...CLI, ...args],
      { env: { PATH: process.env.PATH ?? "", ...env }, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr })
    )
    child.stdin?.on("error", () => {})
    child.stdin?.end(input)
  })

/** The CLI with its stdout's reader gone before anything is written: every write meets EPIPE. */
const closedStdout = (args: ReadonlyArray<string>, stdin: "ignore" | number = "ignore") =>
  new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [...CLI, ...args], {
      stdio: [stdin, "pipe", "pipe"],
      env: { PATH: process.env.PATH ?? "" }
    })
    child.stdout?.destroy()
    let stderr = ""
    child.stderr?.on("data", (d) => (stderr += d))
    child.on("exit", (code) => resolve({ code, stderr }))
  })

const ESC = "\u001b["

const hasScript = (() => {
  try {
    execFileSync("script", ["--version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()

describe("cli habits", { timeout: 240_000 }, () => {
  it("ids: a GUID passes, trimmed; anything else is InvalidArgument naming the flag", () => {
    expect(isGuid(ACTIONS.runScript)).toBe(true)
    for (const id of Object.values(ACTIONS)) expect(isGuid(id)).toBe(true)
    expect(Effect.runSync(machineActionId(` ${ACTIONS.getFile.toUpperCase()} `))).toBe(ACTIONS.getFile.toUpperCase())
    for (const bad of ["", "ok", "5e1d0000-0000-4000-8000-00000000000", `{${ACTIONS.runScript}}`, `${ACTIONS.runScript}/x`]) {
      const exit = Effect.runSyncExit(machineActionId(bad, "action"))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Effect.runSync(Effect.flip(machineActionId(bad, "action")))
      expect(error._tag).toBe("InvalidArgument")
      expect(error.argument).toBe("action")
    }
  })

  it("colour: only on a terminal, never under NO_COLOR (any non-empty value) or TERM=dumb", () => {
    expect(colorEnabled({ isTTY: true }, {})).toBe(true)
    expect(colorEnabled({ isTTY: false }, {})).toBe(false)
    expect(colorEnabled({}, {})).toBe(false)
    expect(colorEnabled({ isTTY: true }, { NO_COLOR: "1" })).toBe(false)
    expect(colorEnabled({ isTTY: true }, { NO_COLOR: "false" })).toBe(false)
    expect(colorEnabled({ isTTY: true }, { NO_COLOR: "" })).toBe(true)
    expect(colorEnabled({ isTTY: true }, { TERM: "dumb" })).toBe(false)
    // Colour goes, cursor control (the live view's line clearing) stays.
    expect(stripColor(`${ESC}0;1mbold${ESC}0m \r${ESC}2K`)).toBe(`bold \r${ESC}2K`)
  })

  it("errorLine: text as before, json one object with tag, message and exit code", () => {
    expect(errorLine("text", "NotFound", "no such\n action", 6)).toBe("error: NotFound: no such action\n")
    expect(JSON.parse(errorLine("json", "NotFound", "no such\n action", 6))).toEqual({
      error: { tag: "NotFound", message: "no such action", exitCode: 6 }
    })
  })

  it("a command's help: one line a flag, no filler, examples under the bin's name", () => {
    const info = Help.describe(download as unknown as Command.Command<string, never, unknown, unknown>)
    const text = Help.render({ ...info, name: "root", children: [info] }, ["download"], {
      version: "0.1.0",
      exitCodes: {},
      examples: { download: ["download --action <id> --out x"] },
      environment: []
    })
    expect(text).not.toContain(ESC)
    expect(text).not.toMatch(/This setting is optional|A user-defined piece of text|An integer\./)
    expect(text).toContain("Usage: mde-live-response download --action <id> [--index <n>]")
    expect(text).toMatch(/^ {2}--action <id> +the machine action id \(a GUID\)$/m)
    expect(text).toMatch(/^ {2}--format json\|text +/m)
    expect(text).toContain("\n  mde-live-response download --action <id> --out x\n")
    expect(text).not.toMatch(/\n\n\n/)
  })

  it("prepare: built-in options move next to the command's name; a flag's value is never one", () => {
    const info = Help.describe(download as unknown as Command.Command<string, never, unknown, unknown>)
    const root = { ...info, name: "root", flags: [], children: [info] }
    const p = Help.prepare(root, ["download", "--action", "a", "--log-level", "debug", "--out", "--help", "--version"])
    // "--help" is --out's value here, not a request for help.
    expect(p.help).toBe(false)
    expect(p.args).toEqual(["download", "--log-level", "debug", "--version", "--action", "a", "--out", "--help"])
    expect(Help.prepare(root, ["--log-level=info", "download", "-h"]).help).toBe(true)
    expect(Help.prepare(root, ["--format", "json", "download", "--out", "x"]).args).toEqual(["download", "--format", "json", "--out", "x"])
    expect(Help.prepare(root, ["download", "--format=json", "--", "--help"])).toMatchObject({
      help: false,
      format: "json",
      args: ["download", "--format=json", "--", "--help"]
    })
  })

  it("--help: short, plain when piped, with examples, environment and every exit code; after a subcommand's options too", async () => {
    const [rootHelp, sub] = await Promise.all([
      cli(["--help"]),
      cli(["transcript", "--action", "x", "--help"])
    ])
    expect(rootHelp.code).toBe(0)
    expect(rootHelp.stdout).not.toContain(ESC)
    expect(rootHelp.stdout).not.toContain("This setting is optional")
    expect(rootHelp.stdout.split("\n").length).toBeLessThan(75)
    for (const part of ["Examples:", "  mde-live-response transcript", "Environment", "NO_COLOR", "MDE_TOKEN", "Exit codes:"]) {
      expect(rootHelp.stdout).toContain(part)
    }
    for (const code of [2, 3, 6, 12, 16, 20, 21, 130, 141, 143]) expect(rootHelp.stdout).toMatch(new RegExp(`^ {2}${code} `, "m"))
    expect(sub.code).toBe(0)
    expect(sub.stdout).toMatch(/^ {2}--action <id> /m)
    expect(sub.stdout).toMatch(/^ {2}--index <n> /m)
    expect(sub.stdout).toContain("  mde-live-response transcript --simulate --action ")
  })

  it.skipIf(!hasScript)("NO_COLOR on a terminal: the logs are plain (they were coloured); without it they are coloured", async () => {
    // `script` gives the CLI a pseudo-terminal: colour is only ever written to one.
    const onTerminal = (noColor: string) =>
      new Promise<string>((resolve) => {
        execFile(
          "script",
          ["-qec", `node --import tsx cli/main.ts transcript --simulate --action ${ACTIONS.failed} --log-level debug`, "/dev/null"],
          { env: { PATH: process.env.PATH ?? "", NO_COLOR: noColor, TERM: "xterm" } },
          (_error, stdout) => resolve(stdout)
        )
      })
    const [plain, coloured] = await Promise.all([onTerminal("1"), onTerminal("")])
    expect(plain).toContain("DEBUG")
    expect(plain).not.toContain(ESC)
    expect(coloured).toContain(ESC)
  })

  it("--log-level after the subcommand works, logs on stderr (stdout stays the output), --format json makes the error one JSON line", async () => {
    const run = await cli(["transcript", "--simulate", "--action", ACTIONS.failed, "--format", "json", "--log-level", "debug"])
    expect(run.code).toBe(6)
    expect(run.stdout).toBe("")
    const lines = run.stderr.trim().split("\n")
    expect(lines.some((l) => l.includes("DEBUG"))).toBe(true)
    expect(run.stderr).not.toContain(ESC)
    const last = JSON.parse(lines[lines.length - 1]!)
    expect(last.error).toMatchObject({ tag: "NotFound", exitCode: 6 })
  })

  it("--version and --completions after a subcommand's options", async () => {
    const [version, bash, zsh, fish] = await Promise.all([
      cli(["transcript", "--action", ACTIONS.runScript, "--simulate", "--version"]),
      cli(["transcript", "--action", "x", "--completions", "bash"]),
      cli(["--completions", "zsh"]),
      cli(["--completions", "fish"])
    ])
    expect(version).toMatchObject({ code: 0, stderr: "" })
    expect(version.stdout).toBe("0.1.0\n") // one line: @effect/cli's own answer adds an empty one
    expect(bash.code).toBe(0)
    // Completes in a real bash: a subcommand's flags, a nested subcommand's flags.
    const dir = mkdtempSync(join(tmpdir(), "mde-completion-"))
    writeFileSync(join(dir, "c.bash"), bash.stdout)
    const complete = (words: ReadonlyArray<string>) =>
      execFileSync("bash", [
        "-c",
        `source "$0"; COMP_WORDS=(${words.join(" ")}); COMP_CWORD=${words.length - 1}; ` +
        `_mde-live-response_bash_completions mde-live-response "${words[words.length - 1]}" "${words[words.length - 2]}"; ` +
        `echo "\${COMPREPLY[*]}"`,
        join(dir, "c.bash")
      ]).toString().trim().split(" ")
    expect(complete(["mde-live-response", "transcript", "--"])).toEqual(expect.arrayContaining(["--action", "--index", "--format"]))
    expect(complete(["mde-live-response", "campaign", "start", "--m"])).toEqual(["--machines", "--max-sessions"])
    expect(complete(["mde-live-response", "tr"])).toEqual(["transcript"])
    expect(zsh.stdout).toMatch(/\(transcript\)[^]*?'--action\[[^]*?'--index\[[^]*?;;/)
    expect(fish.stdout).toMatch(/__fish_seen_subcommand_from transcript" -l action/)
    expect(fish.stdout).toMatch(/__fish_seen_subcommand_from transcript" -l index/)
  })

  it("--format json everywhere: link, download, batch (json only), and a usage error as one JSON line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mde-habits-"))
    const out = join(dir, "dump.gz")
    const [link, saved, usage, batchJson, batchText, demoJson] = await Promise.all([
      cli(["link", "--simulate", "--action", ACTIONS.runScript, "--format", "json"]),
      cli(["download", "--simulate", "--action", ACTIONS.getFile, "--out", out, "--format", "json"]),
      cli(["transcript", "--format", "json"]),
      cli(["batch", "--simulate", "--format", "json"], {}, `${ACTIONS.runScript}\n`),
      cli(["batch", "--simulate", "--format", "text"]),
      cli(["demo", "--format", "json"])
    ])
    expect(link.code).toBe(0)
    expect(Object.keys(JSON.parse(link.stdout))).toEqual(["url"])
    expect(saved).toMatchObject({ code: 0, stderr: "" })
    expect(JSON.parse(saved.stdout)).toMatchObject({ path: out, md5Verified: expect.any(Boolean) })
    expect(JSON.parse(saved.stdout).bytes).toBeGreaterThan(0)
    expect(usage.code).toBe(2)
    expect(usage.stderr.trim().split("\n")).toHaveLength(1)
    expect(JSON.parse(usage.stderr)).toEqual({ error: { tag: "Usage", message: expect.stringContaining("--action"), exitCode: 2 } })
    expect(batchJson.code).toBe(0)
    expect(JSON.parse(batchJson.stdout.trim()).ok).toBe(true)
    expect(batchText.code).toBe(2)
    expect(batchText.stderr).toMatch(/^error: Usage: batch prints json only/)
    expect(demoJson.code).toBe(2)
    expect(JSON.parse(demoJson.stderr).error.tag).toBe("Usage")
  })

  it("an --action that is not a GUID is InvalidArgument (exit 2) before any request, even unconfigured", async () => {
    let requests = 0
    const server = createServer((_req, res) => {
      requests++
      res.writeHead(500).end()
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    try {
      const env = { MDE_API_URL: api, MDE_TOKEN: "t", MDE_DOWNLOAD_HOSTS: "127.0.0.1" }
      const [link, saved, json, unconfigured] = await Promise.all([
        cli(["link", "--action", "ok"], env),
        cli(["download", "--action", "../machines", "--out", join(tmpdir(), "never-written")], env),
        cli(["transcript", "--action", "ok", "--format", "json"], env),
        cli(["transcript", "--action", "ok"])
      ])
      for (const run of [link, saved, unconfigured]) {
        expect(run.code).toBe(2)
        expect(run.stderr).toMatch(/^error: InvalidArgument: Invalid --action: a machine action id is a GUID/)
        expect(run.stderr.trim().split("\n")).toHaveLength(1)
      }
      expect(JSON.parse(json.stderr)).toEqual({
        error: { tag: "InvalidArgument", message: expect.stringContaining("GUID"), exitCode: 2 }
      })
      expect(requests).toBe(0)
    } finally {
      server.close()
    }
  })

  it("a closed stdout ends quietly: 141 for transcript and link, batch's documented 12; no EPIPE, no stack", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mde-pipe-"))
    writeFileSync(join(dir, "in.jsonl"), `${ACTIONS.runScript}\n`)
    const [transcript, link, batch] = await Promise.all([
      closedStdout(["transcript", "--simulate", "--action", ACTIONS.runScript]),
      closedStdout(["link", "--simulate", "--action", ACTIONS.runScript, "--format", "json"]),
      closedStdout(["batch", "--simulate"], openSync(join(dir, "in.jsonl"), "r"))
    ])
    expect(transcript).toEqual({ code: 141, stderr: "" })
    expect(link).toEqual({ code: 141, stderr: "" })
    expect(batch).toEqual({ code: 12, stderr: "" })
  })

  it("--interval has a floor: 1 s (run, campaign start), 100 ms for a simulated campaign; run --out - is refused (a folder)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mde-interval-"))
    // A tenant that is never reached: the options are refused before any request.
    const tenant = { MDE_TOKEN: "t", MDE_API_URL: "http://127.0.0.1:9", MDE_DOWNLOAD_HOSTS: "127.0.0.1" }
    const start = ["campaign", "start", "--query", "x", "--script", "s.ps1"]
    const [run, campaign, simulated, runOut] = await Promise.all([
      cli(["run", "--simulate", "--machine", "m1", "--script", "s.ps1", "--interval", "0"]),
      cli([...start, "--out", join(dir, "c"), "--interval", "500ms"], tenant),
      cli([...start, "--simulate", "--out", join(dir, "s"), "--interval", "50ms"]),
      cli(["run", "--simulate", "--machine", "m1", "--script", "s.ps1", "--out", "-"])
    ])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain("--interval must be at least 1 second")
    expect(campaign.code).toBe(2)
    expect(campaign.stderr).toMatch(/^error: CampaignUsage: --interval must be at least 1s \(/)
    expect(simulated.code).toBe(2)
    expect(simulated.stderr).toMatch(/^error: CampaignUsage: --interval must be at least 100ms with --simulate/)
    expect(runOut.code).toBe(2)
    expect(runOut.stderr).toContain("--out is the folder GetFile results are saved in")
  })
})
