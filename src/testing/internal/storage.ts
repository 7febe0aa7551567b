/**
 * Blob storage behind result links: signing a link (SAS) and answering a download: the SAS
 * and its expiry, a bearer token sent along, `If-Match` against the ETag, `Range`, the MD5
 * headers, storage's XML errors.
 *
 * @internal
 */
import { createHash } from "node:crypto"
import { storageError } from "./responses.ts"
import type { Call, State, StoredBlob } from "./state.ts"

/** @internal A SAS link to `blob` (a result of `actionId`), valid for the link lifetime from `now`. */
export const signLink = (state: State, actionId: string, blob: string, now: number): string => {
  const { linkLifetime } = state.settings
  const sig = createHash("sha256").update(`${blob}:${now}:${state.dice()}`).digest("base64")
  state.links.set(sig, { blob, expiresAt: now + linkLifetime })
  const se = new Date(now + linkLifetime).toISOString().replace(/\.\d{3}Z$/, "Z")
  return `${state.blobOrigin()}/blob/investigation-actions-data/${actionId}/CustomPlaybookCommandOutput/${blob}` +
    `?se=${encodeURIComponent(se)}&sp=r&sv=2019-07-07&sr=b&sig=${encodeURIComponent(sig)}`
}

/** @internal Answers `GET /blob/...?sig=...`: the result file, a range of it, or storage's error. */
export const blobEndpoint = ({ now, request, requestId, state, url }: Call): Response => {
  // The SAS is the credential; a bearer token sent along is an error (and a leak).
  if (request.headers.has("authorization")) {
    return storageError(400, "InvalidAuthenticationInfo", "Authentication information is not given in the correct format.", requestId)
  }
  const name = url.pathname.split("/").pop() ?? ""
  const link = state.links.get(url.searchParams.get("sig") ?? "")
  if (link === undefined || link.blob !== name) {
    return storageError(
      403,
      "AuthenticationFailed",
      "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
      requestId
    )
  }
  if (now >= link.expiresAt) {
    return storageError(
      403,
      "AuthenticationFailed",
      `Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature. Signed expiry time [${
        new Date(link.expiresAt).toUTCString()
      }] must be after signed start time [${new Date(now).toUTCString()}]. Signature not valid in the specified time frame`,
      requestId
    )
  }
  const blob = state.blobs.get(name)
  if (blob === undefined) return storageError(404, "BlobNotFound", "The specified blob does not exist.", requestId)
  const ifMatch = request.headers.get("if-match")
  if (ifMatch !== null && ifMatch !== "*" && ifMatch !== blob.etag) {
    return storageError(412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.", requestId)
  }
  // `ignoreRange` plays a storage (or proxy) that answers a range request with the whole file.
  const range = state.faults?.ignoreRange === true ? null : /^bytes=(\d+)-(\d*)$/.exec(request.headers.get("range") ?? "")
  return download(blob, range, requestId)
}

/** The file (200) or the asked range of it (206, or 416 outside the file). */
const download = (blob: StoredBlob, range: RegExpExecArray | null, requestId: string): Response => {
  const headers: Record<string, string> = {
    "content-type": blob.contentType,
    "etag": blob.etag,
    "accept-ranges": "bytes",
    "x-ms-request-id": requestId,
    "x-ms-blob-type": "BlockBlob",
    "x-ms-blob-content-md5": blob.md5
  }
  if (range !== null) {
    const start = Number(range[1])
    const end = range[2] === "" ? blob.bytes.length - 1 : Math.min(Number(range[2]), blob.bytes.length - 1)
    if (start >= blob.bytes.length || end < start) {
      return new Response(null, { status: 416, headers: { "content-range": `bytes */${blob.bytes.length}` } })
    }
    return new Response(blob.bytes.slice(start, end + 1) as Uint8Array<ArrayBuffer>, {
      status: 206,
      headers: {
        ...headers,
        "content-range": `bytes ${start}-${end}/${blob.bytes.length}`,
        "content-length": String(end + 1 - start)
      }
    })
  }
  return new Response(blob.bytes as Uint8Array<ArrayBuffer>, {
    status: 200,
    headers: { ...headers, "content-md5": blob.md5, "content-length": String(blob.bytes.length) }
  })
}
