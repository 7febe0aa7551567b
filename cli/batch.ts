/**
 * `batch`: many transcripts from JSON lines on stdin, one JSON line per input
 * line on stdout, in completion order — every line answered exactly once,
 * failures included. Items share the CLI's one `DefenderClient`, so the rate
 * budget (`MDE_RATE_LIMITS`) applies to the batch as a whole.
 *
 * Input is streamed: at most `--concurrency` items are in flight and only a
 * small read-ahead buffer is held, so a pipeline can feed any number of lines.
 * No item can hang the batch: each attempt, and each pause in a transcript's
 * body, is bounded by the client's `timeout` (`MDE_TIMEOUT`, default 30 s), so a
 * trickling body is answered with an `HttpError` ("the body stalled for …").
 *
 * Every line is answered even when the infrastructure fails, but such a run does not
 * exit 0: when any input failed for a reason outside it (the shared budget's Redis or
 * the token endpoint unreachable), stderr says how many, and the batch fails with the
 * first such error (exit 16 or 4), so a pipeline can tell "done" from "try again".
 */
import { Command, Options } from "@effect/cli"
import * as NodeStream from "@effect/platform-node/NodeStream"
import { Cause, Chunk, Clock, Duration, Effect, Fiber, Option, Schedule, Stream } from "effect"
import * as Fs from "node:fs"
import {
  type AuthenticationError,
  type DefenderClient,
  type DefenderError,
  DefenderRateLimiter,
  LiveResponse,
  type RateLimiterUnavailable
} from "../mod.ts"
import { isGuid } from "./ids.ts"

/** The longest input line accepted; a longer one is answered with `InvalidInput` without being kept in memory. */
export const MAX_LINE_BYTES: number = 64 * 1024

/** stdout could not be written (e.g. the reader went away): the CLI exits with 12. */
export class OutputError {
  readonly _tag = "OutputError"
  constructor(readonly message: string) {}
}

// ---------------------------------------------------------------------------
// Input: lines, then items
// ---------------------------------------------------------------------------

/** One input line: its 1-based number and its text, or `undefined` text when it was longer than the limit. */
export interface RawLine {
  readonly line: number
  readonly text: string | undefined
}

/**
 * Splits a byte stream into numbered lines (`\n` or `\r\n`; a last line
 * without a newline counts). A line longer than `maxLineBytes` is not kept:
 * its bytes are counted and dropped, and it comes out with `text: undefined`.
 */
export const splitLines = (maxLineBytes: number = MAX_LINE_BYTES) =>
<E, R>(bytes: Stream.Stream<Uint8Array, E, R>): Stream.Stream<RawLine, E, R> =>
  Stream.suspend(() => {
    let parts: Array<Uint8Array> = []
    let size = 0
    let overlong = false
    let pending = false
    let count = 0
    const add = (slice: Uint8Array) => {
      pending = true
      size += slice.length
      if (overlong) return
      if (size > maxLineBytes) {
        overlong = true
        parts = []
      } else if (slice.length > 0) {
        parts.push(slice)
      }
    }
    const finish = (): RawLine => {
      count++
      let text: string | undefined
      if (!overlong) {
        text = Buffer.concat(parts).toString("utf8")
        if (text.endsWith("\r")) text = text.slice(0, -1)
        if (count === 1 && text.startsWith("\uFEFF")) text = text.slice(1)
      }
      parts = []
      size = 0
      overlong = false
      pending = false
      return { line: count, text }
    }
    return bytes.pipe(
      Stream.mapConcat((chunk): Array<RawLine> => {
        const out: Array<RawLine> = []
        let start = 0
        for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
          add(chunk.subarray(start, nl))
          out.push(finish())
          start = nl + 1
        }
        if (start < chunk.length) add(chunk.subarray(start))
        return out
      }),
      Stream.concat(Stream.suspend(() => (pending ? Stream.make(finish()) : Stream.empty)))
    )
  })

/** A line to answer: a request, or a line that is not one. */
export type Item =
  | { readonly _tag: "Request"; readonly line: number; readonly action: string; readonly index: number }
  | {
    readonly _tag: "Invalid"
    readonly line: number
    readonly action: string | null
    readonly index: number | null
    readonly message: string
  }

