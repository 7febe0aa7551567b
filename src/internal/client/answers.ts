/**
 * The API's 2xx answers, decoded with `Schema.parseJson(schema)`: a body that is
 * not JSON, or not what the API documents, is an `HttpError` `InvalidResponse`
 * that says which.
 *
 * @internal
 */
import { Either, ParseResult, Schema } from "effect"
import { HttpError } from "../../DefenderError.ts"
import * as MachineAction from "../../MachineAction.ts"
import type { ApiAnswer } from "./authorizedCall.ts"

/** @internal Which request an answer came from, for its error. */
export interface Origin {
  readonly method: string
  readonly url: string
}

/**
 * Decodes `answer` with `Schema.parseJson(schema)`; `notShaped` says what a JSON body that
 * fails `schema` lacks.
 */
const decodeAnswer = <A>(
  schema: Schema.Schema<A, string>,
  answer: ApiAnswer,
  origin: Origin,
  notShaped: (issue: ParseResult.ParseIssue) => string
): Either.Either<A, HttpError> =>
  Either.mapLeft(Schema.decodeEither(schema)(answer.text), (error) => {
    // parseJson(schema) composes the JSON parse (the encoded side) with `schema`.
    const notJson = error.issue._tag === "Transformation" && error.issue.kind === "Encoded"
    return HttpError.invalidResponse({
      ...origin,
      attempts: answer.attempts,
      status: answer.status,
      detail: notJson ? "the body is not JSON" : notShaped(error.issue)
    })
  })

const LinkAnswer = Schema.parseJson(Schema.Struct({
  "@odata.context": Schema.optional(Schema.String),
  value: Schema.String
}))

/** @internal The URL text of a result-link answer (`{"value": "https://…"}`). */
export const resultLinkValue = (answer: ApiAnswer, origin: Origin): Either.Either<string, HttpError> =>
  Either.map(decodeAnswer(LinkAnswer, answer, origin, () => "the body has no string `value`"), (body) => body.value)

const AnyJson = Schema.parseJson()

/** @internal A machine action answer (run, get, cancel). */
export const machineAction = (
  answer: ApiAnswer,
  origin: Origin
): Either.Either<MachineAction.MachineAction, HttpError> =>
  Either.flatMap(decodeAnswer(AnyJson, answer, origin, () => "the body is not JSON"), (json) =>
    Either.mapLeft(MachineAction.decode(json), (detail) =>
      HttpError.invalidResponse({
        ...origin,
        attempts: answer.attempts,
        status: answer.status,
        detail: `not a machine action: ${detail}`
      })))

/** @internal An upload's answer: the file's name and hash where the API says them. */
export const libraryFile = (
  answer: ApiAnswer,
  origin: Origin,
  fileName: string
): Either.Either<{ readonly fileName: string; readonly sha256: string | undefined }, HttpError> =>
  Either.map(decodeAnswer(AnyJson, answer, origin, () => "the body is not JSON"), (json) => {
    const value = typeof json === "object" && json !== null ? json as Record<string, unknown> : {}
    return {
      fileName: typeof value.fileName === "string" ? value.fileName : fileName,
      sha256: typeof value.sha256 === "string" ? value.sha256 : undefined
    }
  })

const PageAnswer = Schema.parseJson(Schema.Struct({
  value: Schema.Array(Schema.Unknown),
  "@odata.nextLink": Schema.optional(Schema.NullOr(Schema.String))
}))

/** @internal One page of a list answer: its entries (still to decode) and the next page's link. */
export interface ListPage {
  readonly value: ReadonlyArray<unknown>
  readonly nextLink: string | undefined
}

/** @internal A list answer (`{"value": [...], "@odata.nextLink": "…"}`). */
export const listPage = (answer: ApiAnswer, origin: Origin): Either.Either<ListPage, HttpError> =>
  Either.map(
    decodeAnswer(PageAnswer, answer, origin, () => "the body has no `value` array"),
    (body) => ({ value: body.value, nextLink: body["@odata.nextLink"] ?? undefined })
  )
