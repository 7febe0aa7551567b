/**
 * The CLI as a black box: a real process against a real HTTP server on
 * 127.0.0.1 that plays the Defender API and the blob storage.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Option, Redacted, Scope, Stream } from "effect"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs"
import { createServer, type Server, type ServerResponse } from "node:http"
import { type AddressInfo, createServer as createNetServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { formatDuration, MAX_LINE_BYTES, parseLine, splitLines, statusLine } from "../cli/batch.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import { CANARY_SIG, CANARY_TOKEN, SEED_TRANSCRIPT } from "./utils/fake.ts"
import { CLI } from "./utils/cli.ts"

const FILE_BYTES = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7) % 256))
let server: Server
const heldSlow: Array<() => void> = []
let base = ""
/** The link requests the server has answered (reset before each test), with their arrival times. */
let linkHits: Array<{ readonly action: string; readonly index: number; readonly at: number }> = []

const blobs: Record<string, () => { status: number; body: string | Buffer; headers?: Record<string, string> }> = {
  "ok-0": () => ({ status: 200, body: SEED_TRANSCRIPT }),
  "file-0": () => ({ status: 200, body: FILE_BYTES }),
  "gone-0": () => ({
    status: 404,
    body: "<Error><Code>BlobNotFound</Code><Message>The specified blob does not exist.</Message></Error>",
    headers: { "x-ms-error-code": "BlobNotFound" }
  })
}

/** The server's machine actions by name, as GUIDs (the CLI sends nothing for an id that is not one); it answers both. */
const ID = {
  ok: "0c000000-0000-4000-8000-000000000001",
  slow: "0c000000-0000-4000-8000-000000000002",
  missing: "0c000000-0000-4000-8000-000000000003",
  gone: "0c000000-0000-4000-8000-000000000004",
  file: "0c000000-0000-4000-8000-000000000005"
} as const
const NAME_OF: Record<string, string> = Object.fromEntries(Object.entries(ID).map(([name, id]) => [id, name]))

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", base)
    const matched = /^\/api\/machineactions\/([^/]+)\/GetLiveResponseResultDownloadLink\(index=(\d+)\)$/.exec(url.pathname)
    // link[1] is the action's name from here on.
    const link = matched === null ? null : [matched[0], NAME_OF[matched[1]!] ?? matched[1]!, matched[2]!] as const
    if (link !== null) {
      linkHits.push({ action: link[1]!, index: Number(link[2]), at: performance.now() })
      if (req.headers.authorization !== `Bearer ${CANARY_TOKEN}`) {
        res.writeHead(401).end()
        return
      }
      // Any other link request lets a held "slow" answer go (see below).
      if (link[1] !== "slow") heldSlow.splice(0).forEach((release) => release())
      if (link[1] === "missing") {
        res.writeHead(404, { "content-type": "application/json" }).end(
          JSON.stringify({ error: { code: "ResourceNotFound", message: "Machine action not found", target: "req-9" } })
        )
        return
      }
      const answer = () =>
        res.writeHead(200, { "content-type": "application/json" }).end(
          JSON.stringify({ value: `${base}/blob/${link[1]}-${link[2]}?se=2031-01-01T00%3A00%3A00Z&sp=r&sig=${CANARY_SIG}` })
        )
      // "slow" is held until the server has seen the batch's other link requests arrive, so
      // the batch's completion order differs from its input order — no timer involved.
      if (link[1] === "slow") {
        // The batch's other requests: 5 links (ok ×3, missing, gone) and 4 blobs (ok ×3, gone).
        let waitFor = 9
        heldSlow.push(function release() {
          if (--waitFor === 0) answer()
          else heldSlow.push(release)
        })
      } else answer()
      return
    }
    const name = url.pathname.replace("/blob/", "")
    if (!name.startsWith("slow")) heldSlow.splice(0).forEach((release) => release())
    // Every command index of "ok" and "slow" holds the seed transcript.
    const blob = blobs[name] ?? (/^(ok|slow)-\d+$/.test(name) ? blobs["ok-0"] : undefined)
    if (url.pathname.startsWith("/blob/") && blob !== undefined && req.headers.authorization === undefined) {
      const answer = blob()
      res.writeHead(answer.status, answer.headers).end(answer.body)
      return
    }
    res.writeHead(400).end()
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

