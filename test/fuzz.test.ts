/**
 * Property tests (fast-check, fixed seeds so a failure repeats): what the
 * network or a file can send never becomes a defect, valid transcripts
 * round-trip, waits stay bounded, and link validation cannot be tricked.
 */
import { Headers } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, Option, Schema } from "effect"
import fc from "fast-check"
import { checkSecureUrl, hostMatches, isLoopbackHost } from "../src/internal/url.ts"
import { parseRetryAfter } from "../src/internal/retryAfter.ts"
import * as Transcript from "../src/Transcript.ts"

const runs = { seed: 20261129, numRuns: 300 }

/** Runs the decoder and says how it ended: a value, a typed failure, or a defect. */
const outcome = (input: string | Uint8Array): "ok" | "typed" | "defect" => {
  const exit = Effect.runSyncExit(Transcript.decode(input))
  if (Exit.isSuccess(exit)) return "ok"
  return exit.cause._tag === "Fail" && exit.cause.error._tag === "TranscriptDecodeError" ? "typed" : "defect"
}

/** JSON-ish text: the characters transcripts are made of, control characters included. */
const jsonish = fc.string({
  unit: fc.constantFrom(..."{}[]\":,\\ \n\t\r\u0000\u0001\u001fabc019-.eE+\uFEFFé"),
  maxLength: 200
})

describe("the transcript decoder", () => {
  it("never dies on arbitrary text, JSON-ish text or bytes", () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), (s) => outcome(s) !== "defect"), runs)
    fc.assert(fc.property(jsonish, (s) => outcome(s) !== "defect"), runs)
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => outcome(b) !== "defect"), runs)
    // Objects with the right keys and arbitrary values, the likeliest real-world junk.
    const fields = fc.record({
      script_name: fc.anything(),
      exit_code: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.constant(null), fc.boolean()),
      script_output: fc.anything(),
      script_error: fc.anything()
    }, { requiredKeys: [] })
    fc.assert(fc.property(fields, (o) => outcome(JSON.stringify(o) ?? "") !== "defect"), runs)
  })

  it("round-trips every valid transcript, also with a BOM and the output's NULs made raw", () => {
    const noTrailingNul = fc.string({ maxLength: 200 }).map((s) => s.replace(/\u0000+$/, ""))
    const transcript = fc.record({
      scriptName: fc.string({ maxLength: 40 }),
      exitCode: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      output: noTrailingNul,
      error: noTrailingNul
    })
    const encode = Schema.encodeSync(Transcript.TranscriptFromString)
    fc.assert(
      fc.property(transcript, fc.nat({ max: 5 }), (t, padding) => {
        const json = encode(t)
        const decoded = Effect.runSync(Transcript.decode(json))
        expect(decoded).toEqual(t)
        // Defender's files: a BOM, trailing NUL padding written raw, raw newlines for escaped ones.
        const real = "\uFEFF" + json.replace(/("script_output":"(?:[^"\\]|\\.)*)"/, `$1${"\u0000".repeat(padding)}"`)
        expect(Effect.runSync(Transcript.decode(real))).toEqual(t)
        return true
      }),
      runs
    )
  })
})

describe("the Retry-After parser", () => {
  it("never yields NaN, a negative or an unbounded wait", () => {
    const header = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.integer().map(String),
      fc.double().map(String),
      fc.date({ noInvalidDate: true }).map((d) => d.toUTCString()),
      fc.constantFrom("", " ", "-1", "1e400", "Infinity", "NaN", "0x10", "9".repeat(400))
    )
    fc.assert(
      fc.property(
        fc.record({ "retry-after": header, "retry-after-ms": header, "x-ms-retry-after-ms": header }, { requiredKeys: [] }),
        fc.integer({ min: 0, max: 2 ** 42 }),
        fc.integer({ min: 0, max: 3_600_000 }),
        (headers, now, max) => {
          const wait = parseRetryAfter(Headers.fromInput(headers as Record<string, string>), now, max)
          return Option.match(wait, {
            onNone: () => true,
            onSome: (ms) => Number.isFinite(ms) && ms >= 0 && ms <= max
          })
        }
      ),
      runs
    )
  })
})

describe("link validation", () => {
  const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?$/)

  it("allows any account under the allowed suffixes, and no look-alike", () => {
    const patterns = ["*.blob.core.windows.net"]
    fc.assert(
      fc.property(label, label, (account, evil) => {
        expect(hostMatches(`${account}.blob.core.windows.net`, patterns)).toBe(true)
        expect(hostMatches(`${account}.blob.core.windows.net.${evil}.com`, patterns)).toBe(false)
        expect(hostMatches(`${account}blob.core.windows.net`, patterns)).toBe(false)
        expect(hostMatches(`${account}.blob.core.windows.net-${evil}.net`, patterns)).toBe(false)
        expect(hostMatches(`${account}.blob.core.windows.org`, patterns)).toBe(false)
        return true
      }),
      runs
    )
  })

  it("refuses userinfo, other schemes and plain http to anything but loopback", () => {
    fc.assert(
      fc.property(label, label, fc.constantFrom("ftp", "file", "ws", "wss", "javascript", "data", "gopher"), (user, host, scheme) => {
        expect(Either.isLeft(checkSecureUrl(`https://${user}@${host}.blob.core.windows.net/x`))).toBe(true)
        expect(Either.isLeft(checkSecureUrl(`https://${user}:pw@${host}.blob.core.windows.net/x`))).toBe(true)
        expect(Either.isLeft(checkSecureUrl(`${scheme}://${host}.blob.core.windows.net/x`))).toBe(true)
        expect(Either.isLeft(checkSecureUrl(`http://${host}.blob.core.windows.net/x`))).toBe(true)
        expect(Either.isRight(checkSecureUrl(`https://${host}.blob.core.windows.net/x`))).toBe(true)
        return true
      }),
      runs
    )
  })

  it("takes only canonical 127.x.y.z, localhost and ::1 for loopback", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), (n) => {
        // Decimal and hex spellings of an address are never taken as loopback by the host check.
        expect(isLoopbackHost(String(n))).toBe(false)
        expect(isLoopbackHost(`0x${n.toString(16)}`)).toBe(false)
        const dotted = [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".")
        expect(isLoopbackHost(dotted)).toBe(n >>> 24 === 127)
        expect(isLoopbackHost(`${dotted}.nip.io`)).toBe(false)
        return true
      }),
      runs
    )
  })
})
