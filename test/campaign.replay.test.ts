/**
 * The campaign journal's rules as a pure fold (no files, no clock): table tests of each
 * rule, and fast-check properties (fixed seed) over journals a valid engine could write.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, Option } from "effect"
import fc from "fast-check"
import * as CampaignStore from "../src/CampaignStore.ts"

type Event = CampaignStore.CampaignEvent

const runs = { seed: 20261201, numRuns: 200 }

const begin: ReadonlyArray<Event> = [
  { _tag: "Defined", campaignId: "cmp-0123456789abcdef", at: 0 },
  { _tag: "TargetsResolved", machineIds: ["m1", "m2"], at: 0 }
]
const alive: ReadonlyArray<Event> = [
  ...begin,
  { _tag: "Submitting", machineId: "m1", attempt: 1, at: 1 },
  { _tag: "Submitted", machineId: "m1", machineActionId: "a1", at: 2 }
]
const commands = [
  { index: 0, type: "RunScript", status: "Completed", errors: [] },
  { index: 1, type: "GetFile", status: "Completed", errors: [] }
]
const ended = (status: CampaignStore.EndStatus): Event => ({
  _tag: "ActionEnded",
  machineId: "m1",
  machineActionId: "a1",
  status,
  commands,
  at: 3
})
const saved = (index: number): Event => ({
  _tag: "ResultSaved",
  machineId: "m1",
  machineActionId: "a1",
  index,
  type: commands[index]!.type,
  file: `results/m1/${index}-x`,
  bytes: 3,
  sha256: "ab",
  md5Verified: false,
  at: 4
})
const finished = (status: CampaignStore.EndStatus, machineActionId = "a1"): Event => ({
  _tag: "MachineFinished",
  entry: { machineId: "m1", machineActionId, status, commands: [] },
  at: 5
})

/** The rule `events` breaks (the detail of replay's InvalidEvent) and the line it is on. */
const broken = (events: ReadonlyArray<Event>) => {
  const result = CampaignStore.replay(events)
  return Either.isLeft(result) ? { line: result.left.line, detail: result.left.detail } : undefined
}

const phaseOf = (events: ReadonlyArray<Event>, machineId = "m1") =>
  Either.getOrThrow(CampaignStore.replay(events)).machines.get(machineId)!.phase

