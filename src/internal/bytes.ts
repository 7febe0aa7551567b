/**
 * Byte helpers.
 *
 * @internal
 */

/** @internal The chunks, `size` bytes in all, as one array. */
export const concatBytes = (chunks: ReadonlyArray<Uint8Array>, size: number): Uint8Array => {
  const out = new Uint8Array(size)
  let at = 0
  for (const chunk of chunks) {
    out.set(chunk, at)
    at += chunk.length
  }
  return out
}
