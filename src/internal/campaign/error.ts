/**
 * `CampaignStoreError`, the one typed error of a campaign store. It lives here rather than
 * in `CampaignStore.ts` so that the store's parts can build it without importing the face
 * (which imports them); `CampaignStore.ts` re-exports it.
 *
 * @module
 */
import { Schema } from "effect"

/** The schema class an error extends: its `_tag` and `Fields`. */
type Base<Self, Tag extends string, Fields extends Schema.Struct.Fields> = Schema.TaggedErrorClass<
  Self,
  Tag,
  { readonly _tag: Schema.tag<Tag> } & Fields
>

/**
 * Why a campaign store failed.
 *
 * - `NotFound`: no campaign in the store (open before create).
 * - `AlreadyExists`: create on a store that already holds a campaign.
 * - `Locked`: another live process holds the store (its pid is in `detail`).
 * - `Corrupt`: the journal, definition or manifest cannot be read back (a bad line that is not the last).
 * - `FileSystem`: a file could not be read or written.
 * - `InvalidEvent`: the event breaks a journal rule (a second action on a machine, a result before success…) and was not written.
 * - `InvalidDefinition`: the campaign definition is unusable (no commands, bad order, no targets…).
 * - `Database`: the PostgreSQL store or its work queue could not be reached or refused a statement.
 *
 * @since 0.1.0
 * @category models
 */
export type CampaignStoreErrorReason =
  | "NotFound"
  | "AlreadyExists"
  | "Locked"
  | "Corrupt"
  | "FileSystem"
  | "InvalidEvent"
  | "InvalidDefinition"
  | "Database"

/**
 * The schema class the campaign store's error extends (a namespace, so that `deno doc` sees it as public).
 *
 * @ignore
 */
export namespace ErrorBases {
  /** The schema class `CampaignStoreError` extends. */
  export const CampaignStoreErrorBase: Base<CampaignStoreError, "CampaignStoreError", {
    readonly reason: Schema.Literal<
      ["NotFound", "AlreadyExists", "Locked", "Corrupt", "FileSystem", "InvalidEvent", "InvalidDefinition", "Database"]
    >
    readonly path: Schema.optional<typeof Schema.String>
    readonly line: Schema.optional<typeof Schema.Number>
    readonly detail: typeof Schema.String
  }> = Schema.TaggedError<CampaignStoreError>()("CampaignStoreError", {
    reason: Schema.Literal(
      "NotFound",
      "AlreadyExists",
      "Locked",
      "Corrupt",
      "FileSystem",
      "InvalidEvent",
      "InvalidDefinition",
      "Database"
    ),
    path: Schema.optional(Schema.String),
    line: Schema.optional(Schema.Number),
    detail: Schema.String
  })
}

/**
 * A campaign store could not do what was asked: `reason` says why, `path` and `line`
 * where (a file of the folder store, a line of its journal), `detail` what was found.
 *
 * @since 0.1.0
 * @category errors
 */
export class CampaignStoreError extends ErrorBases.CampaignStoreErrorBase {
  /**
   * What went wrong and what to do about it, for people.
   *
   * @since 0.1.0
   */
  override get message(): string {
    const where = this.path === undefined ? "" : ` (${this.path}${this.line === undefined ? "" : `, line ${this.line}`})`
    switch (this.reason) {
      case "NotFound":
        return `No campaign in the store${where}: start one before resuming it`
      case "AlreadyExists":
        return `The store already holds a campaign${where}: resume it, or use another folder`
      case "Locked":
        return `Another process is using the campaign store${where}: ${this.detail}`
      case "Corrupt":
        return `The campaign store cannot be read back${where}: ${this.detail}`
      case "FileSystem":
        return `The campaign store could not read or write a file${where}: ${this.detail}`
      case "InvalidEvent":
        return `The event breaks a campaign journal rule and was not recorded${where}: ${this.detail}`
      case "InvalidDefinition":
        return `The campaign definition is not usable: ${this.detail}`
      case "Database":
        return `The campaign database could not be used: ${this.detail}`
    }
  }
}

/** @internal A `CampaignStoreError` from its parts, without keys for absent values. */
export const storeError = (
  reason: CampaignStoreErrorReason,
  detail: string,
  where?: { readonly path?: string | undefined; readonly line?: number | undefined }
): CampaignStoreError =>
  new CampaignStoreError({
    reason,
    detail,
    ...(where?.path === undefined ? {} : { path: where.path }),
    ...(where?.line === undefined ? {} : { line: where.line })
  })
