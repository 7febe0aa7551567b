/**
 * Issue 11, item 8: the shared budget's Redis goes away while calls are pending. A
 * redis-server of this file's own (on a loopback port it keeps) is stopped, and restarted
 * on the same port or not; the limiter, and the real `batch` command against a served
 * simulator, must wait for it (bounded by `outageWait` / `MDE_REDIS_OUTAGE_WAIT`) instead
 * of failing every pending call.
 *
 * Real time, and why: a real redis-server process is stopped and restarted, and ioredis
 * reconnects on the real clock; every wait here is a few seconds at most.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Exit, Layer, Redacted, Scope } from "effect"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import { freePort } from "../scripts/redis.ts"
import { needServerBinary } from "./utils/servers.ts"
import { CLI } from "./utils/cli.ts"

const redisServer = needServerBinary("redis")

// Real seconds: a real redis-server's stop and restart (see the file's head).
const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

/** A redis-server on `port` (no persistence); `stop` waits until it has exited and the port is free. */
const startRedis = async (port: number) => {
  const child: ChildProcess = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: ["ignore", "pipe", "inherit"] }
  )
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  await new Promise<void>((resolve, reject) => {
    let seen = ""
    child.once("exit", (code) => reject(new Error(`redis-server exited with ${code}`)))
    child.stdout!.on("data", (chunk: Buffer) => {
      seen += chunk.toString()
      if (seen.includes("Ready to accept connections")) resolve()
    })
  })
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      child.kill("SIGKILL")
      await exited
    }
  }
}

type RunningRedis = Awaited<ReturnType<typeof startRedis>>

/** Runs `body` with a redis-server of its own, stopped afterwards whatever happened. */
const withRedis = async <A>(body: (redis: { current: RunningRedis; port: number }) => Promise<A>): Promise<A> => {
  const port = await freePort()
  const redis = { current: await startRedis(port), port }
  try {
    return await body(redis)
  } finally {
    await redis.current.stop()
  }
}

/** Builds a Redis limiter in a scope of its own, closed after `body`. */
const withLimiter = async <A>(
  layer: Layer.Layer<DefenderRateLimiter.DefenderRateLimiter, unknown>,
  body: (limiter: DefenderRateLimiter.DefenderRateLimiter) => Promise<A>
): Promise<A> => {
  const scope = Effect.runSync(Scope.make())
  try {
    const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
    return await body(context.unsafeMap.values().next().value as DefenderRateLimiter.DefenderRateLimiter)
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const key = () => `outage-${crypto.randomUUID()}`

describe.skipIf(redisServer.skip)("a Redis outage under the limiter", () => {
  it("stopped, then restarted 3 s later: every pending call waits, in order, and none fails", async () => {
    await withRedis(async (redis) => {
      const layer = DefenderRateLimiter.layerRedis({ url: redis.current.url, key: key(), limits: [{ limit: 1000, window: "1 minute" }] })
      await withLimiter(layer, async (limiter) => {
        await Effect.runPromise(limiter.withPermit(Effect.void))
        await redis.current.stop()
        const order: Array<number> = []
        const calls = Effect.runPromise(Effect.forEach(
          Array.from({ length: 50 }, (_, i) => i),
          (i) => Effect.either(limiter.withPermit(Effect.sync(() => order.push(i)))),
          { concurrency: "unbounded" }
        ))
        await sleep(3000)
        expect(order).toEqual([]) // nothing ran without the budget
        redis.current = await startRedis(redis.port)
        const backAt = performance.now()
        const results = await calls
        const tookAfterRestart = performance.now() - backAt
        expect(results.filter(Either.isLeft)).toEqual([])
        expect(order).toEqual(Array.from({ length: 50 }, (_, i) => i))
        // The poll backs off to once a second, ioredis reconnects within 2 s.
        expect(tookAfterRestart).toBeLessThan(4000)
      })
    })
  }, 20_000)

  it("an outage longer than outageWait: RateLimiterUnavailable after the wait, and the call is never made", async () => {
    await withRedis(async (redis) => {
      const layer = DefenderRateLimiter.layerRedis({ url: redis.current.url, key: key(), outageWait: "1 second" })
      await withLimiter(layer, async (limiter) => {
        await Effect.runPromise(limiter.withPermit(Effect.void))
        await redis.current.stop()
        let calls = 0
        const started = performance.now()
        const results = await Effect.runPromise(Effect.forEach(
          Array.from({ length: 5 }),
          () => Effect.either(limiter.withPermit(Effect.sync(() => calls++))),
          { concurrency: "unbounded" }
        ))
        const took = performance.now() - started
        expect(calls).toBe(0)
        for (const result of results) {
          expect(Either.getLeft(result).pipe((e) => e._tag === "Some" && e.value._tag)).toBe("RateLimiterUnavailable")
        }
        // Every caller gives up together at the end of the outage's wait, not one after another.
        expect(took).toBeGreaterThanOrEqual(950)
        expect(took).toBeLessThan(2500)
      })
    })
  }, 20_000)

  it("layerConfig reads the wait from MDE_REDIS_OUTAGE_WAIT", async () => {
    await withRedis(async (redis) => {
      const provider = ConfigProvider.fromMap(
        new Map([["MDE_REDIS_URL", redis.current.url], ["MDE_REDIS_KEY", key()], ["MDE_REDIS_OUTAGE_WAIT", "1500ms"]])
      )
      const layer = DefenderRateLimiter.layerConfig().pipe(Layer.provide(Layer.setConfigProvider(provider)))
      await withLimiter(layer, async (limiter) => {
        await Effect.runPromise(limiter.withPermit(Effect.void))
        await redis.current.stop()
        const started = performance.now()
        const result = await Effect.runPromise(Effect.either(limiter.withPermit(Effect.void)))
        const took = performance.now() - started
        expect(Either.isLeft(result)).toBe(true)
        // 1.5 s, neither at once (no wait) nor the 30 s default.
        expect(took).toBeGreaterThanOrEqual(1450)
        expect(took).toBeLessThan(3500)
      })
    })
  }, 20_000)
})

// ---------------------------------------------------------------------------
// The batch command
// ---------------------------------------------------------------------------

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * `cli/main.ts batch` with `lines` requests for the served simulator; `onAnswered(n)` is
 * called as answers come out (to stop Redis mid-batch). Killed after `limitMillis`.
 */
const batch = (
  input: string,
  env: Record<string, string>,
  onAnswered: (answered: number) => void,
  limitMillis = 60_000
) =>
  new Promise<Run>((resolve) => {
    const child = execFile(
      process.execPath,
      [...CLI, "batch", "--concurrency", "20"],
      { env: { PATH: process.env.PATH ?? "", ...env }, encoding: "utf8", maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        clearTimeout(watchdog)
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : null, stdout, stderr })
      }
    )
    let answered = 0
    child.stdout!.on("data", (chunk: string) => {
      answered += chunk.split("\n").length - 1
      onAnswered(answered)
    })
    // A watchdog, not a wait: it only fires if the batch hangs.
    const watchdog = setTimeout(() => child.kill("SIGKILL"), limitMillis)
    child.stdin!.end(input)
  })

