/**
 * Benchmark 4 of issue 6: a GetFile download of a 1 GiB result from the simulator to disk,
 * the library (`LiveResponse.downloadToFile` over `FetchHttpClient`) against curl on the
 * same kind of link: throughput and the library's peak RSS.
 *
 *   node --import tsx bench/download.ts [--quick]
 *
 * Three processes, so nothing counts in the wrong place: the simulator serves the result from
 * its own process (bench/download-server.ts, which holds the bytes in memory), and every
 * library run is a fresh process (bench/download-client.ts) whose `maxRSS` is its peak. The
 * client runs as plain JavaScript (the TypeScript is transpiled first, as `dist/` would be):
 * under `--import tsx` the transpiler and its loader thread add about 110 MiB to the RSS, which
 * a user of the published package never pays; one run under tsx is still reported. A third
 * contender, bench/download-raw.ts, does the same work with bare `fetch` (no Effect): the
 * ceiling of any fetch-based client here, so the gap to curl splits into fetch's and ours.
 * Each curl run gets a fresh link from the API first (not timed) and is timed around the
 * `curl` process; the library's and bare fetch's times include their own link request. The
 * order rotates from run to run; files are checked (size always, MD5 on the first run of
 * the library and curl; the library and bare fetch check it themselves) and deleted.
 * `--quick`: 256 MiB and one run of each.
 */
import { spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { createReadStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, relative } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import ts from "typescript"
import type { ClientFigures } from "./download-client.ts"
import type { ServerInfo } from "./download-server.ts"
import { type BenchOptions, type BenchResult, round, type Target } from "./types.ts"

const MiB = 1024 * 1024
const here = dirname(fileURLToPath(import.meta.url))
const root = dirname(here)

/** Runs a command to its end; its stdout, and the wall time from spawn to exit. */
const exec = (command: string, args: ReadonlyArray<string>) =>
  new Promise<{ readonly stdout: string; readonly millis: number }>((resolve, reject) => {
    const start = performance.now()
    const child = spawn(command, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.on("error", reject)
    child.on("close", (code) => {
      const millis = performance.now() - start
      if (code === 0) resolve({ stdout, millis })
      else reject(new Error(`${command} exited with ${code}: ${stderr.slice(0, 500)}`))
    })
  })

const hasCurl = () =>
  exec("sh", ["-c", "command -v curl"]).then(() => true, () => false)

/** Starts the simulator process; resolves with what it printed once it listens. */
const startServer = (bytes: number) =>
  new Promise<{ readonly info: ServerInfo; readonly stop: () => Promise<void> }>((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(here, "download-server.ts"), String(bytes)], {
      cwd: root,
      // stdin stays open: the server stops when it closes, so it cannot outlive this process.
      stdio: ["pipe", "pipe", "inherit"]
    })
    let out = ""
    const exited = new Promise<void>((done) => child.once("exit", () => done()))
    child.once("exit", (code) => reject(new Error(`the simulator exited early (${code})`)))
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString()
      const line = out.indexOf("\n")
      if (line === -1) return
      resolve({
        info: JSON.parse(out.slice(0, line)) as ServerInfo,
        stop: () => {
          child.stdin.end()
          return exited
        }
      })
    })
  })

/**
 * Transpiles the client and `src/` to JavaScript under `.tmp/` (inside the repository, so
 * `effect` still resolves from node_modules); answers the client's path. No type check: tsc
 * does that elsewhere, and this takes a second rather than ten.
 */
const compileClient = (): { readonly client: string; readonly raw: string; readonly folder: string } => {
  mkdirSync(join(root, ".tmp"), { recursive: true })
  const folder = mkdtempSync(join(root, ".tmp", "bench-download-"))
  const sources = [
    join(here, "download-client.ts"),
    join(here, "download-raw.ts"),
    ...readdirSync(join(root, "src"), { recursive: true, encoding: "utf8" })
      .filter((file) => file.endsWith(".ts"))
      .map((file) => join(root, "src", file))
  ]
  for (const source of sources) {
    const { outputText } = ts.transpileModule(readFileSync(source, "utf8"), {
      fileName: source,
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2022,
        verbatimModuleSyntax: true,
        rewriteRelativeImportExtensions: true
      }
    })
    const target = join(folder, relative(root, source)).replace(/\.ts$/, ".js")
    mkdirSync(dirname(target), { recursive: true })
    writeFileSync(target, outputText)
  }
  return {
    client: join(folder, "bench", "download-client.js"),
    raw: join(folder, "bench", "download-raw.js"),
    folder
  }
}

