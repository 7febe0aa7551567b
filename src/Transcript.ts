/**
 * Tolerant decoding of RunScript transcripts, the JSON files a live response
 * `RunScript` command leaves behind.
 *
 * Real transcripts are not always strict JSON: they may start with a UTF-8
 * BOM, carry raw newlines, tabs and NULs inside strings, name the script
 * `script_name` or `name`, the errors `script_error` or `script_errors`, and
 * give `exit_code` as a number or a numeric string. All of that is accepted;
 * trailing NUL padding is removed from `output` and `error` and everything else
 * is kept exactly. Anything else fails with a {@link TranscriptDecodeError}
 * that says what was wrong.
 *
 * The same rules are available as schemas, for transcripts you already have
 * on disk: {@link TranscriptFromString} and {@link TranscriptFromBytes}.
 *
 * @module
 * @since 0.1.0
 */
import { Effect, Either, ParseResult, Schema, type SchemaAST } from "effect"
import { TranscriptDecodeError } from "./DefenderError.ts"
import { parseTolerantJson, parseTolerantJsonBytes } from "./internal/tolerantJson.ts"

/**
 * A decoded RunScript transcript.
 *
 * @since 0.1.0
 * @category models
 */
export interface Transcript {
  /** The script that ran (`script_name`, or `name` in older files). */
  readonly scriptName: string
  /** The script's exit code. */
  readonly exitCode: number
  /** What the script wrote, without trailing NUL padding. */
  readonly output: string
  /** What the script wrote to its error stream, without trailing NUL padding; `""` when none. */
  readonly error: string
}

/**
 * The schema of a decoded transcript (no JSON involved).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Transcript: Schema.Schema<Transcript> = Schema.Struct({
  scriptName: Schema.String,
  exitCode: Schema.Int,
  output: Schema.String,
  error: Schema.String
}).annotations({ identifier: "Transcript" })

// ---------------------------------------------------------------------------
// Field rules
// ---------------------------------------------------------------------------

type Result = Either.Either<Transcript, TranscriptDecodeError>

const failure = (
  reason: "InvalidJson" | "NotAnObject" | "MissingField" | "InvalidField",
  field: string | undefined,
  detail: string
): Either.Either<never, TranscriptDecodeError> =>
  Either.left(
    field === undefined
      ? new TranscriptDecodeError({ reason, detail })
      : new TranscriptDecodeError({ reason, field, detail })
  )

const PREVIEW = 40

/** A short description of a JSON value: never more than a few dozen characters of it. */
const describe = (value: unknown): string => {
  if (value === null) return "null"
  if (Array.isArray(value)) return "an array"
  switch (typeof value) {
    case "string":
      return value.length > PREVIEW ? `${JSON.stringify(value.slice(0, PREVIEW))}…` : JSON.stringify(value)
    case "number":
    case "boolean":
      return String(value)
    case "object":
      return "an object"
    default:
      return typeof value
  }
}

const has = (record: object, key: string): boolean => Object.prototype.hasOwnProperty.call(record, key)

/** Removes the NUL padding Defender leaves at the end of outputs; nothing else. */
const stripTrailingNuls = (text: string): string => {
  let end = text.length
  while (end > 0 && text.charCodeAt(end - 1) === 0) end--
  return end === text.length ? text : text.slice(0, end)
}

const EXIT_CODE_STRING = /^\s*(-?\d+)\s*$/

const exitCodeOf = (value: unknown): number | undefined => {
  let code: number | undefined
  if (typeof value === "number") code = value
  else if (typeof value === "string") {
    const match = EXIT_CODE_STRING.exec(value)
    if (match !== null) code = Number(match[1])
  }
  // `+ 0` turns -0 into 0
  return code !== undefined && Number.isSafeInteger(code) ? code + 0 : undefined
}

