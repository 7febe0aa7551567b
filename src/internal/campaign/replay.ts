/**
 * The journal's rules as a pure fold: `replay(events)` is the campaign's state, `apply`
 * one more event. An event that breaks a rule is refused with the reason, never applied:
 * a machine has at most one action that left Pending (no second `Submitted`/`Adopted`/
 * `ActionEnded` while one is alive), an unknown submit is resolved before the next one
 * (the adopt rule), results are saved only after `ActionEnded` Succeeded and once per
 * command, and a machine finishes once.
 *
 * @internal
 */
import { Either, Option } from "effect"
import type {
  CampaignEvent,
  CampaignState,
  ManifestCommand,
  ManifestEntry,
  MachinePhase,
  MachineState
} from "../../CampaignStore.ts"
import { type CampaignStoreError, storeError } from "./error.ts"

type Phase = MachinePhase["_tag"]
type MachineEvent = Exclude<CampaignEvent, { readonly _tag: "Defined" | "TargetsResolved" | "Interrupted" | "Completed" }>

/** A state being built: its own map and counts, so that a whole replay copies them once. */
interface Work {
  campaignId: string | undefined
  targets: ReadonlyArray<string> | undefined
  machines: Map<string, MachineState>
  counts: Record<Phase, number>
  interruptions: number
  completed: boolean
  events: number
}

const zero = (): Record<Phase, number> => ({
  Waiting: 0,
  Submitting: 0,
  Alive: 0,
  Ended: 0,
  Collecting: 0,
  Finished: 0,
  NotRun: 0
})

/** @internal `CampaignStore.empty`. */
export const empty: CampaignState = {
  campaignId: undefined,
  targets: undefined,
  machines: new Map(),
  counts: zero(),
  interruptions: 0,
  completed: false,
  events: 0
}

const work = (s: CampaignState): Work => ({ ...s, machines: new Map(s.machines), counts: { ...s.counts } })

const waiting: MachinePhase = { _tag: "Waiting", retryAt: undefined, lastRefusal: undefined }

const actionOf = (phase: MachinePhase): string | undefined =>
  phase._tag === "Alive" || phase._tag === "Ended" || phase._tag === "Collecting" ? phase.machineActionId : undefined

const notNow = (e: CampaignEvent, m: MachineState): string => {
  const id = actionOf(m.phase)
  const where = m.phase._tag === "Finished" || m.phase._tag === "NotRun"
    ? "finished: a machine finishes once and nothing follows"
    : `${m.phase._tag}${id === undefined ? "" : ` with action ${id}`}`
  return `${e._tag} is not allowed while machine ${m.machineId} is ${where}`
}

/** The adopt rule, the one-action rule and the rest for `Submitting`, `Submitted`, `Adopted`, `SubmitRefused`. */
const submitStep = (m: MachineState, e: MachineEvent): MachineState | string => {
  const phase = m.phase
  if (phase._tag === "Alive" && e._tag !== "Submitting") {
    return `machine ${m.machineId} has action ${phase.machineActionId} alive: a second action (${
      "machineActionId" in e ? e.machineActionId : "?"
    }) may not leave Pending`
  }
  if (e._tag === "Submitting") {
    if (phase._tag === "Submitting") {
      return `the outcome of submit attempt ${phase.attempt} on machine ${m.machineId} is unknown: look the action up and record Adopted or SubmitRefused Lost before submitting again`
    }
    if (phase._tag !== "Waiting") return notNow(e, m)
    if (e.attempt !== m.attempts + 1) return `submit attempt ${e.attempt} on machine ${m.machineId}, expected ${m.attempts + 1}`
    return { ...m, phase: { _tag: "Submitting", attempt: e.attempt, since: e.at }, attempts: e.attempt, results: [] }
  }
  if (phase._tag !== "Submitting") return notNow(e, m)
  if (e._tag === "Submitted" || e._tag === "Adopted") {
    return { ...m, phase: { _tag: "Alive", machineActionId: e.machineActionId, since: e.at } }
  }
  if (e._tag === "SubmitRefused") return { ...m, phase: { _tag: "Waiting", retryAt: e.retryAt, lastRefusal: e.reason } }
  return notNow(e, m)
}

/** `ActionEnded`, `PendingTimedOut`, `ResultSaved`, `MachineFinished`, `NotRun`. */
const laterStep = (m: MachineState, e: MachineEvent): MachineState | string => {
  const phase = m.phase
  const id = actionOf(phase)
  if ("machineActionId" in e && id !== undefined && e.machineActionId !== id) {
    return `machine ${m.machineId} has action ${id}: ${e._tag} of another action (${e.machineActionId}) is refused`
  }
  switch (e._tag) {
    case "PendingTimedOut":
      return phase._tag === "Alive"
        ? { ...m, phase: { _tag: "Waiting", retryAt: e.retryAt, lastRefusal: undefined } }
        : notNow(e, m)
    case "ActionEnded":
      if (phase._tag !== "Alive") return notNow(e, m)
      return e.status === "Succeeded"
        ? { ...m, phase: { _tag: "Collecting", machineActionId: e.machineActionId, commands: e.commands } }
        : { ...m, phase: { _tag: "Ended", machineActionId: e.machineActionId, status: e.status, commands: e.commands } }
    case "ResultSaved": {
      if (phase._tag === "Ended") return `a result of machine ${m.machineId} is saved only after ActionEnded Succeeded (it ended ${phase.status})`
      if (phase._tag !== "Collecting") return notNow(e, m)
      if (!phase.commands.some((c) => c.index === e.index)) return `action ${id} has no command ${e.index}`
      if (m.results.some((r) => r.index === e.index)) return `command ${e.index} of action ${id} is saved already`
      const { index, type, file, bytes, sha256, md5Verified } = e
      return { ...m, results: [...m.results, { index, type, file, bytes, sha256, md5Verified }] }
    }
    case "MachineFinished": {
      if (phase._tag !== "Ended" && phase._tag !== "Collecting") return notNow(e, m)
      const status = phase._tag === "Ended" ? phase.status : "Succeeded"
      if (e.entry.machineActionId !== id || e.entry.status !== status) {
        return `the manifest line of machine ${m.machineId} must name action ${id} and status ${status}`
      }
      // A file appears in the manifest only as it was saved (complete, hashed, recorded).
      const unsaved = e.entry.commands.find((c) =>
        c.file !== undefined && !m.results.some((r) => r.index === c.index && r.file === c.file && r.sha256 === c.sha256)
      )
      if (unsaved !== undefined) return `the manifest line of machine ${m.machineId} names ${unsaved.file}, which no ResultSaved recorded`
      return { ...m, phase: { _tag: "Finished", entry: e.entry } }
    }
    case "NotRun":
      return phase._tag === "Waiting" || phase._tag === "Submitting"
        ? { ...m, phase: { _tag: "NotRun", error: e.error } }
        : notNow(e, m)
    default:
      return submitStep(m, e)
  }
}

