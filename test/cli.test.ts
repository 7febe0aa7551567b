/**
 * The CLI as a black box: a real process against a real HTTP server on
 * 127.0.0.1 that plays the Defender API and the blob storage.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync } from "node:fs"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { CANARY_SIG, CANARY_TOKEN, SEED_TRANSCRIPT } from "./utils/fake.ts"

const FILE_BYTES = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7) % 256))
let server: Server
let base = ""

const blobs: Record<string, () => { status: number; body: string | Buffer; headers?: Record<string, string> }> = {
  "ok-0": () => ({ status: 200, body: SEED_TRANSCRIPT }),
  "file-0": () => ({ status: 200, body: FILE_BYTES }),
  "gone-0": () => ({
    status: 404,
    body: "<Error><Code>BlobNotFound</Code><Message>The specified blob does not exist.</Message></Error>",
    headers: { "x-ms-error-code": "BlobNotFound" }
  })
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", base)
    const link = /^\/api\/machineactions\/([^/]+)\/GetLiveResponseResultDownloadLink\(index=(\d+)\)$/.exec(url.pathname)
    if (link !== null) {
      if (req.headers.authorization !== `Bearer ${CANARY_TOKEN}`) {
        res.writeHead(401).end()
        return
      }
      if (link[1] === "missing") {
        res.writeHead(404, { "content-type": "application/json" }).end(
          JSON.stringify({ error: { code: "ResourceNotFound", message: "Machine action not found", target: "req-9" } })
        )
        return
      }
      res.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({ value: `${base}/blob/${link[1]}-${link[2]}?se=2031-01-01T00%3A00%3A00Z&sp=r&sig=${CANARY_SIG}` })
      )
      return
    }
    const blob = blobs[url.pathname.replace("/blob/", "")]
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

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const cli = (args: ReadonlyArray<string>, env: Record<string, string> = {}, script = "cli/main.ts"): Promise<Run> =>
  new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", script, ...args],
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
      (error, stdout, stderr) =>
        resolve({
          code: error === null ? 0 : typeof error.code === "number" ? error.code : -1,
          stdout: stdout.toString("utf8"),
          stderr: stderr.toString("utf8")
        })
    )
  })

const expectOneErrorLine = (run: Run, tag: string) => {
  const lines = run.stderr.trim().split("\n")
  expect(lines).toHaveLength(1)
  expect(lines[0]).toMatch(new RegExp(`^error: ${tag}: `))
  expect(run.stderr).not.toMatch(/\n\s+at /)
  for (const secret of [CANARY_TOKEN, CANARY_SIG]) {
    expect(run.stderr + run.stdout).not.toContain(secret)
  }
}

describe("cli", { timeout: 60_000 }, () => {
  it("transcript --format json prints exactly one JSON object", async () => {
    const run = await cli(["transcript", "--action", "ok", "--format", "json"])
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
    const run = await cli(["transcript", "--action", "ok"])
    expect(run.code).toBe(0)
    expect(run.stdout.startsWith("# minidump.ps1 exited with 0\nTranscript started")).toBe(true)
  })

  it("link prints the download URL", async () => {
    const run = await cli(["link", "--action", "ok", "--index", "0"])
    expect(run.code).toBe(0)
    expect(run.stdout.trim()).toBe(`${base}/blob/ok-0?se=2031-01-01T00%3A00%3A00Z&sp=r&sig=${CANARY_SIG}`)
  })

  it("download streams the raw result to --out and leaves no partial file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mde-cli-"))
    const out = join(dir, "result.bin")
    const run = await cli(["download", "--action", "file", "--out", out])
    expect(run.code).toBe(0)
    expect(readFileSync(out).equals(FILE_BYTES)).toBe(true)
    expect(existsSync(`${out}.partial`)).toBe(false)
  })

  it("a failed download exits with its code and leaves no file at all", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mde-cli-"))
    const out = join(dir, "result.bin")
    const run = await cli(["download", "--action", "gone", "--out", out])
    expect(run.code).toBe(9)
    expectOneErrorLine(run, "ResultLinkError")
    expect(existsSync(out)).toBe(false)
    expect(existsSync(`${out}.partial`)).toBe(false)
  })

  it("an unknown action is one line on stderr and exit code 6", async () => {
    const run = await cli(["transcript", "--action", "missing", "--format", "json"])
    expect(run.code).toBe(6)
    expect(run.stdout).toBe("")
    expectOneErrorLine(run, "NotFound")
    expect(run.stderr).toContain("req-9")
  })

  it("a rejected token is exit code 4", async () => {
    const run = await cli(["link", "--action", "ok"], { MDE_TOKEN: "wrong-token" })
    expect(run.code).toBe(4)
    expectOneErrorLine(run, "AuthenticationError")
  })

  it("a disallowed download host is exit code 8 and is never contacted", async () => {
    const run = await cli(["transcript", "--action", "ok"], { MDE_DOWNLOAD_HOSTS: "" })
    expect(run.code).toBe(8)
    expectOneErrorLine(run, "DownloadRefused")
  })

  it("missing configuration is exit code 3", async () => {
    const run = await cli(["link", "--action", "ok"], { MDE_TOKEN: "" })
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
})