beforeEach(() => {
  linkHits = []
})

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
  /** stdout as bytes, for binary output. */
  readonly bytes?: Buffer
}

const cli = (
  args: ReadonlyArray<string>,
  env: Record<string, string> = {},
  script = "cli/main.ts",
  input?: string
): Promise<Run> =>
  new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [...(script === "cli/main.ts" ? CLI : ["--import", "tsx", script]), ...args],
      {
        env: {
          PATH: process.env.PATH ?? "",
          MDE_API_URL: base,
          MDE_TOKEN: CANARY_TOKEN,
          MDE_DOWNLOAD_HOSTS: "127.0.0.1",
          MDE_RATE_LIMITS: "100/1m,1500/1h",
          ...env
        },
        encoding: "buffer",
        maxBuffer: 16 * 1024 * 1024
      },
      (error, stdout, stderr) => {
        const run = {
          code: error === null ? 0 : typeof error.code === "number" ? error.code : -1,
          stdout: stdout.toString("utf8"),
          stderr: stderr.toString("utf8")
        }
        // Not enumerable, so the tests that compare a whole Run still can.
        resolve(Object.defineProperty(run, "bytes", { value: stdout, enumerable: false }))
      }
    )
    if (input !== undefined) {
      // The child may exit before reading everything (a usage error): that is not the test's failure.
      child.stdin?.on("error", () => {})
      child.stdin?.end(input)
    }
  })

/** `batch [args]` with `input` on stdin. */
const batch = (input: string, args: ReadonlyArray<string> = [], env: Record<string, string> = {}) =>
  cli(["batch", ...args], env, "cli/main.ts", input)

/** Parses batch output: one JSON object per line, each with a distinct `line`. */
const answers = (run: Run): Map<number, any> => {
  expect(run.stdout.endsWith("\n")).toBe(true)
  const byLine = new Map<number, any>()
  for (const text of run.stdout.slice(0, -1).split("\n")) {
    const answer = JSON.parse(text)
    expect(typeof answer.line).toBe("number")
    expect(byLine.has(answer.line)).toBe(false)
    byLine.set(answer.line, answer)
  }
  return byLine
}

const expectOneErrorLine = (run: Run, tag: string) => {
  const lines = run.stderr.trim().split("\n")
  expect(lines).toHaveLength(1)
  expect(lines[0]).toMatch(new RegExp(`^error: ${tag}: `))
  expect(run.stderr).not.toMatch(/\n\s+at /)
  for (const secret of [CANARY_TOKEN, CANARY_SIG]) {
    expect(run.stderr + run.stdout).not.toContain(secret)
  }
}

/**
 * The simulator behind a loopback server of the test's own, which can leave chosen
 * requests unanswered (a cancel stuck in flight); `held` collects them.
 */
const serveSimulator = async (options: DefenderSimulator.Options, hold: (url: URL) => boolean = () => false) => {
  const sim = await Effect.runPromise(DefenderSimulator.make(options))
  const handler = DefenderSimulator.toWebHandler(sim)
  const held: Array<ServerResponse> = []
  let origin = ""
  const proxy = createServer(async (req, res) => {
    const chunks: Array<Buffer> = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const url = new URL(req.url ?? "/", origin)
    if (hold(url)) {
      held.push(res)
      return
    }
    const headers = new Headers()
    for (const [key, value] of Object.entries(req.headers)) {
      if (typeof value === "string" && !["host", "connection", "content-length"].includes(key)) headers.set(key, value)
    }
    const body = chunks.length === 0 ? null : Buffer.concat(chunks)
    const answer = await handler(new Request(url, { method: req.method ?? "GET", headers, body }))
    res.writeHead(answer.status, Object.fromEntries(answer.headers)).end(Buffer.from(await answer.arrayBuffer()))
  })
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve))
  origin = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
  sim.blobOrigin = origin
  const env = {
    MDE_API_URL: origin,
    MDE_TOKEN: Redacted.value(DefenderSimulator.STATIC_TOKEN),
    MDE_DOWNLOAD_HOSTS: "127.0.0.1",
    MDE_RATE_LIMITS: "100/1m,1500/1h"
  }
  const close = () =>
    new Promise<void>((resolve) => {
      held.splice(0).forEach((res) => res.destroy())
      proxy.closeAllConnections()
      proxy.close(() => resolve())
    })
  return { sim, url: origin, env, held, close }
}

