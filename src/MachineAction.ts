/**
 * Machine actions and live response commands: what run live response sends
 * and what get, list and cancel machine action answer, as schemas and types.
 *
 * @module
 * @since 0.1.0
 */
import { Either, Option, ParseResult, Schema } from "effect"
import { inList } from "./internal/client/odata.ts"

/**
 * A live response command, as the library takes it. Commands run in the order
 * PutFile, RunScript, GetFile (the API's rule), and if one fails the rest do not run.
 *
 * @since 0.1.0
 * @category models
 */
export type Command =
  | { readonly type: "PutFile"; readonly fileName: string }
  | { readonly type: "RunScript"; readonly scriptName: string; readonly args?: string | undefined }
  | { readonly type: "GetFile"; readonly path: string }

const ORDER: Record<Command["type"], number> = { PutFile: 0, RunScript: 1, GetFile: 2 }

/**
 * Checks the commands (at least one; PutFile, then RunScript, then GetFile; no empty
 * names) and builds the request body with the names exactly as the API spells them.
 *
 * @since 0.1.0
 * @category constructors
 */
export const toRequestBody = (
  commands: ReadonlyArray<Command>,
  comment: string
): Either.Either<{ readonly Commands: ReadonlyArray<unknown>; readonly Comment: string }, string> => {
  if (commands.length === 0) return Either.left("at least one command is needed")
  for (let i = 1; i < commands.length; i++) {
    if (ORDER[commands[i]!.type] < ORDER[commands[i - 1]!.type]) {
      return Either.left(
        `commands must run in the order PutFile, RunScript, GetFile: ${commands[i]!.type} cannot follow ${
          commands[i - 1]!.type
        }`
      )
    }
  }
  const body: Array<unknown> = []
  for (const c of commands) {
    const [key, value] = c.type === "PutFile"
      ? ["FileName", c.fileName]
      : c.type === "RunScript"
      ? ["ScriptName", c.scriptName]
      : ["Path", c.path]
    if (typeof value !== "string" || value.trim() === "") return Either.left(`${c.type} needs a non-empty ${key}`)
    const params = [{ key, value }]
    if (c.type === "RunScript" && c.args !== undefined && c.args !== "") params.push({ key: "Args", value: c.args })
    body.push({ type: c.type, params })
  }
  if (comment.trim() === "") return Either.left("a comment is required")
  return Either.right({ Commands: body, Comment: comment })
}

/**
 * The statuses of a machine action; `Canceled` (one of the API's spellings) is read as `Cancelled`.
 *
 * @since 0.1.0
 * @category models
 */
export type Status = "Pending" | "InProgress" | "Succeeded" | "Failed" | "TimeOut" | "Cancelled"

const StatusSchema: Schema.Schema<Status, string> = Schema.transform(
  Schema.String,
  Schema.Literal("Pending", "InProgress", "Succeeded", "Failed", "TimeOut", "Cancelled").annotations({
    message: (issue) => ({
      message: `Expected Pending, InProgress, Succeeded, Failed, TimeOut, Cancelled or Canceled, actual ${
        JSON.stringify(issue.actual)
      }`,
      override: true
    })
  }),
  {
    strict: false,
    decode: (s) => (s === "Canceled" ? "Cancelled" : s),
    encode: (s) => s
  }
)

/**
 * One command of a machine action, as the API reports it. `startTime` and `endTime` are
 * the API's date strings, kept as sent (see {@link MachineAction}); both are `undefined`
 * until the command starts and ends.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommandState {
  /** The command's position in `commands`: the `index` of its result download link. */
  readonly index: number
  /** When the command started, as the API sends it. */
  readonly startTime: string | undefined
  /** When the command ended, as the API sends it. */
  readonly endTime: string | undefined
  /** `Created`, `InProgress`, `Completed` or `Failed` (kept as a string); `Unknown` when the API sent none. */
  readonly commandStatus: string
  /** The API's error messages; an error that is not a string is kept as its JSON text. */
  readonly errors: ReadonlyArray<string>
  /** The command as requested: `RunScript`, `GetFile` or `PutFile` and its `key`/`value` params. */
  readonly command: { readonly type: string; readonly params: ReadonlyArray<{ readonly key: string; readonly value: string }> }
}

/**
 * The file an action such as `StopAndQuarantineFile` is about; `fileIdentifierType` is
 * `Sha1`, `Sha256` or `Md5` on the docs, kept as a string.
 *
 * @since 0.1.0
 * @category models
 */
export interface RelatedFileInfo {
  /** The file's hash. */
  readonly fileIdentifier: string | undefined
  /** Which hash `fileIdentifier` is. */
  readonly fileIdentifierType: string | undefined
}

