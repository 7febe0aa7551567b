/**
 * Machine actions and live response commands: what run live response sends
 * and what get machine action answers, as schemas and types.
 *
 * @module
 * @since 0.1.0
 */
import { Either, Schema } from "effect"

/**
 * A live response command, as the library takes it. Commands run in the order
 * PutFile, RunScript, GetFile (the API's rule), and if one fails the rest do not run.
 *
 * @since 0.1.0
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
 */
export type Status = "Pending" | "InProgress" | "Succeeded" | "Failed" | "TimeOut" | "Cancelled"

const StatusSchema: Schema.Schema<Status, string> = Schema.transform(
  Schema.String,
  Schema.Literal("Pending", "InProgress", "Succeeded", "Failed", "TimeOut", "Cancelled"),
  {
    strict: false,
    decode: (s) => (s === "Canceled" ? "Cancelled" : s),
    encode: (s) => s
  }
)

/**
 * One command of a machine action, as the API reports it.
 *
 * @since 0.1.0
 */
export interface CommandState {
  readonly index: number
  readonly commandStatus: string
  readonly errors: ReadonlyArray<string>
  readonly command: { readonly type: string; readonly params: ReadonlyArray<{ readonly key: string; readonly value: string }> }
}

/**
 * A machine action (the answer of run live response and of get machine action).
 *
 * @since 0.1.0
 */
export interface MachineAction {
  readonly id: string
  readonly status: Status
  readonly machineId: string | undefined
  readonly type: string | undefined
  readonly commands: ReadonlyArray<CommandState>
}

const nullableString = Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null })

const MachineActionJson = Schema.Struct({
  id: Schema.String,
  status: StatusSchema,
  machineId: nullableString,
  type: nullableString,
  commands: Schema.optionalWith(
    Schema.Array(Schema.Struct({
      index: Schema.Number,
      commandStatus: nullableString,
      errors: Schema.optionalWith(Schema.NullOr(Schema.Array(Schema.Unknown)), { default: () => null }),
      command: Schema.Struct({
        type: Schema.String,
        params: Schema.optionalWith(
          Schema.NullOr(Schema.Array(Schema.Struct({ key: Schema.String, value: Schema.String }))),
          { default: () => null }
        )
      })
    })),
    { default: () => [] }
  )
})

const decodeJson = Schema.decodeUnknownEither(MachineActionJson, { errors: "first" })

/**
 * Decodes a machine action from the API's JSON; unknown fields are ignored and
 * missing optional ones tolerated. `Left` says what was wrong.
 *
 * @since 0.1.0
 */
export const decode = (json: unknown): Either.Either<MachineAction, string> =>
  Either.match(decodeJson(json), {
    onLeft: (error) => Either.left(error.message.slice(0, 300)),
    onRight: (a) =>
      Either.right({
        id: a.id,
        status: a.status,
        machineId: a.machineId ?? undefined,
        type: a.type ?? undefined,
        commands: a.commands.map((c) => ({
          index: c.index,
          commandStatus: c.commandStatus ?? "Unknown",
          errors: (c.errors ?? []).map((e) => (typeof e === "string" ? e : JSON.stringify(e))),
          command: { type: c.command.type, params: c.command.params ?? [] }
        }))
      })
  })

/**
 * Whether a status is final.
 *
 * @since 0.1.0
 */
export const isFinal = (status: Status): boolean =>
  status === "Succeeded" || status === "Failed" || status === "TimeOut" || status === "Cancelled"