/** Polls `condition` every 50 ms (real processes, real time) until it holds, for at most `ms`. */
const until = (condition: () => boolean, ms = 30_000): Promise<void> =>
  new Promise((resolve, reject) => {
    const since = Date.now()
    const poll = setInterval(() => {
      if (condition()) {
        clearInterval(poll)
        resolve()
      } else if (Date.now() - since > ms) {
        clearInterval(poll)
        reject(new Error("timed out waiting"))
      }
    }, 50)
  })

/** `run` as a child process, its stderr collected and its end awaited. */
const spawnRun = (env: Record<string, string>) => {
  const child: ChildProcess = spawn(
    process.execPath,
    [...CLI, "run", "--machine", "m1", "--script", "a.ps1", "--interval", "1"],
    { env: { PATH: process.env.PATH ?? "", ...env } }
  )
  let stderr = ""
  child.stderr!.on("data", (data: Buffer) => {
    stderr += data.toString()
  })
  const exited = new Promise<{ code: number | null; signal: string | null; at: number }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal, at: performance.now() }))
  )
  return { child, stderr: () => stderr, exited }
}

describe("cli", { timeout: 60_000 }, () => {
  it("transcript --format json prints exactly one JSON object", async () => {
    const run = await cli(["transcript", "--action", ID.ok, "--format", "json"])
    expect(run.stderr).toBe("")
    expect(run.code).toBe(0)
    expect(run.stdout.trim().split("\n")).toHaveLength(1)
    const parsed = JSON.parse(run.stdout)
    expect(Object.keys(parsed)).toEqual(["scriptName", "exitCode", "output", "error"])
    expect(parsed.scriptName).toBe("minidump.ps1")
    expect(parsed.exitCode).toBe(0)
    expect(parsed.output).toContain("OfficeClickToRun.dmp.zip\n51 MB\n")
    expect(parsed.output).not.toContain("\u0000")
  })

  it("transcript prints a readable text form by default", async () => {
    const run = await cli(["transcript", "--action", ID.ok])
    expect(run.code).toBe(0)
    expect(run.stdout.startsWith("# minidump.ps1 exited with 0\nTranscript started")).toBe(true)
  })

  it("link prints the download URL", async () => {
    const run = await cli(["link", "--action", ID.ok, "--index", "0"])
    expect(run.code).toBe(0)
    expect(run.stdout.trim()).toBe(`${base}/blob/ok-0?se=2031-01-01T00%3A00%3A00Z&sp=r&sig=${CANARY_SIG}`)
  })

  it("download streams the raw result to --out and leaves no partial file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mde-cli-"))
    const out = join(dir, "result.bin")
    const run = await cli(["download", "--action", ID.file, "--out", out])
    expect(run.code).toBe(0)
    expect(readFileSync(out).equals(FILE_BYTES)).toBe(true)
    expect(existsSync(`${out}.partial`)).toBe(false)
  })

  it("a failed download exits with its code and leaves no file at all", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mde-cli-"))
    const out = join(dir, "result.bin")
    const run = await cli(["download", "--action", ID.gone, "--out", out])
    expect(run.code).toBe(9)
    expectOneErrorLine(run, "ResultLinkError")
    expect(existsSync(out)).toBe(false)
    expect(existsSync(`${out}.partial`)).toBe(false)
  })

  it("download does not write through a symlink planted at its old temporary name", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mde-cli-"))
    const out = join(dir, "result.bin")
    const victim = join(dir, "victim.txt")
    writeFileSync(victim, "precious")
    symlinkSync(victim, `${out}.partial`)
    const run = await cli(["download", "--action", ID.file, "--out", out])
    expect(run.code).toBe(0)
    expect(readFileSync(victim, "utf8")).toBe("precious")
    expect(lstatSync(out).isSymbolicLink()).toBe(false)
    expect(readFileSync(out).equals(FILE_BYTES)).toBe(true)
    expect(readdirSync(dir).sort()).toEqual(["result.bin", "result.bin.partial", "victim.txt"])
  })

  it("download refuses an existing --out (nothing sent); --force replaces it, a symlink without writing through it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mde-cli-"))
    const out = join(dir, "result.bin")
    writeFileSync(out, "old")
    const refused = await cli(["download", "--action", ID.file, "--out", out])
    expect(refused.code).toBe(12)
    expectOneErrorLine(refused, "FileError")
    expect(refused.stderr).toContain("--force")
    expect(readFileSync(out, "utf8")).toBe("old")
    expect(linkHits).toEqual([])

    const forced = await cli(["download", "--action", ID.file, "--out", out, "--force"])
    expect(forced.code).toBe(0)
    expect(readFileSync(out).equals(FILE_BYTES)).toBe(true)

    const victim = join(dir, "victim.txt")
    const link = join(dir, "link.bin")
    writeFileSync(victim, "precious")
    symlinkSync(victim, link)
    expect((await cli(["download", "--action", ID.file, "--out", link])).code).toBe(12)
    expect((await cli(["download", "--action", ID.file, "--out", link, "--force"])).code).toBe(0)
    expect(readFileSync(victim, "utf8")).toBe("precious")
    expect(lstatSync(link).isSymbolicLink()).toBe(false)
    expect(readFileSync(link).equals(FILE_BYTES)).toBe(true)
    expect(readdirSync(dir).sort()).toEqual(["link.bin", "result.bin", "victim.txt"])
  })

  it("download --out - streams the raw bytes to stdout", async () => {
    const run = await cli(["download", "--action", ID.file, "--out", "-"])
    expect(run.code).toBe(0)
    expect(run.bytes!.equals(FILE_BYTES)).toBe(true)
    expect(run.stderr).toBe(`wrote ${FILE_BYTES.length} bytes to stdout\n`)
    expect(existsSync("-")).toBe(false)
  })

  it("an unknown action is one line on stderr and exit code 6", async () => {
    const run = await cli(["transcript", "--action", ID.missing, "--format", "json"])
    expect(run.code).toBe(6)
    expect(run.stdout).toBe("")
    // Under --format json the error line is JSON (README › CLI).
    expect(run.stderr.trim().split("\n")).toHaveLength(1)
    expect(JSON.parse(run.stderr).error).toMatchObject({ tag: "NotFound", exitCode: 6 })
    expect(run.stderr).toContain("req-9")
  })

  it("a rejected token is exit code 4", async () => {
    const run = await cli(["link", "--action", ID.ok], { MDE_TOKEN: "wrong-token" })
    expect(run.code).toBe(4)
    expectOneErrorLine(run, "AuthenticationError")
  })

  it("a disallowed download host is exit code 8 and is never contacted", async () => {
    const run = await cli(["transcript", "--action", ID.ok], { MDE_DOWNLOAD_HOSTS: "" })
    expect(run.code).toBe(8)
    expectOneErrorLine(run, "DownloadRefused")
  })

  it("an unreachable Redis budget (MDE_REDIS_URL) is exit code 16, and nothing reaches the API", async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createNetServer().listen(0, "127.0.0.1", () => {
        const { port } = probe.address() as AddressInfo
        probe.close(() => resolve(port))
      })
    })
    linkHits = []
    const run = await cli(["transcript", "--action", ID.ok], { MDE_REDIS_URL: `redis://:redis-canary@127.0.0.1:${port}` })
    expect(run.code).toBe(16)
    expectOneErrorLine(run, "RateLimiterUnavailable")
    expect(run.stderr).not.toContain("redis-canary")
    expect(linkHits).toHaveLength(0)
  })

  it("missing configuration is exit code 3", async () => {
    const run = await cli(["link", "--action", ID.ok], { MDE_TOKEN: "" })
    expect(run.code).toBe(3)
    expect(run.stderr).toContain("AZURE_TENANT_ID")
    expect(run.stderr.trim().split("\n")).toHaveLength(1)
  })

  it("a usage error is exit code 2", async () => {
    const run = await cli(["transcript"])
    expect(run.code).toBe(2)
  })

  it("examples/transcripts.ts prints one line per action, failures included", async () => {
    const run = await cli(["ok", "missing"], {}, "examples/transcripts.ts")
    expect(run.code).toBe(0)
    const lines = run.stdout.trim().split("\n").sort()
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(/^missing: failed, NotFound: /)
    expect(lines[1]).toBe("ok: minidump.ps1 exited with 0")
  })

  it("batch answers every non-blank line exactly once, in completion order, failures included", async () => {
    const input = [
      `{"action":"${ID.slow}","index":3}`, // 1: answered last (the server is slow)
      `{"action":"${ID.ok}"}`, // 2: index defaults to 0
      `{"action":"${ID.missing}","index":0}`, // 3: NotFound
      `not json`, // 4
      ``, // 5: blank, ignored
      `{"index":0}`, // 6: no action
      `{"action":"${ID.ok}","index":-1}`, // 7: bad index
      `{"action":"${ID.ok}","index":1.5}`, // 8: bad index
      `[]`, // 9: not an object
      ` \t`, // 10: blank, ignored
      `{"action":"${ID.gone}"}`, // 11: ResultLinkError
      `{"action":""}`, // 12: not a GUID, nothing sent
      "x".repeat(MAX_LINE_BYTES + 1), // 13: too long
      `{"action":"${ID.ok}","index":2}\r`, // 14: CRLF
      `{"action":"${ID.ok}","index":4}` // 15: no final newline
    ].join("\n")
    const run = await batch(input)
    expect(run.code).toBe(0)
    expect(run.stderr).toBe("")
    const byLine = answers(run)
    expect([...byLine.keys()].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14, 15])
    expect(JSON.parse(run.stdout.trim().split("\n").at(-1)!).line).toBe(1)
    for (const secret of [CANARY_TOKEN, CANARY_SIG]) expect(run.stdout).not.toContain(secret)

    for (const [line, action, index] of [[1, ID.slow, 3], [2, ID.ok, 0], [14, ID.ok, 2], [15, ID.ok, 4]] as const) {
      const answer = byLine.get(line)
      expect(Object.keys(answer)).toEqual(["line", "action", "index", "ok", "transcript"])
      expect(answer).toMatchObject({ line, action, index, ok: true })
      expect(Object.keys(answer.transcript)).toEqual(["scriptName", "exitCode", "output", "error"])
      expect(answer.transcript).toMatchObject({ scriptName: "minidump.ps1", exitCode: 0 })
      expect(answer.transcript.output).toContain("OfficeClickToRun.dmp.zip\n51 MB\n")
    }
    const failure = (line: number) => {
      const answer = byLine.get(line)
      expect(Object.keys(answer)).toEqual(["line", "action", "index", "ok", "error"])
      expect(answer.ok).toBe(false)
      expect(Object.keys(answer.error)).toEqual(["tag", "message"])
      expect(answer.error.message).toEqual(expect.any(String))
      return answer
    }
    expect(failure(3)).toMatchObject({ action: ID.missing, index: 0, error: { tag: "NotFound" } })
    expect(failure(3).error.message).toContain("req-9")
    for (const line of [4, 6, 9, 13]) {
      expect(failure(line)).toMatchObject({ action: null, index: null, error: { tag: "InvalidInput" } })
    }
    for (const line of [7, 8]) {
      expect(failure(line)).toMatchObject({ action: ID.ok, index: null, error: { tag: "InvalidInput" } })
    }
    expect(failure(11)).toMatchObject({ action: ID.gone, index: 0, error: { tag: "ResultLinkError" } })
    expect(failure(12)).toMatchObject({ action: "", index: null, error: { tag: "InvalidInput" } })
    // Nothing is sent for a line that is not a request.
    expect(linkHits.map((h) => h.action).sort()).toEqual(["gone", "missing", "ok", "ok", "ok", "slow"])
  })

  it("batch --concurrency 0 is a usage error, before anything is read or sent", async () => {
    const run = await batch(`{"action":"${ID.ok}"}\n`, ["--concurrency", "0"])
    expect(run.code).toBe(2)
    expect(run.stdout).toBe("")
    expect(run.stderr).toContain("--concurrency must be at least 1")
    expect(linkHits).toEqual([])
  })

  it("batch with empty input prints nothing and exits 0", async () => {
    const run = await batch("")
    expect(run).toEqual({ code: 0, stdout: "", stderr: "" })
  })

  it("batch answers 300 lines exactly once each", async () => {
    const input = Array.from({ length: 300 }, (_, i) => JSON.stringify({ action: ID.ok, index: i })).join("\n") + "\n"
    const run = await batch(input, ["--concurrency", "25"], { MDE_RATE_LIMITS: "1000/1m" })
    expect(run.code).toBe(0)
    expect(run.stderr).toBe("")
    const byLine = answers(run)
    expect(byLine.size).toBe(300)
    for (let line = 1; line <= 300; line++) {
      expect(byLine.get(line)).toMatchObject({ line, action: ID.ok, index: line - 1, ok: true })
    }
    expect(linkHits).toHaveLength(300)
  })

  it("batch items share one rate budget", async () => {
    const input = Array.from({ length: 10 }, (_, i) => JSON.stringify({ action: ID.ok, index: i })).join("\n")
    const run = await batch(input, ["--concurrency", "10"], { MDE_RATE_LIMITS: "4/1s" })
    expect(run.code).toBe(0)
    expect(answers(run).size).toBe(10)
    const at = linkHits.map((h) => h.at).sort((a, b) => a - b)
    expect(at).toHaveLength(10)
    // No rolling second holds more than 4 calls (slack for the trip to the server: unlimited,
    // all 10 would arrive within a few milliseconds).
    for (let i = 0; i + 4 < at.length; i++) expect(at[i + 4]! - at[i]!).toBeGreaterThan(700)
    expect(at[9]! - at[0]!).toBeGreaterThan(1700)
  })
})