/**
 * A machine action (the answer of run live response, get, list and cancel machine action).
 *
 * Every field but `id`, `status` and `commands` may be `null` or missing in real answers and
 * is then `undefined`. Date fields (`creationDateTimeUtc`, `lastUpdateDateTimeUtc`,
 * `cancellationDateTimeUtc`, each command's `startTime`/`endTime`) are the strings the API
 * sends (ISO 8601 in UTC with up to seven fractional digits, e.g. `2021-02-04T15:36:52.7788848Z`),
 * kept as sent so that an unusual format never fails a decode: parse them with
 * `DateTime.make` or `Date.parse` where a time is needed. `troubleshootInfo` has no documented
 * shape and is kept as the JSON value it is.
 *
 * @since 0.1.0
 * @category models
 */
export interface MachineAction {
  /** The machine action id (a GUID): what `getResultLink` and `cancelMachineAction` take. */
  readonly id: string
  /** Where the action is; see {@link isFinal}. */
  readonly status: Status
  /** The id of the device the action runs on. */
  readonly machineId: string | undefined
  /** The kind of action: `LiveResponse` here, `Isolate`, `RunAntiVirusScan`, … elsewhere. */
  readonly type: string | undefined
  /** The live response commands and their states; empty for other kinds of action. */
  readonly commands: ReadonlyArray<CommandState>
  /** The action's title. */
  readonly title: string | undefined
  /** The action's scope: `Full` or `Selective` for isolation, `Quick` or `Full` for a scan. */
  readonly scope: string | undefined
  /** Who started the action (a person's name or an application's). */
  readonly requestor: string | undefined
  /** The comment given when the action was started. */
  readonly requestorComment: string | undefined
  /** What submitted the action, e.g. `PublicApi`. */
  readonly requestSource: string | undefined
  /** The caller's own correlation id, when one was sent (`externalID` on the resource page). */
  readonly externalId: string | undefined
  /** The device's name. */
  readonly computerDnsName: string | undefined
  /** When the action was created, as the API sends it. */
  readonly creationDateTimeUtc: string | undefined
  /** When the status last changed, as the API sends it (`lastUpdateTimeUtc` on the list page). */
  readonly lastUpdateDateTimeUtc: string | undefined
  /** Who cancelled the action. */
  readonly cancellationRequestor: string | undefined
  /** The comment given when the action was cancelled. */
  readonly cancellationComment: string | undefined
  /** When the action was cancelled, as the API sends it. */
  readonly cancellationDateTimeUtc: string | undefined
  /** The HRESULT of a failed action; `0` when there is none. */
  readonly errorHResult: number | undefined
  /** The file the action is about (file actions only). */
  readonly relatedFileInfo: RelatedFileInfo | undefined
  /** Undocumented troubleshooting details, kept as the JSON value the API sent. */
  readonly troubleshootInfo: unknown
}

/**
 * One command of a machine action as the API's JSON carries it (the encoded side of {@link schema}).
 *
 * @since 0.1.0
 * @category models
 */
export interface CommandStateJson {
  /** See {@link CommandState.index}. */
  readonly index: number
  /** See {@link CommandState.startTime}. */
  readonly startTime?: string | null | undefined
  /** See {@link CommandState.endTime}. */
  readonly endTime?: string | null | undefined
  /** See {@link CommandState.commandStatus}. */
  readonly commandStatus?: string | null | undefined
  /** See {@link CommandState.errors}. */
  readonly errors?: ReadonlyArray<unknown> | null | undefined
  /** See {@link CommandState.command}. */
  readonly command: {
    readonly type: string
    readonly params?: ReadonlyArray<{ readonly key: string; readonly value: string }> | null | undefined
  }
}

/**
 * A machine action as the API's JSON carries it (the encoded side of {@link schema}).
 * `lastUpdateTimeUtc` is the spelling of the List MachineActions page's example and
 * `externalID` that of the resource type page; both are read into the usual names.
 *
 * @since 0.1.0
 * @category models
 */
