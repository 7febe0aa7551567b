import { describe, expect, it } from "@effect/vitest"
import * as Headers from "@effect/platform/Headers"
import { Either, Option } from "effect"
import { DEFAULT_MAX_RETRY_AFTER_MILLIS, parseRetryAfter } from "../src/internal/retryAfter.ts"
import {
  checkSecureUrl,
  DEFAULT_DOWNLOAD_HOSTS,
  hostMatches,
  isLoopbackHost,
  parseHostList,
  redactText,
  redactUrl
} from "../src/internal/url.ts"

const NOW = Date.UTC(2024, 0, 15, 12, 0, 0)
const MAX = DEFAULT_MAX_RETRY_AFTER_MILLIS

const wait = (input: Record<string, string>, now: number = NOW, max: number = MAX): Option.Option<number> =>
  parseRetryAfter(Headers.fromInput(input), now, max)

describe("parseRetryAfter", () => {
  it("defaults the cap to ten minutes", () => {
    expect(DEFAULT_MAX_RETRY_AFTER_MILLIS).toBe(600_000)
  })

  it("reads Retry-After delta-seconds", () => {
    expect(wait({ "Retry-After": "120" })).toEqual(Option.some(120_000))
    expect(wait({ "retry-after": "0" })).toEqual(Option.some(0))
    expect(wait({ "retry-after": "  7 \t" })).toEqual(Option.some(7_000))
  })

  it("tolerates decimal seconds and rounds up to whole milliseconds", () => {
    expect(wait({ "retry-after": "1.5" })).toEqual(Option.some(1_500))
    expect(wait({ "retry-after": "0.0001" })).toEqual(Option.some(1))
    expect(wait({ "retry-after": ".5" })).toEqual(Option.some(500))
    expect(wait({ "retry-after": "2." })).toEqual(Option.some(2_000))
  })

  it("reads an IMF-fixdate in the future as date minus now", () => {
    expect(wait({ "retry-after": "Mon, 15 Jan 2024 12:00:30 GMT" })).toEqual(Option.some(30_000))
    expect(wait({ "retry-after": "mon, 15 jan 2024 12:01:00 gmt" })).toEqual(Option.some(60_000))
  })

  it("reads a date in the past (or now) as zero", () => {
    expect(wait({ "retry-after": "Sun, 06 Nov 1994 08:49:37 GMT" })).toEqual(Option.some(0))
    expect(wait({ "retry-after": "Mon, 15 Jan 2024 12:00:00 GMT" })).toEqual(Option.some(0))
  })

  it("reads the RFC 850 and asctime forms as UTC", () => {
    expect(wait({ "retry-after": "Monday, 15-Jan-24 12:00:45 GMT" })).toEqual(Option.some(45_000))
    expect(wait({ "retry-after": "Mon Jan 15 12:00:10 2024" })).toEqual(Option.some(10_000))
    expect(wait({ "retry-after": "Mon Jan  1 00:00:00 2024" })).toEqual(Option.some(0))
  })

  it("puts a two-digit RFC 850 year more than 50 years ahead in the previous century", () => {
    // "94" from 2024 would be 2094, 70 years ahead: it means 1994, in the past.
    expect(wait({ "retry-after": "Sunday, 06-Nov-94 08:49:37 GMT" })).toEqual(Option.some(0))
    // "70" from 2024 is 2070, 46 years ahead: a real (clamped) future date.
    expect(wait({ "retry-after": "Sunday, 06-Nov-70 08:49:37 GMT" })).toEqual(Option.some(MAX))
  })

  it("clamps a far-future date to the cap", () => {
    expect(wait({ "retry-after": "Fri, 31 Dec 2100 23:59:59 GMT" })).toEqual(Option.some(MAX))
  })

  it("rejects impossible dates and times", () => {
    expect(wait({ "retry-after": "Sat, 31 Feb 2024 12:00:00 GMT" })).toEqual(Option.none())
    expect(wait({ "retry-after": "Mon, 00 Jan 2024 12:00:00 GMT" })).toEqual(Option.none())
    expect(wait({ "retry-after": "Mon, 15 Jan 2024 24:00:00 GMT" })).toEqual(Option.none())
    expect(wait({ "retry-after": "Mon, 15 Jan 2024 12:60:00 GMT" })).toEqual(Option.none())
    expect(wait({ "retry-after": "Mon, 15 Jan 2024 12:00:61 GMT" })).toEqual(Option.none())
    expect(wait({ "retry-after": "Mon, 15 Foo 2024 12:00:00 GMT" })).toEqual(Option.none())
    // A zone other than GMT is not an HTTP-date.
    expect(wait({ "retry-after": "Mon, 15 Jan 2024 12:00:30 PST" })).toEqual(Option.none())
  })

  it("accepts a leap second", () => {
    expect(wait({ "retry-after": "Mon, 15 Jan 2024 12:00:60 GMT" })).toEqual(Option.some(60_000))
  })

  it("prefers retry-after-ms, then x-ms-retry-after-ms, then retry-after", () => {
    const all = { "retry-after-ms": "250", "x-ms-retry-after-ms": "500", "retry-after": "3" }
    expect(wait(all)).toEqual(Option.some(250))
    expect(wait({ "x-ms-retry-after-ms": "500", "retry-after": "3" })).toEqual(Option.some(500))
    expect(wait({ "retry-after": "3" })).toEqual(Option.some(3_000))
  })

  it("reads fractional milliseconds, rounded up", () => {
    expect(wait({ "retry-after-ms": "12.3" })).toEqual(Option.some(13))
    expect(wait({ "x-ms-retry-after-ms": " 0.5 " })).toEqual(Option.some(1))
    expect(wait({ "retry-after-ms": "0" })).toEqual(Option.some(0))
  })

  it("falls through a garbage header to the next one", () => {
    expect(wait({ "retry-after-ms": "soon", "x-ms-retry-after-ms": "NaN", "retry-after": "4" })).toEqual(
      Option.some(4_000)
    )
    expect(wait({ "retry-after-ms": "-1", "x-ms-retry-after-ms": "750" })).toEqual(Option.some(750))
  })

  it("returns none without any header, or when every header is garbage", () => {
    expect(wait({})).toEqual(Option.none())
    expect(wait({ "content-type": "application/json" })).toEqual(Option.none())
    for (const garbage of ["soon", "-5", "NaN", "Infinity", "-Infinity", "1e400", "1e3", "0x10", "", "  ", "+5", "1,5", "5s"]) {
      expect(wait({ "retry-after": garbage }), garbage).toEqual(Option.none())
      expect(wait({ "retry-after-ms": garbage }), garbage).toEqual(Option.none())
      expect(wait({ "x-ms-retry-after-ms": garbage }), garbage).toEqual(Option.none())
    }
  })

  it("clamps huge numbers to the cap, never Infinity", () => {
    expect(wait({ "retry-after": "86400" })).toEqual(Option.some(MAX))
    expect(wait({ "retry-after": "99999999999999999999999" })).toEqual(Option.some(MAX))
    expect(wait({ "retry-after": "9".repeat(400) })).toEqual(Option.some(MAX))
    expect(wait({ "retry-after-ms": "9".repeat(400) })).toEqual(Option.some(MAX))
  })

  it("honours the caller's cap", () => {
    expect(wait({ "retry-after": "120" }, NOW, 5_000)).toEqual(Option.some(5_000))
    expect(wait({ "retry-after": "120" }, NOW, 0)).toEqual(Option.some(0))
    expect(wait({ "retry-after": "120" }, NOW, -1)).toEqual(Option.some(0))
    expect(wait({ "retry-after": "120" }, NOW, Number.NaN)).toEqual(Option.some(0))
    expect(wait({ "retry-after": "9".repeat(400) }, NOW, Infinity)).toEqual(Option.some(Number.MAX_SAFE_INTEGER))
  })

  it("never returns NaN even when now is NaN", () => {
    expect(wait({ "retry-after": "Mon, 15 Jan 2024 12:00:30 GMT" }, Number.NaN)).toEqual(Option.some(0))
  })
})