describe("batch input", () => {
  const lines = (chunks: ReadonlyArray<string | Uint8Array>, max?: number) =>
    Effect.runPromise(
      Stream.fromIterable(chunks.map((c) => (typeof c === "string" ? new TextEncoder().encode(c) : c))).pipe(
        splitLines(max),
        Stream.runCollect,
        Effect.map(Chunk.toArray)
      )
    )

  it("splits lines across chunks, keeps multi-byte characters whole, numbers every line", async () => {
    const euro = new TextEncoder().encode("€") // 3 bytes
    expect(
      await lines(["\uFEFFa\r", "\nb", euro.subarray(0, 1), euro.subarray(1), "c\n\n", "d\r\n", "last"])
    ).toEqual([
      { line: 1, text: "a" },
      { line: 2, text: "b€c" },
      { line: 3, text: "" },
      { line: 4, text: "d" },
      { line: 5, text: "last" }
    ])
    expect(await lines(["a\n"])).toEqual([{ line: 1, text: "a" }])
    expect(await lines([])).toEqual([])
  })

  it("drops an overlong line's bytes but still answers it", async () => {
    expect(await lines(["12345", "6\nok\n", "123456"], 5)).toEqual([
      { line: 1, text: undefined },
      { line: 2, text: "ok" },
      { line: 3, text: undefined }
    ])
  })

  it("parses requests and reports every other non-blank line", () => {
    const parse = (text: string) => Option.getOrUndefined(parseLine({ line: 7, text }))
    const a = ID.ok
    expect(parse(`{"action":"${a}"}`)).toEqual({ _tag: "Request", line: 7, action: a, index: 0 })
    expect(parse(`{"action":"${a}","index":2,"extra":true}`)).toEqual({ _tag: "Request", line: 7, action: a, index: 2 })
    expect(parse("  ")).toBeUndefined()
    for (const text of ["{", "null", "1", `"a"`, "[]", "{}", `{"action":1}`, `{"action":"${a}","index":null}`]) {
      expect(parse(text)).toMatchObject({ _tag: "Invalid", line: 7, index: null })
    }
    expect(parse(`{"action":"${a}","index":"x1"}`)).toMatchObject({ _tag: "Invalid", action: a })
    expect(Option.getOrUndefined(parseLine({ line: 2, text: undefined }))).toMatchObject({ _tag: "Invalid" })
  })

  it("formats the progress line", () => {
    expect(statusLine({ done: 3, total: 10, ended: false }, 2, 0)).toBe("3/10+ done · 2.0/s")
    expect(statusLine({ done: 4, total: 10, ended: true }, 0.1, 5)).toBe(
      "4/10 done · 0.1/s · ETA 1m00s · waiting for quota (5)"
    )
    expect(statusLine({ done: 4, total: 10, ended: true }, 0, 0)).toBe("4/10 done · 0.0/s · ETA ?")
    expect(statusLine({ done: 10, total: 10, ended: true }, 5, 0)).toBe("10/10 done · 5.0/s")
    expect([formatDuration(9.6), formatDuration(125), formatDuration(7500)]).toEqual(["10s", "2m05s", "2h05m"])
  })
})

