/**
 * URL hygiene for download links: keep the SAS signature out of logs and errors, refuse links that
 * would send a bearer secret in clear text, and check a link's host against an allow-list.
 *
 * @internal
 */
import { Either } from "effect"

const REDACTED = "REDACTED"

// `sig=` plain, or `sig%3D` inside a URL that was itself percent-encoded into another one. The
// value ends where a URL or the surrounding text does; a base64 signature never holds these
// characters, so stopping early cannot leave part of it behind. Matching without a left boundary
// may also hide a `xsig=` value: over-redacting is the safe mistake.
const SIG_IN_TEXT = /(sig=)[^&#\s"'<>()[\]{},;]*|(sig%3D)(?:(?!%26)[^&#\s"'<>()[\]{},;])*/gi
// `scheme://user:pass@` in free text; the userinfo cannot hold `/`, `?`, `#` or whitespace.
// Greedy up to the last `@` before the host, so a password holding a raw `@` goes whole.
const USERINFO_IN_TEXT = /\b([a-z][a-z0-9+.-]*:\/\/)[^/?#\s]*@/gi

/** @internal Hides every `sig=` value and every `user:pass@` in free text such as an error body. */
export const redactText = (text: string): string =>
  text
    .replace(SIG_IN_TEXT, (_match, plain: string | undefined, encoded: string | undefined) =>
      `${plain ?? encoded ?? ""}${REDACTED}`)
    .replace(USERINFO_IN_TEXT, "$1")

const decodeName = (name: string): string => {
  try {
    return decodeURIComponent(name.replace(/\+/g, " ")).toLowerCase()
  } catch {
    return name.toLowerCase()
  }
}

const parse = (url: string): URL | undefined => {
  try {
    return new URL(url)
  } catch {
    return undefined
  }
}

/**
 * @internal The URL with the value of every `sig` query parameter replaced by `REDACTED` and any
 * userinfo removed; other parameters (`se`, `sp`, …) stay as they were so logs still show the expiry.
 */
export const redactUrl = (url: string | URL): string => {
  // Work on a copy: the caller's URL object must not change under it.
  const parsed = parse(typeof url === "string" ? url : url.href)
  if (parsed === undefined) return redactText(String(url))
  parsed.username = ""
  parsed.password = ""
  if (parsed.search.length > 1) {
    // Edit the raw query rather than `searchParams`, which would re-encode every other parameter.
    const query = parsed.search
      .slice(1)
      .split("&")
      .map((part) => {
        const eq = part.indexOf("=")
        const name = eq === -1 ? part : part.slice(0, eq)
        return decodeName(name) === "sig" ? `${name}=${REDACTED}` : part
      })
      .join("&")
    parsed.search = `?${query}`
  }
  // The fragment never reaches a server, but a link pasted around may carry a copy of the query there.
  if (parsed.hash.length > 1) parsed.hash = redactText(parsed.hash)
  return parsed.href
}

const LOOPBACK_V4 = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/

const isCanonicalOctet = (text: string): boolean => (text === "0" || !text.startsWith("0")) && Number(text) <= 255

/**
 * @internal True for `localhost`, canonical dotted-decimal `127.x.y.z` and `::1` / `[::1]`; false
 * for look-alikes such as `localhost.evil.com`, `127.0.0.1.nip.io` or `0x7f000001`.
 */
export const isLoopbackHost = (hostname: string): boolean => {
  let host = hostname.trim().toLowerCase()
  // A fully qualified `localhost.` is still loopback (RFC 6761).
  if (host.endsWith(".")) host = host.slice(0, -1)
  if (host === "localhost" || host === "::1" || host === "[::1]") return true
  const v4 = LOOPBACK_V4.exec(host)
  return v4 !== null && v4.slice(1).every(isCanonicalOctet)
}

/**
 * @internal Parses a URL that may receive a secret: `https:`, or `http:` on a loopback host only;
 * userinfo is refused.
 */
export const checkSecureUrl = (url: string): Either.Either<URL, "InvalidUrl" | "InsecureScheme"> => {
  const parsed = parse(url.trim())
  if (parsed === undefined) return Either.left("InvalidUrl")
  if (parsed.username !== "" || parsed.password !== "") return Either.left("InvalidUrl")
  if (parsed.protocol === "https:") return Either.right(parsed)
  if (parsed.protocol === "http:" && isLoopbackHost(parsed.hostname)) return Either.right(parsed)
  return Either.left("InsecureScheme")
}

const normalizeHost = (host: string): string => {
  const lower = host.trim().toLowerCase()
  return lower.endsWith(".") ? lower.slice(0, -1) : lower
}

const matchesPattern = (host: string, pattern: string): boolean => {
  const suffix = pattern.slice(1)
  // Only a leading `*.` is a wildcard; a bare `*` or a `*` elsewhere would allow too much, so it matches nothing.
  if (!pattern.startsWith("*.")) return !pattern.includes("*") && host === pattern
  if (suffix.length <= 1 || !host.endsWith(suffix)) return false
  const labels = host.slice(0, -suffix.length)
  return labels.length > 0 && labels.split(".").every((label) => label.length > 0)
}

/**
 * @internal True when `hostname` equals one of `patterns` or, for a `*.suffix` pattern, has at least
 * one label before `.suffix`; case-insensitive, a trailing dot ignored, empty patterns skipped.
 */
export const hostMatches = (hostname: string, patterns: ReadonlyArray<string>): boolean => {
  const host = normalizeHost(hostname)
  if (host === "") return false
  return patterns.some((raw) => {
    const pattern = normalizeHost(raw)
    return pattern !== "" && matchesPattern(host, pattern)
  })
}

/** @internal Hosts a download link may point at when `MDE_DOWNLOAD_HOSTS` does not say otherwise. */
export const DEFAULT_DOWNLOAD_HOSTS: ReadonlyArray<string> = ["*.blob.core.windows.net", "*.blob.core.usgovcloudapi.net"]

/** @internal Reads a comma- or whitespace-separated host list such as `MDE_DOWNLOAD_HOSTS`. */
export const parseHostList = (text: string): ReadonlyArray<string> => [
  ...new Set(
    text
      .split(/[\s,]+/)
      .map(normalizeHost)
      .filter((host) => host !== "")
  )
]
