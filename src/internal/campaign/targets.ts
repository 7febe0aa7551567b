/**
 * The campaign's targets and their submit order: a machines query is resolved once and
 * recorded (`TargetsResolved`) in that order; a list of ids is looked up (100 ids a call)
 * for the same order and to find unknown ids (`NotRun` `UnknownMachine`), or kept as given
 * when the lookup fails (e.g. no `Machine.Read.All`). Machines seen most recently go first
 * (`healthStatus` `Active` before the rest, then `lastSeen` newest first), so offline ones
 * do not take the first sessions.
 *
 * @internal
 */
import { Array as Arr, Chunk, Effect, Stream } from "effect"
import type { DefenderError } from "../../DefenderError.ts"
import type * as Machine from "../../Machine.ts"
import { filterByIds } from "../../Machine.ts"
import { type Ctx, now, notRun, record } from "./context.ts"
import type { CampaignStoreError } from "./error.ts"

const CHUNK = 100

const seen = (m: Machine.Machine): number => {
  const t = m.lastSeen === undefined ? Number.NaN : Date.parse(m.lastSeen)
  return Number.isNaN(t) ? Number.NEGATIVE_INFINITY : t
}

/** @internal Active first, then the most recently seen first; otherwise the given order (a stable sort). */
export const byRecency = (machines: ReadonlyArray<Machine.Machine>): Array<Machine.Machine> =>
  machines
    .map((m, i) => ({ m, i }))
    .sort((a, b) =>
      Number(b.m.healthStatus === "Active") - Number(a.m.healthStatus === "Active") ||
      (seen(b.m) === seen(a.m) ? 0 : seen(b.m) > seen(a.m) ? 1 : -1) ||
      a.i - b.i
    )
    .map(({ m }) => m)

const lookUp = (ctx: Ctx, ids: ReadonlyArray<string>): Effect.Effect<Array<Machine.Machine>, DefenderError> =>
  Effect.map(
    Effect.forEach(Arr.chunksOf(ids, CHUNK), (chunk) =>
      Stream.runCollect(ctx.client.listMachines({ filter: filterByIds(chunk as [string, ...Array<string>]) }))),
    (chunks) => chunks.flatMap((c) => Chunk.toArray(c))
  )

/** @internal Resolves the targets (recording a query's answer) and sets `ctx.order`. */
export const resolveTargets = (ctx: Ctx): Effect.Effect<void, DefenderError | CampaignStoreError> =>
  Effect.gen(function*() {
    const targets = ctx.definition.targets
    if (targets._tag === "Query") {
      if (ctx.state.targets === undefined) {
        const found = yield* Stream.runCollect(ctx.client.listMachines({ filter: targets.filter }))
        const machineIds = byRecency(Chunk.toArray(found)).map((m) => m.id)
        yield* record(ctx, { _tag: "TargetsResolved", machineIds, at: yield* now })
      }
      ctx.order = ctx.state.targets ?? []
      return
    }
    const given = ctx.state.targets ?? []
    ctx.order = given
    const found = yield* Effect.either(lookUp(ctx, given))
    if (found._tag === "Left") {
      yield* Effect.logWarning(`campaign: machines lookup failed (${found.left._tag}); the given order is kept`)
      return
    }
    const known = new Set(found.right.map((m) => m.id))
    const wanted = new Set(given)
    const ordered = byRecency(found.right.filter((m) => wanted.has(m.id))).map((m) => m.id)
    ctx.order = [...new Set([...ordered, ...given])]
    for (const id of given) {
      if (known.has(id) || ctx.state.machines.get(id)?.phase._tag !== "Waiting") continue
      yield* notRun(ctx, id, { _tag: "UnknownMachine", message: `machine ${id} is not in the tenant's machines list` })
    }
  })
