/**
 * THE BASELINE — written plainly on purpose: what the common integrations do
 * (SOAR playbooks, PowerShell modules, hand-rolled scripts), in TypeScript.
 *
 * A pool of `concurrency` workers (Promise.all over shared work), plain
 * `fetch`: ask for the download link, download it, `JSON.parse` it. On a 429
 * it backs off exponentially — 1 s, 2 s, 4 s … capped at 60 s, with full
 * jitter, up to 8 retries — and ignores `Retry-After`, as they do. No shared
 * budget: each worker finds out about the quota by being throttled. 5xx and
 * network errors are retried the same way.
 *
 * It is not tuned down: the backoff is the textbook one (AWS's "full jitter"),
 * and the transcripts it reads are strict JSON so `JSON.parse` never fails.
 */
export interface BaselineOptions {
  readonly url: string
  readonly token: string
  readonly ids: ReadonlyArray<string>
  readonly concurrency: number
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Runs `request` until it is not a 429/5xx/network error, backing off exponentially. */
const withBackoff = async (request: () => Promise<Response>): Promise<Response> => {
  for (let attempt = 0;; attempt++) {
    let response: Response | undefined
    try {
      response = await request()
    } catch (error) {
      if (attempt >= 8) throw error
    }
    if (response !== undefined && response.status !== 429 && response.status < 500) return response
    if (attempt >= 8) return response!
    await response?.body?.cancel()
    await sleep(Math.random() * Math.min(60_000, 1000 * 2 ** attempt))
  }
}

/** What a client run reports (the library's client prints the same). */
export interface ClientReport {
  readonly ok: number
  readonly failed: number
  readonly millis: number
  /** When the work started, epoch milliseconds (runs of several processes are timed from the first start). */
  readonly startedAt: number
  readonly tags: Record<string, number>
}

export const baseline = async (options: BaselineOptions): Promise<ClientReport> => {
  const queue = [...options.ids]
  const tags: Record<string, number> = {}
  let ok = 0
  const startedAt = Date.now()
  const started = performance.now()
  const worker = async () => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      try {
        const linkUrl = `${options.url}/api/machineactions/${id}/GetLiveResponseResultDownloadLink(index=0)`
        const link = await withBackoff(() => fetch(linkUrl, { headers: { authorization: `Bearer ${options.token}` } }))
        if (!link.ok) throw new Error(`link: HTTP ${link.status}`)
        const { value } = (await link.json()) as { value: string }
        const blob = await withBackoff(() => fetch(value))
        if (!blob.ok) throw new Error(`download: HTTP ${blob.status}`)
        JSON.parse(await blob.text())
        ok++
      } catch (error) {
        const tag = error instanceof Error ? error.message.split(":")[0]! : "error"
        tags[tag] = (tags[tag] ?? 0) + 1
      }
    }
  }
  await Promise.all(Array.from({ length: options.concurrency }, worker))
  return { ok, failed: options.ids.length - ok, millis: performance.now() - started, startedAt, tags }
}
