/**
 * A file written from a stream of small chunks in large pieces: chunks are copied into one
 * of two buffers, and a full buffer is written while the other fills, so the download does
 * not stop reading while the file system writes (one write per buffer, not per network chunk).
 *
 * @internal
 */
import { Effect, Fiber, type Scope } from "effect"

/** @internal What `make` gives: `write` each chunk in order, then `flush`. */
export interface BufferedWrite<E> {
  /** Takes one chunk (copied: the caller may reuse it). Fails with an earlier write's error. */
  readonly write: (chunk: Uint8Array) => Effect.Effect<void, E>
  /** Writes what is buffered and waits for every write: afterwards every byte taken is in the file. */
  readonly flush: Effect.Effect<void, E>
}

/**
 * @internal Two buffers of `size` over `writeAll`; `written(n)` is told after each write
 * completes, so a count kept with it is exactly what is in the file. The write in flight is
 * a fiber of `scope`, interrupted when the scope closes early.
 */
export const make = <E>(
  writeAll: (bytes: Uint8Array) => Effect.Effect<void, E>,
  size: number,
  written: (n: number) => void
): Effect.Effect<BufferedWrite<E>, never, Scope.Scope> =>
  Effect.map(Effect.scope, (scope) => {
    const buffers = [new Uint8Array(size), new Uint8Array(size)] as const
    let current = 0
    let filled = 0
    let pending: Fiber.Fiber<void, E> | undefined
    const out = (bytes: Uint8Array) => Effect.zipRight(writeAll(bytes), Effect.sync(() => written(bytes.length)))
    const awaitPending = Effect.suspend(() => {
      const fiber = pending
      pending = undefined
      return fiber === undefined ? Effect.void : Fiber.join(fiber)
    })
    // The other buffer is reused only once its write is done: that write is joined first.
    const submit = Effect.zipRight(
      awaitPending,
      Effect.suspend(() => {
        const n = filled
        if (n === 0) return Effect.void
        const full = buffers[current]!.subarray(0, n)
        current = 1 - current
        filled = 0
        return Effect.map(Effect.forkIn(out(full), scope), (fiber) => {
          pending = fiber
        })
      })
    )
    const write = (chunk: Uint8Array): Effect.Effect<void, E> => {
      if (chunk.length >= size) return Effect.zipRight(Effect.zipRight(submit, awaitPending), out(chunk))
      const room = size - filled
      if (chunk.length < room) {
        buffers[current]!.set(chunk, filled)
        filled += chunk.length
        return Effect.void
      }
      buffers[current]!.set(chunk.subarray(0, room), filled)
      filled = size
      const rest = chunk.subarray(room)
      return Effect.zipRight(
        submit,
        Effect.sync(() => {
          buffers[current]!.set(rest, 0)
          filled = rest.length
        })
      )
    }
    return { write, flush: Effect.zipRight(submit, awaitPending) }
  })