/** A served simulator with `n` transcripts; its environment for the CLI; closed after `body`. */
const withSimulator = async <A>(
  n: number,
  body: (env: Record<string, string>, input: string, links: () => number) => Promise<A>
): Promise<A> => {
  const scope = Effect.runSync(Scope.make())
  try {
    const { served, sim } = await Effect.runPromise(
      Effect.gen(function*() {
        // Far above the batch's own budget: the simulator's quota is not what is tested.
        const sim = yield* DefenderSimulator.make({ rateLimits: [{ limit: 100_000, window: "1 minute" }] })
        return { sim, served: yield* DefenderSimulator.serve(sim) }
      }).pipe(Scope.extend(scope))
    )
    const ids = Array.from({ length: n }, (_, i) => `0000beef-0000-4000-8000-${i.toString(16).padStart(12, "0")}`) // batch takes GUIDs only
    for (const id of ids) {
      sim.addTranscripts(id, [JSON.stringify({ script_name: "a.ps1", exit_code: 0, script_output: id, script_errors: "" })])
    }
    const env = {
      MDE_API_URL: served.url,
      MDE_TOKEN: Redacted.value(DefenderSimulator.STATIC_TOKEN),
      MDE_DOWNLOAD_HOSTS: "127.0.0.1"
    }
    const input = ids.map((id) => JSON.stringify({ action: id, index: 0 })).join("\n") + "\n"
    return await body(env, input, () => sim.received.filter((r) => r.endpoint === "getResultLink").length)
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const answersOf = (run: Run) =>
  run.stdout.trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as { ok: boolean; error?: { tag: string } })

describe.skipIf(redisServer.skip)("a Redis outage under batch", () => {
  it("Redis restarted 3 s later: all 200 inputs answered ok, exit 0", async () => {
    await withRedis((redis) =>
      withSimulator(200, async (env, input) => {
        let stopped: Promise<void> | undefined
        const run = await batch(input, {
          ...env,
          MDE_REDIS_URL: redis.current.url,
          MDE_REDIS_KEY: key(),
          MDE_RATE_LIMITS: "100/1s"
        }, (answered) => {
          if (answered < 20 || stopped !== undefined) return
          stopped = redis.current.stop().then(() => sleep(3000)).then(async () => {
            redis.current = await startRedis(redis.port)
          })
        })
        await stopped
        const answers = answersOf(run)
        expect(answers).toHaveLength(200)
        expect(answers.filter((a) => !a.ok)).toEqual([])
        expect(run.code).toBe(0)
      })
    )
  }, 90_000)

  it("an outage longer than MDE_REDIS_OUTAGE_WAIT: exit 16 and the count of inputs it failed on stderr", async () => {
    await withRedis((redis) =>
      withSimulator(60, async (env, input, links) => {
        let stopped: Promise<void> | undefined
        let linksBefore = 0
        const run = await batch(input, {
          ...env,
          MDE_REDIS_URL: redis.current.url,
          MDE_REDIS_KEY: key(),
          MDE_RATE_LIMITS: "20/1s",
          MDE_REDIS_OUTAGE_WAIT: "1s"
        }, (answered) => {
          if (answered < 10 || stopped !== undefined) return
          linksBefore = links()
          stopped = redis.current.stop()
        })
        await stopped
        const answers = answersOf(run)
        expect(answers).toHaveLength(60)
        const failed = answers.filter((a) => !a.ok)
        expect(failed.length).toBeGreaterThan(0)
        for (const a of failed) expect(a.error?.tag).toBe("RateLimiterUnavailable")
        // Nothing reached the API without a permit: the links sent are the answers that are ok
        // (and at most the calls in flight when Redis went away).
        expect(links()).toBe(answers.length - failed.length)
        expect(linksBefore).toBeLessThanOrEqual(links())
        expect(run.code).toBe(16)
        expect(run.stderr).toContain(
          `${failed.length} inputs failed for infrastructure reasons (Redis unreachable: ${failed.length})`
        )
        expect(run.stderr).toMatch(/^error: RateLimiterUnavailable: /m)
      })
    )
  }, 90_000)
})