export interface MachineActionJson {
  /** See {@link MachineAction.id}. */
  readonly id: string
  /** See {@link MachineAction.status}; `Canceled` is read as `Cancelled`. */
  readonly status: string
  /** See {@link MachineAction.machineId}. */
  readonly machineId?: string | null | undefined
  /** See {@link MachineAction.type}. */
  readonly type?: string | null | undefined
  /** See {@link MachineAction.commands}. */
  readonly commands?: ReadonlyArray<CommandStateJson> | null | undefined
  /** See {@link MachineAction.title}. */
  readonly title?: string | null | undefined
  /** See {@link MachineAction.scope}. */
  readonly scope?: string | null | undefined
  /** See {@link MachineAction.requestor}. */
  readonly requestor?: string | null | undefined
  /** See {@link MachineAction.requestorComment}. */
  readonly requestorComment?: string | null | undefined
  /** See {@link MachineAction.requestSource}. */
  readonly requestSource?: string | null | undefined
  /** See {@link MachineAction.externalId}. */
  readonly externalId?: string | null | undefined
  /** The resource page's spelling of `externalId`; read as `externalId` when that is absent. */
  readonly externalID?: string | null | undefined
  /** See {@link MachineAction.computerDnsName}. */
  readonly computerDnsName?: string | null | undefined
  /** See {@link MachineAction.creationDateTimeUtc}. */
  readonly creationDateTimeUtc?: string | null | undefined
  /** See {@link MachineAction.lastUpdateDateTimeUtc}. */
  readonly lastUpdateDateTimeUtc?: string | null | undefined
  /** The list page's spelling of `lastUpdateDateTimeUtc`; read as it when that is absent. */
  readonly lastUpdateTimeUtc?: string | null | undefined
  /** See {@link MachineAction.cancellationRequestor}. */
  readonly cancellationRequestor?: string | null | undefined
  /** See {@link MachineAction.cancellationComment}. */
  readonly cancellationComment?: string | null | undefined
  /** See {@link MachineAction.cancellationDateTimeUtc}. */
  readonly cancellationDateTimeUtc?: string | null | undefined
  /** See {@link MachineAction.errorHResult}. */
  readonly errorHResult?: number | null | undefined
  /** See {@link MachineAction.relatedFileInfo}. */
  readonly relatedFileInfo?: {
    readonly fileIdentifier?: string | null | undefined
    readonly fileIdentifierType?: string | null | undefined
  } | null | undefined
  /** See {@link MachineAction.troubleshootInfo}. */
  readonly troubleshootInfo?: unknown
}

/** A key that may be missing, `null` or `undefined` on the wire, and is `A | undefined` once decoded. */
const orUndefined = <A, I>(schema: Schema.Schema<A, I>) =>
  Schema.optionalToRequired(Schema.NullishOr(schema), Schema.UndefinedOr(Schema.typeSchema(schema)), {
    decode: (o) => Option.getOrUndefined(o) ?? undefined,
    encode: (a) => Option.fromNullable(a)
  })

/** A key that may be missing, `null` or `undefined` on the wire, and is `fallback()` once decoded. */
const orElse = <A, I>(schema: Schema.Schema<A, I>, fallback: () => A) =>
  Schema.optionalToRequired(Schema.NullishOr(schema), Schema.typeSchema(schema), {
    decode: (o) => Option.getOrUndefined(o) ?? fallback(),
    encode: (a) => Option.some(a)
  })

/** The API documents `errors` as strings; anything else is kept as its JSON text rather than refused. */
const ErrorText = Schema.transform(Schema.Unknown, Schema.String, {
  strict: true,
  decode: (e) => (typeof e === "string" ? e : JSON.stringify(e) ?? String(e)),
  encode: (s) => s
})

const Param = Schema.Struct({ key: Schema.String, value: Schema.String })

const CommandStateSchema = Schema.Struct({
  index: Schema.Number,
  startTime: orUndefined(Schema.String),
  endTime: orUndefined(Schema.String),
  commandStatus: orElse(Schema.String, () => "Unknown"),
  errors: orElse(Schema.Array(ErrorText), () => []),
  command: Schema.Struct({
    type: Schema.String,
    params: orElse(Schema.Array(Param), () => [])
  })
})

const Wire = Schema.Struct({
  id: Schema.String,
  status: StatusSchema,
  machineId: orUndefined(Schema.String),
  type: orUndefined(Schema.String),
  commands: orElse(Schema.Array(CommandStateSchema), () => []),
  title: orUndefined(Schema.String),
  scope: orUndefined(Schema.String),
  requestor: orUndefined(Schema.String),
  requestorComment: orUndefined(Schema.String),
  requestSource: orUndefined(Schema.String),
  externalId: orUndefined(Schema.String),
  externalID: orUndefined(Schema.String),
  computerDnsName: orUndefined(Schema.String),
  creationDateTimeUtc: orUndefined(Schema.String),
  lastUpdateDateTimeUtc: orUndefined(Schema.String),
  lastUpdateTimeUtc: orUndefined(Schema.String),
  cancellationRequestor: orUndefined(Schema.String),
  cancellationComment: orUndefined(Schema.String),
  cancellationDateTimeUtc: orUndefined(Schema.String),
  errorHResult: orUndefined(Schema.Number),
  relatedFileInfo: orUndefined(Schema.Struct({
    fileIdentifier: orUndefined(Schema.String),
    fileIdentifierType: orUndefined(Schema.String)
  })),
  troubleshootInfo: orUndefined(Schema.Unknown)
})

