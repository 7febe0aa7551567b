/**
 * SIGINT and SIGTERM. The first one interrupts the main fiber (NodeRuntime.runMain does
 * that for both), so a running session's cancel is sent before the CLI exits with 130
 * (SIGINT) or 143 (SIGTERM). A second one while that cleanup is still in flight says on
 * stderr what may still be running on the service, then exits at once.
 */

/** The signals the CLI handles, and the exit code of each (128 + its number). */
const CODES = { SIGINT: 130, SIGTERM: 143 } as const

type Signal = keyof typeof CODES

let received: Signal | undefined
let running: string | undefined

/** The exit code of an interruption: 143 after SIGTERM, else 130 (Ctrl-C). */
export const interruptedExitCode = (): number => CODES[received ?? "SIGINT"]

/**
 * Names what a cleanup would be waiting for on the service (e.g. "machine action <id> on
 * <machine>"), for the second signal's message; `undefined` once nothing is left to wait for.
 */
export const mayStillRun = (what: string | undefined): void => {
  running = what
}

/** On a terminal, clears the line first (the status line, or the terminal's echoed `^C`). */
const clear = (): string => (process.stderr.isTTY ? "\r\x1b[2K" : "")

/** Installs the handlers; call once, before `NodeRuntime.runMain`. */
export const installSignalHandlers = (): void => {
  const on = (signal: Signal) => () => {
    if (received === undefined) {
      received = signal
      if (running !== undefined) {
        process.stderr.write(`${clear()}interrupted (${signal}): cancelling ${running}; interrupt again to exit without waiting\n`)
      }
      return
    }
    const what = running === undefined
      ? "exiting without waiting for the cleanup"
      : `exiting without waiting for the cancel; ${running} may still be running`
    process.stderr.write(`${clear()}interrupted again (${signal}): ${what}\n`)
    process.exit(CODES[signal])
  }
  process.on("SIGINT", on("SIGINT"))
  process.on("SIGTERM", on("SIGTERM"))
}
