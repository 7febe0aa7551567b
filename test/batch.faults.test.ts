/**
 * Issue 5, item 3, through the CLI: the real `batch` command, in its own process,
 * against one served simulator that injects about 30 % faults (429s with
 * `Retry-After`, 5xx, dropped connections, trickling and cut bodies). Every input
 * is answered exactly once — a result or a typed error — and a trickling body
 * ends in the typed timeout set by `MDE_TIMEOUT`, after which it is read again.
 *
 * Not on the TestClock, and why: the CLI is a separate process with its own clock,
 * against a served simulator — the point is the real process end to end. The test
 * itself never sleeps; it waits for the child to exit (a watchdog fires only on a hang).
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { execFile } from "node:child_process"
import { createServer } from "node:net"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderClient from "../src/DefenderClient.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import { CLI } from "./utils/cli.ts"

const ACTIONS = 50
const PER_ACTION = 10
const TOTAL = ACTIONS * PER_ACTION
/** Inputs for actions that do not exist, mixed in: their answer is a typed NotFound, faults or not. */
const MISSING = 10

const actionId = (a: number) => `fa017000-0000-4000-8000-${a.toString(16).padStart(12, "0")}`

/** A transcript that names its own action and index, so a mixed-up answer cannot pass. */
const transcript = (a: number, i: number) =>
  JSON.stringify({
    script_name: `collect-${a}-${i}.ps1`,
    exit_code: i % 3,
    script_output: `action ${a} command ${i}\n` + "x".repeat(200),
    script_error: ""
  })

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly millis: number
}

/** `cli/main.ts batch` with `input` on stdin; killed (and reported as hung) after `limitMillis`. */
const batch = (input: string, args: ReadonlyArray<string>, env: Record<string, string>, limitMillis: number) =>
  new Promise<Run & { readonly hung: boolean }>((resolve) => {
    const started = performance.now()
    let hung = false
    const child = execFile(
      process.execPath,
      [...CLI, "batch", ...args],
      { env: { PATH: process.env.PATH ?? "", ...env }, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        clearTimeout(watchdog)
        resolve({
          code: error === null ? 0 : typeof error.code === "number" ? error.code : null,
          stdout,
          stderr,
          millis: performance.now() - started,
          hung
        })
      }
    )
    // A watchdog, not a wait: it only fires if the batch hangs.
    const watchdog = setTimeout(() => {
      hung = true
      child.kill("SIGKILL")
    }, limitMillis)
    child.stdin?.on("error", () => {})
    child.stdin?.end(input)
  })

describe("throttleRate", () => {
  it.effect("answers API requests with Defender's 429 and a short Retry-After; storage is never throttled", () =>
    Effect.gen(function*() {
      const sim = yield* DefenderSimulator.make({ faults: { throttleRate: 1, throttleRetryAfter: "2 seconds" } })
      const authorization = `Bearer ${Redacted.value(DefenderSimulator.STATIC_TOKEN)}`
      const link = yield* sim.handle(
        new Request(
          `https://api.security.microsoft.com/api/machineactions/${DefenderSimulator.ACTIONS.runScript}/GetLiveResponseResultDownloadLink(index=0)`,
          { headers: { authorization } }
        )
      )
      expect(link?.status).toBe(429)
      expect(link?.headers.get("retry-after")).toBe("2")
      const body = (yield* Effect.promise(() => link!.json())) as { error: { code: string; target: string } }
      expect(body.error.code).toBe("TooManyRequests")
      expect(body.error.target).toEqual(expect.any(String))
      expect(sim.received.map((r) => [r.endpoint, r.status, r.faults])).toEqual([["getResultLink", 429, ["throttle"]]])

      // The quota is untouched, so the same call succeeds once the fault is gone: a blob link to fetch.
      sim.setFaults({ throttleRate: 0 })
      const ok = yield* sim.handle(
        new Request(
          `https://api.security.microsoft.com/api/machineactions/${DefenderSimulator.ACTIONS.runScript}/GetLiveResponseResultDownloadLink(index=0)`,
          { headers: { authorization } }
        )
      )
      const url = ((yield* Effect.promise(() => ok!.json())) as { value: string }).value
      sim.setFaults({ throttleRate: 1 })
      const blob = yield* sim.handle(new Request(url))
      expect(blob?.status).toBe(200)
      expect(sim.count("blob", 200)).toBe(1)
      expect(sim.received.at(-1)!.faults).toEqual([])

      sim.setFaults({ throttleRate: 1, omitRetryAfter: true })
      const bare = yield* sim.handle(
        new Request(`https://api.security.microsoft.com/api/machineactions/${DefenderSimulator.ACTIONS.runScript}`, {
          headers: { authorization }
        })
      )
      expect(bare?.status).toBe(429)
      expect(bare?.headers.has("retry-after")).toBe(false)
    }))
})

