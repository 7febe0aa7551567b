/**
 * `npm test` on a machine without a server the tests need (issue 13, item 7): vitest is run
 * on Redis test files with a PATH that holds only `node` (no redis-server) and without
 * MDE_TEST_REDIS_URL. Its files must be skipped with the one line saying how to run them,
 * and the run pass; with MDE_REQUIRE_SERVERS=1 (as .ci/run sets) it must fail instead.
 *
 * Real processes and real time, and why: what is under test is vitest's own run (its global
 * setup, the skipped files, its exit code and output), which only a real vitest process has.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { mkdtempSync, rmSync, symlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

// A PATH with node and nothing else: no redis-server, whatever this machine has.
const bin = mkdtempSync(join(tmpdir(), "mde-no-servers-"))
symlinkSync(process.execPath, join(bin, "node"))
afterAll(() => rmSync(bin, { recursive: true, force: true }))

interface Run {
  readonly code: number
  readonly output: string
}

const vitest = (files: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<Run> =>
  new Promise((resolve) => {
    execFile(
      process.execPath,
      ["node_modules/vitest/vitest.mjs", "run", ...files],
      { env: { PATH: bin, HOME: process.env["HOME"] ?? tmpdir(), NO_COLOR: "1", ...env }, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : Number(error.code ?? 1), output: stdout + stderr })
    )
  })

const skipLines = (output: string) => output.split("\n").filter((line) => line.startsWith("skipped "))

const TWO_FILES = ["test/DefenderRateLimiter.redis.test.ts", "test/redis.workers.test.ts"]

describe("tests that need a server, on a machine without it", () => {
  it("no redis-server and no MDE_TEST_REDIS_URL: the files are skipped, one line says how to run them, exit 0", async () => {
    const run = await vitest(TWO_FILES)
    expect(skipLines(run.output)).toEqual([
      "skipped 2 Redis test files: no redis-server on the PATH and no MDE_TEST_REDIS_URL " +
      "(apt-get install redis-server, or set MDE_TEST_REDIS_URL=redis://127.0.0.1:6379)"
    ])
    expect(run.output).toMatch(/Test Files\s+2 skipped \(2\)/)
    expect(run.output).not.toContain("passed")
    expect(run.code).toBe(0)
  }, 120_000)

  it("MDE_REQUIRE_SERVERS=1: the same run fails, naming the server and how to get one", async () => {
    const run = await vitest(TWO_FILES, { MDE_REQUIRE_SERVERS: "1" })
    expect(run.output).toContain(
      "MDE_REQUIRE_SERVERS=1 and the tests need Redis: no redis-server on the PATH and no MDE_TEST_REDIS_URL"
    )
    expect(skipLines(run.output)).toEqual([])
    expect(run.code).not.toBe(0)
  }, 120_000)

  it("a URL but no redis-server: the file that starts its own is skipped, and says only installing helps", async () => {
    // Nothing listens there; the skipped file never connects. PostgreSQL is given a URL too, so
    // that under MDE_REQUIRE_SERVERS=1 only Redis's binary is missing.
    const urls = { MDE_TEST_REDIS_URL: "redis://127.0.0.1:9", MDE_TEST_POSTGRES_URL: "postgres://127.0.0.1:9/none" }
    const run = await vitest(["test/redis.outage.test.ts"], urls)
    expect(skipLines(run.output)).toEqual([
      "skipped 1 Redis test file: no redis-server on the PATH (apt-get install redis-server)"
    ])
    expect(run.code).toBe(0)
    const required = await vitest(["test/redis.outage.test.ts"], { ...urls, MDE_REQUIRE_SERVERS: "1" })
    expect(required.output).toContain("MDE_REQUIRE_SERVERS=1 and the tests need Redis: no redis-server on the PATH")
    expect(required.code).not.toBe(0)
  }, 180_000)
})