const invalid = (line: number, message: string, action: string | null = null): Item => ({
  _tag: "Invalid",
  line,
  action,
  index: null,
  message
})

/** Whether `text` is a machine action id (a GUID, as `--action` must be), so nothing is sent for one that cannot be. */
export const isMachineActionId = (text: string): boolean => text === text.trim() && isGuid(text)

/** The keys a line may name its machine action id under, in the order they are looked at. */
const ID_KEYS = ["action", "machineActionId", "id"] as const

const EXPECTED = `expected {"action": "<machine action id>", "index": 0} or a bare machine action id`

/** At most 80 characters of what a line gave, for a message. */
const shown = (value: unknown): string => {
  const text = JSON.stringify(value) ?? String(value)
  return text.length > 80 ? `${text.slice(0, 77)}…` : text
}

/** `index`: absent (0), a non-negative integer, or a string of digits (`"2"`). */
const readIndex = (index: unknown): number | undefined => {
  if (index === undefined) return 0
  const n = typeof index === "string" && /^\d{1,15}$/.test(index) ? Number(index) : index
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0 ? n : undefined
}

/** The object's machine action id under one of `ID_KEYS`, or why there is none. */
const readId = (line: number, object: Record<string, unknown>): { readonly id: string } | { readonly problem: string } => {
  const given = ID_KEYS.filter((key) => object[key] !== undefined)
  if (given.length === 0) {
    return { problem: `line ${line} has no machine action id: ${EXPECTED} ("id" and "machineActionId" work as well)` }
  }
  const values = given.map((key) => object[key])
  const key = given[0]!
  const id = values[0]
  if (typeof id !== "string") return { problem: `line ${line}: "${key}" must be a string, got ${shown(id)}` }
  if (values.some((v) => v !== id)) {
    return { problem: `line ${line} names different machine action ids under ${given.map((k) => `"${k}"`).join(" and ")}` }
  }
  return { id }
}

/** A request for `id` (trimmed) at `index`, or `InvalidInput` when the id is not a GUID. */
const request = (line: number, id: string, index: number, what: string): Item => {
  const action = id.trim()
  return isMachineActionId(action)
    ? { _tag: "Request", line, action, index }
    : invalid(line, `line ${line}: ${what} is not a machine action id (a GUID): ${shown(id)}`, id)
}

/**
 * Reads one input line: a JSON object that names the machine action id as `action`,
 * `machineActionId` or `id`, with an optional `index` (default 0; a number or a
 * string of digits), or a bare id (the whole line a GUID, quoted or not). Blank lines
 * give `None`; anything else gives exactly one item. An id that is not a GUID is
 * `InvalidInput`, so nothing is sent for it.
 */
export const parseLine = (raw: RawLine): Option.Option<Item> => {
  const { line, text } = raw
  if (text === undefined) {
    return Option.some(invalid(line, `line ${line} is longer than ${MAX_LINE_BYTES} bytes`))
  }
  const trimmed = text.trim()
  if (trimmed === "") return Option.none()
  if (isMachineActionId(trimmed)) return Option.some({ _tag: "Request", line, action: trimmed, index: 0 })
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return Option.some(invalid(line, `line ${line} is neither JSON nor a machine action id: ${EXPECTED}`))
  }
  if (typeof value === "string") return Option.some(request(line, value, 0, "the string"))
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return Option.some(invalid(line, `line ${line} is not a JSON object: ${EXPECTED}`))
  }
  const object = value as Record<string, unknown>
  const id = readId(line, object)
  if ("problem" in id) return Option.some(invalid(line, id.problem))
  const index = readIndex(object.index)
  if (index === undefined) {
    return Option.some(
      invalid(line, `line ${line}: "index" must be a non-negative integer, got ${shown(object.index)}`, id.id)
    )
  }
  const key = ID_KEYS.find((k) => object[k] !== undefined)!
  return Option.some(request(line, id.id, index, `"${key}"`))
}

// ---------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------

