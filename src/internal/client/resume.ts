/**
 * The resume decisions of `downloadToFile`, as pure functions of a response and
 * the state of the download so far: what to do with an answer, whether a body
 * that ended is complete, and whether the file is the one the storage declared.
 *
 * @internal
 */

/** @internal What a download knows so far: the bytes written and what the storage declared. */
export interface DownloadState {
  /** Bytes written, and so the next byte to ask for. */
  readonly offset: number
  /** The blob's length, once an answer said it. */
  readonly total: number | undefined
  /** The blob's ETag, sent back as `If-Match` on a resume. */
  readonly etag: string | undefined
  /** The blob's MD5 (base64), once an answer said it. */
  readonly md5: string | undefined
}

/** @internal A download before its first byte. */
export const initialState: DownloadState = { offset: 0, total: undefined, etag: undefined, md5: undefined }

/** @internal The headers of the next request: a `Range` (and `If-Match`) once bytes are in. */
export const resumeHeaders = (state: DownloadState): Record<string, string> | undefined =>
  state.offset > 0
    ? { range: `bytes=${state.offset}-`, ...(state.etag === undefined ? {} : { "if-match": state.etag }) }
    : undefined

/** @internal The part of a storage answer the decision needs. */
export interface Answer {
  readonly status: number
  readonly headers: Readonly<Record<string, string | undefined>>
}

/**
 * @internal What to do with an answer:
 * - `wrongRange`: another part than the one asked for; its bytes belong elsewhere: start
 *   over without reading this body (counts as an interruption);
 * - `read`: write its body at `state.offset`; `restarted` when the storage sent the whole
 *   file to a resume, so the file starts over from byte 0 with it.
 */
export type Plan =
  | { readonly _tag: "wrongRange" }
  | { readonly _tag: "read"; readonly restarted: boolean; readonly state: DownloadState }

/** @internal Decides what to do with an answer (200 or 206) to a download's request. */
export const planAnswer = (state: DownloadState, answer: Answer): Plan => {
  const range = /^bytes (\d+)-\d+\/(\d+)$/.exec(answer.headers["content-range"] ?? "")
  if (
    answer.status === 206 &&
    (range === null || Number(range[1]) !== state.offset ||
      (state.total !== undefined && Number(range[2]) !== state.total))
  ) {
    return { _tag: "wrongRange" }
  }
  const restarted = state.offset > 0 && answer.status === 200
  const base = restarted ? initialState : state
  const length = Number(answer.headers["content-length"])
  return {
    _tag: "read",
    restarted,
    state: {
      offset: base.offset,
      etag: answer.headers["etag"] ?? base.etag,
      md5: answer.headers["x-ms-blob-content-md5"] ??
        (answer.status === 200 ? answer.headers["content-md5"] : undefined) ?? base.md5,
      total: range !== null ? Number(range[2]) : Number.isFinite(length) ? base.offset + length : base.total
    }
  }
}

/**
 * @internal After a body ended (`broke`: with an error): `resume` when bytes are missing,
 * else `done`. A reset right after the last byte is complete: the length and MD5 checks decide.
 */
export const afterBody = (state: DownloadState, broke: boolean): "resume" | "done" => {
  const short = state.total !== undefined && state.offset < state.total
  const complete = state.total !== undefined && state.offset === state.total
  return (broke && !complete) || short ? "resume" : "done"
}

/** @internal Whether the finished file is the declared one; a reason and a detail when it is not. */
export const verify = (
  state: DownloadState,
  digest: string
): { readonly reason: "LengthMismatch" | "Md5Mismatch"; readonly detail: string } | undefined => {
  if (state.total !== undefined && state.offset !== state.total) {
    return { reason: "LengthMismatch", detail: `got ${state.offset} bytes, expected ${state.total}` }
  }
  if (state.md5 !== undefined && digest !== state.md5) {
    return { reason: "Md5Mismatch", detail: `got ${digest}, expected ${state.md5}` }
  }
  return undefined
}