/**
 * The machine action schema: decodes the API's JSON into a {@link MachineAction} (unknown
 * keys ignored, `null` and missing optional keys read as `undefined`, `Canceled` as
 * `Cancelled`, the variant spellings `lastUpdateTimeUtc` and `externalID` as the usual names),
 * and encodes one back without its `undefined` keys.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { MachineAction } from "@mde/live-response"
 *
 * const action = Schema.decodeUnknownSync(MachineAction.schema)({ id: "a", status: "Canceled", requestor: null })
 * // action.status === "Cancelled", action.requestor === undefined
 * ```
 *
 * @since 0.1.0
 * @category schemas
 */
export const schema: Schema.Schema<MachineAction, MachineActionJson> = Schema.transform(
  Wire,
  Schema.typeSchema(Wire).pipe(Schema.omit("lastUpdateTimeUtc", "externalID")),
  {
    strict: true,
    decode: ({ externalID, lastUpdateTimeUtc, ...action }) => ({
      ...action,
      externalId: action.externalId ?? externalID,
      lastUpdateDateTimeUtc: action.lastUpdateDateTimeUtc ?? lastUpdateTimeUtc
    }),
    encode: (action) => ({ ...action, externalID: undefined, lastUpdateTimeUtc: undefined })
  }
)

const decodeSchema = Schema.decodeUnknownEither(schema, { errors: "first" })

// What the library works with; every other field only informs, and one of an unexpected type
// is dropped by `decode` rather than failing a whole poll (the decoder before these fields
// were kept ignored them all).
const ESSENTIAL: ReadonlySet<string> = new Set(["id", "status", "commands", "index", "command", "type", "params", "key", "value"])

/** `json` with the key at `path` removed, copying only the objects along the path. */
const withoutKey = (json: unknown, path: ReadonlyArray<PropertyKey>): unknown => {
  if (path.length === 0 || typeof json !== "object" || json === null) return json
  const [head, ...rest] = path
  const copy = (Array.isArray(json) ? [...json] : { ...json }) as Record<PropertyKey, unknown>
  if (rest.length === 0) delete copy[head!]
  else copy[head!] = withoutKey(copy[head!], rest)
  return copy
}

const describeIssue = (error: ParseResult.ParseError): { readonly text: string; readonly path: ReadonlyArray<PropertyKey> } => {
  // A union (a nullable key) reports one issue per member; the first is the one about the value's own type.
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  const text = issue === undefined
    ? error.message
    : issue.path.length === 0
    ? issue.message
    : `${issue.path.join(".")}: ${issue.message}`
  return { text: text.slice(0, 300), path: issue?.path ?? [] }
}

/**
 * Decodes a machine action from the API's JSON with {@link schema}; unknown fields are
 * ignored, missing or `null` optional ones tolerated, and an informational field of an
 * unexpected type (e.g. `errorHResult: "0x80070005"`) read as `undefined`. `Left` names the
 * first essential field that was wrong (`id`, `status`, a command's `index`, `command`,
 * `type` or `params`), e.g. `id: is missing`.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = (json: unknown): Either.Either<MachineAction, string> => {
  let current = json
  // Bounded: each round drops one key, and an answer has few.
  for (let round = 0; round < 64; round++) {
    const result = decodeSchema(current)
    if (Either.isRight(result)) return Either.right(result.right)
    const { path, text } = describeIssue(result.left)
    const key = path[path.length - 1]
    if (typeof key !== "string" || ESSENTIAL.has(key) || path.includes("command")) return Either.left(text)
    current = withoutKey(current, path)
  }
  return Either.left("too many fields of an unexpected type")
}

/**
 * Whether a status is final.
 *
 * @since 0.1.0
 * @category utils
 */
export const isFinal = (status: Status): boolean =>
  status === "Succeeded" || status === "Failed" || status === "TimeOut" || status === "Cancelled"

/**
 * The `$filter` of `listMachineActions` that reads many actions in one call:
 * `id in ('a','b')`, each id quoted as OData quotes (a `'` doubled). One call per
 * action would spend the machine-actions budget (100 per minute) a hundred times
 * faster; keep a list to about 100 ids per call (a long filter makes a long URL) and
 * split a longer one into chunks, one call each.
 *
 * @example
 * ```ts
 * import { Stream } from "effect"
 * import { LiveResponse, MachineAction } from "@mde/live-response"
 *
 * const actions = LiveResponse.listMachineActions({ filter: MachineAction.filterByIds(["7f3c…", "9a1d…"]) }).pipe(
 *   Stream.runCollect
 * )
 * ```
 *
 * @since 0.1.0
 * @category filters
 */
export const filterByIds = (ids: readonly [string, ...Array<string>]): string => inList("id", ids)
