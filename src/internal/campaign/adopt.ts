/**
 * The adopt rule: a machine in `Submitting` has a submit of unknown outcome (a crash between
 * the journal and the answer, or a transport error after the POST). Its action is looked for
 * by machine id and creation time (from a few minutes before the submit, for clock skew) and
 * recognised by the campaign id in its Comment: found, it is `Adopted`; not found a minute
 * after the submit (the list can lag behind a new action), it is `SubmitRefused` `Lost` and
 * the machine may be submitted again. An action of the campaign cancelled before it started
 * (an earlier attempt's pending timeout) is not adopted.
 *
 * @internal
 */
import { Chunk, Effect, Option, Stream } from "effect"
import type { MachineAction } from "../../MachineAction.ts"
import { quote } from "../client/odata.ts"
import { campaignIdIn } from "./definition.ts"
import { type Ctx, inPhase, now, record } from "./context.ts"
import type { CampaignStoreError } from "./error.ts"

/** How far before the submit an action's creation time may read (clock skew). */
const SKEW = 5 * 60_000
/** How long after the submit an action may still be missing from the list. */
export const ADOPT_GRACE = 60_000

const cancelledUnstarted = (a: MachineAction): boolean =>
  a.status === "Cancelled" && a.commands.every((c) => c.commandStatus === "Created" || c.commandStatus === "Unknown")

const created = (a: MachineAction): number => {
  const t = a.creationDateTimeUtc === undefined ? Number.NaN : Date.parse(a.creationDateTimeUtc)
  return Number.isNaN(t) ? 0 : t
}

/** @internal Resolves every submit of unknown outcome: `Adopted`, `SubmitRefused` `Lost`, or left for the next tick. */
export const adopt = (ctx: Ctx): Effect.Effect<void, CampaignStoreError> =>
  Effect.gen(function*() {
    const campaignId = ctx.definition.campaignId
    for (const m of inPhase(ctx, "Submitting")) {
      const since = new Date(Math.max(0, m.phase.since - SKEW)).toISOString()
      const filter = `machineId eq ${quote(m.machineId)} and creationDateTimeUtc ge ${since}`
      const found = yield* Effect.either(Stream.runCollect(ctx.client.listMachineActions({ filter })))
      if (found._tag === "Left") {
        yield* Effect.logWarning(`campaign: looking up the submit on machine ${m.machineId} failed (${found.left._tag}); next tick`)
        continue
      }
      const ours = Chunk.toArray(found.right)
        .filter((a) => Option.contains(campaignIdIn(a.requestorComment), campaignId) && !cancelledUnstarted(a))
        .sort((a, b) => created(b) - created(a))
      const at = yield* now
      if (ours.length > 0) {
        yield* record(ctx, { _tag: "Adopted", machineId: m.machineId, machineActionId: ours[0]!.id, at })
      } else if (at - m.phase.since >= ADOPT_GRACE) {
        yield* record(ctx, { _tag: "SubmitRefused", machineId: m.machineId, reason: "Lost", retryAt: at, at })
      }
    }
  })
