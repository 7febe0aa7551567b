/**
 * The answers' shapes: Defender's JSON and OData errors, and blob storage's XML errors.
 *
 * @internal
 */

/** @internal A JSON answer. */
export const json = (status: number, body: unknown, headers?: Record<string, string>): Response =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers }
  })

/** @internal The Defender API's OData error: `{ error: { code, message, target } }`, the request id as target. */
export const odata = (
  status: number,
  code: string,
  message: string,
  requestId: string,
  headers?: Record<string, string>
): Response => json(status, { error: { code, message, target: requestId } }, headers)

/** @internal Blob storage's XML error, with its code in `x-ms-error-code` as the real service sends it. */
export const storageError = (status: number, code: string, message: string, requestId: string): Response =>
  new Response(
    `\uFEFF<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${message}\nRequestId:${requestId}\nTime:${
      new Date().toISOString()
    }</Message></Error>`,
    { status, headers: { "content-type": "application/xml", "x-ms-error-code": code, "x-ms-request-id": requestId } }
  )

/** @internal `decodeURIComponent` that answers the text as it is when it is not valid percent-encoding. */
export const safeDecode = (text: string): string => {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}
