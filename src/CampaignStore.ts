/**
 * The `CampaignStore` service: a campaign's durable journal, its results and its
 * evidence manifest — what the campaign engine stands on to run one live response
 * across a fleet, survive `kill -9` and resume without running a machine twice.
 *
 * Design. A campaign is a definition (commands, comment, targets, limits) and a
 * journal of events (`Defined`, `TargetsResolved`, `Submitting`, `Submitted`, `Adopted`,
 * `SubmitRefused`, `PendingTimedOut`, `ActionEnded`, `ResultSaved`, `MachineFinished`,
 * `NotRun`, `Interrupted`, `Completed`). Its state is nothing but `replay(events)`, a pure
 * fold that rejects an event breaking a rule (a second action on a machine while one is
 * alive, a result before `ActionEnded` Succeeded, a machine finished twice); `append`
 * checks the same rules before it writes, so the journal never holds a broken story.
 * Durability rule: `append` returns only once the event is on disk (written and
 * synced), so the engine appends `Submitting` *before* it sends the run call and
 * `ResultSaved` only after the result's file is complete. Adopt-on-resume rule: a machine
 * whose phase is `Submitting` has an unknown outcome; before any new submit the engine
 * must look for the action (by machine id, creation time and `campaignIdIn(comment)`)
 * and append `Adopted` if found, or `SubmitRefused` `Lost` if not — never submit again
 * blind. The manifest (`manifest.jsonl`) is derived from `MachineFinished` and `NotRun`
 * events and rewritten from the journal on open when a crash left it short.
 *
 * @example
 * ```ts
 * import { NodeFileSystem } from "@effect/platform-node"
 * import { Effect } from "effect"
 * import { CampaignStore } from "@mde/live-response"
 *
 * const program = Effect.gen(function*() {
 *   const store = yield* CampaignStore.CampaignStore
 *   const definition = yield* CampaignStore.makeDefinition({
 *     commands: [{ type: "RunScript", scriptName: "triage.ps1" }],
 *     comment: "triage",
 *     targets: { _tag: "Machines", machineIds: ["m1", "m2"] }
 *   })
 *   yield* store.create(definition)
 *   yield* store.append({ _tag: "Submitting", machineId: "m1", attempt: 1, at: Date.now() })
 * })
 * program.pipe(Effect.provide(CampaignStore.layerFolder("./out")), Effect.provide(NodeFileSystem.layer), Effect.runPromise)
 * ```
 *
 * @module
 * @since 0.1.0
 */
import type { FileSystem } from "@effect/platform"
import { Context, type Duration, type Effect, type Either, Layer, type Option, type Scope, type Stream } from "effect"
import * as definitionOps from "./internal/campaign/definition.ts"
import type { CampaignStoreError } from "./internal/campaign/error.ts"
import { makeFolderStore } from "./internal/campaign/folderStore.ts"
import * as replayOps from "./internal/campaign/replay.ts"
import type * as MachineAction from "./MachineAction.ts"

export { CampaignStoreError, type CampaignStoreErrorReason, ErrorBases } from "./internal/campaign/error.ts"

// ---------------------------------------------------------------------------
// Definition
// ---------------------------------------------------------------------------

/**
 * Which machines a campaign runs on: a list of machine ids, or a Defender machines
 * query (an OData `$filter`) whose answer the engine records with `TargetsResolved`.
 *
 * @since 0.1.0
 * @category models
 */
export type Targets =
  | { readonly _tag: "Machines"; readonly machineIds: ReadonlyArray<string> }
  | { readonly _tag: "Query"; readonly filter: string }

/**
 * A campaign's limits. Times are milliseconds, so that a resumed campaign keeps the same ones.
 *
 * @since 0.1.0
 * @category models
 */
