/**
 * Fault injection (see `Faults`): the seeded dice, latency, the faults that replace an answer
 * (drop, 5xx, 429) and those that damage a successful download (cut, corrupt, trickle).
 *
 * The dice are rolled in a fixed order per request, so a seed repeats a run.
 *
 * @internal
 */
import { Duration, Effect, Stream } from "effect"
import type { Endpoint, Fault, Faults } from "../DefenderSimulator.ts"
import { throttled } from "./quota.ts"
import { odata } from "./responses.ts"
import type { State } from "./state.ts"

/** @internal A small seeded PRNG (mulberry32), so fault runs repeat. */
export const prng = (seed: number): () => number => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** @internal The latency added before every answer, in milliseconds. */
export const latency = (faults: Faults | undefined): number =>
  faults?.latency === undefined ? 0 : Duration.toMillis(Duration.decode(faults.latency))

/** @internal A fault that answers instead of the endpoint. */
export type AnswerFault = "drop" | "error" | "throttle"

/**
 * @internal Rolls one die for drop, error and throttle (their rates add up). Only the Defender
 * API throttles with 429: storage throttles with 503, and the token endpoint is left alone.
 */
export const rollAnswerFault = (state: State, endpoint: Endpoint): AnswerFault | undefined => {
  const faults = state.faults
  const roll = state.dice()
  const drop = roll < (faults?.dropRate ?? 0)
  const error = !drop && roll < (faults?.dropRate ?? 0) + (faults?.errorRate ?? 0)
  const throttle = !drop && !error && endpoint !== "token" && endpoint !== "blob" && endpoint !== "unknown" &&
    roll < (faults?.dropRate ?? 0) + (faults?.errorRate ?? 0) + (faults?.throttleRate ?? 0)
  return drop ? "drop" : error ? "error" : throttle ? "throttle" : undefined
}

/** @internal The answer of an injected error (500, 502 or 503) or throttle (429 after `throttleRetryAfter`). */
export const faultAnswer = (state: State, fault: "error" | "throttle", requestId: string): Response => {
  if (fault === "error") {
    return odata([500, 502, 503][Math.floor(state.dice() * 3)]!, "InternalServerError", "Simulated fault", requestId)
  }
  const faults = state.faults
  const wait = Math.max(0, Math.ceil(Duration.toMillis(Duration.decode(faults?.throttleRetryAfter ?? "1 second"))))
  const response = throttled(faults, wait, requestId)
  if (faults?.omitRetryAfter !== true && wait % 1000 !== 0) response.headers.set("retry-after-ms", String(wait))
  return response
}

/** @internal A successful download, cut, corrupted and/or trickled at the rates of `Faults`; `injected` gets what was. */
export const damageDownload = (state: State, response: Response, injected: Array<Fault>): Effect.Effect<Response> =>
  Effect.gen(function*() {
    const cut = state.dice() < (state.faults?.cutRate ?? 0)
    const corrupt = state.dice() < (state.faults?.corruptRate ?? 0)
    if (cut) injected.push("cut")
    if (corrupt) injected.push("corrupt")
    if (cut || corrupt) {
      const bytes = new Uint8Array(yield* Effect.promise(() => response.arrayBuffer()))
      if (corrupt && bytes.length > 0) bytes[Math.floor(state.dice() * bytes.length)] ^= 0xff
      // Rolled even when only corrupted, so the dice keep their order.
      const at = Math.floor(state.dice() * bytes.length)
      response = cutAt(response, bytes, cut ? at : undefined)
    }
    if (state.dice() < (state.faults?.trickleRate ?? 0)) {
      injected.push("trickle")
      response = yield* trickle(state, response)
    }
    return response
  })

/** The answer with `bytes` as its body, broken off after `at` bytes (whole when `at` is undefined). */
const cutAt = (original: Response, bytes: Uint8Array, at: number | undefined): Response => {
  let delivered = 0
  return new Response(
    new ReadableStream<Uint8Array>({
      // Pulled, not started: erroring a stream drops what is still queued in it,
      // and the bytes before the cut must reach the client.
      pull(controller) {
        if (at === undefined) {
          controller.enqueue(bytes)
          controller.close()
        } else if (delivered === 0 && at > 0) {
          delivered = at
          controller.enqueue(bytes.slice(0, at))
        } else {
          controller.error(new Error("the simulator cut the connection"))
        }
      }
    }),
    { status: original.status, headers: original.headers }
  )
}

/** The same answer with its body sent 1 KiB at a time, `trickleDelay` apart on the simulator's clock. */
const trickle = (state: State, response: Response): Effect.Effect<Response> =>
  Effect.map(Effect.runtime<never>(), (runtime) => {
    if (response.body === null) return response
    const body = Stream.fromReadableStream({
      evaluate: () => response.body!,
      onError: (cause) => cause
    }).pipe(
      Stream.mapConcat((chunk) =>
        Array.from({ length: Math.ceil(chunk.length / 1024) }, (_, i) => chunk.subarray(i * 1024, (i + 1) * 1024))
      ),
      Stream.tap(() => Effect.sleep(Duration.decode(state.faults?.trickleDelay ?? "1 second")))
    )
    return new Response(Stream.toReadableStreamRuntime(body, runtime), {
      status: response.status,
      headers: response.headers
    })
  })