const SAS =
  "https://core.windows.net/investigation-actions-data/ID/CustomPlaybookCommandOutput/4ed5e7807ad1fe59b00b664fe06a0f07?se=2021-02-04T16%3A13%3A50Z&sp=r&sv=2019-07-07&sr=b&sig=1dYGe9rPvUlXBPvYSmr6/OLXPY98m8qWqfIQCBbyZTY%3D"
const SIGNATURE = "1dYGe9rPvUlXBPvYSmr6/OLXPY98m8qWqfIQCBbyZTY%3D"

describe("redactUrl", () => {
  it("hides the signature of a real SAS link and keeps the other parameters as they were", () => {
    const out = redactUrl(SAS)
    expect(out).not.toContain(SIGNATURE)
    expect(out).not.toContain("1dYGe9rPvUlXBPvYSmr6")
    expect(out).toContain("se=2021-02-04T16%3A13%3A50Z")
    expect(out).toContain("&sp=r&sv=2019-07-07&sr=b&")
    expect(out).toBe(SAS.replace(SIGNATURE, "REDACTED"))
  })

  it("matches the parameter name case-insensitively, even percent-encoded", () => {
    expect(redactUrl("https://a.blob.core.windows.net/c/b?SIG=secret&se=x")).toBe(
      "https://a.blob.core.windows.net/c/b?SIG=REDACTED&se=x"
    )
    expect(redactUrl("https://h/p?Sig=secret")).toBe("https://h/p?Sig=REDACTED")
    expect(redactUrl("https://h/p?%73ig=secret")).toBe("https://h/p?%73ig=REDACTED")
    expect(redactUrl("https://h/p?sig")).toBe("https://h/p?sig=REDACTED")
  })

  it("redacts every sig parameter and leaves look-alike names alone", () => {
    expect(redactUrl("https://h/p?sig=a&sig=b&sigx=c&xsig=d")).toBe("https://h/p?sig=REDACTED&sig=REDACTED&sigx=c&xsig=d")
  })

  it("tolerates a malformed percent-escape in a parameter name", () => {
    expect(redactUrl("https://h/p?%zz=1&sig=s")).toBe("https://h/p?%zz=1&sig=REDACTED")
  })

  it("removes userinfo", () => {
    const out = redactUrl("https://user:p%40ss@host.example/x?sig=abc&se=1")
    expect(out).toBe("https://host.example/x?sig=REDACTED&se=1")
    expect(redactUrl("https://user@host.example/")).toBe("https://host.example/")
  })

  it("accepts a URL object without changing it", () => {
    const url = new URL(SAS)
    expect(redactUrl(url)).not.toContain(SIGNATURE)
    expect(url.href).toBe(SAS)
  })

  it("leaves a URL without a query alone", () => {
    expect(redactUrl("https://host.example/path")).toBe("https://host.example/path")
    expect(redactUrl("https://host.example/path?")).toBe("https://host.example/path?")
  })

  it("redacts a copy of the query in the fragment", () => {
    expect(redactUrl("https://h/p?se=1#sig=abc&x=1")).toBe("https://h/p?se=1#sig=REDACTED&x=1")
  })

  it("falls back to text redaction on strings that are not URLs", () => {
    expect(redactUrl("not a url sig=abc&se=1")).toBe("not a url sig=REDACTED&se=1")
    expect(redactUrl("/relative/path?SIG=abc")).toBe("/relative/path?SIG=REDACTED")
    expect(redactUrl("")).toBe("")
  })
})