/** One output line. */
export type Answer =
  | {
    readonly line: number
    readonly action: string
    readonly index: number
    readonly ok: true
    readonly transcript: {
      readonly scriptName: string
      readonly exitCode: number
      readonly output: string
      readonly error: string
    }
  }
  | {
    readonly line: number
    readonly action: string | null
    readonly index: number | null
    readonly ok: false
    readonly error: { readonly tag: string; readonly message: string }
  }

const failed = (item: Item, tag: string, message: string): Answer => ({
  line: item.line,
  action: item.action,
  index: item.index,
  ok: false,
  error: { tag, message }
})

// ---------------------------------------------------------------------------
// Failures of the infrastructure, not of an input
// ---------------------------------------------------------------------------

/** An error that says nothing about the input it answers: trying again later may well succeed. */
export type InfrastructureError = RateLimiterUnavailable | AuthenticationError

/** Why an input failed for an infrastructure reason, as the stderr count names it; `undefined` for any other error. */
export const infrastructureReason = (error: DefenderError): string | undefined => {
  if (error._tag === "RateLimiterUnavailable") return "Redis unreachable"
  if (error._tag === "AuthenticationError" && error.reason === "TokenEndpointUnreachable") {
    return "token endpoint unreachable"
  }
  return undefined
}

/** The inputs that failed for an infrastructure reason: a count per reason and the first error of each. */
export interface InfrastructureFailures {
  readonly byReason: Map<string, { count: number; readonly error: InfrastructureError }>
}

/** `3 inputs failed for infrastructure reasons (Redis unreachable: 2, token endpoint unreachable: 1)`, or `undefined` if none did. */
export const infrastructureSummary = (failures: InfrastructureFailures): string | undefined => {
  let total = 0
  const parts: Array<string> = []
  for (const [reason, { count }] of failures.byReason) {
    total += count
    parts.push(`${reason}: ${count}`)
  }
  if (total === 0) return undefined
  return `${total} ${total === 1 ? "input" : "inputs"} failed for infrastructure reasons (${parts.join(", ")})`
}

/** The error the batch fails with: Redis first (exit 16), then the token endpoint (exit 4). */
const infrastructureError = (failures: InfrastructureFailures): InfrastructureError | undefined => {
  let first: InfrastructureError | undefined
  for (const { error } of failures.byReason.values()) {
    if (error._tag === "RateLimiterUnavailable") return error
    first ??= error
  }
  return first
}

const noteInfrastructure = (failures: InfrastructureFailures, error: DefenderError): void => {
  const reason = infrastructureReason(error)
  if (reason === undefined) return
  const seen = failures.byReason.get(reason)
  if (seen !== undefined) seen.count++
  else failures.byReason.set(reason, { count: 1, error: error as InfrastructureError })
}

/** Answers one item; never fails (a defect becomes an `Unexpected` answer), only interruption stops it. */
const answer = (
  item: Item,
  infrastructure: InfrastructureFailures
): Effect.Effect<Answer, never, DefenderClient.DefenderClient> => {
  if (item._tag === "Invalid") return Effect.succeed(failed(item, "InvalidInput", item.message))
  return LiveResponse.getTranscript({ machineActionId: item.action, index: item.index }).pipe(
    Effect.map((t): Answer => ({
      line: item.line,
      action: item.action,
      index: item.index,
      ok: true,
      transcript: { scriptName: t.scriptName, exitCode: t.exitCode, output: t.output, error: t.error }
    })),
    Effect.catchAll((error) =>
      Effect.sync(() => {
        noteInfrastructure(infrastructure, error)
        return failed(item, error._tag, error.message)
      })
    ),
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.failCause(cause)
        : Effect.succeed(failed(item, "Unexpected", firstLine(cause)))
    )
  )
}

const firstLine = (cause: Cause.Cause<unknown>): string =>
  Option.match(Cause.dieOption(cause), {
    onNone: () => Cause.pretty(cause).split("\n")[0] ?? "unknown failure",
    onSome: (defect) => (defect instanceof Error ? defect.message : String(defect)).split("\n")[0] ?? "unknown failure"
  })

// ---------------------------------------------------------------------------
// Output and progress
// ---------------------------------------------------------------------------

interface Stats {
  total: number
  /** The non-blank lines of stdin counted up front, when stdin is a regular file. */
  expected: number | undefined
  done: number
  ok: number
  failed: number
  ended: boolean
  readonly startedAt: number
}