describe("MDE_TIMEOUT", () => {
  const client = (timeout: string) =>
    Layer.build(
      DefenderClient.layerConfig().pipe(
        Layer.provide(Layer.merge(DefenderAuth.layerToken(DefenderSimulator.STATIC_TOKEN), DefenderRateLimiter.layer())),
        Layer.provide(Layer.unwrapEffect(Effect.map(DefenderSimulator.make(), DefenderSimulator.layerHttpClient)))
      )
    ).pipe(
      Effect.scoped,
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["MDE_TIMEOUT", timeout]])))
    )

  it.effect("takes 3s, 500ms, 2m and Effect durations; anything else is a configuration error", () =>
    Effect.gen(function*() {
      for (const ok of ["3s", "500ms", "2m", "1.5 seconds"]) expect(Exit.isSuccess(yield* Effect.exit(client(ok)))).toBe(true)
      for (const bad of ["0s", "-1s", "soon", "Infinity"]) {
        const exit = yield* Effect.exit(client(bad))
        expect(Exit.isFailure(exit) && String(exit.cause)).toContain("MDE_TIMEOUT")
      }
    }))
})

describe("batch under injected faults", { timeout: 120_000 }, () => {
  it(`${TOTAL} inputs under ~30 % faults: each answered exactly once, as a result or a typed error`, async () => {
    const scope = Effect.runSync(Scope.make())
    try {
      const { served, sim } = await Effect.runPromise(
        Effect.gen(function*() {
          const sim = yield* DefenderSimulator.make({
            // The quota out of the way: every 429 here is an injected one.
            rateLimits: [{ limit: 1_000_000, window: "1 minute" }],
            // About 30 % of requests: 5xx and dropped connections (retried with backoff), 429s
            // with a short Retry-After (each pauses every caller), trickling and cut bodies
            // (a typed transport error or timeout, then the body is read again from the same link).
            faults: {
              dropRate: 0.07,
              errorRate: 0.07,
              throttleRate: 0.10,
              throttleRetryAfter: "100 millis",
              trickleRate: 0.10,
              trickleDelay: "8 seconds",
              cutRate: 0.07,
              seed: 2024
            }
          })
          for (let a = 0; a < ACTIONS; a++) {
            sim.addTranscripts(actionId(a), Array.from({ length: PER_ACTION }, (_, i) => transcript(a, i)))
          }
          const served = yield* DefenderSimulator.serve(sim)
          return { sim, served }
        }).pipe(Scope.extend(scope))
      )

      // Input order interleaves the actions; line n asks for inputs[n - 1].
      const inputs = Array.from({ length: TOTAL }, (_, n) => ({ action: actionId(n % ACTIONS), index: Math.floor(n / ACTIONS) }))
      for (let m = 0; m < MISSING; m++) {
        inputs.splice(m * 50 + 7, 0, { action: `fa017000-dead-4000-8000-${m.toString(16).padStart(12, "0")}`, index: 0 })
      }
      const missing = new Set(inputs.filter((i) => i.action.includes("-dead-")).map((i) => i.action))
      const run = await batch(
        inputs.map((i) => JSON.stringify(i)).join("\n") + "\n",
        ["--concurrency", "100"],
        {
          MDE_API_URL: served.url,
          MDE_TOKEN: Redacted.value(DefenderSimulator.STATIC_TOKEN),
          MDE_DOWNLOAD_HOSTS: "127.0.0.1",
          // The client's own budget out of the way too, so the 429s' Retry-After is what paces the batch.
          MDE_RATE_LIMITS: "none",
          // The body idle limit: a trickled body (a chunk every 8 s) ends after 1 s.
          MDE_TIMEOUT: "1s"
        },
        100_000
      )
      expect(run.hung).toBe(false)
      // README: 0 means every line was answered, even when some say "ok": false.
      expect(run.code).toBe(0)
      expect(run.stderr).toBe("")

      // Exactly one line per input, matching its input line, action and index.
      expect(run.stdout.endsWith("\n")).toBe(true)
      const lines = run.stdout.slice(0, -1).split("\n").map((text) => JSON.parse(text))
      expect(lines).toHaveLength(TOTAL + MISSING)
      const seen = new Set<number>()
      const tags: Record<string, number> = {}
      let stalled = 0
      let stallLine = ""
      let results = 0
      for (const answer of lines) {
        expect(seen.has(answer.line)).toBe(false)
        seen.add(answer.line)
        const input = inputs[answer.line - 1]!
        expect([answer.action, answer.index]).toEqual([input.action, input.index])
        const a = Number.parseInt(input.action.slice(-12), 16)
        if (missing.has(input.action)) {
          expect(answer.ok === false && answer.error.tag).toBe("NotFound")
          continue
        }
        if (answer.ok === true) {
          results++
          expect(answer.transcript).toEqual({
            scriptName: `collect-${a}-${input.index}.ps1`,
            exitCode: input.index % 3,
            output: `action ${a} command ${input.index}\n` + "x".repeat(200),
            error: ""
          })
        } else {
          expect(answer.ok).toBe(false)
          expect(Object.keys(answer.error)).toEqual(["tag", "message"])
          tags[answer.error.tag] = (tags[answer.error.tag] ?? 0) + 1
          if (/the body stalled for 1s/.test(answer.error.message)) {
            stalled++
            stallLine = JSON.stringify(answer)
          }
        }
      }
      expect(seen.size).toBe(TOTAL + MISSING)

      // A real input fails only when its retries run out (a typed HttpError or Throttled, never
      // a defect or an "Unexpected"); under these rates that is rare: nearly all get their result.
      const errors = TOTAL - results
      expect(Object.keys(tags).filter((tag) => tag !== "HttpError" && tag !== "Throttled")).toEqual([])
      expect(results).toBeGreaterThanOrEqual(TOTAL * 0.97)
      // A trickled or cut body ended in its typed error and was read again from the same link.
      const blobs = sim.received.filter((r) => r.endpoint === "blob")
      const broken = blobs.filter((r) => r.faults.includes("trickle") || r.faults.includes("cut"))
      expect(broken.length).toBeGreaterThan(0)
      for (const r of broken) {
        const path = new URL(r.url).pathname
        expect(blobs.some((later) => later.at >= r.at && later !== r && new URL(later.url).pathname === path)).toBe(true)
      }

      // The simulator did inject about 30 % faults of every kind, and 429s with Retry-After.
      const count = (fault: DefenderSimulator.Fault) => sim.received.filter((r) => r.faults.includes(fault)).length
      const faulty = sim.received.filter((r) => r.faults.length > 0).length
      const figures = {
        requests: sim.received.length,
        faulty,
        drop: count("drop"),
        error: count("error"),
        throttle: count("throttle"),
        trickle: count("trickle"),
        cut: count("cut"),
        results,
        errors,
        tags,
        stalled,
        stallLine,
        seconds: Math.round(run.millis / 100) / 10
      }
      console.log(`batch under faults: ${JSON.stringify(figures)}`)
      expect(faulty / sim.received.length).toBeGreaterThan(0.2)
      expect(faulty / sim.received.length).toBeLessThan(0.4)
      for (const fault of ["drop", "error", "throttle", "trickle", "cut"] as const) expect(count(fault)).toBeGreaterThan(0)
      expect(sim.count("getResultLink", 429)).toBe(count("throttle"))
      expect(sim.received.filter((r) => r.status >= 500).length).toBe(count("error"))
      expect(sim.received.filter((r) => r.status === 0).length).toBe(count("drop"))
      // A trickle ends in the idle timeout (or, on a loaded machine, may miss the header
      // deadline first and be retried): never more stalls than trickles.
      expect(stalled).toBeLessThanOrEqual(count("trickle"))
      // Every input asked for a link at least once; retries are the only extra calls.
      expect(sim.count("getResultLink")).toBeGreaterThanOrEqual(TOTAL + MISSING)

      // No secret in the output: neither the token nor any link's signature.
      expect(run.stdout).not.toContain(Redacted.value(DefenderSimulator.STATIC_TOKEN))
      for (const r of sim.received.filter((r) => r.endpoint === "blob")) {
        const sig = new URL(r.url).searchParams.get("sig")!
        expect(run.stdout).not.toContain(sig)
      }
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  })
})

describe("batch: inputs that fail for an infrastructure reason", { timeout: 60_000 }, () => {
  it("a token endpoint that cannot be reached: every line answered, then exit 4 and the count on stderr", async () => {
    // A port nobody listens on: each token request is refused (and retried twice) in about 1.5 s.
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const { port } = probe.address() as { port: number }
        probe.close(() => resolve(port))
      })
    })
    const input = [
      JSON.stringify({ action: actionId(1), index: 0 }),
      "not a request",
      JSON.stringify({ action: actionId(2), index: 0 }),
      JSON.stringify({ action: actionId(3), index: 1 })
    ].join("\n") + "\n"
    const run = await batch(input, [], {
      AZURE_TENANT_ID: "contoso.onmicrosoft.com",
      AZURE_CLIENT_ID: "00000000-0000-4000-8000-000000000001",
      AZURE_CLIENT_SECRET: "batch-canary-secret",
      AZURE_AUTHORITY_HOST: `http://127.0.0.1:${port}`,
      MDE_API_URL: `http://127.0.0.1:${port}`
    }, 30_000)
    expect(run.hung).toBe(false)
    const answers = run.stdout.trim().split("\n").map((line) => JSON.parse(line) as { ok: boolean; error: { tag: string } })
    expect(answers.map((a) => a.error.tag).sort()).toEqual([
      "AuthenticationError",
      "AuthenticationError",
      "AuthenticationError",
      "InvalidInput"
    ])
    // Before: exit 0, as if the batch were done; the bad input line is not an infrastructure failure.
    expect(run.code).toBe(4)
    expect(run.stderr).toContain("3 inputs failed for infrastructure reasons (token endpoint unreachable: 3)\n")
    expect(run.stderr).toMatch(/^error: AuthenticationError: /m)
    expect(run.stderr + run.stdout).not.toContain("batch-canary-secret")
  })
})
