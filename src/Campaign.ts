/**
 * Campaigns: one live response across a fleet, inside every limit at once, durable and
 * resumable, with an evidence manifest. `start` defines a campaign in the `CampaignStore`
 * and runs it; `resume` continues the store's campaign after a crash or a Ctrl-C; both are
 * a `Stream` of `Update`s that ends with `Completed` (or when a drain or interruption stops it).
 *
 * Each tick (every `interval` on the `Clock`) the engine: adopts the actions of submits whose
 * outcome is unknown (found by the campaign id in their Comment, else recorded `Lost`); polls
 * every alive action with one list call per 100 ids on the machine-actions budget; cancels an
 * action still Pending after `pendingTimeout` (its machine is tried again later); saves the
 * results of succeeded actions (transcripts as JSON, GetFile results with `downloadToFile`),
 * each once; submits while fewer than `maxSessions` actions are alive (Pending and unknown
 * ones count), in target order (most recently seen machines first), before the deadline;
 * after the deadline it records the machines that never ran and cancels the alive ones.
 * Every step is journaled before it is acted on (see `CampaignStore`).
 *
 * @example
 * ```ts
 * import { NodeFileSystem } from "@effect/platform-node"
 * import { Effect, Layer, Stream } from "effect"
 * import { Campaign, CampaignStore, LiveResponse } from "@mde/live-response"
 *
 * const updates = Campaign.start({
 *   commands: [{ type: "RunScript", scriptName: "triage.ps1" }],
 *   comment: "triage",
 *   targets: { _tag: "Query", filter: "healthStatus eq 'Active'" }
 * })
 * const program = Stream.runForEach(updates, (u) => Effect.log(u._tag))
 * program.pipe(
 *   Effect.provide(Layer.mergeAll(LiveResponse.layerConfig(), CampaignStore.layerFolder("./out"))),
 *   Effect.provide(NodeFileSystem.layer)
 * )
 * ```
 *
 * @module
 * @since 0.1.0
 */
import type { FileSystem } from "@effect/platform"
import type { Duration, Effect, Stream } from "effect"
import type * as CampaignStore from "./CampaignStore.ts"
import type { DefenderClient } from "./DefenderClient.ts"
import type { DefenderError } from "./DefenderError.ts"
import * as engine from "./internal/campaign/engine.ts"
import type * as MachineAction from "./MachineAction.ts"

/**
 * What a campaign runs, where and within which limits.
 *
 * @since 0.1.0
 * @category models
 */
export interface Definition {
  /** The live response commands every machine runs (PutFile, RunScript, GetFile order). */
  readonly commands: ReadonlyArray<MachineAction.Command>
  /** The comment; every action's Comment is it with the campaign id appended. */
  readonly comment: string
  /** A list of machine ids, or a machines `$filter` resolved once. */
  readonly targets: CampaignStore.Targets
  /** The most actions of the campaign alive at once (Pending ones count); default 50 (the current docs). */
  readonly maxSessions?: number | undefined
  /** When no new session may start any more; default 24 hours from the start. */
  readonly deadline?: Duration.DurationInput | undefined
  /** How long an action may stay Pending before it is cancelled and its machine tried later; default 30 minutes. */
  readonly pendingTimeout?: Duration.DurationInput | undefined
  /** The time between two ticks (polls); default 10 seconds. */
  readonly interval?: Duration.DurationInput | undefined
}

/**
 * What a running campaign reports. `Progress` follows every tick: `alive` counts the actions
 * alive or of unknown outcome, `nextRunAt` is the earliest time a waiting machine may be
 * submitted (the clock's now when one may be at once; `undefined` when none waits).
 *
 * @since 0.1.0
 * @category models
 */
export type Update =
  | { readonly _tag: "Started"; readonly campaignId: string; readonly targets: number; readonly resumed: boolean }
  | {
    readonly _tag: "Progress"
    readonly state: CampaignStore.CampaignState
    readonly alive: number
    readonly maxSessions: number
    readonly nextRunAt: number | undefined
    readonly at: number
  }
  | { readonly _tag: "MachineFinished"; readonly entry: CampaignStore.ManifestEntry }
  | { readonly _tag: "Completed"; readonly summary: Summary }

/**
 * How many machines ended which way; `total` is every target (unfinished ones included).
 *
 * @since 0.1.0
 * @category models
 */
export interface Summary {
  /** The campaign. */
  readonly campaignId: string
  /** Machines whose action succeeded. */
  readonly succeeded: number
  /** Machines whose action failed. */
  readonly failed: number
  /** Machines whose action timed out. */
  readonly timedOut: number
  /** Machines whose action was cancelled after it started. */
  readonly cancelled: number
  /** Machines that never ran (deadline, unknown machine, permission…). */
  readonly notRun: number
  /** Every target. */
  readonly total: number
}

/**
 * How a run may be stopped gently.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunOptions {
  /**
   * When it completes, no new session starts; the alive ones are still collected, then
   * `Interrupted` is recorded and the stream ends (the first Ctrl-C). Interrupting the
   * stream's fiber instead cancels every alive action once before it lets go (the second).
   */
  readonly drain?: Effect.Effect<void> | undefined
}

/**
 * Defines a new campaign in the store (`AlreadyExists` if it holds one) and runs it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const start: (
  definition: Definition,
  options?: RunOptions
) => Stream.Stream<
  Update,
  DefenderError | CampaignStore.CampaignStoreError,
  DefenderClient | CampaignStore.CampaignStore | FileSystem.FileSystem
> = engine.start

/**
 * Continues the store's campaign (`NotFound` if it holds none) with the same rules, the
 * submits of unknown outcome adopted first.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resume: (
  options?: RunOptions
) => Stream.Stream<
  Update,
  DefenderError | CampaignStore.CampaignStoreError,
  DefenderClient | CampaignStore.CampaignStore | FileSystem.FileSystem
> = engine.resume

/**
 * The store's campaign counted from its journal (for `campaign status`).
 *
 * @since 0.1.0
 * @category utils
 */
export const summary: Effect.Effect<Summary, CampaignStore.CampaignStoreError, CampaignStore.CampaignStore> =
  engine.summary