export interface CampaignOptions {
  /** The most actions of the campaign alive at once (Pending ones count). */
  readonly maxSessions: number
  /** When no new session may start any more, in epoch milliseconds (absolute: a resume keeps it). */
  readonly deadline: number
  /** How long an action may stay Pending before it is cancelled and its machine tried again later. */
  readonly pendingTimeout: number
  /** How long between two polls of the alive actions. */
  readonly interval: number
}

/**
 * A campaign: what runs, on which machines, within which limits. Written once, by `create`.
 *
 * @since 0.1.0
 * @category models
 */
export interface CampaignDefinition {
  /** `cmp-` and 16 random hex digits; every action the campaign submits carries it in its Comment. */
  readonly campaignId: string
  /** When the campaign was defined, in epoch milliseconds. */
  readonly createdAt: number
  /** The live response commands every machine runs. */
  readonly commands: ReadonlyArray<MachineAction.Command>
  /** The comment the user gave; the actions' Comment is `commentFor(definition)`. */
  readonly comment: string
  /** The machines. */
  readonly targets: Targets
  /** The limits. */
  readonly options: CampaignOptions
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

/**
 * Why a submit did not leave a live action, so the machine waits until `retryAt`:
 * `Busy` (another session on the machine: `ActiveRequestAlreadyExists`), `CapReached`
 * (the tenant's session cap: a 429), `Throttled` (the run budget), `Lost` (the outcome
 * was unknown after a crash and the lookup found no action: it never reached the service).
 *
 * @since 0.1.0
 * @category models
 */
export type RefusalReason = "Busy" | "CapReached" | "Throttled" | "Lost"

/**
 * How a machine action ended (`MachineAction.isFinal` statuses).
 *
 * @since 0.1.0
 * @category models
 */
export type EndStatus = "Succeeded" | "Failed" | "TimeOut" | "Cancelled"

/**
 * One command of an ended action, as the API reported it.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommandOutcome {
  /** The command's index in the action. */
  readonly index: number
  /** `RunScript`, `GetFile` or `PutFile`. */
  readonly type: string
  /** The API's `commandStatus`. */
  readonly status: string
  /** The API's error messages. */
  readonly errors: ReadonlyArray<string>
}

/**
 * One saved result: `file` is relative to the store (e.g. `results/<machineId>/1-GetFile.gz`).
 *
 * @since 0.1.0
 * @category models
 */
export interface SavedResult {
  /** The command's index. */
  readonly index: number
  /** The command's type. */
  readonly type: string
  /** The file, relative to the store's folder, with `/` separators. */
  readonly file: string
  /** Its length. */
  readonly bytes: number
  /** Its SHA-256, lowercase hex. */
  readonly sha256: string
  /** Whether the storage's Content-MD5 was checked against the bytes (GetFile results). */
  readonly md5Verified: boolean
}

/**
 * Why a machine never ran: an error's `_tag` and message (deadline passed while offline,
 * unknown machine, permission…).
 *
 * @since 0.1.0
 * @category models
 */
export interface NotRunError {
  /** The error's `_tag`, e.g. `NotFound`, `PermissionDenied`, `DeadlinePassed`. */
  readonly _tag: string
  /** What a person reads. */
  readonly message: string
}

/**
 * One command of a manifest line; `file`, `bytes`, `sha256` and `md5Verified` only when a result was saved.
 *
 * @since 0.1.0
 * @category models
 */
export interface ManifestCommand {
  /** The command's index. */
  readonly index: number
  /** The command's type. */
  readonly type: string
  /** The API's `commandStatus`. */
  readonly status: string
  /** The API's error messages, when there were any. */
  readonly errors?: ReadonlyArray<string> | undefined
  /** The result's file, relative to the store's folder. */
  readonly file?: string | undefined
  /** The result's length. */
  readonly bytes?: number | undefined
  /** The result's SHA-256, lowercase hex. */
  readonly sha256?: string | undefined
  /** Whether the storage's Content-MD5 was checked. */
  readonly md5Verified?: boolean | undefined
}

/**
 * One line of `manifest.jsonl`: a finished machine, or one that never ran (`status: "NotRun"` and `error`).
 *
 * @since 0.1.0
 * @category models
 */