describe("demo and --simulate", { timeout: 90_000 }, () => {
  it("the demo (npm start) runs the library end to end against a simulator on loopback", async () => {
    // No configuration at all: the demo brings its own tenant.
    const run = await cli(["demo"], { MDE_API_URL: "", MDE_TOKEN: "", MDE_DOWNLOAD_HOSTS: "", MDE_RATE_LIMITS: "" })
    expect(run.stderr).toBe("")
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/simulated Defender tenant on http:\/\/127\.0\.0\.1:\d+/)
    expect(run.stdout).toContain("minidump.ps1   exit 0")
    expect(run.stdout).toContain("audit.ps1      exit 1")
    expect(run.stdout).toMatch(/\d+ bytes \(gzip: true\)/)
    expect(run.stdout).toContain("NotFound: ")
    expect(run.stdout).toContain("ResultLinkError: ")
    expect(run.stdout).toMatch(/[1-9]\d* answers were 429 \+ Retry-After/)
    expect(run.stdout).toContain("0 answers were 429: callers waited for a permit instead")
    expect(run.stdout).toContain("Authorization headers sent to storage: 0")
    expect(run.stdout).toMatch(/machine action \S+: Succeeded after/)
    expect(run.stdout).toContain("#1 C:\\Windows\\Temp\\triage.log: 65536 bytes")
  })

  it("--simulate points a command at an embedded simulator, with no configuration", async () => {
    const env = { MDE_API_URL: "", MDE_TOKEN: "", MDE_DOWNLOAD_HOSTS: "", MDE_RATE_LIMITS: "" }
    const run = await cli(["transcript", "--simulate", "--action", "5e1d0000-0000-4000-8000-000000000002", "--index", "1", "--format", "json"], env)
    expect(run.code).toBe(0)
    expect(JSON.parse(run.stdout)).toMatchObject({ scriptName: "audit.ps1", exitCode: 1, error: "Access is denied.\n" })
    const missing = await cli(["link", "--simulate", "--action", "5e1d0000-0000-4000-8000-0000000000ff"], env)
    expect(missing.code).toBe(6)
  })
})

