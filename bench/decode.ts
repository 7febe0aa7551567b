/**
 * Benchmark 3 of issue 6: transcript decoding — throughput and peak memory of
 * `Transcript.decode` on 1, 10 and 100 MiB RunScript transcripts with raw
 * newlines and NULs (so the tolerant path runs), against `JSON.parse` of the
 * same content written as strict JSON.
 *
 * Every measurement runs in a fresh child process (`--child speed|mem …`), so
 * one size's heap cannot slow or inflate the next, and peak RSS is the child's
 * own. The inputs are generated once, written to a temporary directory and read
 * back by the children, as a download would hand them over: flat bytes.
 *
 * Issue 11 adds a pathological transcript: a raw NUL or newline every 3 bytes
 * (10 MiB in the quick run, 100 MiB in the full one), decoded with
 * `Effect.runPromise` as `getTranscript` does, for its peak RSS (target: at most
 * 4x the file size) and the longest time the event loop was blocked (target: at
 * most one second), measured by a 10 ms interval probe and
 * `perf_hooks.monitorEventLoopDelay`.
 *
 *   node --import tsx bench/decode.ts [--quick]
 *   node --import tsx bench/decode.ts --child patho 100   (one pathological decode)
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import * as vm from "node:vm"
import * as v8 from "node:v8"
import type { BenchOptions, BenchResult, Target } from "./types.ts"
import { round } from "./types.ts"

const MiB = 1024 * 1024
const SELF = fileURLToPath(import.meta.url)
const ROOT = path.resolve(path.dirname(SELF), "..")

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

/** mulberry32: a small seeded PRNG, so every run decodes the same files. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/**
 * The characters beyond ASCII. "latin1" (umlauts, accents, °, ©) keeps V8's
 * strings one byte per character, as on a Western Windows host; "wide" (CJK,
 * an emoji, a dash) makes every string of the transcript two bytes per
 * character, as on a Japanese one.
 */
export type Charset = "latin1" | "wide"

/** One line of plausible PowerShell output, without its line break (about 75 characters). */
const lineOf = (random: () => number, charset: Charset): string => {
  const n = Math.floor(random() * 100000)
  const pad = (x: number, width: number) => String(x).padStart(width, "0")
  switch (Math.floor(random() * 5)) {
    case 0:
      return `C:\\Users\\admin\\AppData\\Local\\Temp\\tmp${n}.tmp    ${n % 977} KB  2024-01-${pad(n % 28 + 1, 2)} 12:${
        pad(n % 60, 2)
      }`
    case 1:
      return `  ${n % 9000}  svchost   ${(n % 500) / 10}  ${n}K  "C:\\Windows\\System32\\svchost.exe -k netsvcs -p"`
    case 2:
      return `[2024-01-15 12:${pad(n % 60, 2)}:${pad(n % 59, 2)}] INFO  Überprüfung der Größe: ${n} Dateien, 21 °C (naïve café)`
    case 3:
      return charset === "wide"
        ? `✓ ${n} 件のファイルを処理しました — 完了 😀 C:\\データ\\報告書_${n}.docx`
        : `© Contoso - ${n} fichiers traités, état « terminé » à 21 °C, Größe ${n % 977} KB`
    default:
      return `HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run\\Updater${n}  REG_SZ  "C:\\Program Files\\u.exe"`
  }
}

interface Pieces {
  /** Defender's form: most line breaks and NULs raw. */
  tolerant: string
  /** The same content as strict JSON: every control character escaped. */
  strict: string
}

/** A line break or an embedded control character, raw in the tolerant file most of the time. */
const control = (random: () => number, raw: string, escaped: string, rawShare: number): Pieces =>
  random() < rawShare ? { tolerant: raw, strict: escaped } : { tolerant: escaped, strict: escaped }

/**
 * Writes a transcript of about `bytes` bytes (the tolerant file's size) and
 * its strict twin: `script_output` is lines of about 75 characters, ending in a
 * raw `\n` (about 60 %) or `\r\n` (25 %) or an escaped one (15 %), with a raw
 * NUL in one line in 50, an escaped `\u0000` in one in 100, a raw tab in one in
 * 200, quotes and backslashes (escaped, as any writer does), and 64 raw NULs of
 * padding at the end.
 */
