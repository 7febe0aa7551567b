/**
 * The result-link endpoint:
 * `GET /api/machineactions/{id}/GetLiveResponseResultDownloadLink(index=N)` → a
 * 30-minute SAS link, kept `Redacted`.
 *
 * @internal
 */
import { HttpClientRequest } from "@effect/platform"
import { Effect, Redacted } from "effect"
import type { CommandRef, ResultLink } from "../../DefenderClient.ts"
import { type DefenderError, ResultLinkError } from "../../DefenderError.ts"
import { redactUrl } from "../url.ts"
import { resultLinkValue } from "./answers.ts"
import { checkRef } from "./arguments.ts"
import { apiCall } from "./authorizedCall.ts"
import type { ClientContext } from "./context.ts"

/** The link's expiry, from its `se=` parameter. */
const linkExpiry = (url: URL): Date | undefined => {
  const se = url.searchParams.get("se")
  if (se === null) return undefined
  const date = new Date(se)
  return Number.isNaN(date.getTime()) ? undefined : date
}

const parseLink = (text: string): URL | undefined => {
  try {
    return new URL(text)
  } catch {
    return undefined
  }
}

/** @internal `DefenderClient.getResultLink`. */
export const getResultLink = (ctx: ClientContext): (ref: CommandRef) => Effect.Effect<ResultLink, DefenderError> =>
  Effect.fn("DefenderClient.getResultLink")(function*(input: CommandRef) {
    const ref = yield* checkRef(input)
    yield* Effect.annotateCurrentSpan({
      "mde.machine_action_id": ref.machineActionId,
      "mde.command_index": ref.index
    })
    const url = `${ctx.cloud.apiBaseUrl}/api/machineactions/${
      encodeURIComponent(ref.machineActionId)
    }/GetLiveResponseResultDownloadLink(index=${ref.index})`
    const answer = yield* apiCall(
      ctx,
      HttpClientRequest.get(url),
      `machine action ${ref.machineActionId} (command index ${ref.index})`
    )
    const link = parseLink(yield* resultLinkValue(answer, { method: "GET", url }))
    if (link === undefined) {
      return yield* new ResultLinkError({ reason: "InvalidLink", detail: "the `value` is not a URL" })
    }
    yield* Effect.annotateCurrentSpan("mde.result_link", redactUrl(link))
    return { url: Redacted.make(link.href), expiresAt: linkExpiry(link) } satisfies ResultLink
  })