export interface ManifestEntry {
  /** The machine. */
  readonly machineId: string
  /** The action that ran (absent when the machine never ran). */
  readonly machineActionId?: string | undefined
  /** How it ended. */
  readonly status: EndStatus | "NotRun"
  /** Each command, with its result's file and hash when one was saved. */
  readonly commands: ReadonlyArray<ManifestCommand>
  /** Why the machine never ran. */
  readonly error?: NotRunError | undefined
}

/**
 * One journal event; `at` is epoch milliseconds. The rules `replay` and `append` enforce
 * are in the module's description.
 *
 * @since 0.1.0
 * @category models
 */
export type CampaignEvent =
  /** The journal's first event: the campaign exists. */
  | { readonly _tag: "Defined"; readonly campaignId: string; readonly at: number }
  /** The machines the campaign runs on (once; duplicates dropped). */
  | { readonly _tag: "TargetsResolved"; readonly machineIds: ReadonlyArray<string>; readonly at: number }
  /** About to send run live response: appended (and on disk) before the call is sent. */
  | { readonly _tag: "Submitting"; readonly machineId: string; readonly attempt: number; readonly at: number }
  /** The run call answered with this action. */
  | { readonly _tag: "Submitted"; readonly machineId: string; readonly machineActionId: string; readonly at: number }
  /** After a crash, the action of an unknown submit was found (by the campaign id in its Comment). */
  | { readonly _tag: "Adopted"; readonly machineId: string; readonly machineActionId: string; readonly at: number }
  /** The submit left no action; the machine is tried again at `retryAt`. */
  | {
    readonly _tag: "SubmitRefused"
    readonly machineId: string
    readonly reason: RefusalReason
    readonly retryAt: number
    readonly at: number
  }
  /** The action stayed Pending too long and was cancelled before it started; tried again at `retryAt`. */
  | {
    readonly _tag: "PendingTimedOut"
    readonly machineId: string
    readonly machineActionId: string
    readonly retryAt: number
    readonly at: number
  }
  /** The action reached a final status. */
  | {
    readonly _tag: "ActionEnded"
    readonly machineId: string
    readonly machineActionId: string
    readonly status: EndStatus
    readonly commands: ReadonlyArray<CommandOutcome>
    readonly at: number
  }
  /** A result's file is complete and hashed (only after `ActionEnded` Succeeded; once per index). */
  | ({ readonly _tag: "ResultSaved"; readonly machineId: string; readonly machineActionId: string; readonly at: number } & SavedResult)
  /** The machine's manifest line (once). */
  | { readonly _tag: "MachineFinished"; readonly entry: ManifestEntry; readonly at: number }
  /** The machine never ran, and why (a manifest line too). */
  | { readonly _tag: "NotRun"; readonly machineId: string; readonly error: NotRunError; readonly at: number }
  /** The run was stopped (Ctrl-C); a resume continues it. */
  | { readonly _tag: "Interrupted"; readonly at: number }
  /** Every machine is finished or never ran; nothing may follow. */
  | { readonly _tag: "Completed"; readonly at: number }

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

/**
 * Where a machine is. `Submitting` means the outcome of a submit is unknown: look the
 * action up before any new submit (the adopt rule). `Ended` is an action that did not
 * succeed (only its manifest line is left to write); `Collecting` one that succeeded,
 * whose results are being saved.
 *
 * @since 0.1.0
 * @category models
 */
export type MachinePhase =
  | { readonly _tag: "Waiting"; readonly retryAt: number | undefined; readonly lastRefusal: RefusalReason | undefined }
  | { readonly _tag: "Submitting"; readonly attempt: number; readonly since: number }
  | { readonly _tag: "Alive"; readonly machineActionId: string; readonly since: number }
  | {
    readonly _tag: "Ended"
    readonly machineActionId: string
    readonly status: Exclude<EndStatus, "Succeeded">
    readonly commands: ReadonlyArray<CommandOutcome>
  }
  | { readonly _tag: "Collecting"; readonly machineActionId: string; readonly commands: ReadonlyArray<CommandOutcome> }
  | { readonly _tag: "Finished"; readonly entry: ManifestEntry }
  | { readonly _tag: "NotRun"; readonly error: NotRunError }