export const writeTranscripts = (
  bytes: number,
  charset: Charset,
  tolerantPath: string,
  strictPath: string
): { tolerantBytes: number; strictBytes: number } => {
  const random = prng(bytes + (charset === "wide" ? 1 : 0))
  const name = `triage-${bytes}.ps1`
  const head = `{\r\n  "script_name": "${name}",\r\n  "exit_code": 0,\r\n  "script_output": "`
  const tail = `",\r\n  "script_errors": ""\r\n}\r\n`
  const padding: Pieces = { tolerant: "\u0000".repeat(64), strict: "\\u0000".repeat(64) }
  const tolerant = fs.openSync(tolerantPath, "w")
  const strict = fs.openSync(strictPath, "w")
  let tolerantBytes = 0
  let strictBytes = 0
  const write = (piece: Pieces) => {
    tolerantBytes += fs.writeSync(tolerant, piece.tolerant)
    strictBytes += fs.writeSync(strict, piece.strict)
  }
  write({ tolerant: head, strict: head })
  const budget = bytes - Buffer.byteLength(head + tail) - padding.tolerant.length
  while (tolerantBytes < budget) {
    // ~64 KiB per write: few system calls, little memory
    let chunkTolerant = ""
    let chunkStrict = ""
    while (chunkTolerant.length < 64 * 1024) {
      const line = JSON.stringify(lineOf(random, charset)).slice(1, -1)
      const cut = Math.floor(random() * line.length)
      const r = random()
      const inner = r < 0.02
        ? control(random, "\u0000", "\\u0000", 1)
        : r < 0.03
        ? control(random, "\u0000", "\\u0000", 0)
        : r < 0.035
        ? control(random, "\t", "\\t", 1)
        : { tolerant: "", strict: "" }
      // never split an escape sequence of the line
      let backslashes = 0
      while (line[cut - 1 - backslashes] === "\\") backslashes++
      const at = backslashes % 2 === 1 ? cut + 1 : cut
      const b = random()
      const end = b < 0.6
        ? control(random, "\n", "\\n", 1)
        : b < 0.85
        ? control(random, "\r\n", "\\r\\n", 1)
        : control(random, "\n", "\\n", 0)
      chunkTolerant += line.slice(0, at) + inner.tolerant + line.slice(at) + end.tolerant
      chunkStrict += line.slice(0, at) + inner.strict + line.slice(at) + end.strict
    }
    write({ tolerant: chunkTolerant, strict: chunkStrict })
  }
  write(padding)
  write({ tolerant: tail, strict: tail })
  fs.closeSync(tolerant)
  fs.closeSync(strict)
  return { tolerantBytes, strictBytes }
}

// ---------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------

/** The ways a transcript is turned into a value: ours from bytes or text, JSON.parse from text or bytes. */
const MODES = ["decode-bytes", "decode-string", "parse-string", "parse-bytes"] as const
type Mode = typeof MODES[number]

/** The engine's `gc`, for the children only (the flag is set when first asked for). */
let gcFunction: (() => void) | undefined
const gc = (): void => {
  if (gcFunction === undefined) {
    v8.setFlagsFromString("--expose-gc")
    gcFunction = vm.runInNewContext("gc") as () => void
  }
  gcFunction()
}

interface Inputs {
  readonly tolerantBytes: Uint8Array
  readonly strictBytes: Uint8Array
}

const readBytes = (file: string): Uint8Array => {
  const buffer = fs.readFileSync(file)
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
}

const utf8 = new TextDecoder()