const targetsStep = (w: Work, machineIds: ReadonlyArray<string>): string | undefined => {
  if (w.targets !== undefined) return "the targets are resolved already"
  if (machineIds.some((id) => id.trim() === "")) return "an empty machine id"
  w.targets = [...new Set(machineIds)]
  for (const machineId of w.targets) w.machines.set(machineId, { machineId, phase: waiting, attempts: 0, results: [] })
  w.counts.Waiting = w.targets.length
  return undefined
}

/** Applies `e` to `w` in place; the rule it breaks, or `undefined`. */
const step = (w: Work, e: CampaignEvent): string | undefined => {
  if (w.completed) return "the campaign is completed: nothing may follow Completed"
  if (e._tag === "Defined") {
    if (w.campaignId !== undefined) return "the campaign is defined already"
    w.campaignId = e.campaignId
    return undefined
  }
  if (w.campaignId === undefined) return "the journal must start with Defined"
  switch (e._tag) {
    case "TargetsResolved":
      return targetsStep(w, e.machineIds)
    case "Interrupted":
      w.interruptions++
      return undefined
    case "Completed": {
      const open = w.targets === undefined ? Number.NaN : w.targets.length - w.counts.Finished - w.counts.NotRun
      if (!(open === 0)) return `Completed while ${Number.isNaN(open) ? "no targets are resolved" : `${open} machines are not finished`}`
      w.completed = true
      return undefined
    }
  }
  const machineId = e._tag === "MachineFinished" ? e.entry.machineId : e.machineId
  const m = w.machines.get(machineId)
  if (m === undefined) {
    return w.targets === undefined ? `${e._tag} before TargetsResolved` : `machine ${machineId} is not a target of the campaign`
  }
  const next = e._tag === "Submitting" || e._tag === "Submitted" || e._tag === "Adopted" || e._tag === "SubmitRefused"
    ? submitStep(m, e)
    : laterStep(m, e)
  if (typeof next === "string") return next
  w.machines.set(machineId, next)
  w.counts[m.phase._tag]--
  w.counts[next.phase._tag]++
  return undefined
}

/** @internal `CampaignStore.apply`. */
export const apply = (state: CampaignState, event: CampaignEvent): Either.Either<CampaignState, CampaignStoreError> => {
  const w = work(state)
  const problem = step(w, event)
  if (problem !== undefined) return Either.left(storeError("InvalidEvent", problem))
  w.events++
  return Either.right(w)
}

/** @internal `CampaignStore.replay`. */
export const replay = (events: Iterable<CampaignEvent>): Either.Either<CampaignState, CampaignStoreError> => {
  const w = work(empty)
  for (const e of events) {
    const problem = step(w, e)
    if (problem !== undefined) return Either.left(storeError("InvalidEvent", problem, { line: w.events + 1 }))
    w.events++
  }
  return Either.right(w)
}

/** @internal `CampaignStore.entryFor`. */
export const entryFor = (machine: MachineState): Option.Option<ManifestEntry> => {
  const phase = machine.phase
  if (phase._tag !== "Ended" && phase._tag !== "Collecting") return Option.none()
  const commands = phase.commands.map((c): ManifestCommand => {
    const saved = machine.results.find((r) => r.index === c.index)
    return {
      index: c.index,
      type: c.type,
      status: c.status,
      ...(c.errors.length > 0 ? { errors: c.errors } : {}),
      ...(saved === undefined
        ? {}
        : { file: saved.file, bytes: saved.bytes, sha256: saved.sha256, md5Verified: saved.md5Verified })
    }
  })
  return Option.some({
    machineId: machine.machineId,
    machineActionId: phase.machineActionId,
    status: phase._tag === "Ended" ? phase.status : "Succeeded",
    commands
  })
}

/** @internal The manifest line of one event, if it makes one. */
export const entryOfEvent = (e: CampaignEvent): ManifestEntry | undefined =>
  e._tag === "MachineFinished"
    ? e.entry
    : e._tag === "NotRun"
    ? { machineId: e.machineId, status: "NotRun", commands: [], error: e.error }
    : undefined

/** @internal `CampaignStore.manifestOf`. */
export const manifestOf = (events: Iterable<CampaignEvent>): Array<ManifestEntry> => {
  const out: Array<ManifestEntry> = []
  for (const e of events) {
    const entry = entryOfEvent(e)
    if (entry !== undefined) out.push(entry)
  }
  return out
}
