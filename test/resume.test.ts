// The resume decisions of downloadToFile, alone: pure functions of an answer and the state so far.
import { describe, expect, it } from "@effect/vitest"
import {
  afterBody,
  type DownloadState,
  initialState,
  planAnswer,
  resumeHeaders,
  verify
} from "../src/internal/client/resume.ts"

const midway: DownloadState = { offset: 400, total: 1000, etag: "\"e1\"", md5: "abc==" }

describe("resume decisions", () => {
  it("asks for the rest, with the ETag, once bytes are in", () => {
    expect(resumeHeaders(initialState)).toBeUndefined()
    expect(resumeHeaders(midway)).toEqual({ range: "bytes=400-", "if-match": "\"e1\"" })
    expect(resumeHeaders({ ...midway, etag: undefined })).toEqual({ range: "bytes=400-" })
  })

  it("a first answer declares the length, ETag and MD5", () => {
    const plan = planAnswer(initialState, {
      status: 200,
      headers: { "content-length": "1000", etag: "\"e1\"", "content-md5": "abc==" }
    })
    expect(plan).toEqual({ _tag: "read", restarted: false, state: { offset: 0, total: 1000, etag: "\"e1\"", md5: "abc==" } })
  })

  it("a 206 for the part asked for continues where the file stopped", () => {
    const plan = planAnswer(midway, { status: 206, headers: { "content-range": "bytes 400-999/1000", "content-length": "600" } })
    expect(plan).toEqual({ _tag: "read", restarted: false, state: midway })
  })

  it("a 206 for another part, or another total, is not read", () => {
    expect(planAnswer(midway, { status: 206, headers: { "content-range": "bytes 0-999/1000" } })._tag).toBe("wrongRange")
    expect(planAnswer(midway, { status: 206, headers: { "content-range": "bytes 400-1199/1200" } })._tag).toBe("wrongRange")
    expect(planAnswer(midway, { status: 206, headers: {} })._tag).toBe("wrongRange")
  })

  it("the whole file sent to a resume starts the file over", () => {
    const plan = planAnswer(midway, { status: 200, headers: { "content-length": "1000", etag: "\"e2\"" } })
    // The old ETag and MD5 belong to the old start: only what this answer says is kept.
    expect(plan).toEqual({ _tag: "read", restarted: true, state: { offset: 0, total: 1000, etag: "\"e2\"", md5: undefined } })
  })

  it("x-ms-blob-content-md5 is the blob's MD5 on any answer; content-md5 only on a 200", () => {
    const partial = planAnswer(midway, {
      status: 206,
      headers: { "content-range": "bytes 400-999/1000", "content-md5": "part==" }
    })
    expect(partial._tag === "read" && partial.state.md5).toBe("abc==")
    const blob = planAnswer(midway, {
      status: 206,
      headers: { "content-range": "bytes 400-999/1000", "x-ms-blob-content-md5": "blob==" }
    })
    expect(blob._tag === "read" && blob.state.md5).toBe("blob==")
  })

  it("a body that ended short is resumed; a reset right after the last byte is complete", () => {
    expect(afterBody(midway, false)).toBe("resume")
    expect(afterBody(midway, true)).toBe("resume")
    expect(afterBody({ ...midway, offset: 1000 }, true)).toBe("done")
    expect(afterBody({ ...midway, offset: 1000 }, false)).toBe("done")
    // Without a declared length a broken body cannot be known complete.
    expect(afterBody({ ...midway, total: undefined }, true)).toBe("resume")
    expect(afterBody({ ...midway, total: undefined }, false)).toBe("done")
  })

  it("verifies the length, then the MD5", () => {
    expect(verify({ ...midway, offset: 1000 }, "abc==")).toBeUndefined()
    expect(verify({ ...midway, offset: 999 }, "abc==")).toEqual({ reason: "LengthMismatch", detail: "got 999 bytes, expected 1000" })
    expect(verify({ ...midway, offset: 1000 }, "xyz==")).toEqual({ reason: "Md5Mismatch", detail: "got xyz==, expected abc==" })
    expect(verify({ ...midway, offset: 1000, md5: undefined }, "xyz==")).toBeUndefined()
  })
})