/** A function that does one decode of the given mode and returns what it decoded. */
const decoderFor = async (
  mode: Mode,
  inputs: Inputs
): Promise<() => unknown> => {
  switch (mode) {
    case "decode-bytes":
    case "decode-string": {
      // only these children load the library (and Effect: about two seconds under tsx)
      const { Effect } = await import("effect")
      const Transcript = await import("../src/Transcript.ts")
      // large bytes decode in steps with a turn of the event loop between them: runPromise
      if (mode === "decode-bytes") return () => Effect.runPromise(Transcript.decode(inputs.tolerantBytes))
      const text = utf8.decode(inputs.tolerantBytes)
      return () => Effect.runSync(Transcript.decode(text))
    }
    case "parse-string": {
      const text = utf8.decode(inputs.strictBytes)
      return () => JSON.parse(text)
    }
    case "parse-bytes":
      return () => JSON.parse(utf8.decode(inputs.strictBytes))
  }
}

/** The length of the decoded output, to check that every mode decoded the same thing. */
const outputLength = (value: unknown): number => {
  const record = value as { output?: string; script_output?: string }
  return (record.output ?? record.script_output?.replace(/\u0000+$/, "") ?? "").length
}

/** Median and best milliseconds of each mode, runs interleaved so that drift hits all alike. */
const childSpeed = async (dir: string, runs: number): Promise<Record<string, number>> => {
  const inputs: Inputs = {
    tolerantBytes: readBytes(path.join(dir, "tolerant.json")),
    strictBytes: readBytes(path.join(dir, "strict.json"))
  }
  const decoders = await Promise.all(MODES.map((mode) => decoderFor(mode, inputs)))
  const times: Array<Array<number>> = MODES.map(() => [])
  const lengths = new Set<number>()
  for (let run = -2; run < runs; run++) { // two warm-up rounds
    for (let m = 0; m < MODES.length; m++) {
      gc()
      const start = performance.now()
      const value = await decoders[m]!()
      const elapsed = performance.now() - start
      if (run >= 0) times[m]!.push(elapsed)
      else lengths.add(outputLength(value))
    }
  }
  if (lengths.size !== 1) throw new Error(`the modes decoded different outputs: ${[...lengths].join(", ")}`)
  const figures: Record<string, number> = {}
  MODES.forEach((mode, m) => {
    const sorted = times[m]!.sort((a, b) => a - b)
    figures[`${mode}.medianMs`] = sorted[Math.floor(sorted.length / 2)]!
    figures[`${mode}.bestMs`] = sorted[0]!
  })
  return figures
}

/** Resets the kernel's peak-RSS mark to the current RSS (Linux ≥ 4.0); false where that is not possible. */
const resetPeakRss = (): boolean => {
  try {
    fs.writeFileSync("/proc/self/clear_refs", "5")
    return true
  } catch {
    return false
  }
}

const rssMiB = (): number => process.memoryUsage().rss / MiB
const maxRssMiB = (): number => process.resourceUsage().maxRSS / 1024

/**
 * Peak RSS above the RSS at the start of one decode, in MiB. The input (bytes,
 * or the text for the string modes) exists before the start, as it would for a
 * caller; the decoded value is still alive when the peak is read.
 */
const childMemory = async (dir: string, mode: Mode): Promise<Record<string, number | boolean>> => {
  const file = mode.startsWith("decode") ? "tolerant.json" : "strict.json"
  const inputs: Inputs = mode.startsWith("decode")
    ? { tolerantBytes: readBytes(path.join(dir, file)), strictBytes: new Uint8Array() }
    : { tolerantBytes: new Uint8Array(), strictBytes: readBytes(path.join(dir, file)) }
  let decodeOnce = await decoderFor(mode, inputs)
  if (mode === "decode-string" || mode === "parse-string") {
    // the text is all the caller holds: let the bytes go
    ;(inputs as { tolerantBytes: Uint8Array }).tolerantBytes = new Uint8Array()
    ;(inputs as { strictBytes: Uint8Array }).strictBytes = new Uint8Array()
  }
  gc()
  gc()
  const reset = resetPeakRss()
  const before = rssMiB()
  const beforeMax = maxRssMiB()
  const value = await decodeOnce()
  const peak = maxRssMiB()
  const kept = outputLength(value) // keeps the value alive up to here
  decodeOnce = () => undefined
  return {
    beforeMiB: before,
    peakMiB: peak,
    // without a reset, a peak from reading the file may hide the decode's: the figure is then a lower bound
    peakAboveBeforeMiB: peak - (reset ? before : Math.max(before, beforeMax)),
    exactPeak: reset,
    outputChars: kept
  }
}

