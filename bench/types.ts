/**
 * What every benchmark returns: its figures, and each target of issue 6 with the
 * measured value, so `bench/main.ts` can print them, append them to the JSON
 * results file and docs/benchmarks.md can quote them.
 */
export interface BenchOptions {
  /** The `--quick` mode: smaller inputs, so the whole run takes under two minutes. */
  readonly quick: boolean
}

export interface Target {
  /** What is compared, e.g. "decode speed vs JSON.parse". */
  readonly name: string
  /** The target as written in the issue, e.g. ">= 0.5x". */
  readonly target: string
  /** The measured value, as a number (ratio, percent, MiB…) … */
  readonly measured: number
  /** … and its unit or meaning, e.g. "x JSON.parse speed". */
  readonly unit: string
  readonly met: boolean
}

export interface BenchResult {
  /** Short id: "quota", "overhead", "decode", "download". */
  readonly name: string
  /** One line saying what was measured and how. */
  readonly description: string
  /** Every figure measured, flat (numbers are rounded by the benchmark). */
  readonly figures: Record<string, number | string | boolean>
  readonly targets: ReadonlyArray<Target>
  /** Extra files the benchmark wrote (e.g. an SVG chart), relative to the repo root. */
  readonly files?: ReadonlyArray<string>
}

/** Peak resident set size of this process so far, in MiB (from process.resourceUsage: KiB on Linux). */
export const peakRssMiB = (): number => Math.round((process.resourceUsage().maxRSS / 1024) * 10) / 10

export const round = (n: number, digits = 2): number => {
  const f = 10 ** digits
  return Math.round(n * f) / f
}
