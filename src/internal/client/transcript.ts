/**
 * Results read whole or streamed: `getTranscript` (bounded by
 * `maxTranscriptBytes`, a body that breaks or stalls read again from the same
 * link on the retry schedule, then decoded) and `downloadResult` (the raw bytes).
 *
 * @internal
 */
import { Effect, Schedule, Stream } from "effect"
import type { CommandRef } from "../../DefenderClient.ts"
import { type DefenderError, HttpError, TranscriptDecodeError } from "../../DefenderError.ts"
import * as Transcript from "../../Transcript.ts"
import type { ClientContext } from "./context.ts"
import { retryPolicy } from "./retry.ts"
import { body, type HeldLink, openResult } from "./storage.ts"
import { concatBytes } from "../bytes.ts"

/** A transcript body that broke or stalled after its headers were in (read again). */
class BodyBroken {
  constructor(readonly error: HttpError) {}
}

/** One read of a transcript: its body, at most `maxTranscriptBytes`, decoded. */
const readTranscript = (ctx: ClientContext) => {
  const open = openResult(ctx)
  return Effect.fnUntraced(function*(ref: CommandRef, held: HeldLink) {
    const response = yield* open(ref, held)
    const limit = ctx.maxTranscriptBytes
    const tooLarge = (size: string) =>
      new TranscriptDecodeError({ reason: "TooLarge", detail: `the transcript is ${size}, over the ${limit}-byte limit` })
    const declared = Number(response.headers["content-length"])
    if (Number.isFinite(declared) && declared > limit) return yield* tooLarge(`${declared} bytes`)
    // A declared size is read into one buffer of that size, so the chunks and their copy are
    // never held at once (the decoder needs every byte together); a body that turns out longer
    // falls back to chunks.
    let whole = Number.isFinite(declared) && declared > 0 ? new Uint8Array(declared) : undefined
    let chunks: Array<Uint8Array> = []
    let size = 0
    yield* Stream.runForEach(
      // Too large is final; a body that broke or ran out of time is read again.
      Stream.mapError(body(ctx, response), (error) => (error.reason === "TooLarge" ? error : new BodyBroken(error))),
      (chunk) => {
        size += chunk.length
        if (size > limit) return Effect.fail(tooLarge("larger"))
        if (whole !== undefined && size <= whole.length) {
          whole.set(chunk, size - chunk.length)
        } else {
          if (whole !== undefined) chunks.push(whole.subarray(0, size - chunk.length))
          whole = undefined
          chunks.push(chunk)
        }
        return Effect.void
      }
    )
    const bytes = whole === undefined ? concatBytes(chunks, size) : whole.subarray(0, size)
    chunks = []
    return yield* Transcript.decode(bytes)
  })
}

/** @internal `DefenderClient.getTranscript`. */
export const getTranscript = (
  ctx: ClientContext
): (ref: CommandRef) => Effect.Effect<Transcript.Transcript, DefenderError> => {
  const read = readTranscript(ctx)
  // A body that broke or stalled is read again from the same link (the result is still
  // there), on the retry schedule.
  const bodyPolicy = Schedule.mapInput(
    retryPolicy(ctx.schedule, () => true),
    (e: DefenderError | BodyBroken) => (e instanceof BodyBroken ? e.error : e)
  )
  return Effect.fn("DefenderClient.getTranscript")(function*(ref: CommandRef) {
    const held: HeldLink = { link: undefined, recreated: false }
    let reads = 0
    return yield* Effect.suspend(() => {
      reads++
      return read(ref, held)
    }).pipe(
      Effect.retry({ schedule: bodyPolicy, while: (e) => e instanceof BodyBroken }),
      Effect.mapError((e) => (e instanceof BodyBroken ? new HttpError({ ...e.error, attempts: reads }) : e))
    )
  })
}

/** @internal `DefenderClient.downloadResult`. */
export const downloadResult = (ctx: ClientContext): (ref: CommandRef) => Stream.Stream<Uint8Array, DefenderError> => {
  const open = openResult(ctx)
  return (ref) =>
    Stream.unwrap(Effect.map(open(ref), (response) => body(ctx, response))).pipe(
      Stream.withSpan("DefenderClient.downloadResult")
    )
}