/** `{"script_name":…,"script_output":"` + `ab<NUL>ab<LF>`… + `",…}`: a raw control character every 3 bytes. */
export const pathologicalTranscript = (bytes: number): { readonly bytes: Uint8Array; readonly outputChars: number } => {
  const head = Buffer.from(`{"script_name":"patho.ps1","exit_code":0,"script_output":"`)
  const tail = Buffer.from(`","script_error":""}`)
  const content = Math.floor((bytes - head.length - tail.length) / 6) * 6
  const out = Buffer.alloc(head.length + content + tail.length)
  head.copy(out, 0)
  const unit = Buffer.from("ab\u0000ab\n")
  for (let at = head.length; at < head.length + content; at += 6) unit.copy(out, at)
  tail.copy(out, head.length + content)
  return { bytes: new Uint8Array(out.buffer, out.byteOffset, out.length), outputChars: content }
}

/**
 * One pathological decode through `Effect.runPromise`: peak RSS above the start (the input
 * already in memory) and the longest event-loop block, by a 10 ms interval probe and by
 * `monitorEventLoopDelay`.
 */
const childPathological = async (sizeMiB: number): Promise<Record<string, number | boolean>> => {
  const input = pathologicalTranscript(sizeMiB * MiB)
  const { Effect } = await import("effect")
  const Transcript = await import("../src/Transcript.ts")
  gc()
  gc()
  const reset = resetPeakRss()
  const before = rssMiB()
  const beforeMax = maxRssMiB()
  const histogram = monitorEventLoopDelay({ resolution: 10 })
  histogram.enable()
  let last = performance.now()
  let longestGap = 0
  const probe = setInterval(() => {
    const now = performance.now()
    longestGap = Math.max(longestGap, now - last)
    last = now
  }, 10)
  const start = performance.now()
  const transcript = await Effect.runPromise(Transcript.decode(input.bytes))
  const ms = performance.now() - start
  await new Promise((resolve) => setTimeout(resolve, 30)) // a last probe tick after the decode
  clearInterval(probe)
  histogram.disable()
  const peak = maxRssMiB()
  if (transcript.output.length !== input.outputChars) {
    throw new Error(`decoded ${transcript.output.length} characters, expected ${input.outputChars}`)
  }
  const above = peak - (reset ? before : Math.max(before, beforeMax))
  return {
    ms,
    peakAboveBeforeMiB: above,
    peakX: above * MiB / input.bytes.length,
    exactPeak: reset,
    longestBlockMs: longestGap,
    loopDelayMaxMs: histogram.max / 1e6
  }
}

const child = async (args: ReadonlyArray<string>): Promise<void> => {
  const [kind, dir, arg] = args
  const figures = kind === "speed"
    ? await childSpeed(dir!, Number(arg))
    : kind === "patho"
    ? await childPathological(Number(dir))
    : await childMemory(dir!, arg as Mode)
  process.stdout.write(JSON.stringify(figures) + "\n")
}

const runChild = (args: ReadonlyArray<string>): Promise<Record<string, number>> =>
  new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--import", "tsx", SELF, "--child", ...args],
      { cwd: ROOT, maxBuffer: 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`child ${args.join(" ")} failed: ${error.message}\n${stderr}`))
        else resolve(JSON.parse(stdout.trim().split("\n").at(-1)!))
      }
    )
  })

// ---------------------------------------------------------------------------
// The benchmark
// ---------------------------------------------------------------------------

interface Case {
  readonly sizeMiB: number
  readonly charset: Charset
  readonly runs: number
}

const casesFor = (quick: boolean): ReadonlyArray<Case> =>
  quick
    ? [{ sizeMiB: 1, charset: "latin1", runs: 7 }, { sizeMiB: 10, charset: "latin1", runs: 3 }]
    : [
      { sizeMiB: 1, charset: "latin1", runs: 21 },
      { sizeMiB: 10, charset: "latin1", runs: 11 },
      { sizeMiB: 100, charset: "latin1", runs: 5 },
      { sizeMiB: 10, charset: "wide", runs: 11 },
      { sizeMiB: 100, charset: "wide", runs: 5 }
    ]

