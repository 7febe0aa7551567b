/**
 * OData query text: string literals quoted as OData quotes them, and the `$filter` /
 * `$top` query of a list call, URL-encoded and checked before anything is sent.
 *
 * @internal
 */
import { Effect } from "effect"
import { InvalidArgument } from "../../DefenderError.ts"

/** @internal An OData string literal: `'…'` with every `'` inside doubled. */
export const quote = (value: string): string => `'${value.replace(/'/g, "''")}'`

/** @internal `field in ('a','b')`, each value an OData string literal. */
export const inList = (field: string, values: readonly [string, ...Array<string>]): string =>
  `${field} in (${values.map(quote).join(",")})`

/** The API's largest page. */
const MAX_TOP = 10_000

/** @internal What a list call may be asked for. */
export interface ListQuery {
  readonly filter?: string | undefined
  readonly top?: number | undefined
}

/**
 * @internal The query string (with its `?`, or empty) of a list call: `$filter` URL-encoded
 * (spaces as `%20`; `&`, `#` and `+` escaped), `$top` a whole number from 1 to 10,000.
 */
export const listQuery = (query: ListQuery | undefined): Effect.Effect<string, InvalidArgument> => {
  const parts: Array<string> = []
  const filter = query?.filter
  if (filter !== undefined) {
    if (typeof filter !== "string") {
      return Effect.fail(new InvalidArgument({ argument: "filter", detail: "must be an OData $filter text" }))
    }
    if (filter.trim() !== "") parts.push(`$filter=${encodeURIComponent(filter.trim())}`)
  }
  const top = query?.top
  if (top !== undefined) {
    if (!Number.isSafeInteger(top) || top < 1 || top > MAX_TOP) {
      return Effect.fail(
        new InvalidArgument({ argument: "top", detail: `must be a whole number from 1 to ${MAX_TOP}, got ${String(top)}` })
      )
    }
    parts.push(`$top=${top}`)
  }
  return Effect.succeed(parts.length === 0 ? "" : `?${parts.join("&")}`)
}