describe("redactText", () => {
  it("redacts every URL in free text", () => {
    const text = `first ${SAS} then "https://b.blob.core.windows.net/c?sv=1&Sig=xyz%2B%3D&se=2" and (https://c/?sig=qq)`
    const out = redactText(text)
    expect(out).not.toContain(SIGNATURE)
    expect(out).not.toContain("xyz")
    expect(out).not.toContain("qq")
    expect(out).toContain("se=2021-02-04T16%3A13%3A50Z")
    expect(out).toContain(`"https://b.blob.core.windows.net/c?sv=1&Sig=REDACTED&se=2"`)
    expect(out).toContain("(https://c/?sig=REDACTED)")
  })

  it("redacts a signature inside an encoded URL", () => {
    const out = redactText("next=https%3A%2F%2Fa%2Fb%3Fsig%3Dsecret%252F%26se%3D1")
    expect(out).toBe("next=https%3A%2F%2Fa%2Fb%3Fsig%3DREDACTED%26se%3D1")
  })

  it("removes userinfo from URLs in text", () => {
    expect(redactText("GET https://admin:hunter2@h.example/x failed")).toBe("GET https://h.example/x failed")
    // A raw `@` inside the password: all of it goes, not only what comes before the first `@`.
    expect(redactText("connect redis://:p@ss@w0rd@cache.example:6379/0 refused")).toBe("connect redis://cache.example:6379/0 refused")
    expect(redactText("mail a@b.example, see https://h.example/x")).toBe("mail a@b.example, see https://h.example/x")
  })

  it("leaves text without secrets alone", () => {
    expect(redactText("nothing to see at https://h.example/x?se=1")).toBe("nothing to see at https://h.example/x?se=1")
  })
})