const SPEED_TARGET = 0.5
const MEMORY_TARGET = 3
const PATHOLOGICAL_MEMORY_TARGET = 4
const BLOCK_TARGET_MS = 1000

export const run = async (options: BenchOptions): Promise<BenchResult> => {
  const figures: Record<string, number | string | boolean> = {}
  const targets: Array<Target> = []
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mde-bench-decode-"))
  try {
    for (const c of casesFor(options.quick)) {
      const key = `${c.sizeMiB}MiB${c.charset === "wide" ? ".wide" : ""}`
      const dir = path.join(tmp, key)
      fs.mkdirSync(dir)
      const { strictBytes, tolerantBytes } = writeTranscripts(
        c.sizeMiB * MiB,
        c.charset,
        path.join(dir, "tolerant.json"),
        path.join(dir, "strict.json")
      )
      const speed = await runChild(["speed", dir, String(c.runs)])
      // peak RSS is each child's own, so two can run at once (the speed child runs alone)
      // (the quick run measures the two modes the memory target compares, bytes in)
      const memory: Record<string, Record<string, number>> = {}
      const memoryModes = options.quick ? MODES.filter((mode) => mode.endsWith("bytes")) : MODES
      for (let m = 0; m < memoryModes.length; m += 2) {
        const pair = memoryModes.slice(m, m + 2)
        const results = await Promise.all(pair.map((mode) => runChild(["mem", dir, mode])))
        pair.forEach((mode, i) => memory[mode] = results[i]!)
      }
      fs.rmSync(dir, { recursive: true })

      // MiB/s of each input's own size; the ratios compare times for the same content
      const mibps = (bytes: number, ms: number) => round(bytes / MiB / (ms / 1000), 1)
      figures[`${key}.tolerantBytes`] = tolerantBytes
      figures[`${key}.strictBytes`] = strictBytes
      for (const mode of MODES) {
        const bytes = mode.startsWith("decode") ? tolerantBytes : strictBytes
        figures[`${key}.${mode}.MiBps`] = mibps(bytes, speed[`${mode}.medianMs`]!)
        figures[`${key}.${mode}.bestMiBps`] = mibps(bytes, speed[`${mode}.bestMs`]!)
        figures[`${key}.${mode}.medianMs`] = round(speed[`${mode}.medianMs`]!, 1)
        const peak = memory[mode]
        if (peak === undefined) continue
        figures[`${key}.${mode}.peakMiB`] = round(peak.peakAboveBeforeMiB!, 1)
        figures[`${key}.${mode}.peakX`] = round(peak.peakAboveBeforeMiB! * MiB / bytes, 2)
        if (!peak.exactPeak) figures[`${key}.${mode}.peakIsLowerBound`] = true
      }
      const speedRatio = speed["parse-string.medianMs"]! / speed["decode-string.medianMs"]!
      const bytesRatio = speed["parse-bytes.medianMs"]! / speed["decode-bytes.medianMs"]!
      figures[`${key}.speedRatio.string`] = round(speedRatio)
      figures[`${key}.speedRatio.bytes`] = round(bytesRatio)
      const memoryX = figures[`${key}.decode-bytes.peakX`] as number
      const label = `${c.sizeMiB} MiB${c.charset === "wide" ? ", two-byte text" : ""}`
      // The target compares the form a download gives: bytes. Ours decodes them;
      // a strict-JSON user would run TextDecoder and JSON.parse. The text-in
      // ratio (no UTF-8 decoding on either side, so the stricter one) is a figure.
      targets.push({
        name: `decode speed vs TextDecoder + JSON.parse, ${label} (bytes in)`,
        target: `>= ${SPEED_TARGET}x`,
        measured: round(bytesRatio),
        unit: "x JSON.parse speed",
        met: bytesRatio >= SPEED_TARGET
      })
      targets.push({
        name: `decode peak memory, ${label} (bytes in)`,
        target: `<= ${MEMORY_TARGET}x file size`,
        measured: memoryX,
        unit: "x file size (peak RSS above start)",
        met: memoryX <= MEMORY_TARGET
      })
    }
    const sizeMiB = options.quick ? 10 : 100
    const patho = await runChild(["patho", String(sizeMiB)])
    const key = `pathological.${sizeMiB}MiB`
    figures[`${key}.ms`] = round(patho.ms!, 1)
    figures[`${key}.peakMiB`] = round(patho.peakAboveBeforeMiB!, 1)
    figures[`${key}.peakX`] = round(patho.peakX!, 2)
    figures[`${key}.longestBlockMs`] = round(patho.longestBlockMs!, 1)
    figures[`${key}.loopDelayMaxMs`] = round(patho.loopDelayMaxMs!, 1)
    targets.push({
      name: `decode peak memory, pathological ${sizeMiB} MiB (a raw NUL or newline every 3 bytes)`,
      target: `<= ${PATHOLOGICAL_MEMORY_TARGET}x file size`,
      measured: round(patho.peakX!, 2),
      unit: "x file size (peak RSS above start)",
      met: patho.peakX! <= PATHOLOGICAL_MEMORY_TARGET
    })
    const block = Math.max(patho.longestBlockMs!, patho.loopDelayMaxMs!)
    targets.push({
      name: `longest event-loop block while decoding, pathological ${sizeMiB} MiB`,
      target: `<= ${BLOCK_TARGET_MS} ms`,
      measured: round(block, 1),
      unit: "ms (10 ms interval probe and monitorEventLoopDelay, the larger)",
      met: block <= BLOCK_TARGET_MS
    })
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
  return {
    name: "decode",
    description: "Transcript.decode on RunScript transcripts with raw newlines and NULs vs JSON.parse of the same "
      + "content as strict JSON; speed is the median of several runs after warm-up in a fresh child per size, "
      + "ratio = JSON.parse time / decode time, bytes in on both sides (TextDecoder + JSON.parse for the reference; "
      + "the text-in ratio is a figure); peak memory is one decode in a fresh child, "
      + "peak RSS above the RSS at the start (input already in memory), / file size, bytes in; the pathological "
      + "transcript (a raw NUL or newline every 3 bytes) is one decode through Effect.runPromise, with its peak RSS "
      + "and the longest event-loop block (10 ms interval probe, monitorEventLoopDelay).",
    figures,
    targets
  }
}

// ---------------------------------------------------------------------------
// Alone: node --import tsx bench/decode.ts [--quick]
// ---------------------------------------------------------------------------

const printTable = (result: BenchResult): void => {
  const f = result.figures
  const keys = [...new Set(Object.keys(f).filter((k) => k.endsWith(".tolerantBytes")).map((k) => k.split(".tolerantBytes")[0]!))]
  const rows = keys.flatMap((key) =>
    MODES.map((mode) => ({
      input: key,
      mode,
      "MiB/s (median)": f[`${key}.${mode}.MiBps`],
      "MiB/s (best)": f[`${key}.${mode}.bestMiBps`],
      "peak MiB": f[`${key}.${mode}.peakMiB`],
      "peak x size": f[`${key}.${mode}.peakX`]
    }))
  )
  console.table(rows)
  console.table(
    keys.map((key) => ({
      input: key,
      "speed ratio, text": f[`${key}.speedRatio.string`],
      "speed ratio, bytes": f[`${key}.speedRatio.bytes`]
    }))
  )
  console.table(result.targets.map((t) => ({ target: t.name, wanted: t.target, measured: t.measured, met: t.met })))
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === SELF) {
  const args = process.argv.slice(2)
  if (args[0] === "--child") {
    await child(args.slice(1))
  } else {
    const started = performance.now()
    const result = await run({ quick: args.includes("--quick") })
    printTable(result)
    console.log(`decode benchmark: ${((performance.now() - started) / 1000).toFixed(1)} s`)
  }
}
