/**
 * The deadline: no session starts after it. Machines still waiting then never ran
 * (`NotRun` `DeadlineExceeded`, saying whether they were offline, busy or never reached);
 * the alive actions get their one cancel in the poll (`poll.ts`) and are recorded as the
 * cancel's answer says.
 *
 * @internal
 */
import { Effect } from "effect"
import type { MachineState } from "../../CampaignStore.ts"
import { type Ctx, inPhase, now, notRun } from "./context.ts"
import type { CampaignStoreError } from "./error.ts"

const why = (m: MachineState): string => {
  const phase = m.phase
  const refusal = phase._tag === "Waiting" ? phase.lastRefusal : undefined
  if (refusal === "Busy") return "busy with another live response session until the deadline"
  if (refusal === "CapReached" || refusal === "Throttled") return "the session cap or the run budget left no room before the deadline"
  if (m.attempts > 0) return "offline (its actions stayed Pending) or unreachable until the deadline"
  return "not started before the deadline"
}

/** @internal After the deadline, records every waiting machine as never run. */
export const passDeadline = (ctx: Ctx): Effect.Effect<void, CampaignStoreError> =>
  Effect.gen(function*() {
    if ((yield* now) < ctx.definition.options.deadline) return
    for (const m of inPhase(ctx, "Waiting")) {
      yield* notRun(ctx, m.machineId, { _tag: "DeadlineExceeded", message: `machine ${m.machineId} was ${why(m)}` })
    }
  })
