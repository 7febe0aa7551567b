/**
 * What `campaign` shows and decides, as pure functions: the machine list a file holds,
 * the live view folded from the engine's updates, the summary, the exit code a summary
 * asks for, and `campaign status`'s text and JSON. `campaign.ts` does the effects.
 */
import type { Campaign, CampaignStore } from "../mod.ts"
import { formatDuration } from "./batch.ts"


/** The machine ids of a `--machines` file: one a line; blank lines and `#` comments ignored; duplicates dropped. */
export const parseMachineList = (text: string): Array<string> => {
  const seen = new Set<string>()
  for (const raw of text.replace(/^\uFEFF/, "").split(/\r?\n/)) {
    const hash = raw.indexOf("#")
    const id = (hash === -1 ? raw : raw.slice(0, hash)).trim()
    if (id !== "") seen.add(id)
  }
  return [...seen]
}

/** A campaign's outcome counts: the engine's `Summary`. */
export type Counts = Campaign.Summary

/** The updates the view reads: the engine's. */
export type ViewUpdate = Campaign.Update

/** The view's buckets, in the order shown. */
export const BUCKETS = ["waiting", "submitting", "alive", "collecting", "finished", "not run"] as const

/** One of the view's buckets. */
export type Bucket = (typeof BUCKETS)[number]

/** The bucket a machine phase is shown in (an ended action is still having its manifest line written). */
export const bucketOf = (phase: CampaignStore.MachinePhase["_tag"]): Bucket => {
  switch (phase) {
    case "Waiting":
      return "waiting"
    case "Submitting":
      return "submitting"
    case "Alive":
      return "alive"
    case "Ended":
    case "Collecting":
      return "collecting"
    case "Finished":
      return "finished"
    case "NotRun":
      return "not run"
  }
}

/** What the live view knows. */
export interface View {
  readonly campaignId: string | undefined
  readonly targets: number
  readonly resumed: boolean
  readonly buckets: Readonly<Record<Bucket, number>>
  readonly alive: number
  readonly maxSessions: number | undefined
  readonly nextRunAt: number | undefined
  /** When this run started (the first update's time), and how many machines were done then. */
  readonly startedAt: number | undefined
  readonly doneAtStart: number | undefined
  readonly summary: Counts | undefined
}

const noBuckets: Record<Bucket, number> = {
  waiting: 0,
  submitting: 0,
  alive: 0,
  collecting: 0,
  finished: 0,
  "not run": 0
}

/** The view before any update. */
export const initialView: View = {
  campaignId: undefined,
  targets: 0,
  resumed: false,
  buckets: noBuckets,
  alive: 0,
  maxSessions: undefined,
  nextRunAt: undefined,
  startedAt: undefined,
  doneAtStart: undefined,
  summary: undefined
}

const doneOf = (buckets: Readonly<Record<Bucket, number>>): number => buckets.finished + buckets["not run"]

/** The view after one update; `now` (epoch ms) dates the start of the run when no update has. */
export const applyUpdate = (view: View, update: ViewUpdate, now: number): View => {
  switch (update._tag) {
    case "Started":
      return { ...view, campaignId: update.campaignId, targets: update.targets, resumed: update.resumed }
    case "Progress": {
      const buckets: Record<Bucket, number> = { ...noBuckets }
      for (const [phase, n] of Object.entries(update.state.counts)) {
        buckets[bucketOf(phase as CampaignStore.MachinePhase["_tag"])] += n
      }
      const targets = update.state.targets?.length ?? view.targets
      return {
        ...view,
        targets,
        buckets,
        alive: update.alive,
        maxSessions: update.maxSessions,
        nextRunAt: update.nextRunAt,
        startedAt: view.startedAt ?? update.at,
        doneAtStart: view.doneAtStart ?? doneOf(buckets)
      }
    }
    case "MachineFinished":
      return { ...view, startedAt: view.startedAt ?? now }
    case "Completed":
      return { ...view, summary: update.summary }
  }
}

const clock = (at: number): string => new Date(at).toISOString().slice(11, 19)

/**
 * The live view's lines, each short enough for 80 columns:
 * `cmp-… · 50 machines`, `waiting 12 · submitting 1 · alive 8 · collecting 2 · finished 20 · not run 7`
 * and `sessions 9/10 alive · next run permit in 4s (23:41:05 UTC) · ETA 3m10s`.
 */
export const renderView = (view: View, now: number): Array<string> => {
  const head = `${view.campaignId ?? "campaign"}${view.resumed ? " (resumed)" : ""} · ${view.targets} machines`
  const buckets = BUCKETS.map((bucket) => `${bucket} ${view.buckets[bucket]}`).join(" · ")
  const tail = [`sessions ${view.alive}/${view.maxSessions ?? "?"} alive`]
  if (view.nextRunAt !== undefined) {
    const full = view.maxSessions !== undefined && view.alive >= view.maxSessions ? " (when a session ends)" : ""
    tail.push(
      view.nextRunAt <= now
        ? `next run permit now${full}`
        : `next run permit in ${formatDuration(Math.ceil((view.nextRunAt - now) / 1000))} (${clock(view.nextRunAt)} UTC)`
    )
  }
  tail.push(`ETA ${eta(view, now)}`)
  return [head, buckets, tail.join(" · ")]
}