/** Writes to stdout and waits until it is flushed, so a slow reader slows the batch instead of filling memory. */
const writeStdout = (text: string): Effect.Effect<void, OutputError> =>
  Effect.async<void, OutputError>((resume) => {
    process.stdout.write(text, (error) => {
      resume(error ? Effect.fail(new OutputError(`cannot write to stdout: ${error.message}`)) : Effect.void)
    })
  })

/** Keeps an 'error' listener on stdout while the batch runs: a closed pipe fails the write instead of crashing. */
const guardStdout = Effect.acquireRelease(
  Effect.sync(() => {
    const ignore = () => {}
    process.stdout.on("error", ignore)
    return ignore
  }),
  (ignore) => Effect.sync(() => process.stdout.off("error", ignore))
)

/** `12s`, `3m05s`, `2h07m`. */
export const formatDuration = (seconds: number): string => {
  const s = Math.max(0, Math.round(seconds))
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
}

/** One limit of the rate budget, in milliseconds. */
export interface Quota {
  readonly limit: number
  readonly windowMs: number
}

/** The budget's limits as `Quota`s (a limit that is not a positive number of calls per positive window is left out). */
export const quotasOf = (limits: ReadonlyArray<DefenderRateLimiter.RateLimit>): ReadonlyArray<Quota> =>
  limits
    .map((l) => ({ limit: l.limit, windowMs: Duration.toMillis(Duration.decode(l.window)) }))
    .filter((q) => q.limit > 0 && q.windowMs > 0 && Number.isFinite(q.windowMs))

/**
 * The least time, in seconds from `elapsedMs` after the start, before the batch's
 * `calls`-th call can be made under `quotas`: each limit lets `limit` calls through
 * per rolling window, so call `k` (from 0) comes no earlier than `⌊k / limit⌋` windows
 * after the first. A lower bound — it assumes the budget was unused at the start.
 */
export const quotaSeconds = (quotas: ReadonlyArray<Quota>, calls: number, elapsedMs: number): number => {
  if (calls <= 0) return 0
  let wait = 0
  for (const q of quotas) {
    wait = Math.max(wait, (Math.floor((calls - 1) / q.limit) * q.windowMs - elapsedMs) / 1000)
  }
  return wait
}

/** The ETA part: the larger of the wait at the observed rate and the wait the quota imposes (then marked `(quota)`). */
const eta = (remaining: number, ratePerSecond: number, quotaWait: number): string => {
  const byRate = ratePerSecond > 0 ? Math.ceil(remaining / ratePerSecond) : undefined
  const byQuota = Math.ceil(quotaWait)
  if (byRate === undefined) return byQuota > 0 ? `ETA ≥${formatDuration(byQuota)} (quota)` : "ETA ?"
  return byQuota > byRate ? `ETA ${formatDuration(byQuota)} (quota)` : `ETA ${formatDuration(byRate)}`
}

/**
 * The progress line: `done/total` (`+` while the total is not known yet: stdin is a
 * pipe still open), results/s, the ETA once the total is known — the larger of the
 * wait at the observed rate and `quotaWait` (seconds, from `quotaSeconds`) — and quota waiters.
 */
export const statusLine = (
  s: { readonly done: number; readonly total: number; readonly ended: boolean },
  ratePerSecond: number,
  waiting: number,
  quotaWait: number = 0
): string => {
  const parts = [`${s.done}/${s.total}${s.ended ? "" : "+"} done`, `${ratePerSecond.toFixed(1)}/s`]
  if (s.ended && s.done < s.total) parts.push(eta(s.total - s.done, ratePerSecond, quotaWait))
  if (waiting > 0) parts.push(`waiting for quota (${waiting})`)
  return parts.join(" · ")
}

const isBlankByte = (b: number): boolean => b === 0x20 || b === 0x09 || b === 0x0d || b === 0x0b || b === 0x0c

/** Counts the non-blank lines in `bytes`, carrying whether the current line is still blank across chunks. */
export const countNonBlankLines = (bytes: Uint8Array, state: { blank: boolean; count: number }): void => {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!
    if (b === 10) {
      if (!state.blank) state.count++
      state.blank = true
    } else if (state.blank && !isBlankByte(b)) {
      state.blank = false
    }
  }
}

