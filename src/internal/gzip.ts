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

/** @internal How far a gzip stream may expand. */
export interface GunzipLimits {
  /** The most decompressed bytes; default `DEFAULT_MAX_DECOMPRESSED_BYTES`. */
  readonly maxBytes?: number | undefined
  /** The most decompressed bytes per compressed byte, after the first MiB; default 100. */
  readonly maxRatio?: number | undefined
}

/** @internal The default output cap of a decompression: 1 GiB. */
export const DEFAULT_MAX_DECOMPRESSED_BYTES: number = 1024 * 1024 * 1024
/** @internal The default ratio cap of a decompression: 100 bytes out per byte in. */
export const DEFAULT_MAX_DECOMPRESSION_RATIO: number = 100
// Small files compress far better than 100:1 (a MiB of zeros is 1 KiB of gzip): the ratio is
// only checked beyond this much output.
const RATIO_FREE_BYTES = 1024 * 1024

/**
 * Fails the decompressed stream as soon as it expands past `limits` (so a gzip bomb is a
 * typed error, not gigabytes handed on): `counted.in` is how many compressed bytes went in.
 */
const capped = <R>(
  out: Stream.Stream<Uint8Array, DefenderError, R>,
  counted: { in: number },
  limits: GunzipLimits | undefined
): Stream.Stream<Uint8Array, DefenderError, R> => {
  const maxBytes = limits?.maxBytes ?? DEFAULT_MAX_DECOMPRESSED_BYTES
  const maxRatio = limits?.maxRatio ?? DEFAULT_MAX_DECOMPRESSION_RATIO
  const expands = (detail: string) =>
    HttpError.invalidResponse({ method: "GET", url: "(result download)", attempts: 1, detail })
  return Stream.suspend(() => {
    let size = 0
    return Stream.mapEffect(out, (chunk) => {
      size += chunk.length
      if (size > maxBytes) {
        return Effect.fail(expands(`the gzip data expands past ${maxBytes} bytes (maxDecompressedBytes)`))
      }
      if (size > RATIO_FREE_BYTES && size > maxRatio * counted.in) {
        return Effect.fail(expands(
          `the gzip data expands more than ${maxRatio}:1 (${size} bytes from ${counted.in}; maxDecompressionRatio)`
        ))
      }
      return Effect.succeed(chunk)
    })
  })
}

/**
 * @internal Decompresses a stream that starts with the gzip magic bytes; passes any other
 * through. The bytes go through web streams (for `DecompressionStream`); the download's own
 * typed error is kept aside and re-raised as it was, so nothing becomes a defect. The output
 * is capped by `limits` (size and ratio).
 */
export const gunzipIfGzip = <R>(
  bytes: Stream.Stream<Uint8Array, DefenderError, R>,
  limits?: GunzipLimits
): Stream.Stream<Uint8Array, DefenderError, R> =>
  Stream.unwrap(Effect.gen(function*() {
    let failure: DefenderError | undefined
    const counted = { in: 0 }
    const corrupt = () =>
      failure ?? HttpError.invalidResponse({
        method: "GET",
        url: "(result download)",
        attempts: 1,
        detail: "the gzip data is corrupt"
      })
    const readable = yield* Stream.toReadableStreamEffect(
      bytes.pipe(
        Stream.tap((chunk) =>
          Effect.sync(() => {
            counted.in += chunk.length
          })
        ),
        Stream.tapError((e) =>
          Effect.sync(() => {
            failure = e
          })
        )
      )
    )
    const reader = readable.getReader()
    const { ended, first } = yield* Effect.tryPromise({ try: () => sniff(reader), catch: corrupt })
    const whole = rejoin(first, ended, reader)
    const gzip = first.length >= 2 && first[0] === 0x1f && first[1] === 0x8b
    if (!gzip) return Stream.fromReadableStream({ evaluate: () => whole, onError: corrupt })
    const out = Stream.fromReadableStream({
      // The DOM typings declare DecompressionStream's writable side as BufferSource.
      evaluate: () => whole.pipeThrough(new DecompressionStream("gzip") as unknown as ReadableWritablePair<Uint8Array, Uint8Array>),
      onError: corrupt
    })
    return capped(out, counted, limits)
  }))
