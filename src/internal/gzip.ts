/**
 * Bytes that may be gzip-compressed (a GetFile result often is), decompressed
 * when they start with the gzip magic bytes.
 *
 * @internal
 */
import { Effect, Stream } from "effect"
import { type DefenderError, HttpError } from "../DefenderError.ts"
import { concatBytes } from "./bytes.ts"

/** Reads until at least two bytes are in (a first chunk may hold only one), or the end. */
const sniff = async (reader: ReadableStreamDefaultReader<Uint8Array>) => {
  const head: Array<Uint8Array> = []
  let size = 0
  while (size < 2) {
    const next = await reader.read()
    if (next.done) return { first: concatBytes(head, size), ended: true }
    head.push(next.value)
    size += next.value.length
  }
  return { first: concatBytes(head, size), ended: false }
}

/** The sniffed bytes put back in front of the rest of `reader`. */
const rejoin = (first: Uint8Array, ended: boolean, reader: ReadableStreamDefaultReader<Uint8Array>) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      if (first.length > 0) controller.enqueue(first)
      if (ended) controller.close()
    },
    async pull(controller) {
      const next = await reader.read()
      if (next.done) controller.close()
      else controller.enqueue(next.value)
    },
    cancel: (reason) => reader.cancel(reason)
  })

/**
 * @internal Decompresses a stream that starts with the gzip magic bytes; passes any other
 * through. The bytes go through web streams (for `DecompressionStream`); the download's own
 * typed error is kept aside and re-raised as it was, so nothing becomes a defect.
 */
export const gunzipIfGzip = <R>(
  bytes: Stream.Stream<Uint8Array, DefenderError, R>
): Stream.Stream<Uint8Array, DefenderError, R> =>
  Stream.unwrap(Effect.gen(function*() {
    let failure: DefenderError | undefined
    const corrupt = () =>
      failure ?? HttpError.invalidResponse({
        method: "GET",
        url: "(result download)",
        attempts: 1,
        detail: "the gzip data is corrupt"
      })
    const readable = yield* Stream.toReadableStreamEffect(
      Stream.tapError(bytes, (e) =>
        Effect.sync(() => {
          failure = e
        }))
    )
    const reader = readable.getReader()
    const { ended, first } = yield* Effect.tryPromise({ try: () => sniff(reader), catch: corrupt })
    const whole = rejoin(first, ended, reader)
    const gzip = first.length >= 2 && first[0] === 0x1f && first[1] === 0x8b
    return Stream.fromReadableStream({
      evaluate: () =>
        gzip
          // The DOM typings declare DecompressionStream's writable side as BufferSource.
          ? whole.pipeThrough(new DecompressionStream("gzip") as unknown as ReadableWritablePair<Uint8Array, Uint8Array>)
          : whole,
      onError: corrupt
    })
  }))
