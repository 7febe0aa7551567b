// downloadToFile's double-buffered writer: what reaches the "file" is every byte in order, the
// written count is only what completed, and a failed write surfaces. No clock is involved.
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as BufferedWrite from "../src/internal/client/bufferedWrite.ts"

const bytesOf = (n: number, seed: number) => new Uint8Array(n).map((_, i) => (i * 31 + seed) & 0xff)

describe("BufferedWrite", () => {
  it.effect("chunks smaller than, equal to, and larger than the buffer arrive whole and in order", () =>
    Effect.gen(function*() {
      const file: Array<number> = []
      let written = 0
      let writes = 0
      // Each write yields first, so the next buffer fills while one is "in flight".
      const writeAll = (bytes: Uint8Array) =>
        Effect.zipRight(Effect.yieldNow(), Effect.sync(() => {
          writes++
          file.push(...bytes)
        }))
      const chunks = [3, 5, 8, 1, 20, 7, 2, 9, 16, 4].map((n, i) => bytesOf(n, i))
      yield* Effect.scoped(Effect.gen(function*() {
        const w = yield* BufferedWrite.make(writeAll, 8, (n) => {
          written += n
        })
        for (const c of chunks) yield* w.write(c)
        yield* w.flush
      }))
      const all = chunks.flatMap((c) => [...c])
      expect(file).toEqual(all)
      expect(written).toBe(all.length)
      // Fewer writes than chunks: small ones were gathered.
      expect(writes).toBeLessThan(chunks.length)
    }))

  it.effect("a failed write fails a later write or the flush, and what failed is not counted", () =>
    Effect.gen(function*() {
      let written = 0
      let calls = 0
      const writeAll = (bytes: Uint8Array) => (++calls === 2 ? Effect.fail("disk full") : Effect.sync(() => bytes.length))
      const result = yield* Effect.scoped(Effect.gen(function*() {
        const w = yield* BufferedWrite.make((b) => Effect.asVoid(writeAll(b)), 4, (n) => {
          written += n
        })
        for (let i = 0; i < 5; i++) yield* w.write(bytesOf(4, i))
        yield* w.flush
      })).pipe(Effect.either)
      expect(result._tag).toBe("Left")
      expect(result._tag === "Left" && result.left).toBe("disk full")
      expect(written).toBe(4)
    }))
})
