/**
 * Reading the wait a server asks for after a 429 or 503.
 *
 * Microsoft's APIs send `Retry-After` in seconds (not on every 429), Azure
 * services sometimes add `retry-after-ms` / `x-ms-retry-after-ms`, and
 * RFC 9110 also allows an HTTP-date. Whatever arrives, the result is a finite,
 * non-negative number of milliseconds no larger than the caller's cap, or
 * `None`, so a hostile or broken header can never stall or crash a retry loop.
 *
 * @internal
 */
import type * as Headers from "@effect/platform/Headers"
import { Option } from "effect"

/** @internal Upper bound on a server-requested wait unless the caller picks another: 10 minutes. */
export const DEFAULT_MAX_RETRY_AFTER_MILLIS: number = 10 * 60_000

// Plain decimal only: `Number()` would also accept "1e400", "0x10", "Infinity" and "".
const DECIMAL = /^(?:\d+(?:\.\d*)?|\.\d+)$/

const MONTHS: ReadonlyArray<string> = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
const DAY = "(?:mon|tue|wed|thu|fri|sat|sun)"
const LONG_DAY = "(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
const MONTH = "(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
const TIME = "(\\d{2}):(\\d{2}):(\\d{2})"
// The three forms of RFC 9110 §5.6.7, parsed by hand: `Date.parse` reads "1" or "-5" as dates
// and takes the zone-less asctime form as local time, while the RFC says every form is UTC.
const IMF_FIXDATE = new RegExp(`^${DAY}, (\\d{2}) ${MONTH} (\\d{4}) ${TIME} gmt$`, "i")
const RFC_850 = new RegExp(`^${LONG_DAY}, (\\d{2})-${MONTH}-(\\d{2}) ${TIME} gmt$`, "i")
const ASCTIME = new RegExp(`^${DAY} ${MONTH} ( \\d|\\d{2}) ${TIME} (\\d{4})$`, "i")

const utc = (
  year: number,
  month: string,
  day: string,
  hour: string,
  minute: string,
  second: string
): number | undefined => {
  const m = MONTHS.indexOf(month.toLowerCase())
  const d = Number(day.trim())
  const h = Number(hour)
  const min = Number(minute)
  const s = Number(second)
  // Date.UTC silently turns 31 Feb into 3 Mar: such a header is garbage, not a date.
  const daysInMonth = new Date(Date.UTC(year, m + 1, 0)).getUTCDate()
  // Second 60 is a leap second; Date.UTC rolls it into the next minute, which is what a waiter wants.
  if (d < 1 || d > daysInMonth || h > 23 || min > 59 || s > 60) return undefined
  return Date.UTC(year, m, d, h, min, s)
}

const parseHttpDate = (text: string, nowMillis: number): number | undefined => {
  const imf = IMF_FIXDATE.exec(text)
  if (imf !== null) return utc(Number(imf[3]), imf[2]!, imf[1]!, imf[4]!, imf[5]!, imf[6]!)
  const rfc850 = RFC_850.exec(text)
  if (rfc850 !== null) {
    // RFC 9110: a two-digit year more than 50 years in the future means the previous century.
    const nowYear = new Date(nowMillis).getUTCFullYear()
    let year = Math.floor(nowYear / 100) * 100 + Number(rfc850[3])
    if (year > nowYear + 50) year -= 100
    return utc(year, rfc850[2]!, rfc850[1]!, rfc850[4]!, rfc850[5]!, rfc850[6]!)
  }
  const asctime = ASCTIME.exec(text)
  if (asctime !== null) return utc(Number(asctime[6]), asctime[1]!, asctime[2]!, asctime[3]!, asctime[4]!, asctime[5]!)
  return undefined
}

const clamp = (millis: number, maxMillis: number): number => {
  const cap = Number.isNaN(maxMillis) ? 0 : Math.min(Math.max(0, maxMillis), Number.MAX_SAFE_INTEGER)
  if (Number.isNaN(millis)) return 0
  // A digits-only value too long for a double reads as Infinity: it still means "a very long time".
  return Math.min(Math.max(0, Math.ceil(millis)), cap)
}

const parseMillis = (value: string | undefined, maxMillis: number): Option.Option<number> => {
  if (value === undefined) return Option.none()
  const text = value.trim()
  return DECIMAL.test(text) ? Option.some(clamp(Number(text), maxMillis)) : Option.none()
}

const parseRetryAfterHeader = (
  value: string | undefined,
  nowMillis: number,
  maxMillis: number
): Option.Option<number> => {
  if (value === undefined) return Option.none()
  const text = value.trim()
  if (DECIMAL.test(text)) return Option.some(clamp(Number(text) * 1000, maxMillis))
  const date = parseHttpDate(text, nowMillis)
  return date === undefined ? Option.none() : Option.some(clamp(date - nowMillis, maxMillis))
}

/**
 * @internal The wait in milliseconds the server asked for: `retry-after-ms`, then
 * `x-ms-retry-after-ms`, then `retry-after` (seconds or HTTP-date); a garbage header falls through
 * to the next one. Always finite, `>= 0` and `<= maxMillis`; fractions round up to whole milliseconds.
 */
export const parseRetryAfter = (
  headers: Headers.Headers,
  nowMillis: number,
  maxMillis: number
): Option.Option<number> =>
  parseMillis(headers["retry-after-ms"], maxMillis).pipe(
    Option.orElse(() => parseMillis(headers["x-ms-retry-after-ms"], maxMillis)),
    Option.orElse(() => parseRetryAfterHeader(headers["retry-after"], nowMillis, maxMillis))
  )
