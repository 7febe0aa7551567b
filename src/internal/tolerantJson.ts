/**
 * A `JSON.parse` that also accepts what Defender's transcripts contain: a
 * leading UTF-8 BOM and raw control characters (U+0000–U+001F) inside string
 * literals. Nothing else is relaxed.
 *
 * @internal
 */
import { Either } from "effect"

const BOM = 0xfeff
const BACKSLASH = 92
const MAX_REASON = 200

/** Escapes for one control character, indexed by its code. */
const ESCAPES: ReadonlyArray<string> = Array.from({ length: 32 }, (_, code) => {
  switch (code) {
    case 8:
      return "\\b"
    case 9:
      return "\\t"
    case 10:
      return "\\n"
    case 12:
      return "\\f"
    case 13:
      return "\\r"
    default:
      return `\\u${code.toString(16).padStart(4, "0")}`
  }
})

// The control characters transcripts are full of are found with `indexOf`
// (a memchr in V8, and cheap to call once per line). The rare others need a
// character-class regex, which V8 scans without backtracking (linear and
// stack-safe on hundreds of MiB) but several times slower than `indexOf`, so
// it only runs when the first attempt failed. `test` with `lastIndex` does not allocate.
const COMMON_CONTROLS: ReadonlyArray<string> = ["\n", "\r", "\u0000", "\t"]
const RARE_CONTROL = /[\u0001-\u0008\u000b\u000c\u000e-\u001f]/g
const CONTROL = /[\u0000-\u001f]/g

/**
 * Finds control characters left to right: `next(from)` is the position of the
 * first one at or after `from` (`text.length` if none): the common ones only,
 * or all of them. `from` must not decrease between calls, so each stream is
 * scanned once in total.
 */
const controlFinder = (text: string, all: boolean): (from: number) => number => {
  const length = text.length
  const found = [-1, -1, -1, -1, all ? -1 : length]
  return (from) => {
    let min = length
    for (let k = 0; k < 5; k++) {
      let at = found[k]!
      if (at < from) {
        if (k < 4) {
          at = text.indexOf(COMMON_CONTROLS[k]!, from)
          if (at === -1) at = length
        } else {
          RARE_CONTROL.lastIndex = from
          at = RARE_CONTROL.test(text) ? RARE_CONTROL.lastIndex - 1 : length
        }
        found[k] = at
      }
      if (at < min) min = at
    }
    return min
  }
}

/** Where the run of control characters starting at `from` ends. */
const runEnd = (text: string, from: number): number => {
  let end = from + 1
  while (text.charCodeAt(end) < 32) end++
  return end
}

/**
 * The escaped form of the run of control characters `text[from, end)`, built
 * in one piece however long the run (NUL padding can be megabytes): one
 * character repeated is a `repeat`, a mix is left to `JSON.stringify`, which
 * escapes nothing but control characters exactly as needed.
 */
const escapeRun = (text: string, from: number, end: number): string => {
  const first = text.charCodeAt(from)
  if (end === from + 1) return ESCAPES[first]!
  let same = from + 1
  while (same < end && text.charCodeAt(same) === first) same++
  return same === end ? ESCAPES[first]!.repeat(end - from) : JSON.stringify(text.slice(from, end)).slice(1, -1)
}

/**
 * Returns `text` with the raw control characters inside string literals
 * escaped (with `all` false: only runs that contain a `\n`, `\r`, `\t` or
 * NUL); structure whitespace and everything else is left as it is, and `text`
 * itself is returned when nothing needed escaping. Linear: it jumps
 * between `"` characters and between control characters (see
 * `controlFinder`) without looking at the characters in between, and joins
 * the unchanged slices and the escapes once. (Concatenating them instead
 * builds a rope that `JSON.parse` must flatten into a second full-size copy.)
 *
 * @internal
 */
export const escapeControlCharactersInStrings = (text: string, all = true): string => {
  const length = text.length
  const parts: Array<string> = []
  let copied = 0 // text[0, copied) is already in `parts`
  let pos = 0
  // The next control character, kept between string literals so that a
  // literal without one costs no scan of its own.
  const nextControlFrom = controlFinder(text, all)
  let nextControl = nextControlFrom(0)
  while (nextControl < length) {
    const open = text.indexOf("\"", pos)
    if (open === -1) break
    const start = open + 1
    let close = text.indexOf("\"", start)
    while (close !== -1 && isEscaped(text, close, start)) close = text.indexOf("\"", close + 1)
    const end = close === -1 ? length : close
    if (nextControl < start) nextControl = nextControlFrom(start)
    while (nextControl < end) {
      const stop = runEnd(text, nextControl)
      parts.push(text.slice(copied, nextControl))
      // A backslash right before a raw control character escapes nothing JSON
      // knows; make it a literal backslash so both characters are kept as sent.
      if (isEscaped(text, nextControl, start)) parts.push("\\")
      parts.push(escapeRun(text, nextControl, stop))
      copied = stop
      nextControl = nextControlFrom(copied)
    }
    if (close === -1) break
    pos = close + 1
  }
  if (parts.length === 0) return text
  parts.push(text.slice(copied))
  return parts.join("")
}