/** The first of `keys` that is present with a non-null value, else the first present, else undefined. */
const pick = (record: Record<string, unknown>, keys: ReadonlyArray<string>): string | undefined => {
  const present = keys.filter((key) => has(record, key))
  return present.find((key) => record[key] !== null) ?? present[0]
}

/** `string` as is, `null` as `""`; undefined for anything else. */
const nullableString = (value: unknown): string | undefined =>
  typeof value === "string" ? stripTrailingNuls(value) : value === null ? "" : undefined

const fromJson = (json: unknown): Result => {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return failure("NotAnObject", undefined, `a transcript is a JSON object, got ${describe(json)}`)
  }
  const record = json as Record<string, unknown>

  const nameKey = pick(record, ["script_name", "name"])
  if (nameKey === undefined) return failure("MissingField", "script_name", "script_name (or name) is missing")
  const scriptName = record[nameKey]
  if (typeof scriptName !== "string") {
    return failure("InvalidField", nameKey, `${nameKey} must be a string, got ${describe(scriptName)}`)
  }

  if (!has(record, "exit_code")) return failure("MissingField", "exit_code", "exit_code is missing")
  const exitCode = exitCodeOf(record.exit_code)
  if (exitCode === undefined) {
    return failure("InvalidField", "exit_code", `exit_code must be an integer, got ${describe(record.exit_code)}`)
  }

  if (!has(record, "script_output")) return failure("MissingField", "script_output", "script_output is missing")
  const output = nullableString(record.script_output)
  if (output === undefined) {
    return failure(
      "InvalidField",
      "script_output",
      `script_output must be a string or null, got ${describe(record.script_output)}`
    )
  }

  const errorKeys = ["script_error", "script_errors"].filter((key) => has(record, key))
  if (errorKeys.length === 0) {
    return failure("MissingField", "script_error", "script_error (or script_errors) is missing")
  }
  let error = ""
  for (const key of errorKeys) {
    const value = nullableString(record[key])
    if (value === undefined) {
      return failure("InvalidField", key, `${key} must be a string or null, got ${describe(record[key])}`)
    }
    if (error === "") error = value
  }

  return Either.right({ scriptName, exitCode, output, error })
}

const fromText = (text: string, escaped = false): Result =>
  Either.match(parseTolerantJson(text, escaped), {
    onLeft: (reason) => failure("InvalidJson", undefined, reason),
    onRight: fromJson
  })

type Steps = Generator<void, Either.Either<unknown, string>>

const unreadable = (error: unknown): Result =>
  // e.g. a view of a SharedArrayBuffer, or more text than the engine can hold
  failure("InvalidJson", undefined, `the bytes could not be read as UTF-8: ${String(error).slice(0, 200)}`)

const fromParsed = (parsed: Either.Either<unknown, string>): Result =>
  Either.match(parsed, { onLeft: (reason) => failure("InvalidJson", undefined, reason), onRight: fromJson })

/** Runs the steps of a bytes decode (see `parseTolerantJsonBytes`) at once. */
const fromBytes = (bytes: Uint8Array): Result => {
  try {
    const steps: Steps = parseTolerantJsonBytes(bytes)
    let step = steps.next()
    while (step.done !== true) step = steps.next()
    return fromParsed(step.value)
  } catch (error) {
    return unreadable(error)
  }
}

/** Lets the event loop run (I/O, timers) between two steps; `setImmediate` where there is one. */
const nextTurn: Effect.Effect<void> = Effect.async<void>((resume) => {
  const g = globalThis as { setImmediate?: (f: () => void) => unknown; clearImmediate?: (id: unknown) => void }
  if (typeof g.setImmediate === "function" && typeof g.clearImmediate === "function") {
    const id = g.setImmediate(() => resume(Effect.void))
    return Effect.sync(() => g.clearImmediate!(id))
  }
  const id = setTimeout(() => resume(Effect.void), 0)
  return Effect.sync(() => clearTimeout(id))
})