describe("isLoopbackHost", () => {
  it("accepts localhost, 127.0.0.0/8 and ::1", () => {
    for (const host of ["localhost", "LOCALHOST", "localhost.", "127.0.0.1", "127.5.6.7", "127.255.255.255", "127.0.0.0", "::1", "[::1]"]) {
      expect(isLoopbackHost(host), host).toBe(true)
    }
  })

  it("rejects look-alikes and other hosts", () => {
    for (
      const host of [
        "localhost.evil.com",
        "evil-localhost",
        "127.0.0.1.nip.io",
        "0x7f000001",
        "2130706433",
        "127.1",
        "127.0.0.01",
        "127.0.0.256",
        "127.0.0.1:80",
        "128.0.0.1",
        "0.0.0.0",
        "::2",
        "[::]",
        "example.com",
        ""
      ]
    ) {
      expect(isLoopbackHost(host), host).toBe(false)
    }
  })
})

describe("checkSecureUrl", () => {
  const left = (url: string) => Either.getLeft(checkSecureUrl(url))

  it("accepts https", () => {
    const result = checkSecureUrl("https://a.blob.core.windows.net/c/b?sig=x")
    expect(Either.isRight(result)).toBe(true)
    expect(Either.getOrThrow(result).hostname).toBe("a.blob.core.windows.net")
  })

  it("accepts http on loopback only", () => {
    for (const url of ["http://127.0.0.1:10000/devstoreaccount1/c/b", "http://localhost:8080/", "http://[::1]:1/"]) {
      expect(Either.isRight(checkSecureUrl(url)), url).toBe(true)
    }
    expect(left("http://example.com/x")).toEqual(Option.some("InsecureScheme"))
    expect(left("http://localhost.evil.com/x")).toEqual(Option.some("InsecureScheme"))
    expect(left("http://127.0.0.1.nip.io/x")).toEqual(Option.some("InsecureScheme"))
  })

  it("refuses other schemes", () => {
    expect(left("ftp://example.com/file")).toEqual(Option.some("InsecureScheme"))
    expect(left("javascript:alert(1)")).toEqual(Option.some("InsecureScheme"))
    expect(left("file:///etc/passwd")).toEqual(Option.some("InsecureScheme"))
    expect(left("data:text/plain,hi")).toEqual(Option.some("InsecureScheme"))
  })

  it("refuses userinfo", () => {
    expect(left("https://user:pw@host")).toEqual(Option.some("InvalidUrl"))
    expect(left("https://user@host")).toEqual(Option.some("InvalidUrl"))
    expect(left("http://user:pw@127.0.0.1/")).toEqual(Option.some("InvalidUrl"))
  })

  it("refuses what does not parse", () => {
    expect(left("not a url")).toEqual(Option.some("InvalidUrl"))
    expect(left("")).toEqual(Option.some("InvalidUrl"))
    expect(left("https://")).toEqual(Option.some("InvalidUrl"))
  })
})