/** The time left at the pace of this run so far (machines done per second since it started), `?` before any. */
export const eta = (view: View, now: number): string => {
  const done = doneOf(view.buckets)
  const left = view.targets - done
  if (left <= 0) return "0s"
  if (view.startedAt === undefined || view.doneAtStart === undefined || now <= view.startedAt) return "?"
  const rate = (done - view.doneAtStart) / ((now - view.startedAt) / 1000)
  return rate > 0 ? formatDuration(Math.ceil(left / rate)) : "?"
}

/** How many machines are neither finished nor known never to run. */
export const unfinished = (counts: Counts): number =>
  Math.max(0, counts.total - counts.succeeded - counts.failed - counts.timedOut - counts.cancelled - counts.notRun)

/** `40 succeeded, 3 failed, 2 timed out, 0 cancelled, 5 not run (of 50)`, with `, 4 unfinished` when some are. */
export const countsText = (counts: Counts): string => {
  const open = unfinished(counts)
  return `${counts.succeeded} succeeded, ${counts.failed} failed, ${counts.timedOut} timed out, ${counts.cancelled} cancelled, ${counts.notRun} not run${
    open > 0 ? `, ${open} unfinished` : ""
  } (of ${counts.total})`
}

/** The end of a run that was not stopped: nothing wrong, or the error the CLI exits with. */
export type Outcome =
  | { readonly _tag: "Succeeded" }
  // Their exit codes are in main.ts's EXIT_CODES (20 and 21), the one table of them.
  | { readonly _tag: "CampaignFailed" | "CampaignNotRun"; readonly message: string }

/**
 * Exit 0 when every machine succeeded; 20 when some failed, timed out or was cancelled; else
 * 21 when some never ran. The message ends with `manifest`, where to read each machine's line.
 */
export const outcomeOf = (counts: Counts, out: string, manifest: string = `see ${out}/manifest.jsonl`): Outcome => {
  const bad = counts.failed + counts.timedOut + counts.cancelled
  if (bad > 0) {
    return {
      _tag: "CampaignFailed",
      message: `${bad} of ${counts.total} machines did not succeed (${counts.failed} failed, ${counts.timedOut} timed out, ${counts.cancelled} cancelled); ${manifest}`
    }
  }
  if (counts.notRun > 0 || unfinished(counts) > 0) {
    return {
      _tag: "CampaignNotRun",
      message: `${counts.notRun + unfinished(counts)} of ${counts.total} machines never ran; ${manifest}`
    }
  }
  return { _tag: "Succeeded" }
}

/**
 * The counts a replayed journal tells (what `Campaign.summary` answers from the store), for
 * `status` on a folder another process holds: the journal read, never written.
 */
export const countsOf = (state: CampaignStore.CampaignState): Counts => {
  const n = { Succeeded: 0, Failed: 0, TimeOut: 0, Cancelled: 0, NotRun: 0 }
  for (const m of state.machines.values()) {
    if (m.phase._tag === "Finished") n[m.phase.entry.status]++
    if (m.phase._tag === "NotRun") n.NotRun++
  }
  return {
    campaignId: state.campaignId ?? "campaign",
    succeeded: n.Succeeded,
    failed: n.Failed,
    timedOut: n.TimeOut,
    cancelled: n.Cancelled,
    notRun: n.NotRun,
    total: state.targets?.length ?? 0
  }
}

/** The events of a journal's text as it is being written: whole lines only (the last may be mid-append). */
export const journalEvents = (text: string): Array<CampaignStore.CampaignEvent> =>
  text.slice(0, text.lastIndexOf("\n") + 1).split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l))

/** `campaign status`'s facts: the summary, where each machine is, and the folder. */
export interface Status extends Counts {
  readonly folder: string
  /** Whether another process is running the campaign now (the status was read from its journal). */
  readonly running: boolean
  readonly completed: boolean
  readonly interruptions: number
  readonly unfinished: number
  readonly machines: Readonly<Record<Bucket, number>>
}

/** The status of a loaded campaign. */
export const statusOf = (
  folder: string,
  counts: Counts,
  state: CampaignStore.CampaignState,
  running: boolean = false
): Status => {
  const machines: Record<Bucket, number> = { ...noBuckets }
  for (const [phase, n] of Object.entries(state.counts)) {
    machines[bucketOf(phase as CampaignStore.MachinePhase["_tag"])] += n
  }
  return {
    ...counts,
    folder,
    running,
    completed: state.completed,
    interruptions: state.interruptions,
    unfinished: unfinished(counts),
    machines
  }
}

/** `campaign status`'s text: the campaign, its counts, where the unfinished machines are, and the folder. */
export const statusText = (status: Status): Array<string> => {
  const lines = [
    `${status.campaignId}: ${status.completed ? "completed" : status.running ? "running" : "not finished"}${
      status.interruptions > 0 ? ` (interrupted ${status.interruptions}×)` : ""
    }`,
    countsText(status)
  ]
  if (status.unfinished > 0) {
    const where = BUCKETS.filter((b) => b !== "finished" && b !== "not run" && status.machines[b] > 0)
      .map((b) => `${b} ${status.machines[b]}`)
    lines.push(
      `unfinished: ${where.join(", ")}${
        status.running ? " (being run now)" : `; \`campaign resume --out ${status.folder}\` finishes them`
      }`
    )
  }
  lines.push(`folder: ${status.folder} (manifest.jsonl, results/)`)
  return lines
}
