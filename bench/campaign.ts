/**
 * Issue 12's benchmark: one live response across a realistic fleet — a tenth of it offline for
 * longer than the run, some machines failing or timing out, some busy with another session —
 * run by `Campaign.start` against its theoretical minimum (the binding limit: Defender's run
 * budget of 10 calls a minute) and against a hand-written baseline of the common kind (a fixed
 * parallelism of 10, a poll every 15 s, no session-cap awareness, a busy machine skipped).
 *
 * Both run against the in-process simulator on a virtual clock (`TestClock`): Defender's real
 * limits (run 10/min, 100/min and 1500/h for reads, a cap of 50 sessions), hours of campaign in
 * seconds, the same fleet, the same seed. What is measured is the campaign's own time — when
 * the last machine that could succeed had its results saved — not this machine's speed.
 *
 * Then issue 14's part (bench/campaign-workers.ts), in real time: a campaign on PostgreSQL
 * worked by 1 and by 3 `campaign work` processes, for one tenant and for three; skipped with
 * one line when no PostgreSQL or Redis is to be had.
 *
 *   node --import tsx bench/campaign.ts [--quick]      (or npm run bench -- --only campaign)
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Clock, Duration, Effect, Fiber, Layer, Ref, Stream, TestClock, TestContext } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Campaign, CampaignStore, DefenderAuth, DefenderClient, DefenderRateLimiter, LiveResponse } from "../mod.ts"
import { DefenderSimulator } from "../testing.ts"
import { runWorkers } from "./campaign-workers.ts"
import type { BenchOptions, BenchResult } from "./types.ts"
import { round } from "./types.ts"

const RUN_PER_MINUTE = 10
const SESSION_CAP = 50
const COMMANDS = [{ type: "RunScript", scriptName: "triage.ps1" }] as const

/** How far the virtual clock may go before a run is called stuck. */
const HORIZON = Duration.hours(24)

interface Outcome {
  /** Minutes from the start until the last success had its results. */
  readonly lastSuccessMinutes: number
  /** Minutes until the run ended (every machine finished or given up). */
  readonly endMinutes: number
  readonly succeeded: number
  readonly other: number
  readonly runCalls: number
  readonly throttled: number
}

/** The simulated tenant every run gets afresh: the fleet, the session cap, the real quotas. */
const tenant = (specs: ReadonlyArray<DefenderSimulator.MachineSpec>) =>
  DefenderSimulator.make({ machines: specs, sessionCap: SESSION_CAP })

const clientOver = (sim: DefenderSimulator.DefenderSimulator) =>
  DefenderClient.layer().pipe(
    Layer.provide(Layer.merge(DefenderAuth.layerToken(DefenderSimulator.STATIC_TOKEN), DefenderRateLimiter.layer())),
    Layer.provide(DefenderSimulator.layerHttpClient(sim))
  )

/**
 * Runs `self` on the TestClock, moving it `step` at a time and letting real I/O (the
 * journal's writes) run between steps, until `self` is done or the horizon is passed.
 */
const onVirtualClock = <A, E>(self: Effect.Effect<A, E>, step: Duration.DurationInput): Effect.Effect<A, E | Error> =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(self)
    const horizon = Duration.toMillis(HORIZON)
    while (true) {
      const done = yield* Fiber.poll(fiber)
      if (done._tag === "Some") return yield* done.value
      if ((yield* Clock.currentTimeMillis) > horizon) {
        yield* Fiber.interrupt(fiber)
        return yield* Effect.fail(new Error(`still running after ${Duration.format(HORIZON)} of campaign time`))
      }
      yield* TestClock.adjust(step)
      yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
    }
  }).pipe(Effect.provide(TestContext.TestContext))

const counts = (sim: DefenderSimulator.DefenderSimulator) => ({
  runCalls: sim.count("runLiveResponse"),
  throttled: sim.count("runLiveResponse", 429)
})

/** Counts the machines as they finish, and when the last success came. */
const makeTally = Effect.gen(function*() {
  const lastSuccess = yield* Ref.make(0)
  const finished = yield* Ref.make({ succeeded: 0, other: 0 })
  return {
    record: (ok: boolean) =>
      Effect.gen(function*() {
        yield* Ref.update(finished, (f) => ok ? { ...f, succeeded: f.succeeded + 1 } : { ...f, other: f.other + 1 })
        if (ok) yield* Ref.set(lastSuccess, yield* Clock.currentTimeMillis)
      }),
    outcome: (sim: DefenderSimulator.DefenderSimulator): Effect.Effect<Outcome> =>
      Effect.gen(function*() {
        const end = yield* Clock.currentTimeMillis
        return {
          lastSuccessMinutes: (yield* Ref.get(lastSuccess)) / 60_000,
          endMinutes: end / 60_000,
          ...(yield* Ref.get(finished)),
          ...counts(sim)
        }
      })
  }
})

