/**
 * The campaign's files as schemas: the definition (`campaign.json`), one journal event
 * per line (`journal.jsonl`) and one manifest entry per line (`manifest.jsonl`). Every
 * number is a finite integer, so what is written always reads back.
 *
 * @internal
 */
import { Schema } from "effect"
import type {
  CampaignDefinition,
  CampaignEvent,
  CommandOutcome,
  ManifestEntry,
  NotRunError
} from "../../CampaignStore.ts"
import type { Command as MachineCommand } from "../../MachineAction.ts"

const Int = Schema.NonNegativeInt
const Str = Schema.String

const Command: Schema.Schema<MachineCommand> = Schema.Union(
  Schema.Struct({ type: Schema.Literal("PutFile"), fileName: Str }),
  Schema.Struct({ type: Schema.Literal("RunScript"), scriptName: Str, args: Schema.optional(Str) }),
  Schema.Struct({ type: Schema.Literal("GetFile"), path: Str })
)

/** @internal `campaign.json`. */
export const Definition: Schema.Schema<CampaignDefinition> = Schema.Struct({
  campaignId: Str,
  createdAt: Int,
  commands: Schema.Array(Command),
  comment: Str,
  targets: Schema.Union(
    Schema.TaggedStruct("Machines", { machineIds: Schema.Array(Str) }),
    Schema.TaggedStruct("Query", { filter: Str })
  ),
  options: Schema.Struct({ maxSessions: Int, deadline: Int, pendingTimeout: Int, interval: Int })
})

const EndStatus = Schema.Literal("Succeeded", "Failed", "TimeOut", "Cancelled")

const Outcome: Schema.Schema<CommandOutcome> = Schema.Struct({
  index: Int,
  type: Str,
  status: Str,
  errors: Schema.Array(Str)
})

const NotRunErrorSchema: Schema.Schema<NotRunError> = Schema.Struct({ _tag: Str, message: Str })

/** @internal One line of `manifest.jsonl`. */
export const Entry: Schema.Schema<ManifestEntry> = Schema.Struct({
  machineId: Str,
  machineActionId: Schema.optional(Str),
  status: Schema.Literal("Succeeded", "Failed", "TimeOut", "Cancelled", "NotRun"),
  commands: Schema.Array(Schema.Struct({
    index: Int,
    type: Str,
    status: Str,
    errors: Schema.optional(Schema.Array(Str)),
    file: Schema.optional(Str),
    bytes: Schema.optional(Int),
    sha256: Schema.optional(Str),
    md5Verified: Schema.optional(Schema.Boolean)
  })),
  error: Schema.optional(NotRunErrorSchema)
})

const machine = { machineId: Str, at: Int }
const action = { ...machine, machineActionId: Str }

/** @internal One line of `journal.jsonl`. */
export const Event: Schema.Schema<CampaignEvent> = Schema.Union(
  Schema.TaggedStruct("Defined", { campaignId: Str, at: Int }),
  Schema.TaggedStruct("TargetsResolved", { machineIds: Schema.Array(Str), at: Int }),
  Schema.TaggedStruct("Submitting", { ...machine, attempt: Int }),
  Schema.TaggedStruct("Submitted", action),
  Schema.TaggedStruct("Adopted", action),
  Schema.TaggedStruct("SubmitRefused", {
    ...machine,
    reason: Schema.Literal("Busy", "CapReached", "Throttled", "Lost"),
    retryAt: Int
  }),
  Schema.TaggedStruct("PendingTimedOut", { ...action, retryAt: Int }),
  Schema.TaggedStruct("ActionEnded", { ...action, status: EndStatus, commands: Schema.Array(Outcome) }),
  Schema.TaggedStruct("ResultSaved", {
    ...action,
    index: Int,
    type: Str,
    file: Str,
    bytes: Int,
    sha256: Str,
    md5Verified: Schema.Boolean
  }),
  Schema.TaggedStruct("MachineFinished", { entry: Entry, at: Int }),
  Schema.TaggedStruct("NotRun", { ...machine, error: NotRunErrorSchema }),
  Schema.TaggedStruct("Interrupted", { at: Int }),
  Schema.TaggedStruct("Completed", { at: Int })
)

/** @internal A JSON line of `schema` (decoding with `Schema.parseJson`). */
export const jsonLine = <A>(schema: Schema.Schema<A>): Schema.Schema<A, string> => Schema.parseJson(schema)
