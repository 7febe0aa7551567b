/**
 * A real Azure Storage emulator (Azurite's blob service) for tests: one `node` process on a free
 * 127.0.0.1 port, in memory, killed by its pid. Its access log is kept as method, path and status
 * only — never the query, which holds the SAS signature — so tests can count what it was sent.
 */
import {
  BlobSASPermissions,
  BlobServiceClient,
  generateBlobSASQueryParameters,
  SASProtocol,
  StorageSharedKeyCredential
} from "@azure/storage-blob"
import { type ChildProcess, spawn } from "node:child_process"
import { createServer } from "node:net"
import { fileURLToPath } from "node:url"

/** Azurite's well-known development account (public, documented by Microsoft). */
export const ACCOUNT = "devstoreaccount1"
export const ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

const MAIN = fileURLToPath(new URL("../../node_modules/azurite/dist/src/blob/main.js", import.meta.url))

export interface AzuriteRequest {
  readonly method: string
  /** The path without its query. */
  readonly path: string
  readonly status: number
}

export interface Azurite {
  /** `http://127.0.0.1:<port>/devstoreaccount1` */
  readonly endpoint: string
  readonly port: number
  readonly service: BlobServiceClient
  /** Every request Azurite logged, in order. */
  readonly requests: ReadonlyArray<AzuriteRequest>
  /**
   * Every request Azurite has logged once all answered ones are in: it logs after answering, so
   * a marker request is sent and waited for (its line comes after theirs); the marker is left out.
   */
  readonly settled: () => Promise<ReadonlyArray<AzuriteRequest>>
  /** A read-only SAS URL of a blob, valid from `startsOn` to `expiresOn`. */
  readonly sasUrl: (container: string, blob: string, startsOn: Date, expiresOn: Date) => string
  readonly stop: () => Promise<void>
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

// `127.0.0.1 - - [date] "GET /devstoreaccount1/c/b?sv=…&sig=… HTTP/1.1" 403 -`
const ACCESS_LINE = /"([A-Z]+) ([^ ?"]*)(?:\?[^ "]*)? HTTP\/[\d.]+" (\d{3})/

/** Starts Azurite and waits until it answers; `stop` kills exactly that process. */
export const startAzurite = async (): Promise<Azurite> => {
  const port = await freePort()
  const child: ChildProcess = spawn(process.execPath, [
    MAIN,
    "--blobHost",
    "127.0.0.1",
    "--blobPort",
    String(port),
    "--inMemoryPersistence",
    "--skipApiVersionCheck",
    "--disableTelemetry"
  ], { stdio: ["ignore", "pipe", "pipe"] })
  const requests: Array<AzuriteRequest> = []
  let markers = 0
  const waiters = new Set<() => void>()
  let listening: () => void = () => {}
  const ready = new Promise<void>((resolve) => (listening = resolve))
  let pending = ""
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    pending += chunk
    const lines = pending.split("\n")
    pending = lines.pop() ?? ""
    for (const line of lines) {
      if (line.includes("successfully listens")) listening()
      const access = ACCESS_LINE.exec(line)
      if (access !== null) requests.push({ method: access[1]!, path: access[2]!, status: Number(access[3]) })
    }
    for (const wake of waiters) wake()
  })
  // Startup errors only (a busy port); the access log goes to stdout.
  let stderr = ""
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr = (stderr + chunk).slice(-2000)))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM")
      const killed = setTimeout(() => child.kill("SIGKILL"), 3000)
      await exited
      clearTimeout(killed)
    }
  }

  const startup = await Promise.race([
    ready.then(() => "ready" as const),
    exited.then((code) => `exited with ${code}` as const),
    new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 20_000).unref())
  ])
  if (startup !== "ready") {
    await stop()
    throw new Error(`Azurite did not start (${startup}): ${stderr}`)
  }
  const endpoint = `http://127.0.0.1:${port}/${ACCOUNT}`
  const credential = new StorageSharedKeyCredential(ACCOUNT, ACCOUNT_KEY)
  const service = new BlobServiceClient(endpoint, credential)
  // Listening is not answering: one real round trip before any test runs.
  await service.getProperties()

  return {
    endpoint,
    port,
    service,
    requests,
    settled: async () => {
      const marker = `/${ACCOUNT}/settled-${++markers}`
      const logged = () => requests.findIndex((r) => r.path === marker)
      await fetch(`http://127.0.0.1:${port}${marker}`).then((response) => response.arrayBuffer())
      await new Promise<void>((resolve, reject) => {
        const check = () => {
          if (logged() === -1) return
          waiters.delete(check)
          clearTimeout(timer)
          resolve()
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error("Azurite did not log the marker request"))
        }, 5000)
        waiters.add(check)
        check()
      })
      return requests.filter((r) => !r.path.startsWith(`/${ACCOUNT}/settled-`))
    },
    sasUrl: (container, blob, startsOn, expiresOn) => {
      const sas = generateBlobSASQueryParameters({
        containerName: container,
        blobName: blob,
        permissions: BlobSASPermissions.parse("r"),
        protocol: SASProtocol.HttpsAndHttp,
        startsOn,
        expiresOn
      }, credential)
      return `${endpoint}/${container}/${blob}?${sas.toString()}`
    },
    stop
  }
}
