/**
 * A filtered, paged OData list answer: `$filter` over the items' JSON, `$top` (at most the page
 * size), `$skip`, and `@odata.nextLink` — an absolute URL on the request's own origin — while
 * more items follow.
 *
 * @internal
 */
import { matches, parseFilter } from "./odata.ts"
import { json, odata } from "./responses.ts"
import type { Call } from "./state.ts"

/** @internal What a list endpoint lists: its OData context, the properties `$filter` may name, and the items. */
export interface Listing {
  readonly context: string
  readonly fields: ReadonlySet<string>
  readonly items: ReadonlyArray<Record<string, unknown>>
}

const COUNT = /^\d{1,9}$/

/** A query option as a whole number, or `fallback` when absent; `undefined` when it is not one. */
const whole = (url: URL, name: string, fallback: number): number | undefined => {
  const text = url.searchParams.get(name)
  if (text === null) return fallback
  return COUNT.test(text.trim()) ? Number(text.trim()) : undefined
}

/** The same URL with `$skip` moved on; `$`-names stay readable, values are encoded. */
const nextLink = (url: URL, skip: number, top: number): string => {
  const params = new Map<string, string>()
  url.searchParams.forEach((value, key) => params.set(key, value))
  params.set("$top", String(top))
  params.set("$skip", String(skip))
  const query = [...params].map(([k, v]) => `${encodeURIComponent(k).replace(/^%24/, "$")}=${encodeURIComponent(v)}`)
  return `${url.origin}${url.pathname}?${query.join("&")}`
}

/** @internal Answers a list request: the page of matching items, or 400 for a `$filter`, `$top` or `$skip` it cannot read. */
export const listAnswer = ({ requestId, state, url }: Call, listing: Listing): Response => {
  const pageSize = state.settings.pageSize
  const top = whole(url, "$top", pageSize)
  const skip = whole(url, "$skip", 0)
  if (top === undefined || skip === undefined) {
    return odata(400, "InvalidRequest", "$top and $skip must be non-negative whole numbers", requestId)
  }
  const text = url.searchParams.get("$filter")
  let items = listing.items
  if (text !== null) {
    const parsed = parseFilter(text, listing.fields)
    if ("error" in parsed) return odata(400, "InvalidRequest", `Invalid $filter: ${parsed.error}`, requestId)
    items = items.filter((item) => matches(parsed.filter, item))
  }
  const size = Math.min(top, pageSize)
  const page = items.slice(skip, skip + size)
  const more = top > 0 && skip + size < items.length
  return json(200, {
    "@odata.context": listing.context,
    value: page,
    ...(more ? { "@odata.nextLink": nextLink(url, skip + size, top) } : {})
  })
}