const QUOTE_BYTE = 0x22
const BACKSLASH_BYTE = 0x5c

/** The escapes of `ESCAPES` as UTF-8 (ASCII) bytes. */
const ESCAPE_BYTES: ReadonlyArray<Uint8Array> = ESCAPES.map((escape) =>
  Uint8Array.from(escape, (char) => char.charCodeAt(0))
)

/** What a byte means to the scan: 0 nothing, 1 a quote, 2 a backslash, 3 a control character. */
const BYTE_CLASS: Uint8Array = (() => {
  const classes = new Uint8Array(256)
  classes.fill(3, 0, 32)
  classes[QUOTE_BYTE] = 1
  classes[BACKSLASH_BYTE] = 2
  return classes
})()

/**
 * The bytes twin of `escapeControlCharactersInStrings(text, true)` for UTF-8
 * JSON: `decode(escapeControlBytesInStrings(bytes))` is
 * `escapeControlCharactersInStrings(decode(bytes), true)` for any bytes, even
 * invalid UTF-8, because control characters, `"` and `\` are single bytes that
 * never occur inside a multi-byte sequence and end an invalid one the same way
 * the ASCII escapes do. `bytes` itself is returned when nothing needed escaping.
 *
 * Why bytes: escaping before decoding means the unescaped text never exists
 * as a string, and the output is written into one exact-size buffer instead
 * of being joined from a slice per line — on a transcript with a raw newline
 * every 75 characters those slices alone weighed about two thirds of the file
 * size (peak memory was 3.9x the file size, and over 6x for two-byte text).
 *
 * @internal
 */
export const escapeControlBytesInStrings = (bytes: Uint8Array): Uint8Array => {
  const length = bytes.length
  // First pass: where the raw control characters inside strings are, as a
  // plain scan (a per-byte state machine is the only way to follow quotes and
  // backslashes in bytes); a negative entry -i-1 marks one that follows an
  // unpaired backslash, which gets a second backslash (see the text version).
  const found: Array<number> = []
  let extra = 0
  let inString = false
  let escaped = false
  for (let i = 0; i < length; i++) {
    const kind = BYTE_CLASS[bytes[i]!]!
    if (kind === 0) {
      escaped = false
    } else if (!inString) {
      // outside strings a control character is structure whitespace (or an error for JSON.parse to report)
      if (kind === 1) inString = true
    } else if (kind === 2) {
      escaped = !escaped
    } else if (kind === 1) {
      if (!escaped) inString = false
      escaped = false
    } else {
      extra += ESCAPE_BYTES[bytes[i]!]!.length - 1
      if (escaped) {
        extra++
        found.push(-i - 1)
      } else {
        found.push(i)
      }
      escaped = false
    }
  }
  if (found.length === 0) return bytes
  // Second pass: copy the stretches between them and write the escapes.
  const out = new Uint8Array(length + extra)
  let copied = 0
  let to = 0
  for (let f = 0; f < found.length; f++) {
    let at = found[f]!
    const afterBackslash = at < 0
    if (afterBackslash) at = -at - 1
    if (at > copied) {
      out.set(bytes.subarray(copied, at), to)
      to += at - copied
    }
    if (afterBackslash) out[to++] = BACKSLASH_BYTE
    const escape = ESCAPE_BYTES[bytes[at]!]!
    out.set(escape, to)
    to += escape.length
    copied = at + 1
  }
  out.set(bytes.subarray(copied), to)
  return out
}

/** Whether the character at `index` follows an odd number of backslashes (counted back to `floor`). */
const isEscaped = (text: string, index: number, floor: number): boolean => {
  let i = index - 1
  while (i >= floor && text.charCodeAt(i) === BACKSLASH) i--
  return (index - 1 - i) % 2 === 1
}

const reasonOf = (error: unknown): string => {
  const message = error instanceof Error ? error.message : String(error)
  const visible = message.replace(CONTROL, (c) => ESCAPES[c.charCodeAt(0)]!)
  return visible.length > MAX_REASON ? `${visible.slice(0, MAX_REASON)}…` : visible
}

