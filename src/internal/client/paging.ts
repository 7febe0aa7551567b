/**
 * The API's paged lists (`GET /api/machines`, `GET /api/machineactions`, …) as a
 * lazy `Stream`: one page is fetched when the previous one has been consumed,
 * `@odata.nextLink` is followed only to the API's own origin (the bearer token goes
 * with it), and a server that keeps linking cannot hold the stream forever.
 *
 * @internal
 */
import { HttpClientRequest } from "@effect/platform"
import { Chunk, Effect, Either, Option, Stream } from "effect"
import { type DefenderError, HttpError, InvalidArgument } from "../../DefenderError.ts"
import { listPage } from "./answers.ts"
import { apiCall } from "./authorizedCall.ts"
import type { ClientContext } from "./context.ts"
import { listQuery, type ListQuery } from "./odata.ts"

/** @internal The default most pages one list may take. */
export const DEFAULT_MAX_PAGES = 1000

/** @internal One paged list endpoint and how to read its entries. */
export interface PagedList<A> {
  /** The span of each page's call, e.g. `DefenderClient.listMachines`. */
  readonly span: string
  /** The path under the API base, e.g. `/api/machines`. */
  readonly path: string
  /** What a 404 is about, e.g. `the machines list`. */
  readonly resource: string
  /** What one entry is, for the error of one that is not, e.g. `a machine`. */
  readonly what: string
  readonly decode: (json: unknown) => Either.Either<A, string>
}

/** @internal A list call's options. */
export interface PageOptions extends ListQuery {
  readonly maxPages?: number | undefined
}

/** The next page to read, or why there is none to follow (failed when pulled, after the page before). */
type Cursor =
  | { readonly url: string; readonly page: number }
  | { readonly refused: HttpError }

interface Answered<A> {
  readonly items: Chunk.Chunk<A>
  readonly nextLink: string | undefined
  readonly attempts: number
  readonly status: number
}

const parsed = (url: string): URL | undefined => {
  try {
    return new URL(url)
  } catch {
    return undefined
  }
}

/** One page: the call on the machine-actions budget, its body, each entry decoded. */
const fetchPage = <A>(
  ctx: ClientContext,
  list: PagedList<A>,
  url: string,
  attributes: Record<string, unknown>
): Effect.Effect<Answered<A>, DefenderError> =>
  Effect.gen(function*() {
    const answer = yield* apiCall(ctx, HttpClientRequest.get(url), list.resource, "machineActions")
    const about = { method: "GET", url, attempts: answer.attempts, status: answer.status }
    const body = yield* listPage(answer, about)
    const items: Array<A> = []
    for (let i = 0; i < body.value.length; i++) {
      const item = list.decode(body.value[i])
      if (Either.isLeft(item)) {
        return yield* HttpError.invalidResponse({ ...about, detail: `entry ${i} is not ${list.what}: ${item.left}` })
      }
      items.push(item.right)
    }
    yield* Effect.annotateCurrentSpan("mde.entries", items.length)
    return { items: Chunk.unsafeFromArray(items), nextLink: body.nextLink, attempts: answer.attempts, status: answer.status }
  }).pipe(Effect.withSpan(list.span, { attributes }))

/**
 * Where the next page is, if anywhere: only on the API's origin (scheme, host and port),
 * never a page seen before, never past `maxPages`. A refusal names the link's origin only.
 */
const nextCursor = <A>(
  ctx: ClientContext,
  cursor: { readonly url: string; readonly page: number },
  answered: Answered<A>,
  limits: { readonly maxPages: number; readonly seen: Set<string> }
): Option.Option<Cursor> => {
  const link = answered.nextLink
  if (link === undefined || link.trim() === "") return Option.none()
  const refuse = (detail: string): Option.Option<Cursor> =>
    Option.some({ refused: HttpError.invalidResponse({
      method: "GET",
      url: cursor.url,
      attempts: answered.attempts,
      status: answered.status,
      detail
    }) })
  let next: URL
  try {
    next = new URL(link, cursor.url)
  } catch {
    return refuse("its @odata.nextLink is not a URL")
  }
  const api = parsed(ctx.cloud.apiBaseUrl)?.origin
  if (next.origin !== api) {
    return refuse(`its @odata.nextLink points at ${next.origin}, not at the API (${api ?? "?"}): not followed`)
  }
  next.username = ""
  next.password = ""
  next.hash = ""
  if (limits.seen.has(next.href)) return refuse("its @odata.nextLink repeats a page already read")
  if (cursor.page >= limits.maxPages) {
    return refuse(`it links past ${limits.maxPages} pages (maxPages): narrow the $filter or raise maxPages`)
  }
  limits.seen.add(next.href)
  return Option.some({ url: next.href, page: cursor.page + 1 })
}

const checkMaxPages = (maxPages: number | undefined): Effect.Effect<number, InvalidArgument> =>
  maxPages === undefined
    ? Effect.succeed(DEFAULT_MAX_PAGES)
    : Number.isSafeInteger(maxPages) && maxPages >= 1
    ? Effect.succeed(maxPages)
    : Effect.fail(
      new InvalidArgument({ argument: "maxPages", detail: `must be a positive whole number, got ${String(maxPages)}` })
    )

/**
 * @internal Every entry of a paged list, pages fetched as the stream is consumed; with
 * `top`, at most `top` entries (whether the API reads `$top` as a total or a page size).
 */
export const pagedList = <A>(
  ctx: ClientContext,
  list: PagedList<A>,
  options: PageOptions | undefined
): Stream.Stream<A, DefenderError> =>
  Stream.unwrap(Effect.gen(function*() {
    const query = yield* listQuery(options)
    const maxPages = yield* checkMaxPages(options?.maxPages)
    const filter = options?.filter?.trim()
    const attributes = {
      ...(filter === undefined || filter === "" ? {} : { "mde.filter": filter }),
      ...(options?.top === undefined ? {} : { "mde.top": options.top })
    }
    const first = `${ctx.cloud.apiBaseUrl}${list.path}${query}`
    // Per run of the stream: the pages this run has read.
    const limits = { maxPages, seen: new Set([parsed(first)?.href ?? first]) }
    const pages = Stream.paginateChunkEffect(
      { url: first, page: 1 } as Cursor,
      (cursor) =>
        "refused" in cursor
          ? Effect.fail(cursor.refused)
          : Effect.map(
            fetchPage(ctx, list, cursor.url, { ...attributes, "mde.page": cursor.page }),
            (answered) => [answered.items, nextCursor(ctx, cursor, answered, limits)] as const
          )
    )
    return options?.top === undefined ? pages : Stream.take(pages, options.top)
  }))