const md5File = (path: string) =>
  new Promise<string>((resolve, reject) => {
    const hash = createHash("md5")
    createReadStream(path, { highWaterMark: 4 * MiB })
      .on("data", (chunk) => hash.update(chunk))
      .on("error", reject)
      .on("end", () => resolve(hash.digest("hex")))
  })

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Checks a downloaded file's size (and MD5 when asked), then deletes it. */
const checkAndRemove = async (path: string, info: ServerInfo, hash: boolean, who: string) => {
  try {
    const size = statSync(path).size
    if (size !== info.bytes) throw new Error(`${who} saved ${size} bytes, expected ${info.bytes}`)
    if (hash) {
      const md5 = await md5File(path)
      if (md5 !== info.md5) throw new Error(`${who}'s file has MD5 ${md5}, expected ${info.md5}`)
    }
  } finally {
    rmSync(path, { force: true })
  }
}

/** One library run in a fresh process: `client` is the compiled client, or "tsx" for the source. */
const runLibrary = async (info: ServerInfo, path: string, client: string) => {
  const entry = client === "tsx" ? ["--import", "tsx", join(here, "download-client.ts")] : [client]
  const { millis: processMillis, stdout } = await exec(process.execPath, [
    ...entry,
    info.url,
    info.machineActionId,
    String(info.index),
    path
  ])
  const figures = JSON.parse(stdout.trim().split("\n").pop()!) as ClientFigures
  if (!figures.md5Verified) throw new Error("the library did not verify the MD5")
  return { ...figures, processMillis }
}

const runRaw = async (info: ServerInfo, path: string, raw: string) => {
  const { stdout } = await exec(process.execPath, [raw, info.url, info.machineActionId, String(info.index), info.token, path])
  const figures = JSON.parse(stdout.trim().split("\n").pop()!) as ClientFigures
  if (!figures.md5Verified) throw new Error("bare fetch's MD5 did not match")
  return figures
}

const runCurl = async (info: ServerInfo, path: string) => {
  const answer = await fetch(
    `${info.url}/api/machineactions/${info.machineActionId}/GetLiveResponseResultDownloadLink(index=${info.index})`,
    { headers: { authorization: `Bearer ${info.token}` } }
  )
  if (!answer.ok) throw new Error(`the link request answered ${answer.status}`)
  const link = ((await answer.json()) as { value: string }).value
  const { millis } = await exec("curl", ["-s", "-f", "-o", path, link])
  return { millis }
}

