/**
 * `batch`'s input forms and its progress line: the parsing and the quota-aware ETA
 * as pure functions, then the real CLI — once on a pipe, once with a file on stdin
 * and stderr on a pseudo-terminal (`script` from util-linux) — against a simulator
 * served on 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Option, Redacted, Scope } from "effect"
import { execFile } from "node:child_process"
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import {
  countFileLines,
  countNonBlankLines,
  isMachineActionId,
  parseLine,
  quotaSeconds,
  quotasOf,
  statusLine
} from "../cli/batch.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"

const A = DefenderSimulator.ACTIONS.runScript
const V = DefenderSimulator.ACTIONS.variants
const parse = (text: string, line = 3) => Option.getOrUndefined(parseLine({ line, text }))

describe("batch lines", () => {
  it("names the machine action id as action, machineActionId or id, or is a bare id", () => {
    const request = (action: string, index = 0) => ({ _tag: "Request", line: 3, action, index })
    expect(parse(`{"action":"${A}"}`)).toEqual(request(A))
    expect(parse(`{"machineActionId":"${A}","index":1}`)).toEqual(request(A, 1))
    expect(parse(`{"id":"${A}","index":2}`)).toEqual(request(A, 2))
    // The same id under two keys is fine; two different ids are not.
    expect(parse(`{"id":"${A}","action":"${A}"}`)).toEqual(request(A))
    expect(parse(`{"id":"${A}","action":"${V}"}`)).toMatchObject({ _tag: "Invalid", action: null })
    expect(parse(A)).toEqual(request(A))
    expect(parse(`  ${A.toUpperCase()}\t`)).toEqual(request(A.toUpperCase()))
    expect(parse(`"${A}"`)).toEqual(request(A))
    expect(parse(`{"index":0}`)).toMatchObject({ _tag: "Invalid", message: expect.stringContaining(`"machineActionId"`) })
  })

  it("takes an index given as a string of digits, and nothing else", () => {
    expect(parse(`{"id":"${A}","index":"2"}`)).toEqual({ _tag: "Request", line: 3, action: A, index: 2 })
    expect(parse(`{"id":"${A}","index":"0"}`)).toMatchObject({ _tag: "Request", index: 0 })
    for (const index of [`"-1"`, `"1.5"`, `" 2"`, `"2 "`, `"0x2"`, `"1e3"`, `""`, `"two"`, `"99999999999999999"`]) {
      expect(parse(`{"id":"${A}","index":${index}}`)).toMatchObject({
        _tag: "Invalid",
        action: A,
        index: null,
        message: expect.stringContaining(`"index" must be a non-negative integer`)
      })
    }
  })

  it("answers an id that is not a GUID with InvalidInput, naming the key and the value", () => {
    for (const [text, action] of [
      [`{"action":"ok"}`, "ok"],
      [`{"id":"${A}x"}`, `${A}x`],
      [`{"machineActionId":"../machines"}`, "../machines"],
      [`"not-a-guid"`, "not-a-guid"],
      [`{"action":""}`, ""]
    ] as const) {
      const item = parse(text)
      expect(item).toMatchObject({ _tag: "Invalid", action, index: null })
      expect((item as { message: string }).message).toMatch(/^line 3: .* is not a machine action id \(a GUID\)/)
    }
    // A bare word is neither JSON nor an id.
    expect(parse("hello")).toMatchObject({ _tag: "Invalid", message: expect.stringContaining("bare machine action id") })
    expect(isMachineActionId(A)).toBe(true)
    expect(isMachineActionId(`{${A}}`)).toBe(false)
  })
})

describe("batch progress", () => {
  const quotas = quotasOf([{ limit: 100, window: "1 minute" }, { limit: 1500, window: "1 hour" }])

  it("bounds the ETA by the rate budget: 100/1m and 1500/1h", () => {
    expect(quotas).toEqual([{ limit: 100, windowMs: 60_000 }, { limit: 1500, windowMs: 3_600_000 }])
    // 100 calls fit in the first minute's burst; 300 need two more minutes; 1600 an hour (the hourly limit).
    expect(quotaSeconds(quotas, 100, 0)).toBe(0)
    expect(quotaSeconds(quotas, 300, 0)).toBe(120)
    expect(quotaSeconds(quotas, 300, 30_000)).toBe(90)
    expect(quotaSeconds(quotas, 300, 200_000)).toBe(0)
    expect(quotaSeconds(quotas, 1600, 0)).toBe(3600)
    expect(quotaSeconds(quotas, 0, 0)).toBe(0)
    expect(quotaSeconds([], 10_000, 0)).toBe(0)
  })

  it("shows the larger of the observed-rate wait and the quota wait", () => {
    // Early on the burst makes the observed rate look fast (50/s): the quota's 1m58s wins.
    expect(statusLine({ done: 100, total: 300, ended: true }, 50, 3, quotaSeconds(quotas, 300, 2_000))).toBe(
      "100/300 done · 50.0/s · ETA 1m58s (quota) · waiting for quota (3)"
    )
    // Slower than the budget allows: the observed rate wins (200 ÷ 0.5/s = 6m40s).
    expect(statusLine({ done: 100, total: 300, ended: true }, 0.5, 0, 118)).toBe("100/300 done · 0.5/s · ETA 6m40s")
    // Nothing answered yet: the budget alone gives a lower bound.
    expect(statusLine({ done: 0, total: 1600, ended: true }, 0, 0, quotaSeconds(quotas, 1600, 0))).toBe(
      "0/1600 done · 0.0/s · ETA ≥1h00m (quota)"
    )
    expect(statusLine({ done: 0, total: 50, ended: true }, 0, 0, quotaSeconds(quotas, 50, 0))).toBe("0/50 done · 0.0/s · ETA ?")
    // Total not known yet: no ETA at all.
    expect(statusLine({ done: 1, total: 300, ended: false }, 50, 0, 118)).toBe("1/300+ done · 50.0/s")
  })

  it("counts a file's non-blank lines as the batch will answer them", async () => {
    const state = { blank: true, count: 0 }
    countNonBlankLines(new TextEncoder().encode("a\n\n \t\r\n b"), state)
    countNonBlankLines(new TextEncoder().encode("c\nd\r\n"), state)
    expect(state).toEqual({ blank: true, count: 3 })
    // A real file, read through its descriptor (what stdin is for `< file`).
    const dir = mkdtempSync(join(tmpdir(), "mde-batch-count-"))
    const file = join(dir, "in.jsonl")
    const lines = Array.from({ length: 3000 }, (_, i) => (i % 7 === 3 ? "  " : `{"id":"${A}","index":${i}}`))
    writeFileSync(file, lines.join("\n")) // no final newline: the last line still counts
    const fd = openSync(file, "r")
    try {
      expect(await Effect.runPromise(countFileLines(fd))).toBe(lines.filter((l) => l.trim() !== "").length)
    } finally {
      closeSync(fd)
    }
    expect(await Effect.runPromise(countFileLines(-1))).toBeUndefined()
  })
})

// Real processes against a simulator served on loopback: the CLI's own pacing is real time.
describe("batch through the CLI", { timeout: 120_000 }, () => {
  const scope = Effect.runSync(Scope.make())
  let sim: DefenderSimulator.DefenderSimulator
  let env: Record<string, string>

  beforeAll(async () => {
    const started = await Effect.runPromise(
      Effect.gen(function*() {
        const sim = yield* DefenderSimulator.make()
        const served = yield* DefenderSimulator.serve(sim)
        return { sim, served }
      }).pipe(Scope.extend(scope))
    )
    sim = started.sim
    env = {
      PATH: process.env.PATH ?? "",
      MDE_API_URL: started.served.url,
      MDE_TOKEN: Redacted.value(DefenderSimulator.STATIC_TOKEN),
      MDE_DOWNLOAD_HOSTS: "127.0.0.1"
    }
  })
  afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))

  const run = (file: string, args: ReadonlyArray<string>, extra: Record<string, string> = {}) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(file, args, { env: { ...env, ...extra }, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr }))
    })

  it("answers each input form, a string index and a non-GUID line (nothing sent for it)", async () => {
    const input = [
      A, // 1: bare id
      `{"id":"${V}","index":"1"}`, // 2: id, string index
      `{"machineActionId":"${V}","index":2}`, // 3
      `{"action":"${A}"}`, // 4
      `{"action":"not-a-guid"}` // 5
    ].join("\n")
    const before = sim.count("getResultLink")
    const dir = mkdtempSync(join(tmpdir(), "mde-batch-forms-"))
    writeFileSync(join(dir, "in.jsonl"), input)
    // stdin from a file (no terminal: no progress line, stderr silent).
    const result = await run("/bin/sh", ["-c", `"$NODE" --import tsx cli/main.ts batch < "$IN"`], {
      NODE: process.execPath,
      IN: join(dir, "in.jsonl")
    })
    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
    const byLine = new Map(result.stdout.trim().split("\n").map((l) => JSON.parse(l)).map((a) => [a.line, a]))
    expect(byLine.size).toBe(5)
    expect(byLine.get(1)).toMatchObject({ action: A, index: 0, ok: true, transcript: { scriptName: "minidump.ps1" } })
    expect(byLine.get(2)).toMatchObject({ action: V, index: 1, ok: true, transcript: { scriptName: "audit.ps1", exitCode: 1 } })
    expect(byLine.get(3)).toMatchObject({ action: V, index: 2, ok: true })
    expect(byLine.get(4)).toMatchObject({ action: A, index: 0, ok: true })
    expect(byLine.get(5)).toMatchObject({ action: "not-a-guid", index: null, ok: false, error: { tag: "InvalidInput" } })
    expect(Object.keys(byLine.get(1)!)).toEqual(["line", "action", "index", "ok", "transcript"])
    expect(sim.count("getResultLink") - before).toBe(4)
  })

  it("with a file on stdin and stderr on a terminal, the progress line knows the total and waits for quota", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mde-batch-tty-"))
    const lines = Array.from({ length: 6 }, (_, i) => `{"id":"${V}","index":${i % 3}}`)
    writeFileSync(join(dir, "in.jsonl"), `${lines.join("\n")}\n\n`)
    // `script` gives the CLI a pseudo-terminal; stdin and stdout stay files. 2 calls per 2 s:
    // six lines take about four seconds, so several progress lines are drawn.
    const result = await run("script", [
      "-qec",
      `"$NODE" --import tsx cli/main.ts batch --concurrency 6 < "$IN" > "$OUT"`,
      "/dev/null"
    ], {
      NODE: process.execPath,
      IN: join(dir, "in.jsonl"),
      OUT: join(dir, "out.jsonl"),
      SHELL: "/bin/sh",
      MDE_RATE_LIMITS: "2/2s"
    })
    expect(result.code).toBe(0)
    expect(readFileSync(join(dir, "out.jsonl"), "utf8").trim().split("\n")).toHaveLength(6)
    const drawn = result.stdout.split("\r\x1b[2K").map((s) => s.trim()).filter((s) => s.includes(" done"))
    expect(drawn.length).toBeGreaterThan(2)
    // Known from the first line on: never `6+`, never a smaller total.
    for (const line of drawn) expect(line).toMatch(/^\d\/6 done · /)
    expect(drawn[0]).toMatch(/^0\/6 done|^[0-2]\/6 done/)
    // The budget, not the first burst's rate, sets the ETA.
    expect(drawn.some((line) => /ETA \d+s \(quota\)|ETA ≥\d+s \(quota\)/.test(line))).toBe(true)
    expect(result.stdout).toMatch(/6 ok, 0 failed in \d/)
  })
})