const COUNT_CHUNK = 1024 * 1024

/**
 * The non-blank lines of file descriptor `fd` when it is a regular file (stdin from
 * `< requests.jsonl`), `undefined` otherwise. Positioned reads, so the stream that
 * reads the same descriptor is not disturbed.
 */
export const countFileLines = (fd: number): Effect.Effect<number | undefined> =>
  Effect.suspend(() => {
    let size: number
    try {
      const stat = Fs.fstatSync(fd)
      if (!stat.isFile()) return Effect.succeed(undefined)
      size = stat.size
    } catch {
      return Effect.succeed(undefined)
    }
    const buffer = Buffer.alloc(Math.min(COUNT_CHUNK, Math.max(1, size)))
    const state = { blank: true, count: 0 }
    const readAt = (position: number): Effect.Effect<number | undefined> =>
      Effect.async<number, Error>((resume) => {
        Fs.read(fd, buffer, 0, buffer.length, position, (error, n) => {
          resume(error ? Effect.fail(error) : Effect.succeed(n))
        })
      }).pipe(
        Effect.flatMap((n) => {
          if (n === 0) return Effect.succeed(state.count + (state.blank ? 0 : 1))
          countNonBlankLines(buffer.subarray(0, n), state)
          return readAt(position + n)
        }),
        Effect.orElseSucceed(() => undefined)
      )
    return readAt(0)
  })

/** The rate over the last minute (or since the start, if shorter): steady under a rolling rate budget. */
const RATE_WINDOW_MS = 60_000

const CLEAR_LINE = "\r\x1b[2K"

/** What the progress line shows as the total, and whether it is final: the count so far, or the file's count up front. */
const shownTotal = (stats: Stats): { readonly total: number; readonly ended: boolean } =>
  stats.ended || stats.expected === undefined
    ? { total: stats.total, ended: stats.ended }
    : { total: Math.max(stats.total, stats.expected), ended: true }

const progress = (stats: Stats, display: { shown: boolean }, quotas: ReadonlyArray<Quota>) =>
  Effect.gen(function*() {
    const limiter = yield* DefenderRateLimiter.DefenderRateLimiter
    const samples: Array<{ readonly at: number; readonly done: number }> = [{ at: stats.startedAt, done: 0 }]
    const render = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const waiting = yield* limiter.waiting
      samples.push({ at: now, done: stats.done })
      while (samples.length > 2 && samples[1]!.at <= now - RATE_WINDOW_MS) samples.shift()
      const base = samples[0]!
      const rate = now > base.at ? ((stats.done - base.done) * 1000) / (now - base.at) : 0
      const { ended, total } = shownTotal(stats)
      // One result-link call per line: the budget bounds when the last one can be made.
      const quotaWait = quotaSeconds(quotas, total, now - stats.startedAt)
      // One character short of the width, so the line never wraps (a wrapped line cannot be rewritten).
      const columns = process.stderr.columns
      const width = columns !== undefined && columns > 0 ? Math.max(20, columns - 1) : 79
      const line = statusLine({ done: stats.done, total, ended }, rate, waiting, quotaWait)
      process.stderr.write(CLEAR_LINE + line.slice(0, width))
      display.shown = true
    })
    return yield* Effect.repeat(render, Schedule.spaced("250 millis"))
  })

// ---------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------

/**
 * Runs the batch: stdin → items → answers (`concurrency` at once, completion order) → stdout.
 * Fails with the first `InfrastructureError` once every line is answered if any input failed
 * for an infrastructure reason (after their count on stderr).
 */
export const run = (
  concurrency: number,
  simulate = false
): Effect.Effect<
  void,
  OutputError | InfrastructureError,
  DefenderClient.DefenderClient | DefenderRateLimiter.DefenderRateLimiter
