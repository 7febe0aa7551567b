/**
 * A transport failure in a few words, for `HttpError.fromRequestError`.
 *
 * @internal
 */
import type { HttpClientError } from "@effect/platform"
import { redactText } from "./url.ts"

const codeOf = (value: unknown): string | undefined =>
  typeof value === "object" && value !== null && "code" in value && typeof value.code === "string"
    ? value.code
    : undefined

/**
 * @internal `fetch failed: ECONNREFUSED`: the cause's message and the system error code
 * underneath, never the URL the platform error holds.
 */
export const describeTransport = (error: HttpClientError.HttpClientError): string => {
  const cause = error.cause
  if (!(cause instanceof Error)) return error.reason
  const inner = (cause as { cause?: unknown }).cause
  const found = codeOf(inner) ??
    (inner instanceof AggregateError ? inner.errors.map(codeOf).find((c) => c !== undefined) : undefined)
  return redactText(found === undefined ? cause.message : `${cause.message}: ${found}`).slice(0, 300)
}