const strictParse = (text: string): Either.Either<unknown, unknown> => {
  try {
    return Either.right(JSON.parse(text))
  } catch (error) {
    return Either.left(error)
  }
}

/**
 * Parses JSON, accepting one leading BOM and raw control characters inside
 * strings. Left is a short reason a person can read; this function never throws.
 * With `escaped`, the text comes from `escapeControlBytesInStrings` already
 * (which escapes every control character, as the second attempt here does, so
 * the value or the reason is the same as for the raw text).
 *
 * @internal
 */
export const parseTolerantJson = (input: string, escaped = false): Either.Either<unknown, string> => {
  try {
    const text = input.charCodeAt(0) === BOM ? input.slice(1) : input
    // Repair first, parse once: a control character near the end of a large
    // transcript would otherwise cost a whole failed parse before the repair.
    // Valid JSON comes back from the repair as the same string, uncopied.
    let result = strictParse(escaped ? text : escapeControlCharactersInStrings(text, false))
    if (Either.isLeft(result) && !escaped) {
      RARE_CONTROL.lastIndex = 0
      if (RARE_CONTROL.test(text)) result = strictParse(escapeControlCharactersInStrings(text, true))
    }
    return Either.mapLeft(result, (error) => text.trim() === "" ? "the input is empty" : reasonOf(error))
  } catch (error) {
    // e.g. a RangeError when the repaired text exceeds the engine's string limit
    return Either.left(reasonOf(error))
  }
}

// ---------------------------------------------------------------------------
// Bytes in steps: large string literals decoded apart, a piece at a time
// ---------------------------------------------------------------------------

/** A string literal longer than this (in bytes) is decoded apart from the rest of the JSON. */
const OUTLINE_BYTES = 64 * 1024
/** How many bytes of a literal are decoded at once, and how many are scanned per step. */
const PIECE_BYTES = 256 * 1024
const SCAN_BYTES = 4 * 1024 * 1024

/** Whether `at` follows an odd run of backslashes (counted back to `floor`). */
const escapedAt = (bytes: Uint8Array, at: number, floor: number): boolean => {
  let i = at - 1
  while (i >= floor && bytes[i] === BACKSLASH_BYTE) i--
  return (at - 1 - i) % 2 === 1
}

/**
 * Where a piece of the literal content `[from, end)` may end, at or after `want`: never inside
 * an escape (`\x`, `\uXXXX`) nor inside a UTF-8 sequence, so that each piece decodes alone to
 * exactly its part of the whole.
 */
const cutAt = (bytes: Uint8Array, from: number, want: number, end: number): number => {
  let q = want
  if (q >= end) return end
  if (escapedAt(bytes, q, from)) q++
  for (let k = 1; k <= 4 && q - k > from; k++) {
    if (bytes[q - k] === 0x75 && escapedAt(bytes, q - k, from)) {
      q = q - k + 5
      break
    }
  }
  while (q < end && (bytes[q]! & 0xc0) === 0x80) q++
  return Math.min(q, end)
}

/**
 * `"` + the content bytes `[from, to)` with their raw control characters escaped + `"`, written
 * in one pass into `scratch` (at least `7 * (to - from) + 2` bytes: an escape is at most six
 * bytes, plus a backslash); a view of it.
 */
const quotedPiece = (bytes: Uint8Array, from: number, to: number, scratch: Uint8Array): Uint8Array => {
  scratch[0] = QUOTE_BYTE
  let o = 1
  let escaped = false
  let copied = from
  for (let i = from; i < to; i++) {
    const byte = bytes[i]!
    if (byte >= 32) {
      escaped = byte === BACKSLASH_BYTE ? !escaped : false
      continue
    }
    scratch.set(bytes.subarray(copied, i), o)
    o += i - copied
    // after an unpaired backslash: a literal backslash, as in escapeControlCharactersInStrings
    if (escaped) scratch[o++] = BACKSLASH_BYTE
    const escape = ESCAPE_BYTES[byte]!
    scratch.set(escape, o)
    o += escape.length
    copied = i + 1
    escaped = false
  }
  scratch.set(bytes.subarray(copied, to), o)
  o += to - copied
  scratch[o++] = QUOTE_BYTE
  return scratch.subarray(0, o)
}

const utf8Keeping = new TextDecoder("utf-8", { ignoreBOM: true })