describe("hostMatches", () => {
  const blob = ["*.blob.core.windows.net"]

  it("matches a wildcard suffix with at least one label before it", () => {
    expect(hostMatches("myacct.blob.core.windows.net", blob)).toBe(true)
    expect(hostMatches("a.b.blob.core.windows.net", blob)).toBe(true)
    expect(hostMatches("blob.core.windows.net", blob)).toBe(false)
    expect(hostMatches(".blob.core.windows.net", blob)).toBe(false)
    expect(hostMatches("a..blob.core.windows.net", blob)).toBe(false)
  })

  it("rejects look-alikes", () => {
    expect(hostMatches("evilblob.core.windows.net", blob)).toBe(false)
    expect(hostMatches("blob.core.windows.net.evil.com", blob)).toBe(false)
    expect(hostMatches("myacct.blob.core.windows.net.evil.com", blob)).toBe(false)
    expect(hostMatches("core.windows.net", blob)).toBe(false)
  })

  it("matches exact hosts", () => {
    const exact = ["myacct.blob.core.windows.net", "127.0.0.1"]
    expect(hostMatches("myacct.blob.core.windows.net", exact)).toBe(true)
    expect(hostMatches("127.0.0.1", exact)).toBe(true)
    expect(hostMatches("other.blob.core.windows.net", exact)).toBe(false)
    expect(hostMatches("x.myacct.blob.core.windows.net", exact)).toBe(false)
  })

  it("ignores case, surrounding spaces and a trailing dot", () => {
    expect(hostMatches("MyAcct.BLOB.core.windows.net", blob)).toBe(true)
    expect(hostMatches("myacct.blob.core.windows.net.", blob)).toBe(true)
    expect(hostMatches("myacct.blob.core.windows.net", ["  *.BLOB.Core.Windows.NET  "])).toBe(true)
    expect(hostMatches("Host.Example.", ["host.example"])).toBe(true)
  })

  it("skips empty and overly broad patterns", () => {
    expect(hostMatches("a.example", [])).toBe(false)
    expect(hostMatches("a.example", ["", "  "])).toBe(false)
    expect(hostMatches("a.example", ["*"])).toBe(false)
    expect(hostMatches("*", ["*"])).toBe(false)
    expect(hostMatches("a.example", ["*."])).toBe(false)
    expect(hostMatches("a.example", ["*.."])).toBe(false)
    expect(hostMatches("a.example", ["a.*"])).toBe(false)
    expect(hostMatches("", ["", "*.example"])).toBe(false)
  })

  it("defaults to the commercial and US government blob hosts", () => {
    expect(hostMatches("acct.blob.core.windows.net", DEFAULT_DOWNLOAD_HOSTS)).toBe(true)
    expect(hostMatches("acct.blob.core.usgovcloudapi.net", DEFAULT_DOWNLOAD_HOSTS)).toBe(true)
    expect(hostMatches("core.windows.net", DEFAULT_DOWNLOAD_HOSTS)).toBe(false)
    expect(hostMatches("127.0.0.1", DEFAULT_DOWNLOAD_HOSTS)).toBe(false)
  })
})

describe("parseHostList", () => {
  it("splits on commas and whitespace, lower-cases and drops empties and duplicates", () => {
    expect(parseHostList(" *.blob.core.windows.net, 127.0.0.1\n\tHOST.example.,,host.example ")).toEqual([
      "*.blob.core.windows.net",
      "127.0.0.1",
      "host.example"
    ])
    expect(parseHostList("")).toEqual([])
    expect(parseHostList(" , ")).toEqual([])
  })
})
