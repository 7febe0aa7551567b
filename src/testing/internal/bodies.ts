/**
 * Request bodies read as the Defender API reads them: its property names are
 * case-sensitive (`Comment`, not `comment`; `Description`, not `description`), so
 * a body with a name that differs only in case is refused instead of silently
 * losing that value — the simulator checks what a client really sends.
 *
 * @internal
 */
import { odata } from "./responses.ts"

/** @internal The first name in `names` that matches one of `expected` but for its case, if any. */
export const misCased = (names: Iterable<string>, expected: ReadonlyArray<string>): string | undefined => {
  for (const name of names) {
    const meant = expected.find((e) => e.toLowerCase() === name.toLowerCase())
    if (meant !== undefined && meant !== name) return name
  }
  return undefined
}

/** @internal The 400 for a misspelt property name, saying the API's spelling. */
export const misCasedAnswer = (name: string, expected: ReadonlyArray<string>, requestId: string): Response => {
  const meant = expected.find((e) => e.toLowerCase() === name.toLowerCase()) ?? name
  return odata(400, "InvalidRequestBody", `Property names are case-sensitive: ${meant}, not ${name}`, requestId)
}

/** @internal Parses a JSON object body; `undefined` when it is not one. */
export const jsonObject = (text: string): Record<string, unknown> | undefined => {
  try {
    const body: unknown = JSON.parse(text)
    return typeof body === "object" && body !== null && !Array.isArray(body) ? body as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}