/** The library: one `Campaign.start` over the whole fleet. */
const libraryRun = (specs: ReadonlyArray<DefenderSimulator.MachineSpec>, dir: string): Effect.Effect<Outcome, unknown> =>
  Effect.gen(function*() {
    const sim = yield* tenant(specs)
    const tally = yield* makeTally
    yield* Campaign.start({
      commands: COMMANDS,
      comment: "bench",
      targets: { _tag: "Machines", machineIds: specs.map((s) => s.id) },
      maxSessions: SESSION_CAP,
      deadline: "3 hours",
      pendingTimeout: "30 minutes",
      interval: "15 seconds"
    }).pipe(
      Stream.runForEach((update) =>
        update._tag === "MachineFinished" ? tally.record(update.entry.status === "Succeeded") : Effect.void
      ),
      Effect.provide(Layer.mergeAll(clientOver(sim), CampaignStore.layerFolder(dir).pipe(Layer.provide(NodeFileSystem.layer)), NodeFileSystem.layer))
    )
    return yield* tally.outcome(sim)
  })

/**
 * The common hand-written loop: ten workers, each runs a machine, polls it every 15 s until it
 * ends (an offline machine's action stays Pending until the simulator's 2-hour queue time),
 * reads its transcript, and takes the next; a busy machine is skipped. No session cap is known.
 */
const baselineRun = (specs: ReadonlyArray<DefenderSimulator.MachineSpec>): Effect.Effect<Outcome, unknown> =>
  Effect.gen(function*() {
    const sim = yield* tenant(specs)
    const tally = yield* makeTally
    const one = (machineId: string) =>
      Effect.gen(function*() {
        const started = yield* LiveResponse.runLiveResponse({ machineId, commands: COMMANDS, comment: "baseline" })
        while (true) {
          yield* Effect.sleep("15 seconds")
          const action = yield* LiveResponse.getMachineAction(started.id)
          if (action.status === "Succeeded") {
            yield* LiveResponse.getTranscript({ machineActionId: action.id, index: 0 })
            return true
          }
          if (action.status !== "Pending" && action.status !== "InProgress") return false
        }
      }).pipe(Effect.orElseSucceed(() => false))
    yield* Effect.forEach(specs, (spec) => Effect.flatMap(one(spec.id), tally.record), { concurrency: 10, discard: true })
      .pipe(Effect.provide(clientOver(sim)))
    return yield* tally.outcome(sim)
  })

const DEADLINE_MILLIS = 3 * 60 * 60 * 1000

/** The machines that can succeed within the deadline: online before it, and not failing. */
const canSucceed = (specs: ReadonlyArray<DefenderSimulator.MachineSpec>): number =>
  specs.filter((s) => {
    const online = s.online === undefined || s.online === true ||
      (typeof s.online === "object" && s.online.from < DEADLINE_MILLIS)
    return online && (s.outcome ?? "Succeeded") === "Succeeded"
  }).length

export const run = async (options: BenchOptions): Promise<BenchResult> => {
  const size = options.quick ? 100 : 500
  const specs = DefenderSimulator.fleet(size, { seed: 12 })
  const possible = canSucceed(specs)
  // The binding limit: every machine that can succeed needs one run call, 10 a minute.
  const minimumMinutes = possible / RUN_PER_MINUTE
  const dir = mkdtempSync(join(process.platform === "linux" ? "/dev/shm" : tmpdir(), "mde-bench-campaign-"))
  try {
    const library = await Effect.runPromise(onVirtualClock(libraryRun(specs, dir), "5 seconds"))
    const baseline = await Effect.runPromise(onVirtualClock(baselineRun(specs), "5 seconds"))
    const ratio = library.lastSuccessMinutes / minimumMinutes
    const speedUp = baseline.lastSuccessMinutes / library.lastSuccessMinutes
    // The same kind of campaign on PostgreSQL across worker processes, in real time (bench/campaign-workers.ts).
    const workers = await runWorkers(options)
    return {
      name: "campaign",
      description:
        `A campaign of ${size} machines (fleet seed 12: ${possible} can succeed) on Defender's limits, virtual clock: ` +
        "Campaign.start vs the binding limit (10 runs/min) and vs a fixed-parallelism-10, 15-s-poll loop" +
        workers.description,
      figures: {
        machines: size,
        canSucceed: possible,
        minimumMinutes: round(minimumMinutes, 1),
        "library.lastSuccessMinutes": round(library.lastSuccessMinutes, 1),
        "library.endMinutes": round(library.endMinutes, 1),
        "library.succeeded": library.succeeded,
        "library.other": library.other,
        "library.runCalls": library.runCalls,
        "library.throttledRuns": library.throttled,
        "baseline.lastSuccessMinutes": round(baseline.lastSuccessMinutes, 1),
        "baseline.endMinutes": round(baseline.endMinutes, 1),
        "baseline.succeeded": baseline.succeeded,
        "baseline.other": baseline.other,
        "baseline.runCalls": baseline.runCalls,
        "baseline.throttledRuns": baseline.throttled,
        ...workers.figures
      },
      targets: [
        {
          name: "time to the last success vs the binding limit",
          target: "<= 1.3x",
          measured: round(ratio),
          unit: "x the minimum",
          met: ratio <= 1.3
        },
        {
          name: "speed-up over the baseline, to the last success",
          target: ">= 2x",
          measured: round(speedUp),
          unit: "x",
          met: speedUp >= 2
        },
        {
          name: "machines that succeeded, of those that could",
          target: "all",
          measured: library.succeeded,
          unit: `of ${possible}`,
          met: library.succeeded === possible
        },
        ...workers.targets
      ]
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await run({ quick: process.argv.includes("--quick") })
  console.log(JSON.stringify(result, null, 2))
}
