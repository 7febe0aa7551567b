/**
 * The ceiling of the download benchmark: what Node's `fetch` itself does with the same work as
 * `downloadToFile` (a link from the API, the body written chunk by chunk to a file, MD5 over
 * it), without Effect, retries or resumes. It tells how much of the gap to curl is fetch's.
 *
 *   node bench/download-raw.js <api url> <machine action id> <index> <token> <path>
 *
 * Prints one JSON line shaped like the client's (`ClientFigures`).
 */
import { createHash } from "node:crypto"
import { open } from "node:fs/promises"
import type { ClientFigures } from "./download-client.ts"

const [apiUrl, machineActionId, index, token, path] = process.argv.slice(2)
if (apiUrl === undefined || machineActionId === undefined || index === undefined || token === undefined || path === undefined) {
  process.stderr.write("usage: download-raw.ts <api url> <machine action id> <index> <token> <path>\n")
  process.exit(2)
}

const before = process.resourceUsage()
const start = performance.now()
const answer = await fetch(`${apiUrl}/api/machineactions/${machineActionId}/GetLiveResponseResultDownloadLink(index=${index})`, {
  headers: { authorization: `Bearer ${token}` }
})
const link = ((await answer.json()) as { value: string }).value
const response = await fetch(link)
if (response.body === null) throw new Error(`no body (${response.status})`)
const file = await open(path, "w")
const hash = createHash("md5")
let bytes = 0
const reader = response.body.getReader()
for (let next = await reader.read(); !next.done; next = await reader.read()) {
  await file.write(next.value)
  hash.update(next.value)
  bytes += next.value.length
}
await file.close()
const md5 = hash.digest("base64")
const millis = performance.now() - start
const usage = process.resourceUsage()
const figures: ClientFigures = {
  bytes,
  millis,
  md5Verified: md5 === response.headers.get("x-ms-blob-content-md5"),
  resumes: 0,
  maxRssKiB: usage.maxRSS,
  startRssKiB: before.maxRSS,
  cpuMillis: (usage.userCPUTime + usage.systemCPUTime - before.userCPUTime - before.systemCPUTime) / 1000
}
process.stdout.write(`${JSON.stringify(figures)}\n`)
// fetch's pooled connection would hold the process open for its keep-alive.
process.exit(0)