/**
 * One machine of the campaign.
 *
 * @since 0.1.0
 * @category models
 */
export interface MachineState {
  /** The machine. */
  readonly machineId: string
  /** Where it is. */
  readonly phase: MachinePhase
  /** How many submits were started (`Submitting` events). */
  readonly attempts: number
  /** The results of its action already saved: never download these again. */
  readonly results: ReadonlyArray<SavedResult>
}

/**
 * A campaign's state: the replayed journal.
 *
 * @since 0.1.0
 * @category models
 */
export interface CampaignState {
  /** From `Defined`; `undefined` before it. */
  readonly campaignId: string | undefined
  /** The machines in target order; `undefined` before `TargetsResolved`. */
  readonly targets: ReadonlyArray<string> | undefined
  /** Each machine's state. */
  readonly machines: ReadonlyMap<string, MachineState>
  /** How many machines are in each phase. */
  readonly counts: Readonly<Record<MachinePhase["_tag"], number>>
  /** How many times the run was interrupted. */
  readonly interruptions: number
  /** Whether `Completed` was recorded. */
  readonly completed: boolean
  /** How many events were replayed. */
  readonly events: number
}

/**
 * A campaign as loaded: its definition and its replayed state.
 *
 * @since 0.1.0
 * @category models
 */
export interface Campaign {
  /** What runs where. */
  readonly definition: CampaignDefinition
  /** Where every machine is. */
  readonly state: CampaignState
}

// ---------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------

/**
 * A campaign's durable store: one campaign, one writer. Every method is transactional:
 * it happened completely when it returns, or not at all.
 *
 * @since 0.1.0
 * @category models
 */
export interface CampaignStore {
  /** Stores a new campaign: its definition, then `Defined` (and `TargetsResolved` for a list of ids). */
  readonly create: (definition: CampaignDefinition) => Effect.Effect<Campaign, CampaignStoreError>
  /** Loads the campaign: `NotFound` when the store holds none. */
  readonly open: Effect.Effect<Campaign, CampaignStoreError>
  /** Checks `event` against the state and makes it durable; answers the new state. */
  readonly append: (event: CampaignEvent) => Effect.Effect<CampaignState, CampaignStoreError>
  /**
   * Saves a result from its bytes (e.g. a decoded transcript), appearing only when complete:
   * an interrupted or failed stream leaves nothing. `name` is `<type>.<ext>`, e.g. `RunScript.json`.
   * Record it with `ResultSaved` afterwards.
   */
  readonly saveResult: <E, R>(
    machineId: string,
    index: number,
    name: string,
    bytes: Stream.Stream<Uint8Array, E, R>
  ) => Effect.Effect<Omit<SavedResult, "md5Verified" | "type">, CampaignStoreError | E, R>
  /**
   * Where a result is to be saved by someone else (`downloadToFile`, which writes a
   * temporary file and renames it when complete): the path under the store's folder, its directory created.
   */
  readonly resultPath: (machineId: string, index: number, name: string) => Effect.Effect<string, CampaignStoreError>
  /** Measures and hashes a result saved at `resultPath`, for its `ResultSaved`. */
  readonly recordResult: (
    machineId: string,
    index: number,
    name: string
  ) => Effect.Effect<Omit<SavedResult, "md5Verified" | "type">, CampaignStoreError>
  /** The manifest's lines, in the order machines finished. */
  readonly manifest: Effect.Effect<ReadonlyArray<ManifestEntry>, CampaignStoreError>
}

/**
 * The `CampaignStore` service tag.
 *
 * @since 0.1.0
 * @category tags
 */
