/**
 * SIGINT and SIGTERM. The first one interrupts the main fiber, so a running session's
 * cancel is sent before the CLI exits with 130 (SIGINT) or 143 (SIGTERM). A second one
 * while that cleanup is still in flight says on stderr what may still be running on the
 * service, then exits at once.
 *
 * A campaign asks for two stages instead (`drainOnFirstSignal`): the first SIGINT only
 * drains it (no new session starts, the alive ones are still collected), the second
 * interrupts the main fiber (the engine cancels each alive action once), a third exits at
 * once. SIGTERM always interrupts at once: a supervisor that sends it will not wait for a
 * drain that can take as long as the longest action.
 */
import { makeRunMain, type RunMain } from "@effect/platform/Runtime"

/** The signals the CLI handles, and the exit code of each (128 + its number). */
const CODES = { SIGINT: 130, SIGTERM: 143 } as const

type Signal = keyof typeof CODES

let received: Signal | undefined
let running: string | undefined
let drain: ((signal: Signal) => void) | undefined
let drained = false
let interrupted = false
let interruptMain: (() => void) | undefined

/** The exit code of an interruption: 143 after SIGTERM, else 130 (Ctrl-C). */
export const interruptedExitCode = (): number => CODES[received ?? "SIGINT"]

/**
 * Names what a cleanup would be waiting for on the service (e.g. "machine action <id> on
 * <machine>"), for the second signal's message; `undefined` once nothing is left to wait for.
 */
export const mayStillRun = (what: string | undefined): void => {
  running = what
}

/**
 * While registered (until the returned function is called), the first SIGINT calls
 * `onDrain` instead of interrupting the main fiber; the next signal interrupts it.
 */
export const drainOnFirstSignal = (onDrain: (signal: "SIGINT") => void): () => void => {
  drain = onDrain as (signal: Signal) => void
  return () => {
    drain = undefined
  }
}

/** On a terminal, clears the line first (the status line, or the terminal's echoed `^C`). */
const clear = (): string => (process.stderr.isTTY ? "\r\x1b[2K" : "")

const interrupt = (signal: Signal): void => {
  interrupted = true
  received ??= signal
  interruptMain?.()
}

const onSignal = (signal: Signal) => () => {
  if (!interrupted && !drained && signal === "SIGINT" && drain !== undefined) {
    drained = true
    received = signal
    drain(signal)
    return
  }
  if (!interrupted) {
    if (drained || running !== undefined) {
      process.stderr.write(
        `${clear()}interrupted${drained ? " again" : ""} (${signal}): cancelling ${
          running ?? "what is still running"
        }; interrupt again to exit without waiting\n`
      )
    }
    interrupt(signal)
    return
  }
  const what = running === undefined
    ? "exiting without waiting for the cleanup"
    : `exiting without waiting for the cancel; ${running} may still be running`
  process.stderr.write(`${clear()}interrupted again (${signal}): ${what}\n`)
  process.exit(CODES[signal])
}

let closed = false

/** Whether stdout's reader has gone away (EPIPE): what is still written is dropped. */
export const stdoutClosed = (): boolean => closed

/**
 * Keeps an 'error' listener on stdout for the whole run: a reader that closes the pipe
 * (`| head`) makes Node emit EPIPE there, which without a listener is an uncaught
 * exception and a stack trace. Noted instead, and the process ends quietly with
 * `exitCode` — also when the error arrives after the last write, once the command is done.
 * Any other stdout error is noted the same way.
 */
export const watchStdout = (exitCode: number): void => {
  process.stdout.on("error", () => {
    closed = true
    if (!process.exitCode) process.exitCode = exitCode
  })
}

/** Installs the handlers; call once, before `runMain`. */
export const installSignalHandlers = (): void => {
  process.on("SIGINT", onSignal("SIGINT"))
  process.on("SIGTERM", onSignal("SIGTERM"))
}

/**
 * `NodeRuntime.runMain`, with the signals left to the handlers above (NodeRuntime's own
 * interrupt the main fiber on the first signal, which would leave a campaign no drain).
 */
export const runMain: RunMain = makeRunMain(({ fiber, teardown }) => {
  const keepAlive = setInterval(() => {}, 2 ** 31 - 1)
  interruptMain = () => fiber.unsafeInterruptAsFork(fiber.id())
  fiber.addObserver((exit) => {
    clearInterval(keepAlive)
    interruptMain = undefined
    teardown(exit, (code) => {
      // A signal may have left handles open (a socket being cancelled): exit as the signal asked.
      if (received !== undefined || code !== 0) process.exit(code)
    })
  })
})
