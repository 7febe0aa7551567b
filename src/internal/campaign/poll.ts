/**
 * Polling the campaign's alive actions: one list call per 100 ids (`id in (…)`) on the
 * machine-actions budget, never one GET each. An ended action is recorded; one still
 * Pending after `pendingTimeout` (or any alive one past the deadline) gets its one cancel.
 * A failed list is logged and tried again on the next tick. Machines a crash left between
 * `ActionEnded` and `MachineFinished` are finished here too.
 *
 * @internal
 */
import type { FileSystem } from "@effect/platform"
import { Array as Arr, Chunk, Effect, Stream } from "effect"
import { filterByIds, type MachineAction } from "../../MachineAction.ts"
import { collect } from "./collect.ts"
import { type Ctx, finish, inPhase, now } from "./context.ts"
import type { CampaignStoreError } from "./error.ts"
import { cancelOnce, observe } from "./observe.ts"

const CHUNK = 100

/** @internal Polls every alive action and acts on what the answers say. */
export const poll = (ctx: Ctx): Effect.Effect<void, CampaignStoreError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const alive = inPhase(ctx, "Alive")
    for (const chunk of Arr.chunksOf(alive, CHUNK)) {
      const ids = chunk.map((m) => m.phase.machineActionId) as [string, ...Array<string>]
      const answer = yield* Effect.either(Stream.runCollect(ctx.client.listMachineActions({ filter: filterByIds(ids) })))
      if (answer._tag === "Left") {
        yield* Effect.logWarning(`campaign: polling ${ids.length} actions failed (${answer.left._tag}); next tick`)
        continue
      }
      const byId = new Map<string, MachineAction>(Chunk.toArray(answer.right).map((a) => [a.id, a]))
      const { deadline, pendingTimeout } = ctx.definition.options
      for (const m of chunk) {
        const action = byId.get(m.phase.machineActionId)
        if (action === undefined) continue // not listed yet (the API can lag behind a new action)
        const at = yield* now
        if (action.status !== "Pending" && action.status !== "InProgress") {
          yield* observe(ctx, m.machineId, action)
        } else if (at >= deadline || (action.status === "Pending" && at - m.phase.since >= pendingTimeout)) {
          yield* cancelOnce(ctx, m.machineId, action.id)
        }
      }
    }
  })

/** @internal Collects the `Collecting` machines and finishes the `Ended` ones (left so by a crash or a failed download). */
export const settle = (ctx: Ctx): Effect.Effect<void, CampaignStoreError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    for (const m of inPhase(ctx, "Ended")) yield* finish(ctx, m.machineId)
    for (const m of inPhase(ctx, "Collecting")) yield* collect(ctx, m.machineId)
  })