> =>
  Effect.scoped(Effect.gen(function*() {
    yield* guardStdout
    const stats: Stats = {
      total: 0,
      expected: undefined,
      done: 0,
      ok: 0,
      failed: 0,
      ended: false,
      startedAt: yield* Clock.currentTimeMillis
    }
    const infrastructure: InfrastructureFailures = { byReason: new Map() }
    const tty = process.stderr.isTTY === true
    const display = { shown: false }
    const sharesTerminal = tty && process.stdout.isTTY === true

    const items = NodeStream.stdin.pipe(
      splitLines(),
      Stream.filterMap(parseLine),
      Stream.tap(() => Effect.sync(() => stats.total++)),
      Stream.onEnd(Effect.sync(() => {
        stats.ended = true
      }))
    )

    const work = items.pipe(
      Stream.mapEffect((item) => answer(item, infrastructure), { concurrency, unordered: true }),
      Stream.runForEachChunk((answers) =>
        Effect.gen(function*() {
          // The progress line would otherwise run into the output on a shared terminal.
          if (sharesTerminal && display.shown) {
            process.stderr.write(CLEAR_LINE)
            display.shown = false
          }
          yield* writeStdout(Chunk.join(Chunk.map(answers, (a) => `${JSON.stringify(a)}\n`), ""))
          for (const a of answers) {
            stats.done++
            if (a.ok) stats.ok++
            else stats.failed++
          }
        })
      )
    )

    // The embedded simulator's limiter keeps the default budget; the configured one reads MDE_RATE_LIMITS.
    const limits = simulate
      ? DefenderRateLimiter.DEFAULT_LIMITS
      : yield* Effect.orElseSucceed(DefenderRateLimiter.config, () => DefenderRateLimiter.DEFAULT_LIMITS)
    let ticker: Fiber.RuntimeFiber<unknown> | undefined
    if (tty) {
      // A file on stdin: its lines are counted up front, so the total and an ETA are known from
      // the first progress line. The work does not wait for the count (about a second per GB);
      // only the first progress line does.
      ticker = yield* Effect.fork(
        countFileLines(0).pipe(
          Effect.tap((n) => {
            stats.expected = n
          }),
          Effect.zipRight(progress(stats, display, quotasOf(limits)))
        )
      )
    }
    yield* work.pipe(
      Effect.ensuring(Effect.suspend(() => {
        if (ticker === undefined) return Effect.void
        return Fiber.interrupt(ticker).pipe(Effect.zipRight(Effect.sync(() => {
          if (display.shown) process.stderr.write(CLEAR_LINE)
        })))
      }))
    )
    if (tty) {
      const seconds = ((yield* Clock.currentTimeMillis) - stats.startedAt) / 1000
      const took = seconds < 60 ? `${seconds.toFixed(1)}s` : formatDuration(seconds)
      process.stderr.write(`${stats.ok} ok, ${stats.failed} failed in ${took}\n`)
    }
    const summary = infrastructureSummary(infrastructure)
    const error = infrastructureError(infrastructure)
    if (summary !== undefined && error !== undefined) {
      process.stderr.write(`${summary}\n`)
      return yield* Effect.fail(error)
    }
  }))

/** `--simulate`: run against an embedded simulator instead of the configured tenant. */
export const simulate: Options.Options<boolean> = Options.boolean("simulate").pipe(
  Options.withDescription("run against an embedded Defender simulator (no tenant or configuration needed)")
)

const concurrency = Options.integer("concurrency").pipe(
  Options.withDefault(10),
  Options.filterMap((n) => (n >= 1 ? Option.some(n) : Option.none()), "--concurrency must be at least 1"),
  Options.withDescription("how many items are fetched at once (default 10); the rate budget applies to all of them")
)

/** The `batch` command; needs `DefenderClient` and the `DefenderRateLimiter` it uses. */
export const batch: Command.Command<
  "batch",
  DefenderClient.DefenderClient | DefenderRateLimiter.DefenderRateLimiter,
  OutputError | InfrastructureError,
  { readonly concurrency: number; readonly simulate: boolean }
> = Command.make("batch", { concurrency, simulate }, ({ concurrency, simulate }) => run(concurrency, simulate)).pipe(
  Command.withDescription(
    "read requests on stdin, one a line ({\"action\": id, \"index\": n}, \"id\" or \"machineActionId\" for \"action\", or a bare id), print one JSON result line per input line"
  )
)