describe("run", { timeout: 90_000 }, () => {
  const noConfig = { MDE_API_URL: "", MDE_TOKEN: "", MDE_DOWNLOAD_HOSTS: "", MDE_RATE_LIMITS: "" }

  it("runs a session, prints one JSON object per command and saves the GetFile result", async () => {
    const out = mkdtempSync(join(tmpdir(), "mde-run-"))
    const result = await cli(
      ["run", "--simulate", "--machine", "m1", "--script", "collect.ps1", "--args", "-Deep", "--getfile", "C:\\logs\\app.log", "--out", out, "--interval", "1", "--format", "json"],
      noConfig
    )
    expect(result.code).toBe(0)
    const lines = result.stdout.trim().split("\n").map((l) => JSON.parse(l))
    expect(lines.map((l) => [l.index, l.type])).toEqual([[0, "RunScript"], [1, "GetFile"]])
    expect(lines[0].transcript.output).toContain("collect.ps1 -Deep")
    expect(lines[1].bytes).toBe(64 * 1024)
    expect(lines[1]).toMatchObject({ savedTo: join(out, "app.log"), md5Verified: true })
    expect(readFileSync(join(out, "app.log")).length).toBe(64 * 1024)
    expect(result.stderr).toMatch(/^started machine action [0-9a-f-]+ on m1/)
  })

  it("Ctrl-C while waiting cancels the action on the service, once", async () => {
    const scope = Effect.runSync(Scope.make())
    const { served, sim } = await Effect.runPromise(
      Effect.gen(function*() {
        const sim = yield* DefenderSimulator.make({ runFor: "10 minutes" })
        const served = yield* DefenderSimulator.serve(sim)
        return { sim, served }
      }).pipe(Scope.extend(scope))
    )
    try {
      const child = spawn(process.execPath, [...CLI, "run", "--machine", "m1", "--script", "a.ps1", "--interval", "1"], {
        env: {
          PATH: process.env.PATH ?? "",
          MDE_API_URL: served.url,
          MDE_TOKEN: Redacted.value(DefenderSimulator.STATIC_TOKEN),
          MDE_DOWNLOAD_HOSTS: "127.0.0.1"
        }
      })
      let stderr = ""
      const code = await new Promise<number | null>((resolve) => {
        child.stderr.on("data", (data: Buffer) => {
          stderr += data.toString()
          // Interrupt once the session has started and the wait has polled it.
          if (stderr.includes("started machine action") && sim.count("getMachineAction") > 0 && !child.killed) {
            child.kill("SIGINT")
          }
        })
        const poll = setInterval(() => {
          if (stderr.includes("started machine action") && sim.count("getMachineAction") > 0 && !child.killed) {
            child.kill("SIGINT")
          }
        }, 50)
        child.on("exit", (exitCode) => {
          clearInterval(poll)
          resolve(exitCode)
        })
      })
      expect(code).toBe(130)
      expect(stderr).toContain("interrupted: cancel sent for machine action")
      expect(sim.count("cancel", 200)).toBe(1)
      const id = /started machine action ([0-9a-f-]+)/.exec(stderr)![1]!
      const answer = await Effect.runPromise(
        sim.handle(new Request(`${served.url}/api/machineactions/${id}`, {
          headers: { authorization: `Bearer ${Redacted.value(DefenderSimulator.STATIC_TOKEN)}` }
        }))
      )
      const state = (await answer!.json()) as { status: string }
      expect(state.status).toBe("Cancelled")
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  })
  it("SIGTERM while waiting cancels the action on the service, once, and exits 143", async () => {
    const served = await serveSimulator({ runFor: "10 minutes" })
    try {
      const run = spawnRun(served.env)
      await until(() => run.stderr().includes("started machine action") && served.sim.count("getMachineAction") > 0)
      run.child.kill("SIGTERM")
      const { code } = await run.exited
      expect(code).toBe(143)
      const id = /started machine action ([0-9a-f-]+)/.exec(run.stderr())![1]!
      expect(run.stderr()).toContain(`interrupted: cancel sent for machine action ${id}`)
      expect(served.sim.count("cancel", 200)).toBe(1)
    } finally {
      await served.close()
    }
  })

  it("a second signal while the cancel is in flight names the action that may still run, and exits at once", async () => {
    // The cancel is never answered, so the first signal's cleanup cannot end by itself.
    const served = await serveSimulator({ runFor: "10 minutes" }, (url) => url.pathname.endsWith("/cancel"))
    try {
      const run = spawnRun(served.env)
      await until(() => run.stderr().includes("started machine action") && served.sim.count("getMachineAction") > 0)
      const id = /started machine action ([0-9a-f-]+)/.exec(run.stderr())![1]!
      run.child.kill("SIGTERM")
      await until(() => served.held.length > 0)
      const second = performance.now()
      run.child.kill("SIGTERM")
      const { at, code, signal } = await run.exited
      expect({ code, signal }).toEqual({ code: 143, signal: null })
      expect(at - second).toBeLessThan(5_000)
      expect(run.stderr()).toContain(`interrupted (SIGTERM): cancelling machine action ${id} on m1`)
      expect(run.stderr()).toContain(
        `interrupted again (SIGTERM): exiting without waiting for the cancel; machine action ${id} on m1 may still be running`
      )
      expect(run.stderr()).not.toContain(Redacted.value(DefenderSimulator.STATIC_TOKEN))
    } finally {
      await served.close()
    }
  })

  it("download of a corrupted body (a changed byte under the original MD5) fails typed and leaves no file", async () => {
    const served = await serveSimulator({ faults: { corruptRate: 1 } })
    try {
      const dir = mkdtempSync(join(tmpdir(), "mde-cli-"))
      const out = join(dir, "result.gz")
      const run = await cli(["download", "--action", DefenderSimulator.ACTIONS.getFile, "--out", out], served.env)
      expect(run.code).toBe(12)
      const lines = run.stderr.trim().split("\n")
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^error: FileDownloadError: .*do not match the storage's Content-MD5/)
      expect(readdirSync(dir)).toEqual([])
      expect(served.sim.count("blob", 200)).toBeGreaterThan(0)
    } finally {
      await served.close()
    }
  })
})
