/**
 * The server side of the download benchmark, run as its own process so the result's bytes
 * (held in memory by the simulator) never count in the client's RSS.
 *
 *   node --import tsx bench/download-server.ts <bytes>
 *
 * Serves a simulator on 127.0.0.1 with one GetFile action whose result is `<bytes>` long,
 * prints one JSON line (`ServerInfo`) on stdout when ready, and stops when stdin closes
 * (the benchmark ends it that way, so it cannot outlive its parent) or on SIGTERM.
 */
import { Cause, Effect, Fiber, Redacted } from "effect"
import { createHash } from "node:crypto"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"

/** What the server prints once it listens. */
export interface ServerInfo {
  readonly url: string
  readonly machineActionId: string
  readonly index: number
  readonly bytes: number
  /** Hex MD5 of the result, so the benchmark can check what curl and the library saved. */
  readonly md5: string
  readonly token: string
}

export const MACHINE_ACTION_ID = "be4c0000-0000-4000-8000-00000000d011"

/**
 * `size` bytes that repeat with a period of 1 MiB + 7: cheap to build (a `fill`), and no
 * chunk boundary of a power of two lines up with the pattern, so a misplaced chunk changes
 * the MD5.
 */
export const content = (size: number): Uint8Array => {
  const block = new Uint8Array(1024 * 1024 + 7).map((_, i) => (i * 2654435761) >>> 24)
  return Buffer.allocUnsafe(size).fill(block)
}

const main = Effect.scoped(Effect.gen(function*() {
  const size = Number(process.argv[2])
  if (!Number.isSafeInteger(size) || size <= 0) return yield* Effect.dieMessage("usage: download-server.ts <bytes>")
  const bytes = content(size)
  const md5 = createHash("md5").update(bytes).digest("hex")
  // The bench runs one GET after another: no quota worth the name, no faults.
  const sim = yield* DefenderSimulator.make({ rateLimits: [{ limit: 1_000_000, window: "1 minute" }] })
  sim.addFiles(MACHINE_ACTION_ID, [{ path: "C:\\bench\\result.bin", bytes }])
  const served = yield* DefenderSimulator.serve(sim)
  const info: ServerInfo = {
    url: served.url,
    machineActionId: MACHINE_ACTION_ID,
    index: 0,
    bytes: size,
    md5,
    token: Redacted.value(DefenderSimulator.STATIC_TOKEN)
  }
  process.stdout.write(`${JSON.stringify(info)}\n`)
  return yield* Effect.never
}))

const fiber = Effect.runFork(main)
const stop = () => Effect.runFork(Fiber.interrupt(fiber))
process.stdin.on("end", stop).on("close", stop).resume()
process.on("SIGTERM", stop)
fiber.addObserver((exit) => {
  if (exit._tag === "Failure" && !Cause.isInterruptedOnly(exit.cause)) {
    process.stderr.write(`${Cause.pretty(exit.cause)}\n`)
    process.exitCode = 1
  }
})