/** One literal's content, decoded a piece at a time (a step between pieces). */
function* decodeLiteral(bytes: Uint8Array, start: number, end: number): Generator<void, Either.Either<string, string>> {
  const pieces: Array<string> = []
  // a cut moves at most a few bytes past PIECE_BYTES (an escape, a UTF-8 sequence)
  const scratch = new Uint8Array(7 * (PIECE_BYTES + 16) + 2)
  let from = start
  while (from < end) {
    const to = cutAt(bytes, start, from + PIECE_BYTES, end)
    const parsed = strictParse(utf8Keeping.decode(quotedPiece(bytes, from, to, scratch)))
    if (Either.isLeft(parsed)) return Either.left(reasonOf(parsed.left))
    pieces.push(parsed.right as string)
    from = to
    yield
  }
  return Either.right(pieces.join(""))
}

/**
 * The closed string literals over `OUTLINE_BYTES`, as content ranges, a step per few MiB. It
 * jumps from quote to quote (`indexOf`, native), a quote after an odd run of backslashes
 * being inside the literal: the same literals the byte-by-byte scan of
 * `escapeControlBytesInStrings` follows.
 */
function* findLargeLiterals(bytes: Uint8Array): Generator<void, Array<readonly [number, number]>> {
  const found: Array<readonly [number, number]> = []
  let from = 0
  let stepEnd = SCAN_BYTES
  while (true) {
    const open = bytes.indexOf(QUOTE_BYTE, from)
    if (open === -1) break
    let close = bytes.indexOf(QUOTE_BYTE, open + 1)
    while (close !== -1 && escapedAt(bytes, close, open + 1)) close = bytes.indexOf(QUOTE_BYTE, close + 1)
    if (close === -1) break
    if (close - open - 1 > OUTLINE_BYTES) found.push([open + 1, close])
    from = close + 1
    if (from >= stepEnd) {
      stepEnd = from + SCAN_BYTES
      yield
    }
  }
  return found
}

/** Puts the decoded literals back where their placeholders are, in keys and in values. */
const restore = (value: unknown, literals: ReadonlyMap<string, string>): unknown => {
  if (typeof value === "string") return literals.get(value) ?? value
  if (typeof value !== "object" || value === null) return value
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = restore(value[i], literals)
    return value
  }
  const record = value as Record<string, unknown>
  const keys = Object.keys(record)
  if (!keys.some((key) => literals.has(key))) {
    for (const key of keys) record[key] = restore(record[key], literals)
    return record
  }
  // A placeholder key: the object is rebuilt in its order (defineProperty keeps a "__proto__" key own).
  const rebuilt: Record<string, unknown> = {}
  for (const key of keys) {
    Object.defineProperty(rebuilt, literals.get(key) ?? key, {
      value: restore(record[key], literals),
      writable: true,
      enumerable: true,
      configurable: true
    })
  }
  return rebuilt
}

/**
 * @internal `parseTolerantJson` of UTF-8 bytes (as `TranscriptFromBytes` decodes them), in
 * steps: each `yield` is a point where the caller may let other work run. A string literal
 * over 64 KiB is replaced by a placeholder in the JSON `JSON.parse` sees and decoded apart, a
 * piece of 256 KiB at a time, so a literal full of raw control characters is never escaped
 * (up to six times its size) in one piece; the rest is escaped and parsed as before. The value,
 * or the reason for an input with no literal that large, is the same as before.
 */
export function* parseTolerantJsonBytes(bytes: Uint8Array): Generator<void, Either.Either<unknown, string>> {
  const large = yield* findLargeLiterals(bytes)
  if (large.length === 0) return parseTolerantJson(utf8Keeping.decode(escapeControlBytesInStrings(bytes)), true)
  // Placeholders no transcript can contain by chance: a random tag per decode.
  const tag = `mde-outlined-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}-`
  const parts: Array<Uint8Array> = []
  let copied = 0
  large.forEach(([start, end], i) => {
    parts.push(bytes.subarray(copied, start), Uint8Array.from(`${tag}${i}`, (c) => c.charCodeAt(0)))
    copied = end
  })
  parts.push(bytes.subarray(copied))
  const skeleton = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const part of parts) {
    skeleton.set(part, at)
    at += part.length
  }
  // The structure first: an input that is not JSON fails before any literal is decoded.
  const parsed = parseTolerantJson(utf8Keeping.decode(escapeControlBytesInStrings(skeleton)), true)
  if (Either.isLeft(parsed)) return parsed
  const literals = new Map<string, string>()
  for (let i = 0; i < large.length; i++) {
    const decoded = yield* decodeLiteral(bytes, large[i]![0], large[i]![1])
    if (Either.isLeft(decoded)) return decoded
    literals.set(`${tag}${i}`, decoded.right)
  }
  return Either.right(restore(parsed.right, literals))
}
