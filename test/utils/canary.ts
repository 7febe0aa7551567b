/**
 * Canary secrets and the check that none of them shows up in captured text, in
 * any of the forms a leak could take (as it is, percent-encoded or -decoded,
 * form-encoded, base64). Failures name the canary and the form, never the value,
 * so a failing test prints no secret.
 */
import { CANARY_SECRET, CANARY_SIG, CANARY_TOKEN } from "./fake.ts"

export { CANARY_SECRET, CANARY_SIG, CANARY_TOKEN }

/** A second secret, the one a rejected login sends. */
export const CANARY_WRONG_SECRET = "canary-rejected-secret-5d8e1f"
/** A second token, the one issued after a 401. */
export const CANARY_RENEWED_TOKEN = "canary-renewed-token-9c4a7b"

/** A password in a Redis URL. */
export const CANARY_REDIS_PASSWORD = "canary-redis-password-3e7d21"

/** Every fixed canary, by name. */
export const FIXED_CANARIES: ReadonlyMap<string, string> = new Map([
  ["client secret", CANARY_SECRET],
  ["rejected client secret", CANARY_WRONG_SECRET],
  ["bearer token", CANARY_TOKEN],
  ["renewed bearer token", CANARY_RENEWED_TOKEN],
  ["SAS signature", CANARY_SIG],
  ["Redis password", CANARY_REDIS_PASSWORD]
])

const safeDecode = (text: string): string => {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/** The forms a secret can take in text: raw, URL-encoded and -decoded, form-encoded, base64. */
export const forms = (secret: string): ReadonlyArray<readonly [string, string]> => {
  const all: Array<readonly [string, string]> = []
  for (const value of new Set([secret, safeDecode(secret)])) {
    all.push(
      ["raw", value],
      ["url-encoded", encodeURIComponent(value)],
      ["form-encoded", new URLSearchParams({ x: value }).toString().slice(2)],
      ["base64", Buffer.from(value).toString("base64").replace(/=+$/, "")],
      ["base64url", Buffer.from(value).toString("base64url")]
    )
  }
  // Short values would match by chance; every canary and harvested secret is long.
  return all.filter(([, v]) => v.length >= 12)
}

/**
 * The canaries (`name → value`) found in `text`, as `"name (form)"` labels: empty
 * when nothing leaked. The fixed canaries all contain "canary", so any fragment of
 * one (a truncated or partly redacted copy) is reported too.
 */
export const leaks = (text: string, canaries: ReadonlyMap<string, string>): Array<string> => {
  const found = new Set<string>()
  for (const [name, value] of canaries) {
    for (const [form, shown] of forms(value)) if (text.includes(shown)) found.add(`${name} (${form})`)
  }
  if (/canary/i.test(text)) found.add("a fragment of a fixed canary")
  return [...found]
}