describe("campaign journal rules", () => {
  it.each<[string, ReadonlyArray<Event>, RegExp]>([
    ["an event before Defined", [begin[1]!], /must start with Defined/],
    ["Defined twice", [begin[0]!, begin[0]!], /defined already/],
    ["a machine event before the targets", [begin[0]!, alive[2]!], /before TargetsResolved/],
    ["a machine that is not a target", [...begin, { ...alive[2]!, machineId: "m9" } as Event], /not a target/],
    ["a second submit while the outcome is unknown (the adopt rule)", [...alive.slice(0, 3), alive[2]!], /look the action up/],
    ["a submit with the wrong attempt number", [...begin, { ...alive[2]!, attempt: 2 } as Event], /expected 1/],
    ["a second action submitted while one is alive", [...alive, {
      _tag: "Submitted",
      machineId: "m1",
      machineActionId: "a2",
      at: 3
    }], /second action \(a2\)/],
    ["a second action adopted while one is alive", [...alive, {
      _tag: "Adopted",
      machineId: "m1",
      machineActionId: "a2",
      at: 3
    }], /second action/],
    ["another action ended while one is alive", [...alive, { ...ended("Succeeded"), machineActionId: "a2" } as Event], /another action \(a2\)/],
    ["a submit while an action is alive", [...alive, { ...alive[2]!, attempt: 2 } as Event], /Submitting is not allowed .* Alive/],
    ["a result before the action ended", [...alive, saved(0)], /not allowed while machine m1 is Alive/],
    ["a result of a failed action", [...alive, ended("Failed"), saved(0)], /only after ActionEnded Succeeded/],
    ["a result saved twice", [...alive, ended("Succeeded"), saved(1), saved(1)], /saved already/],
    ["a result of a command the action lacks", [...alive, ended("Succeeded"), saved(0), { ...saved(0), index: 7 } as Event], /no command 7/],
    ["a machine finished twice", [...alive, ended("Failed"), finished("Failed"), finished("Failed")], /finishes once/],
    ["a manifest line with another status", [...alive, ended("Failed"), finished("Succeeded")], /status Failed/],
    ["a manifest line with another action", [...alive, ended("TimeOut"), finished("TimeOut", "a9")], /action a1/],
    ["a manifest file no ResultSaved recorded", [...alive, ended("Succeeded"), saved(0), {
      _tag: "MachineFinished",
      entry: { machineId: "m1", machineActionId: "a1", status: "Succeeded", commands: [{ index: 1, type: "GetFile", status: "Completed", file: "results/m1/1-x", sha256: "ab" }] },
      at: 5
    }], /no ResultSaved recorded/],
    ["NotRun once an action is alive", [...alive, { _tag: "NotRun", machineId: "m1", error: { _tag: "X", message: "x" }, at: 3 }], /Alive/],
    ["Completed with machines left", [...alive, { _tag: "Completed", at: 9 }], /2 machines are not finished/],
    ["anything after Completed", [
      ...begin.slice(0, 1),
      { _tag: "TargetsResolved", machineIds: [], at: 0 },
      { _tag: "Completed", at: 1 },
      { _tag: "Interrupted", at: 2 }
    ], /nothing may follow Completed/]
  ])("refuses %s", (_, events, rule) => {
    const found = broken(events)
    expect(found?.detail).toMatch(rule)
    expect(found?.line).toBe(events.length)
  })

  it("follows a machine through its phases, attempts and results", () => {
    const refused: Event = { _tag: "SubmitRefused", machineId: "m1", reason: "Busy", retryAt: 60, at: 2 }
    expect(phaseOf([...alive.slice(0, 3), refused])).toEqual({ _tag: "Waiting", retryAt: 60, lastRefusal: "Busy" })
    expect(phaseOf(alive.slice(0, 3))).toEqual({ _tag: "Submitting", attempt: 1, since: 1 })
    const adopted: Event = { _tag: "Adopted", machineId: "m1", machineActionId: "a1", at: 9 }
    expect(phaseOf([...alive.slice(0, 3), adopted])).toEqual({ _tag: "Alive", machineActionId: "a1", since: 9 })
    const timedOut: Event = { _tag: "PendingTimedOut", machineId: "m1", machineActionId: "a1", retryAt: 99, at: 3 }
    const retried = Either.getOrThrow(CampaignStore.replay([...alive, timedOut, { ...alive[2]!, attempt: 2, at: 100 } as Event]))
    expect(retried.machines.get("m1")).toMatchObject({ attempts: 2, phase: { _tag: "Submitting", attempt: 2 } })
    const collecting = Either.getOrThrow(CampaignStore.replay([...alive, ended("Succeeded"), saved(1)]))
    const m1 = collecting.machines.get("m1")!
    expect(m1.phase._tag).toBe("Collecting")
    expect(m1.results.map((r) => r.index)).toEqual([1])
    expect(collecting.counts).toMatchObject({ Collecting: 1, Waiting: 1 })
    // The manifest line of a machine: each command, with its file where one was saved.
    expect(Option.getOrThrow(CampaignStore.entryFor(m1))).toEqual({
      machineId: "m1",
      machineActionId: "a1",
      status: "Succeeded",
      commands: [
        { index: 0, type: "RunScript", status: "Completed" },
        { index: 1, type: "GetFile", status: "Completed", file: "results/m1/1-x", bytes: 3, sha256: "ab", md5Verified: false }
      ]
    })
  })

  it("derives the manifest from MachineFinished and NotRun, in order", () => {
    const notRun: Event = { _tag: "NotRun", machineId: "m2", error: { _tag: "DeadlinePassed", message: "offline" }, at: 9 }
    const events = [...alive, ended("Failed"), notRun, finished("Failed")]
    expect(broken(events)).toBeUndefined()
    expect(CampaignStore.manifestOf(events)).toEqual([
      { machineId: "m2", status: "NotRun", commands: [], error: { _tag: "DeadlinePassed", message: "offline" } },
      { machineId: "m1", machineActionId: "a1", status: "Failed", commands: [] }
    ])
  })

  it("apply refuses with InvalidEvent and leaves the state as it was", () => {
    const state = Either.getOrThrow(CampaignStore.replay(alive))
    const refused = CampaignStore.apply(state, { _tag: "Submitted", machineId: "m1", machineActionId: "a2", at: 3 })
    expect(Either.isLeft(refused) && refused.left.reason).toBe("InvalidEvent")
    expect(state.machines.get("m1")!.phase).toEqual({ _tag: "Alive", machineActionId: "a1", since: 2 })
  })

  it("commentFor marks the comment and campaignIdIn finds the mark again", () => {
    const definition = { campaignId: "cmp-00112233aabbccdd", comment: "triage" } as CampaignStore.CampaignDefinition
    const comment = CampaignStore.commentFor(definition)
    expect(comment).toBe("triage [mde-campaign:cmp-00112233aabbccdd]")
    expect(CampaignStore.campaignIdIn(comment)).toEqual(Option.some("cmp-00112233aabbccdd"))
    expect(CampaignStore.campaignIdIn("quoting [mde-campaign:cmp-0000000000000000] then [mde-campaign:cmp-1111111111111111]"))
      .toEqual(Option.some("cmp-1111111111111111"))
    expect(CampaignStore.campaignIdIn("by hand")).toEqual(Option.none())
    expect(CampaignStore.campaignIdIn(undefined)).toEqual(Option.none())
  })
})