export const run = async (options: BenchOptions): Promise<BenchResult> => {
  const bytes = options.quick ? 256 * MiB : 1024 * MiB
  const runs = options.quick ? 1 : 3
  const sizeMiB = bytes / MiB
  const curl = await hasCurl()
  const folder = mkdtempSync(join(tmpdir(), "mde-bench-download-"))
  const compiled = compileClient()
  let server: Awaited<ReturnType<typeof startServer>> | undefined
  const library: Array<ClientFigures & { readonly processMillis: number }> = []
  const curlMillis: Array<number> = []
  const raw: Array<ClientFigures> = []
  let underTsx: ClientFigures | undefined
  try {
    // Both files of a run exist at once only if a check fails; keep room for two anyway.
    const free = statfsSync(folder)
    if (free.bavail * free.bsize < 2 * bytes + 256 * MiB) {
      throw new Error(`not enough free space in ${folder} for two ${sizeMiB} MiB files`)
    }
    server = await startServer(bytes)
    const info = server.info
    for (let i = 0; i < runs; i++) {
      // Each contender goes first once in three runs.
      const order = [["library", "curl", "raw"], ["curl", "raw", "library"], ["raw", "library", "curl"]][i % 3]!
      for (const who of order) {
        const path = join(folder, `${who}-${i}.bin`)
        if (who === "library") {
          library.push(await runLibrary(info, path, compiled.client))
          await checkAndRemove(path, info, i === 0, "the library")
        } else if (who === "raw") {
          raw.push(await runRaw(info, path, compiled.raw))
          await checkAndRemove(path, info, false, "bare fetch")
        } else if (curl) {
          curlMillis.push((await runCurl(info, path)).millis)
          await checkAndRemove(path, info, i === 0, "curl")
        }
      }
    }
    if (!options.quick) {
      const path = join(folder, "tsx.bin")
      underTsx = await runLibrary(info, path, "tsx")
      await checkAndRemove(path, info, false, "the library under tsx")
    }
  } finally {
    await server?.stop()
    rmSync(folder, { recursive: true, force: true })
    rmSync(compiled.folder, { recursive: true, force: true })
  }

  const rate = (millis: number) => sizeMiB / (millis / 1000)
  const libRates = library.map((r) => rate(r.millis))
  const curlRates = curlMillis.map(rate)
  const peakRss = Math.max(...library.map((r) => r.maxRssKiB)) / 1024
  const libMedian = median(libRates)
  const curlMedian = curl ? median(curlRates) : Number.NaN
  const ratio = libMedian / curlMedian
  const rawMedian = median(raw.map((r) => rate(r.millis)))
  const sizeNote = options.quick ? ` (measured at ${sizeMiB} MiB, quick mode)` : ""
  const targets: Array<Target> = [
    {
      name: `peak RSS of a 1 GiB download${sizeNote}`,
      target: "<= 150 MiB",
      measured: round(peakRss, 1),
      unit: "MiB",
      met: peakRss <= 150
    },
    {
      name: "download throughput vs curl (medians)",
      target: ">= 0.8x",
      measured: curl ? round(ratio) : Number.NaN,
      unit: curl ? "x curl's MiB/s" : "curl not found",
      met: curl && ratio >= 0.8
    }
  ]
  return {
    name: "download",
    description: `GetFile result of ${sizeMiB} MiB from the simulator (own process, 127.0.0.1) to a temp file: ` +
      `downloadToFile over FetchHttpClient in a fresh process (compiled JS) vs curl -s -o vs bare fetch+write+MD5, ` +
      `${runs} run(s) each, rotating the order`,
    figures: {
      sizeMiB,
      runs,
      curlFound: curl,
      libraryMedianMiBs: round(libMedian, 1),
      libraryBestMiBs: round(Math.max(...libRates), 1),
      curlMedianMiBs: curl ? round(curlMedian, 1) : "n/a",
      curlBestMiBs: curl ? round(Math.max(...curlRates), 1) : "n/a",
      ratioMedian: curl ? round(ratio) : "n/a",
      rawFetchMedianMiBs: round(rawMedian, 1),
      rawFetchVsCurl: curl ? round(rawMedian / curlMedian) : "n/a",
      libraryVsRawFetch: round(libMedian / rawMedian),
      libraryPeakRssMiB: round(peakRss, 1),
      libraryRssBeforeDownloadMiB: round(Math.max(...library.map((r) => r.startRssKiB)) / 1024, 1),
      libraryPeakRssUnderTsxMiB: underTsx === undefined ? "n/a (quick)" : round(underTsx.maxRssKiB / 1024, 1),
      libraryMedianSeconds: round(median(library.map((r) => r.millis)) / 1000),
      libraryProcessMedianSeconds: round(median(library.map((r) => r.processMillis)) / 1000),
      libraryCpuSecondsMedian: round(median(library.map((r) => r.cpuMillis / 1000))),
      rawFetchPeakRssMiB: round(Math.max(...raw.map((r) => r.maxRssKiB)) / 1024, 1),
      rawFetchCpuSecondsMedian: round(median(raw.map((r) => r.cpuMillis / 1000))),
      node: process.version,
      curlMedianSeconds: curl ? round(median(curlMillis) / 1000) : "n/a"
    },
    targets
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  run({ quick: process.argv.includes("--quick") }).then(
    (result) => {
      console.log(result.description)
      for (const [key, value] of Object.entries(result.figures)) console.log(`  ${key}: ${value}`)
      for (const t of result.targets) {
        console.log(`  ${t.met ? "MET " : "MISS"} ${t.name}: ${t.measured} ${t.unit} (target ${t.target})`)
      }
    },
    (error: unknown) => {
      console.error(error)
      process.exitCode = 1
    }
  )
}
