/**
 * `npm run bench [-- --quick] [--only quota,overhead,decode,download,campaign] [--out file]`
 *
 * Runs every benchmark (bench/quota.ts, overhead.ts, decode.ts, download.ts, campaign.ts),
 * prints each one's figures and targets, and appends one record — the machine,
 * the command, every result — to the JSON results file (default
 * bench/results.json, an array). `--quick` shrinks the inputs so the whole run
 * takes under two minutes; `npm test` runs it as a smoke test (`--smoke`: the
 * record goes to .tmp/ and a missed target does not fail the run, a crash does).
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { cpus, totalmem } from "node:os"
import type { BenchOptions, BenchResult } from "./types.ts"

const BENCHMARKS: Record<string, () => Promise<{ run: (options: BenchOptions) => Promise<BenchResult> }>> = {
  quota: () => import("./quota.ts"),
  overhead: () => import("./overhead.ts"),
  decode: () => import("./decode.ts"),
  download: () => import("./download.ts"),
  campaign: () => import("./campaign.ts")
}

const argv = process.argv.slice(2)
const flag = (name: string) => argv.includes(`--${name}`)
const option = (name: string) => {
  const at = argv.indexOf(`--${name}`)
  return at >= 0 ? argv[at + 1] : undefined
}
const quick = flag("quick") || flag("smoke")
const smoke = flag("smoke")
const only = option("only")?.split(",") ?? Object.keys(BENCHMARKS)
const out = option("out") ?? (smoke ? ".tmp/bench-smoke.json" : "bench/results.json")
for (const name of only) if (!(name in BENCHMARKS)) throw new Error(`unknown benchmark ${name}`)

const version = (command: string, args: ReadonlyArray<string>) => {
  try {
    return execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).split("\n")[0]!.trim()
  } catch {
    return "not found"
  }
}

const machine = {
  cpu: cpus()[0]?.model ?? "unknown",
  cores: cpus().length,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  os: `${process.platform} ${process.arch}`,
  node: process.version,
  deno: version("npx", ["deno", "--version"]),
  bun: version("npx", ["bun", "--version"]),
  curl: version("curl", ["--version"])
}

/** The figures of one run as Markdown: the machine, then per benchmark its targets and figures. */
function renderFigures(record: {
  readonly date: string
  readonly command: string
  readonly seconds: number
  readonly machine: typeof machine
  readonly results: ReadonlyArray<BenchResult>
}): string {
  const m = record.machine
  const lines: Array<string> = []
  for (const r of record.results) {
    lines.push(
      `### ${r.name}`,
      "",
      `${r.description}. Measured ${record.date.slice(0, 16).replace("T", " ")} UTC with \`${record.command}\` on ${m.cpu},`,
      `${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}; Node ${m.node}, ${m.deno.replace(/\s*\(.*$/, "")}, Bun ${m.bun}; ${m.curl.split(" ").slice(0, 2).join(" ")}.`,
      "",
      "| target | wanted | measured | met |",
      "| --- | --- | --- | --- |"
    )
    for (const t of r.targets) lines.push(`| ${t.name} | ${t.target} | ${t.measured} ${t.unit} | ${t.met ? "yes" : "**no**"} |`)
    lines.push("", "<details><summary>all figures</summary>", "", "| figure | value |", "| --- | --- |")
    for (const [key, value] of Object.entries(r.figures)) lines.push(`| ${key} | ${value} |`)
    lines.push("", "</details>", "")
    for (const file of r.files ?? []) if (file.endsWith(".svg") && !file.startsWith(".tmp")) lines.push(`![${r.name}](../${file})`, "") // the page is docs/benchmarks.md
  }
  return lines.join("\n")
}

const started = Date.now()
const results: Array<BenchResult> = []
let crashed = false
mkdirSync(".tmp", { recursive: true })
for (const name of only) {
  process.stderr.write(`\n== ${name}${quick ? " (quick)" : ""}\n`)
  const t0 = Date.now()
  try {
    const result = await (await BENCHMARKS[name]!()).run({ quick })
    results.push(result)
    process.stderr.write(`${result.description} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`)
    for (const [key, value] of Object.entries(result.figures)) process.stderr.write(`  ${key}: ${value}\n`)
    for (const t of result.targets) {
      process.stderr.write(`  ${t.met ? "MET " : "MISS"} ${t.name}: ${t.measured} ${t.unit} (target ${t.target})\n`)
    }
  } catch (error) {
    crashed = true
    process.stderr.write(`  FAILED: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  }
}

const record = {
  date: new Date(started).toISOString(),
  command: `npm run bench${argv.length > 0 ? ` -- ${argv.join(" ")}` : ""}`,
  quick,
  seconds: Math.round((Date.now() - started) / 100) / 10,
  machine,
  results
}
const previous = existsSync(out) ? (JSON.parse(readFileSync(out, "utf8")) as Array<unknown>) : []
writeFileSync(out, JSON.stringify([...previous, record], null, 2) + "\n")
// A full run also rewrites the figures section of docs/benchmarks.md (the prose around it is written by hand).
if (!quick && existsSync("docs/benchmarks.md")) {
  const text = readFileSync("docs/benchmarks.md", "utf8")
  const start = "<!-- figures:start -->"
  const end = "<!-- figures:end -->"
  if (text.includes(start) && text.includes(end)) {
    // Per benchmark, the latest full run of it (a run with --only leaves the others' figures as they were).
    const records = JSON.parse(readFileSync(out, "utf8")) as Array<typeof record>
    const rendered = Object.keys(BENCHMARKS).flatMap((name) => {
      const latest = records.filter((r) => !r.quick && r.results.some((x) => x.name === name)).pop()
      return latest === undefined ? [] : [renderFigures({ ...latest, results: latest.results.filter((x) => x.name === name) })]
    }).join("\n")
    writeFileSync("docs/benchmarks.md", text.slice(0, text.indexOf(start) + start.length) + "\n" + rendered + text.slice(text.indexOf(end)))
  }
}

const missed = results.flatMap((r) => r.targets.filter((t) => !t.met).map((t) => `${r.name}: ${t.name}`))
process.stderr.write(
  `\n${results.length}/${only.length} benchmarks ran in ${record.seconds} s; ${missed.length} target(s) missed${
    missed.length > 0 ? `: ${missed.join("; ")}` : ""
  }; appended to ${out}\n`
)
process.exit(crashed ? 1 : 0)