/** Bytes over this are decoded in steps with a turn of the event loop between them. */
const YIELDING_BYTES = 256 * 1024

/** The steps of a bytes decode, each followed by a turn of the event loop (interruptible there). */
const fromBytesYielding = (bytes: Uint8Array): Effect.Effect<Transcript, TranscriptDecodeError> =>
  Effect.suspend(() => {
    let steps: Steps
    try {
      steps = parseTolerantJsonBytes(bytes)
    } catch (error) {
      return unreadable(error)
    }
    const loop: Effect.Effect<Transcript, TranscriptDecodeError> = Effect.suspend(() => {
      let step: IteratorResult<void, Either.Either<unknown, string>>
      try {
        step = steps.next()
      } catch (error) {
        return unreadable(error)
      }
      return step.done === true ? fromParsed(step.value) : Effect.zipRight(nextTurn, loop)
    })
    return loop
  })

const toJson = (transcript: Transcript): string =>
  JSON.stringify({
    script_name: transcript.scriptName,
    exit_code: transcript.exitCode,
    script_output: transcript.output,
    script_error: transcript.error
  })

const toParseResult = (
  result: Result,
  ast: SchemaAST.AST,
  actual: unknown
): Either.Either<Transcript, ParseResult.ParseIssue> =>
  Either.mapLeft(result, (error) => new ParseResult.Type(ast, actual, error.message))

// ---------------------------------------------------------------------------
// Schemas and decode
// ---------------------------------------------------------------------------

/**
 * A transcript from its JSON text, with the tolerant rules of this module;
 * encodes to strict JSON with `script_name`, `exit_code`, `script_output`, `script_error`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TranscriptFromString: Schema.Schema<Transcript, string> = Schema.transformOrFail(
  Schema.String,
  Transcript,
  {
    strict: true,
    decode: (text, _, ast) => toParseResult(fromText(text), ast, text),
    encode: (transcript) => ParseResult.succeed(toJson(transcript))
  }
).annotations({ identifier: "TranscriptFromString" })

const utf8Encoder = new TextEncoder()

/**
 * A transcript from the bytes of a transcript file (UTF-8, with or without a
 * BOM; invalid sequences become U+FFFD); encodes to strict UTF-8 JSON without a BOM.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TranscriptFromBytes: Schema.Schema<Transcript, Uint8Array> = Schema.transformOrFail(
  Schema.Uint8ArrayFromSelf,
  Transcript,
  {
    strict: true,
    decode: (bytes, _, ast) => toParseResult(fromBytes(bytes), ast, bytes),
    encode: (transcript) => ParseResult.succeed(utf8Encoder.encode(toJson(transcript)))
  }
).annotations({ identifier: "TranscriptFromBytes" })

/**
 * Decodes a transcript from its text or its bytes; every problem is a
 * `TranscriptDecodeError` whose `reason`, `field` and `detail` say what was wrong.
 * Bytes over 256 KiB are decoded in steps with a turn of the event loop between them
 * (large string literals a piece at a time, in memory within a few times the input's size),
 * so run it with `Effect.runPromise` or in a fiber, not `Effect.runSync`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Transcript } from "@mde/live-response"
 *
 * const program = Transcript.decode('{"script_name":"minidump.ps1","exit_code":"0","script_output":"51 MB\n\u0000","script_error":""}').pipe(
 *   Effect.tap((t) => Effect.log(`${t.scriptName} exited with ${t.exitCode}: ${t.output}`)),
 *   Effect.catchTag("TranscriptDecodeError", (e) => Effect.logError(e.reason, e.field, e.detail))
 * )
 * ```
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = (input: string | Uint8Array): Effect.Effect<Transcript, TranscriptDecodeError> =>
  Effect.suspend(() =>
    typeof input === "string" ? fromText(input) : input.length > YIELDING_BYTES ? fromBytesYielding(input) : fromBytes(input)
  )