/** The events a correct engine may write next for one machine (chosen by `pick`). */
const nextFor = (m: CampaignStore.MachineState, pick: number, at: number): Event | undefined => {
  const { machineId, phase } = m
  const choose = <A>(options: ReadonlyArray<A>): A => options[pick % options.length]!
  switch (phase._tag) {
    case "Waiting":
      return choose<Event>([
        { _tag: "Submitting", machineId, attempt: m.attempts + 1, at },
        { _tag: "Submitting", machineId, attempt: m.attempts + 1, at },
        { _tag: "NotRun", machineId, error: { _tag: "DeadlinePassed", message: "offline" }, at }
      ])
    case "Submitting":
      return choose<Event>([
        { _tag: "Submitted", machineId, machineActionId: `${machineId}-a${m.attempts}`, at },
        { _tag: "Adopted", machineId, machineActionId: `${machineId}-a${m.attempts}`, at },
        { _tag: "SubmitRefused", machineId, reason: choose(["Busy", "CapReached", "Throttled", "Lost"] as const), retryAt: at + 60, at }
      ])
    case "Alive":
      return choose<Event>([
        ...(["Succeeded", "Succeeded", "Failed", "TimeOut", "Cancelled"] as const).map((status): Event => ({
          _tag: "ActionEnded",
          machineId,
          machineActionId: phase.machineActionId,
          status,
          commands,
          at
        })),
        { _tag: "PendingTimedOut", machineId, machineActionId: phase.machineActionId, retryAt: at + 60, at }
      ])
    case "Collecting": {
      const left = commands.filter((c) => !m.results.some((r) => r.index === c.index))
      if (left.length > 0 && pick % 3 !== 0) {
        const c = left[0]!
        return { ...saved(c.index), machineId, machineActionId: phase.machineActionId, at } as Event
      }
      return { _tag: "MachineFinished", entry: Option.getOrThrow(CampaignStore.entryFor(m)), at }
    }
    case "Ended":
      return { _tag: "MachineFinished", entry: Option.getOrThrow(CampaignStore.entryFor(m)), at }
    default:
      return undefined
  }
}

/** A journal a correct engine could write, driven by `picks`. */
const journalOf = (machines: number, picks: ReadonlyArray<number>): Array<Event> => {
  const ids = Array.from({ length: machines }, (_, i) => `m${i}`)
  const events: Array<Event> = [
    { _tag: "Defined", campaignId: "cmp-0123456789abcdef", at: 0 },
    { _tag: "TargetsResolved", machineIds: ids, at: 0 }
  ]
  let state = Either.getOrThrow(CampaignStore.replay(events))
  picks.forEach((pick, i) => {
    const e: Event | undefined = pick % 17 === 0
      ? { _tag: "Interrupted", at: i }
      : nextFor(state.machines.get(ids[pick % machines]!)!, Math.floor(pick / machines), i)
    if (e === undefined) return
    events.push(e)
    state = Either.getOrThrow(CampaignStore.apply(state, e))
  })
  if (state.counts.Finished + state.counts.NotRun === machines) events.push({ _tag: "Completed", at: picks.length })
  return events
}

const journals = fc.tuple(fc.integer({ min: 1, max: 6 }), fc.array(fc.nat({ max: 10_000 }), { maxLength: 120 }))
  .map(([n, picks]) => journalOf(n, picks))

/** A state as plain data, to compare two replays. */
const plain = (s: CampaignStore.CampaignState) => ({ ...s, machines: [...s.machines.entries()] })

describe("campaign journal properties", () => {
  it("any prefix of a valid journal replays, and a replay is deterministic", () => {
    const seen = new Set<string>()
    fc.assert(
      fc.property(journals, (events) => {
        for (const e of events) seen.add(e._tag)
        for (let i = 0; i <= events.length; i++) {
          const prefix = events.slice(0, i)
          const once = CampaignStore.replay(prefix)
          if (Either.isLeft(once)) return false
          expect(plain(Either.getOrThrow(CampaignStore.replay(prefix)))).toEqual(plain(once.right))
          expect(once.right.events).toBe(i)
        }
        return true
      }),
      runs
    )
    // The generator reaches every kind of event (a property over trivial journals proves nothing).
    expect([...seen].sort()).toEqual([
      "ActionEnded", "Adopted", "Completed", "Defined", "Interrupted", "MachineFinished", "NotRun",
      "PendingTimedOut", "ResultSaved", "SubmitRefused", "Submitted", "Submitting", "TargetsResolved"
    ])
  })

  it("no machine ever has two actions alive, and the counts add up", () => {
    fc.assert(
      fc.property(journals, fc.nat(), (events, at) => {
        const state = Either.getOrThrow(CampaignStore.replay(events))
        const total = Object.values(state.counts).reduce((a, b) => a + b, 0)
        expect(total).toBe(state.targets!.length)
        for (const m of state.machines.values()) {
          if (m.phase._tag !== "Alive") continue
          const second: Event = { _tag: "Submitted", machineId: m.machineId, machineActionId: "other", at }
          expect(Either.isLeft(CampaignStore.apply(state, second))).toBe(true)
        }
      }),
      runs
    )
  })
})
