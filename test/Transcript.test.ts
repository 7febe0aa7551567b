import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Either, Exit, Schema } from "effect"
import * as Transcript from "../src/Transcript.ts"
import {
  escapeControlBytesInStrings,
  escapeControlCharactersInStrings,
  parseTolerantJson
} from "../src/internal/tolerantJson.ts"

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text)
const BOM_BYTES = [0xef, 0xbb, 0xbf]

/** The seed page's example, verbatim: a raw newline inside script_output and escaped NULs. */
const SEED = `{
    "script_name": "minidump.ps1",
    "exit_code": 0,
    "script_output": "Transcript started, output file is C:\\\\ProgramData\\\\Microsoft\\\\Windows Defender Advanced Threat Protection\\\\Temp\\\\PSScriptOutputs\\\\PSScript_Transcript_{TRANSCRIPT_ID}.txt
C:\\\\windows\\\\TEMP\\\\OfficeClickToRun.dmp.zip\\n51 MB\\n\\u0000\\u0000\\u0000",
    "script_error":""
}`

const SEED_OUTPUT =
  "Transcript started, output file is C:\\ProgramData\\Microsoft\\Windows Defender Advanced Threat Protection\\Temp\\PSScriptOutputs\\PSScript_Transcript_{TRANSCRIPT_ID}.txt\n" +
  "C:\\windows\\TEMP\\OfficeClickToRun.dmp.zip\n51 MB\n"

/** A transcript with the given JSON text as the value of each field. */
const transcript = (fields: Record<string, string>): string =>
  `{${Object.entries(fields).map(([key, json]) => `"${key}":${json}`).join(",")}}`

const base = { script_name: `"run.ps1"`, exit_code: "0", script_output: `"out"`, script_error: `""` }

const failureOf = (input: string | Uint8Array) => Effect.flip(Transcript.decode(input))

/** Serializes a string the way a sloppy writer would: `"` and `\` escaped, control characters raw or escaped at random. */
const sloppyString = (value: string, random: () => number): string =>
  `"${
    value.replace(
      /["\\\u0000-\u001f]/g,
      (char) =>
        char === "\"" || char === "\\"
          ? `\\${char}`
          : random() < 0.5
          ? char
          : JSON.stringify(char).slice(1, -1)
    )
  }"`

