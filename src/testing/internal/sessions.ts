/**
 * Live response sessions: whether a run may start one (a machine of the fleet, not busy, no
 * action alive on it, the tenant under its session cap) and when the new action runs and how it
 * ends (its machine's online window and outcome, the queueing time for offline machines).
 *
 * @internal
 */
import { Duration } from "effect"
import type { CommandSpec, MachineSpec } from "../DefenderSimulator.ts"
import { onlineFrom } from "./machines.ts"
import { odata } from "./responses.ts"
import { type Call, type SimAction, type State, statusAt } from "./state.ts"

const TIMEOUT_RUN = 10 * 60_000

/** @internal The actions alive at `now`: `Pending` or `InProgress`. */
export const alive = (state: State, now: number): Array<SimAction> =>
  [...state.actions.values()].filter((a) => {
    const status = statusAt(a, now)
    return status === "Pending" || status === "InProgress"
  })

/** The 429 of a run over the session cap; `Retry-After` is when the first alive action ends (1 s to 1 min). */
const overCap = (state: State, running: ReadonlyArray<SimAction>, now: number, requestId: string): Response => {
  const firstEnd = Math.min(...running.map((a) => a.endsAt))
  const wait = Math.min(60_000, Math.max(1000, firstEnd - now))
  return odata(
    429,
    "TooManyRequests",
    `The tenant has reached its limit of ${state.settings.sessionCap} concurrent live response sessions`,
    requestId,
    state.faults?.omitRetryAfter === true ? {} : { "retry-after": String(Math.ceil(wait / 1000)) }
  )
}

/**
 * @internal Refuses a run that may not start a session: 404 for a machine outside the fleet,
 * 400 `ActiveRequestAlreadyExists` while the machine is busy or has an action alive, 429 over
 * the session cap. `undefined`: it may.
 */
export const refuseRun = ({ now, requestId, state }: Call, machineId: string): Response | undefined => {
  const machines = state.settings.machines
  if (machines !== undefined && !machines.has(machineId)) {
    return odata(404, "ResourceNotFound", `Machine ${machineId} was not found`, requestId)
  }
  const busyUntil = machines?.get(machineId)?.busyUntil
  const running = alive(state, now)
  if (
    (busyUntil !== undefined && now < state.settings.startedAt + busyUntil) ||
    running.some((a) => a.machineId === machineId)
  ) {
    return odata(400, "ActiveRequestAlreadyExists", `Action is already in progress on machine ${machineId}`, requestId)
  }
  return running.length >= state.settings.sessionCap ? overCap(state, running, now, requestId) : undefined
}

/** @internal When a new action leaves `Pending`, when it ends and how. */
export type Schedule = Pick<SimAction, "startsAt" | "endsAt" | "outcome" | "expired">

/**
 * @internal A new action's schedule: it starts `pendingFor` after its machine is online and runs
 * the machine's `runFor` (ten minutes before a `TimeOut`). A parameter with "fail" or "timeout"
 * in it, or the machine's `outcome`, picks the end. A machine offline for the whole queueing
 * time never runs it: the action ends `TimeOut` then.
 */
export const schedule = (
  state: State,
  spec: MachineSpec | undefined,
  commands: ReadonlyArray<CommandSpec>,
  now: number
): Schedule => {
  const { pendingFor, queueTimeout, runFor } = state.settings
  const named = (pattern: RegExp) => commands.some((c) => c.params.some((p) => pattern.test(p.value)))
  const outcome = named(/fail/i) || spec?.outcome === "Failed"
    ? "Failed"
    : named(/timeout/i) || spec?.outcome === "TimeOut"
    ? "TimeOut"
    : "Succeeded"
  const online = onlineFrom(state, spec, now)
  if (online === undefined || online > now + queueTimeout) {
    return { startsAt: now + queueTimeout, endsAt: now + queueTimeout, outcome: "TimeOut", expired: true }
  }
  const startsAt = online + pendingFor
  const runs = outcome === "TimeOut"
    ? TIMEOUT_RUN
    : spec?.runFor === undefined
    ? runFor
    : Duration.toMillis(Duration.decode(spec.runFor))
  return { startsAt, endsAt: startsAt + runs, outcome, expired: false }
}