export const CampaignStore: Context.Tag<CampaignStore, CampaignStore> = Context.GenericTag<CampaignStore>(
  "mde-live-response/CampaignStore"
)

/**
 * The folder store on `dir` (created if missing): `campaign.json`, `journal.jsonl`,
 * `manifest.jsonl`, `results/`, and a `lock` file held while the scope is open (a live
 * holder is `Locked`; a dead one's lock is taken over).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeFolder = (
  dir: string
): Effect.Effect<CampaignStore, CampaignStoreError, FileSystem.FileSystem | Scope.Scope> =>
  makeFolderStore(dir)

/**
 * The folder store as a layer; the lock is released when the layer's scope closes.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFolder = (dir: string): Layer.Layer<CampaignStore, CampaignStoreError, FileSystem.FileSystem> =>
  Layer.scoped(CampaignStore, makeFolderStore(dir))

// ---------------------------------------------------------------------------
// Pure functions
// ---------------------------------------------------------------------------

/**
 * What `makeDefinition` takes; the limits default to 50 sessions, a 24 hour deadline,
 * a 30 minute pending timeout and a 10 second interval.
 *
 * @since 0.1.0
 * @category models
 */
export interface DefinitionInput {
  /** The live response commands. */
  readonly commands: ReadonlyArray<MachineAction.Command>
  /** The user's comment. */
  readonly comment: string
  /** The machines. */
  readonly targets: Targets
  /** The most actions alive at once; default 50 (the current docs' session cap). */
  readonly maxSessions?: number | undefined
  /** From now until no new session may start; default 24 hours. */
  readonly deadline?: Duration.DurationInput | undefined
  /** Default 30 minutes. */
  readonly pendingTimeout?: Duration.DurationInput | undefined
  /** Default 10 seconds. */
  readonly interval?: Duration.DurationInput | undefined
}

/**
 * A new definition: a fresh campaign id, the clock's time, the commands checked as
 * run live response checks them (`InvalidDefinition` otherwise).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeDefinition: (input: DefinitionInput) => Effect.Effect<CampaignDefinition, CampaignStoreError> =
  definitionOps.makeDefinition

/**
 * The Comment every action of the campaign carries: `<comment> [mde-campaign:<id>]`.
 *
 * @since 0.1.0
 * @category utils
 */
export const commentFor: (definition: CampaignDefinition) => string = definitionOps.commentFor

/**
 * The campaign id in an action's Comment, if it has one (to adopt an action submitted just before a crash).
 *
 * @since 0.1.0
 * @category utils
 */
export const campaignIdIn: (comment: string | undefined) => Option.Option<string> = definitionOps.campaignIdIn

/**
 * The state of an empty journal.
 *
 * @since 0.1.0
 * @category constructors
 */
export const empty: CampaignState = replayOps.empty

/**
 * One event applied to a state: the new state, or `InvalidEvent` when it breaks a rule.
 *
 * @since 0.1.0
 * @category utils
 */
export const apply: (state: CampaignState, event: CampaignEvent) => Either.Either<CampaignState, CampaignStoreError> =
  replayOps.apply

/**
 * The state a journal tells: every event applied in order (`InvalidEvent` with the event's line number on the first that breaks a rule).
 *
 * @since 0.1.0
 * @category utils
 */
export const replay: (events: Iterable<CampaignEvent>) => Either.Either<CampaignState, CampaignStoreError> =
  replayOps.replay

/**
 * The manifest line of a machine whose action ended (`Ended` or `Collecting`), for its `MachineFinished`.
 *
 * @since 0.1.0
 * @category utils
 */
export const entryFor: (machine: MachineState) => Option.Option<ManifestEntry> = replayOps.entryFor

/**
 * The manifest a journal derives: one line per `MachineFinished` or `NotRun`, in order.
 *
 * @since 0.1.0
 * @category utils
 */
export const manifestOf: (events: Iterable<CampaignEvent>) => Array<ManifestEntry> = replayOps.manifestOf