/** mulberry32: a small seeded PRNG, so failures are reproducible. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

describe("Transcript.decode", () => {
  describe("the seed example", () => {
    it.effect("decodes with the raw newline kept and the trailing NULs removed", () =>
      Effect.gen(function*() {
        expect(() => JSON.parse(SEED)).toThrow()
        const result = yield* Transcript.decode(SEED)
        expect(result).toEqual({ scriptName: "minidump.ps1", exitCode: 0, output: SEED_OUTPUT, error: "" })
      }))

    it.effect("decodes with raw NUL characters instead of \\u0000 escapes", () =>
      Effect.gen(function*() {
        const raw = SEED.replaceAll("\\u0000", "\u0000")
        expect(raw).toContain("\u0000\u0000\u0000\"")
        const result = yield* Transcript.decode(raw)
        expect(result.output).toBe(SEED_OUTPUT)
        expect(result.scriptName).toBe("minidump.ps1")
      }))

    it.effect("decodes from bytes, with and without a BOM", () =>
      Effect.gen(function*() {
        expect((yield* Transcript.decode(utf8(SEED))).output).toBe(SEED_OUTPUT)
        expect((yield* Transcript.decode(new Uint8Array([...BOM_BYTES, ...utf8(SEED)]))).output).toBe(SEED_OUTPUT)
      }))
  })

  describe("accepted variants", () => {
    it.effect("a BOM at the start of a string", () =>
      Effect.gen(function*() {
        const result = yield* Transcript.decode(`\uFEFF${SEED}`)
        expect(result.scriptName).toBe("minidump.ps1")
      }))

    it.effect("only one BOM is removed", () =>
      Effect.gen(function*() {
        const error = yield* failureOf(new Uint8Array([...BOM_BYTES, ...BOM_BYTES, ...utf8(transcript(base))]))
        expect(error.reason).toBe("InvalidJson")
      }))

    it.effect("non-ASCII text in bytes is kept", () =>
      Effect.gen(function*() {
        const output = "Überwachung ✓ 日本語 😀\r\n"
        const result = yield* Transcript.decode(utf8(transcript({ ...base, script_output: sloppyString(output, () => 0) })))
        expect(result.output).toBe(output)
      }))

    it.effect("name instead of script_name", () =>
      Effect.gen(function*() {
        const { script_name: _, ...rest } = base
        const result = yield* Transcript.decode(transcript({ name: `"legacy.ps1"`, ...rest }))
        expect(result.scriptName).toBe("legacy.ps1")
      }))

    it.effect("script_name wins over name; a null script_name falls back to name", () =>
      Effect.gen(function*() {
        expect((yield* Transcript.decode(transcript({ ...base, name: `"other.ps1"` }))).scriptName).toBe("run.ps1")
        expect((yield* Transcript.decode(transcript({ ...base, script_name: "null", name: `"other.ps1"` }))).scriptName)
          .toBe("other.ps1")
      }))

    it.effect("script_errors instead of script_error", () =>
      Effect.gen(function*() {
        const { script_error: _, ...rest } = base
        const result = yield* Transcript.decode(transcript({ ...rest, script_errors: `"Access denied\\r\\n"` }))
        expect(result.error).toBe("Access denied\r\n")
      }))

    it.effect("both error fields: the first non-empty one", () =>
      Effect.gen(function*() {
        const both = (a: string, b: string) => Transcript.decode(transcript({ ...base, script_error: a, script_errors: b }))
        expect((yield* both(`""`, `"second"`)).error).toBe("second")
        expect((yield* both(`"first"`, `"second"`)).error).toBe("first")
        expect((yield* both(`"\\u0000\\u0000"`, `"second"`)).error).toBe("second")
        expect((yield* both("null", "null")).error).toBe("")
      }))

    it.effect("null output and error are empty strings", () =>
      Effect.gen(function*() {
        const result = yield* Transcript.decode(transcript({ ...base, script_output: "null", script_error: "null" }))
        expect(result.output).toBe("")
        expect(result.error).toBe("")
      }))

    it.effect("exit_code as a numeric string", () =>
      Effect.gen(function*() {
        const exitCode = (json: string) =>
          Transcript.decode(transcript({ ...base, exit_code: json })).pipe(Effect.map((t) => t.exitCode))
        expect(yield* exitCode(`"3"`)).toBe(3)
        expect(yield* exitCode(`" -1 "`)).toBe(-1)
        expect(yield* exitCode(`"\\t42\\n"`)).toBe(42)
        expect(yield* exitCode("-1073741819")).toBe(-1073741819)
        expect(yield* exitCode("3221225477")).toBe(3221225477)
        expect(Object.is(yield* exitCode(`"-0"`), 0)).toBe(true)
      }))

    it.effect("unknown fields are ignored", () =>
      Effect.gen(function*() {
        const result = yield* Transcript.decode(transcript({ ...base, extra: `{"a":[1,2,"\n"]}`, index: "7" }))
        expect(result).toEqual({ scriptName: "run.ps1", exitCode: 0, output: "out", error: "" })
      }))
  })

  describe("content is kept exactly", () => {
    it.effect("every raw control character inside strings", () =>
      Effect.gen(function*() {
        const controls = Array.from({ length: 32 }, (_, code) => String.fromCharCode(code)).join("")
        const output = `a${controls}b\t\r\n\u0000c`
        const raw = `{"script_name":"x\ty","exit_code":1,"script_output":"${output}","script_error":"e\r\n"}`
        const result = yield* Transcript.decode(raw)
        expect(result).toEqual({ scriptName: "x\ty", exitCode: 1, output, error: "e\r\n" })
      }))

    it.effect("rare control characters on their own", () =>
      Effect.gen(function*() {
        const output = "a\u0001b\u001fc\u000bd\u007fe"
        const raw = transcript({ ...base, script_output: `"${output}"`, script_error: `"\u0008"` })
        expect(yield* Transcript.decode(raw)).toEqual({ scriptName: "run.ps1", exitCode: 0, output, error: "\u0008" })
      }))

    it.effect("NULs in the middle are kept; only trailing ones go; no trimming", () =>
      Effect.gen(function*() {
        const raw = transcript({ ...base, script_output: `" \u0000a\u0000\u0000b\n\u0000\u0000"`, script_error: `"\\u0000 e \\u0000"` })
        const result = yield* Transcript.decode(raw)
        expect(result.output).toBe(" \u0000a\u0000\u0000b\n")
        expect(result.error).toBe("\u0000 e ")
      }))

    it.effect("structure whitespace with raw newlines, CRs and tabs", () =>
      Effect.gen(function*() {
        const raw = "\r\n\t{\r\n\t\"script_name\"\t:\r\n \"a.ps1\" ,\n\"exit_code\":\n\n2,\r\n\"script_output\": \"l1\nl2\"\n,\"script_error\"\t:\"\"\r\n}\r\n"
        expect(yield* Transcript.decode(raw)).toEqual({ scriptName: "a.ps1", exitCode: 2, output: "l1\nl2", error: "" })
      }))

    it.effect("escaped quotes and backslashes around raw control characters", () =>
      Effect.gen(function*() {
        const raw = transcript({ ...base, script_output: `"say \\"hi\\"\n\\\\\n\\\\\\"\t\\\\"` })
        expect((yield* Transcript.decode(raw)).output).toBe("say \"hi\"\n\\\n\\\"\t\\")
      }))

    it.effect("a backslash right before a raw control character is kept as a backslash", () =>
      Effect.gen(function*() {
        const raw = transcript({ ...base, script_output: `"a\\\nb\\\u0000c"` })
        expect((yield* Transcript.decode(raw)).output).toBe("a\\\nb\\\u0000c")
      }))

    it.effect("randomly escaped control characters decode to the original text", () =>
      Effect.gen(function*() {
        const random = prng(7)
        const alphabet = ["a", "Z", " ", "\"", "\\", "/", "é", "😀", "\u2028", "\uFEFF", "u", "n", "0"]
        for (let round = 0; round < 200; round++) {
          let output = ""
          const length = Math.floor(random() * 60)
          for (let i = 0; i < length; i++) {
            output += random() < 0.4
              ? String.fromCharCode(Math.floor(random() * 32))
              : alphabet[Math.floor(random() * alphabet.length)]
          }
          const raw = transcript({ ...base, script_output: sloppyString(output, random) })
          const result = yield* Transcript.decode(raw)
          expect(result.output).toBe(output.replace(/\u0000+$/, ""))
        }
      }))

    it.effect("a 5 MiB transcript with many raw newlines and NULs", () =>
      Effect.gen(function*() {
        const line = "C:\\windows\\TEMP\\file.zip\t51 MB \"quoted\" \u0000 ünïcode\r\n"
        const count = Math.ceil((5 * 1024 * 1024) / line.length)
        const output = line.repeat(count)
        const raw = `\uFEFF{\r\n  "script_name": "big.ps1",\r\n  "exit_code": "0",\r\n  "script_output": ${
          sloppyString(output + "\u0000".repeat(4096), () => 0)
        },\r\n  "script_errors": "\u0000\u0000"\r\n}`
        expect(raw.includes("\r\nC:") && raw.includes("\u0000\u0000\",")).toBe(true)
        expect(raw.length).toBeGreaterThan(5 * 1024 * 1024)
        const fromString = yield* Transcript.decode(raw)
        expect(fromString.output.length).toBe(output.length)
        expect(fromString.output === output).toBe(true)
        expect(fromString.error).toBe("")
        const fromBytes = yield* Transcript.decode(utf8(raw))
        expect(fromBytes.output === output).toBe(true)
      }))
  })

  describe("failures are typed errors", () => {
    it.effect("empty and blank input", () =>
      Effect.gen(function*() {
        for (const input of ["", "   \r\n", "\uFEFF", new Uint8Array(), new Uint8Array(BOM_BYTES)]) {
          const error = yield* failureOf(input)
          expect(error._tag).toBe("TranscriptDecodeError")
          expect(error.reason).toBe("InvalidJson")
          expect(error.field).toBeUndefined()
          expect(error.detail).toBe("the input is empty")
        }
      }))

    it.effect("truncated JSON", () =>
      Effect.gen(function*() {
        for (const input of [SEED.slice(0, 40), SEED.slice(0, SEED.length - 2), "{\"script_name\": \"a", "{"]) {
          const error = yield* failureOf(input)
          expect(error.reason).toBe("InvalidJson")
          expect(error.detail.length).toBeGreaterThan(0)
          expect(error.detail.length).toBeLessThanOrEqual(201)
          expect(error.message).toContain("InvalidJson")
        }
      }))

    it.effect("a top level that is not an object", () =>
      Effect.gen(function*() {
        for (const [input, got] of [["[1,2]", "an array"], ["42", "42"], ["null", "null"], ["\"x\"", "\"x\""]] as const) {
          const error = yield* failureOf(input)
          expect(error.reason).toBe("NotAnObject")
          expect(error.detail).toContain(got)
        }
      }))

    it.effect("missing fields", () =>
      Effect.gen(function*() {
        const without = (key: keyof typeof base) => {
          const { [key]: _, ...rest } = base
          return failureOf(transcript(rest))
        }
        for (const [key, field] of [
          ["script_name", "script_name"],
          ["exit_code", "exit_code"],
          ["script_output", "script_output"],
          ["script_error", "script_error"]
        ] as const) {
          const error = yield* without(key)
          expect(error.reason).toBe("MissingField")
          expect(error.field).toBe(field)
        }
      }))

    it.effect("exit_code that is not an integer", () =>
      Effect.gen(function*() {
        for (const json of [`"abc"`, "1.5", "true", "null", `"1e3"`, `"1.0"`, `""`, "[0]", `"99999999999999999999"`, "1e400"]) {
          const error = yield* failureOf(transcript({ ...base, exit_code: json }))
          expect(error.reason).toBe("InvalidField")
          expect(error.field).toBe("exit_code")
          expect(error.detail).toMatch(/^exit_code must be an integer, got /)
        }
        const error = yield* failureOf(transcript({ ...base, exit_code: `"abc"` }))
        expect(error.detail).toBe("exit_code must be an integer, got \"abc\"")
      }))

    it.effect("fields of the wrong type", () =>
      Effect.gen(function*() {
        const cases = [
          [{ ...base, script_name: "5" }, "script_name"],
          [{ ...base, script_name: "null" }, "script_name"],
          [{ name: "[]", exit_code: "0", script_output: `""`, script_error: `""` }, "name"],
          [{ ...base, script_output: "{}" }, "script_output"],
          [{ ...base, script_error: "false" }, "script_error"],
          [{ ...base, script_errors: `["x"]` }, "script_errors"]
        ] as const
        for (const [fields, field] of cases) {
          const error = yield* failureOf(transcript(fields))
          expect(error.reason).toBe("InvalidField")
          expect(error.field).toBe(field)
          expect(error.detail).toContain(`${field} must be a string`)
        }
      }))

    it.effect("details quote at most a few dozen characters of the input", () =>
      Effect.gen(function*() {
        const long = `"${"x".repeat(100_000)}"`
        const error = yield* failureOf(transcript({ ...base, exit_code: long }))
        expect(error.detail.length).toBeLessThan(100)
        const notAnObject = yield* failureOf(long)
        expect(notAnObject.detail.length).toBeLessThan(100)
        const invalid = yield* failureOf(`{"a": ${"1".repeat(100_000)}x}`)
        expect(invalid.detail.length).toBeLessThanOrEqual(201)
      }))

    it.effect("random garbage never becomes a defect", () =>
      Effect.gen(function*() {
        const random = prng(42)
        const alphabet = [
          "{", "}", "[", "]", "\"", ":", ",", "\\", "u", "0", "1", "-", ".", "e", "n", "t", "r", "l",
          " ", "\n", "\r", "\t", "\u0000", "\u0001", "\uFEFF", "\uD800", "é", "script_name", "exit_code",
          "script_output", "script_error", "null", "true"
        ]
        const inputs: Array<string | Uint8Array> = []
        for (let round = 0; round < 400; round++) {
          let text = ""
          const length = Math.floor(random() * 80)
          for (let i = 0; i < length; i++) text += alphabet[Math.floor(random() * alphabet.length)]
          inputs.push(text)
          // and mutations of a valid transcript
          const at = Math.floor(random() * SEED.length)
          inputs.push(SEED.slice(0, at) + alphabet[Math.floor(random() * alphabet.length)] + SEED.slice(at + 1))
          inputs.push(Uint8Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256)))
        }
        let successes = 0
        for (const input of inputs) {
          const exit = yield* Effect.exit(Transcript.decode(input))
          if (Exit.isSuccess(exit)) {
            successes++
            continue
          }
          expect(Cause.isDie(exit.cause)).toBe(false)
          const failure = Cause.failureOption(exit.cause)
          expect(failure._tag).toBe("Some")
          if (failure._tag === "Some") expect(failure.value._tag).toBe("TranscriptDecodeError")
          const schema = typeof input === "string" ? Transcript.TranscriptFromString : Transcript.TranscriptFromBytes
          expect(Either.isLeft(Schema.decodeUnknownEither(schema as Schema.Schema<Transcript.Transcript, unknown>)(input)))
            .toBe(true)
        }
        expect(successes).toBeGreaterThan(0)
      }))
  })
})

describe("Transcript schemas", () => {
  const value: Transcript.Transcript = {
    scriptName: "minidump.ps1",
    exitCode: -1,
    output: "line 1\r\n\ttab \"q\" \\ \u0000 mid\n😀",
    error: "err\n"
  }

  it.effect("TranscriptFromString decodes tolerantly", () =>
    Effect.gen(function*() {
      const result = yield* Schema.decode(Transcript.TranscriptFromString)(SEED)
      expect(result.output).toBe(SEED_OUTPUT)
    }))

  it.effect("TranscriptFromString failures carry the error's message", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Schema.decode(Transcript.TranscriptFromString)(transcript({ ...base, exit_code: `"abc"` }))
      )
      expect(error._tag).toBe("ParseError")
      expect(error.message).toContain("exit_code must be an integer, got \"abc\"")
    }))

  it.effect("TranscriptFromBytes decodes bytes with a BOM", () =>
    Effect.gen(function*() {
      const result = yield* Schema.decode(Transcript.TranscriptFromBytes)(
        new Uint8Array([...BOM_BYTES, ...utf8(SEED.replaceAll("\\u0000", "\u0000"))])
      )
      expect(result).toEqual({ scriptName: "minidump.ps1", exitCode: 0, output: SEED_OUTPUT, error: "" })
    }))

  it.effect("encode produces strict JSON that decodes back", () =>
    Effect.gen(function*() {
      const json = yield* Schema.encode(Transcript.TranscriptFromString)(value)
      expect(JSON.parse(json)).toEqual({
        script_name: value.scriptName,
        exit_code: value.exitCode,
        script_output: value.output,
        script_error: value.error
      })
      expect(yield* Schema.decode(Transcript.TranscriptFromString)(json)).toEqual(value)
      expect(yield* Transcript.decode(json)).toEqual(value)

      const bytes = yield* Schema.encode(Transcript.TranscriptFromBytes)(value)
      expect(bytes).toBeInstanceOf(Uint8Array)
      expect(yield* Schema.decode(Transcript.TranscriptFromBytes)(bytes)).toEqual(value)
    }))

  it.effect("decoded seed transcripts round-trip", () =>
    Effect.gen(function*() {
      const decoded = yield* Transcript.decode(SEED)
      const json = yield* Schema.encode(Transcript.TranscriptFromString)(decoded)
      expect(yield* Transcript.decode(json)).toEqual(decoded)
    }))

  it("Transcript validates the decoded shape", () => {
    expect(Schema.is(Transcript.Transcript)(value)).toBe(true)
    expect(Schema.is(Transcript.Transcript)({ ...value, exitCode: 1.5 })).toBe(false)
  })
})

describe("internal/tolerantJson", () => {
  it("returns valid JSON unchanged", () => {
    const valid = JSON.stringify({ a: "x\ny", b: [1, "\u0000"] }, null, 2)
    expect(escapeControlCharactersInStrings(valid)).toBe(valid)
  })

  it("escapes only inside strings", () => {
    expect(escapeControlCharactersInStrings("{\n\"a\":\t\"b\nc\u0000\u0000\u0001\"\r\n}")).toBe(
      "{\n\"a\":\t\"b\\nc\\u0000\\u0000\\u0001\"\r\n}"
    )
  })

  it("escaping bytes then decoding is escaping the decoded text (the bytes path of decode)", () => {
    const decoder = new TextDecoder("utf-8", { ignoreBOM: true })
    const same = (bytes: Uint8Array) =>
      expect(decoder.decode(escapeControlBytesInStrings(bytes))).toBe(
        escapeControlCharactersInStrings(decoder.decode(bytes), true)
      )
    const tricky = [
      SEED,
      SEED.replaceAll("\\u0000", "\u0000"),
      "{\n\"a\":\t\"b\nc\u0000\u0000\u0001\"\r\n}",
      `{"a":"x\\\ny\\\\\nz\\\"\t"}`, // backslashes right before raw controls, escaped quotes
      `{"a":"unterminated\n\u0000`,
      `"\r\n\u001f" "\n" \n "é\n😀\u0000"`
    ]
    for (const text of tricky) same(utf8(text))
    // valid JSON: the same bytes, not a copy
    const valid = utf8(JSON.stringify({ a: "x\ny" }))
    expect(escapeControlBytesInStrings(valid)).toBe(valid)
    // invalid UTF-8 next to controls and quotes, with a BOM
    same(new Uint8Array([...BOM_BYTES, 0x22, 0xe2, 0x0a, 0xed, 0xa0, 0x80, 0x00, 0xc3, 0x22, 0x0a, 0x22, 0xf0, 0x9f, 0x5c, 0x09, 0x22]))
    const random = prng(11)
    const alphabet = [0x22, 0x5c, 0x0a, 0x0d, 0x00, 0x09, 0x01, 0x1f, 0x61, 0x20, 0xc3, 0xa9, 0xe2, 0x80, 0xff, 0x7b, 0x3a]
    for (let round = 0; round < 500; round++) {
      same(Uint8Array.from({ length: Math.floor(random() * 60) }, () => alphabet[Math.floor(random() * alphabet.length)]!))
    }
  })

  it("reports a reason instead of throwing", () => {
    expect(parseTolerantJson("{\"a\":1}")).toEqual(Either.right({ a: 1 }))
    expect(Either.isLeft(parseTolerantJson("{\"a\":\"unterminated\n"))).toBe(true)
    expect(parseTolerantJson("\uFEFF[\"\u0000\"]")).toEqual(Either.right(["\u0000"]))
  })
})

describe("large string literals (over 64 KiB) are decoded apart, a piece at a time", () => {
  // Every kind of character at every position relative to the 256 KiB piece boundaries:
  // escapes (\uXXXX, surrogate pairs, \\ and \"), multi-byte UTF-8, raw controls, a
  // backslash before a raw control character.
  const atoms = ["a", "\\\\", "\\\"", "\\u00e9", "\\ud83d\\ude00", "\u0000", "\n", "\r\n", "\t", "é", "😀", "中", "\\n", "\u0001", "\\u0000", "\\\u0000"]
  const big = (random: () => number, chars: number) => {
    let raw = ""
    while (raw.length < chars) raw += atoms[Math.floor(random() * atoms.length)]
    return raw
  }
  /** What the literal's raw content means (each raw control character as its escape). */
  const meaning = (raw: string): string =>
    JSON.parse(`"${raw.replace(/\\\\|\\(?=[\u0000-\u001f])|[\u0000-\u001f]/g, (m) =>
      m === "\\\\" ? m : m === "\\" ? "\\\\" : `\\u${m.charCodeAt(0).toString(16).padStart(4, "0")}`)}"`)

  it.effect("values, keys and array elements decode exactly as a whole would", () =>
    Effect.gen(function*() {
      const random = prng(11)
      for (let round = 0; round < 6; round++) {
        const output = big(random, 300_000 + round * 50_000)
        const key = big(random, 70_000)
        const text = `{"script_name":"big.ps1","exit_code":0,"script_output":"${output}","script_error":"","extra":{"${key}":["${output}",1]}}`
        const decoded = yield* Transcript.decode(utf8(text))
        expect(decoded.output === meaning(output).replace(/\u0000+$/, "")).toBe(true)
        const strict = Schema.decodeSync(Transcript.TranscriptFromBytes)(utf8(text))
        expect(strict).toEqual(decoded)
      }
    }))

  it.effect("an invalid escape inside one, or broken structure around one, is InvalidJson", () =>
    Effect.gen(function*() {
      const output = "x".repeat(200_000)
      const badEscape = yield* failureOf(utf8(`{"script_name":"a","exit_code":0,"script_output":"${output}\\q${output}","script_error":""}`))
      expect(badEscape.reason).toBe("InvalidJson")
      const badStructure = yield* failureOf(utf8(`{"script_name":"a","exit_code":0,"script_output":"${output}" "script_error":""}`))
      expect(badStructure.reason).toBe("InvalidJson")
      const unterminated = yield* failureOf(utf8(`{"script_name":"a","exit_code":0,"script_output":"${output}`))
      expect(unterminated.reason).toBe("InvalidJson")
    }))
})
