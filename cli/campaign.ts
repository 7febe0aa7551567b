/**
 * `campaign start | resume | status`: one live response across a fleet, from the command
 * line, over `Campaign` and a `CampaignStore` folder (`--out`). `start` and `resume` print
 * the campaign id on stdout, show a live view on a terminal, a summary at the end, and exit
 * 0 only when every machine succeeded (20: some failed, timed out or were cancelled; 21:
 * some never ran). The first Ctrl-C drains (no new session; the alive ones are collected;
 * exit 130), the second interrupts (the engine cancels each alive action once; exit 130).
 */
import { Command, Options } from "@effect/cli"
import { FileSystem } from "@effect/platform"
import * as NodeStream from "@effect/platform-node/NodeStream"
import {
  Config,
  type ConfigError,
  ConfigProvider,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Option,
  type Redacted,
  Schedule,
  Stream
} from "effect"
import {
  Campaign,
  CampaignStore,
  DefenderAuth,
  DefenderClient,
  type DefenderError,
  DefenderRateLimiter,
  type MachineAction
} from "../mod.ts"
import { DefenderSimulator } from "../testing.ts"
import { simulate } from "./batch.ts"
import {
  applyUpdate,
  type Counts,
  countsOf,
  countsText,
  initialView,
  journalEvents,
  outcomeOf,
  parseMachineList,
  renderView,
  type Status,
  statusOf,
  statusText,
  type View
} from "./campaignView.ts"
import { CampaignDrained, CampaignUsage, failOn } from "./campaignErrors.ts"
import {
  campaignIdOption,
  claimExpiryOption,
  detachOption,
  type ExportParams,
  exportCommand,
  resultsOption,
  startShared,
  statusShared,
  storeOption,
  tenantsOption,
  workCommand,
  type WorkParams
} from "./campaignShared.ts"
import type { CampaignFailed, CampaignNotRun } from "./campaignErrors.ts"
import { FileError } from "./download.ts"
import { type Format, formatOption, MIN_INTERVAL_SECONDS } from "./format.ts"
import { drainOnFirstSignal, mayStillRun } from "./signals.ts"

export { CampaignDrained, CampaignFailed, CampaignNotRun, CampaignUsage } from "./campaignErrors.ts"

/** Every way a campaign command fails. */
export type CampaignCommandError =
  | CampaignUsage
  | CampaignFailed
  | CampaignNotRun
  | CampaignDrained
  | FileError
  | DefenderError
  | CampaignStore.CampaignStoreError

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/** `MDE_MACHINE_ACTION_RATE_LIMITS`: the machine-action endpoints' budget (polls, cancels, lists); default `MDE_RATE_LIMITS`'s. */
export const machineActionLimitsConfig: Config.Config<ReadonlyArray<DefenderRateLimiter.RateLimit>> = Config.string(
  "MDE_MACHINE_ACTION_RATE_LIMITS"
).pipe(
  Config.mapOrFail(DefenderRateLimiter.limitsFromText("MDE_MACHINE_ACTION_RATE_LIMITS")),
  Config.orElse(() => DefenderRateLimiter.config)
)

/** `--interval`'s floor under `--simulate` (a tenant's is `MIN_INTERVAL_SECONDS`). */
const SIMULATED_MIN_INTERVAL = Duration.millis(100)

/** The size of `--simulate`'s fleet. */
const SIMULATED_FLEET = 50

/**
 * `--simulate` for campaigns: an in-process simulator with `DefenderSimulator.fleet(50)`, its
 * static token, and quotas equal to the client's budgets (`MDE_RATE_LIMITS`,
 * `MDE_RUN_RATE_LIMITS`), so scaling the budgets scales the simulated tenant with them.
 */
export const layerSimulatedFleet: Layer.Layer<
  DefenderClient.DefenderClient | DefenderRateLimiter.DefenderRateLimiter,
  ConfigError.ConfigError
> = Layer.unwrapEffect(Effect.gen(function*() {
  const limits = yield* DefenderRateLimiter.config
  const runLimits = yield* DefenderRateLimiter.runConfig
  const machineActionLimits = yield* machineActionLimitsConfig
  const sim = yield* DefenderSimulator.make({
    machines: DefenderSimulator.fleet(SIMULATED_FLEET, { now: Date.now() }),
    rateLimits: limits,
    runLimits
  })
  return DefenderClient.layer().pipe(
    Layer.provideMerge(Layer.merge(
      DefenderAuth.layerToken(DefenderSimulator.STATIC_TOKEN),
      DefenderRateLimiter.layer({ limits, runLimits, machineActionLimits })
    )),
    Layer.provide(DefenderSimulator.layerHttpClient(sim))
  )
}))

/** A duration option's text, read as `MDE_TIMEOUT` is (`30s`, `10m`, `2h`, `"2 minutes"`). */
export const parseDuration = (flag: string, text: string): Effect.Effect<Duration.Duration, CampaignUsage> =>
  Effect.withConfigProvider(
    DefenderClient.config.timeout,
    ConfigProvider.fromMap(new Map([["MDE_TIMEOUT", text]]))
  ).pipe(Effect.mapError(() => new CampaignUsage(`--${flag} must be a duration (30s, 10m, 2h or "2 minutes"), got: ${text}`)))

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

const out = Options.directory("out").pipe(
  Options.withDescription("the campaign's folder: campaign.json, journal.jsonl, manifest.jsonl, results/")
)
const outOrStore = out.pipe(
  Options.optional,
  Options.withDescription("the campaign's folder: campaign.json, journal.jsonl, manifest.jsonl, results/ (or --store)")
)
const startOptions = {
  machines: Options.text("machines").pipe(
    Options.optional,
    Options.withDescription("a file of machine ids, one a line (blank lines and # comments ignored); - for stdin")
  ),
  query: Options.text("query").pipe(
    Options.optional,
    Options.withDescription("a Defender machines OData $filter, e.g. \"machineTags/any(t: t eq 'prod')\"")
  ),
  script: Options.text("script").pipe(Options.withDescription("a script in the live response library")),
  args: Options.text("args").pipe(Options.optional, Options.withDescription("the script's arguments")),
  getfile: Options.text("getfile").pipe(
    Options.repeated,
    Options.withDescription("a file to collect after the script (repeat for more)")
  ),
  out: outOrStore,
  store: storeOption,
  results: resultsOption,
  tenants: tenantsOption,
  claimExpiry: claimExpiryOption,
  detach: detachOption,
  maxSessions: Options.integer("max-sessions").pipe(
    Options.optional,
    Options.withDescription("the most actions alive at once, Pending ones included (default 50)")
  ),
  deadline: Options.text("deadline").pipe(
    Options.optional,
    Options.withDescription("from now until no new session may start (default 24h)")
  ),
  pendingTimeout: Options.text("pending-timeout").pipe(
    Options.optional,
    Options.withDescription("how long an action may stay Pending before it is cancelled and retried later (default 30m)")
  ),
  interval: Options.text("interval").pipe(
    Options.optional,
    Options.withDescription(`the time between two polls (default 10s, at least ${MIN_INTERVAL_SECONDS}s; 100ms with --simulate)`)
  ),
  comment: Options.text("comment").pipe(
    Options.withDefault("mde-live-response campaign"),
    Options.withDescription("each action's comment in Defender (default \"mde-live-response campaign\")")
  ),
  simulate,
  format: formatOption
}

/** `campaign start`'s parsed options. */
export interface StartParams {
  readonly machines: Option.Option<string>
  readonly query: Option.Option<string>
  readonly script: string
  readonly args: Option.Option<string>
  readonly getfile: Array<string>
  readonly out: Option.Option<string>
  readonly store: Option.Option<Redacted.Redacted>
  readonly results: string
  readonly tenants: Option.Option<string>
  readonly claimExpiry: string
  readonly detach: boolean
  readonly maxSessions: Option.Option<number>
  readonly deadline: Option.Option<string>
  readonly pendingTimeout: Option.Option<string>
  readonly interval: Option.Option<string>
  readonly comment: string
  readonly simulate: boolean
  readonly format: Format
}

// ---------------------------------------------------------------------------
// Targets and the definition
// ---------------------------------------------------------------------------

const readStdin: Effect.Effect<string, FileError> = NodeStream.stdin.pipe(
  Stream.decodeText(),
  Stream.mkString,
  Effect.mapError((e) => new FileError(`cannot read stdin: ${String(e)}`))
)

/** The machine ids of `--machines <file|->`. */
const readMachines = (
  source: string
): Effect.Effect<Array<string>, FileError | CampaignUsage, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = source === "-"
      ? yield* readStdin
      : yield* fs.readFileString(source).pipe(
        Effect.mapError((e) => new FileError(`cannot read --machines ${source}: ${e.message}`))
      )
    const ids = parseMachineList(text)
    if (ids.length === 0) {
      return yield* Effect.fail(new CampaignUsage(`--machines ${source} holds no machine id (one a line; # starts a comment)`))
    }
    return ids
  })

const targetsOf = (
  params: StartParams
): Effect.Effect<CampaignStore.Targets, FileError | CampaignUsage, FileSystem.FileSystem> => {
  if (Option.isSome(params.machines) === Option.isSome(params.query)) {
    return Effect.fail(new CampaignUsage("give exactly one of --machines <file|-> and --query \"<OData filter>\""))
  }
  if (Option.isSome(params.query)) {
    const filter = params.query.value.trim()
    return filter === ""
      ? Effect.fail(new CampaignUsage("--query is empty: give an OData $filter"))
      : Effect.succeed({ _tag: "Query", filter })
  }
  return Effect.map(readMachines(Option.getOrThrow(params.machines)), (machineIds) => ({ _tag: "Machines", machineIds }))
}

const optionalDuration = (flag: string, text: Option.Option<string>) =>
  Option.match(text, {
    onNone: () => Effect.succeed(undefined),
    onSome: (t) => parseDuration(flag, t)
  })

/** The engine's definition from `campaign start`'s options; `local` when the API is on this machine (`--simulate`'s interval floor). */
export const definitionOf = (
  params: StartParams,
  local: boolean = params.simulate
): Effect.Effect<Campaign.Definition, FileError | CampaignUsage, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const targets = yield* targetsOf(params)
    const maxSessions = Option.getOrUndefined(params.maxSessions)
    if (maxSessions !== undefined && maxSessions < 1) {
      return yield* Effect.fail(new CampaignUsage(`--max-sessions must be at least 1, got: ${maxSessions}`))
    }
    const commands: Array<MachineAction.Command> = [
      { type: "RunScript", scriptName: params.script, args: Option.getOrUndefined(params.args) },
      ...params.getfile.map((path): MachineAction.Command => ({ type: "GetFile", path }))
    ]
    const deadline = yield* optionalDuration("deadline", params.deadline)
    const pendingTimeout = yield* optionalDuration("pending-timeout", params.pendingTimeout)
    const interval = yield* optionalDuration("interval", params.interval)
    // The simulated fleet has no tenant's quota to spare: its tests poll faster.
    const floor = local ? SIMULATED_MIN_INTERVAL : Duration.seconds(MIN_INTERVAL_SECONDS)
    if (interval !== undefined && Duration.lessThan(interval, floor)) {
      return yield* Effect.fail(
        new CampaignUsage(
          `--interval must be at least ${Duration.format(floor)}${
            params.simulate ? " with --simulate" : local ? " against a local API" : " (each poll spends the machine actions quota: 100/min, 1500/h)"
          }, got: ${Option.getOrThrow(params.interval)}`
        )
      )
    }
    return {
      commands,
      comment: params.comment,
      targets,
      ...(maxSessions === undefined ? {} : { maxSessions }),
      ...(deadline === undefined ? {} : { deadline }),
      ...(pendingTimeout === undefined ? {} : { pendingTimeout }),
      ...(interval === undefined ? {} : { interval })
    }
  })

// ---------------------------------------------------------------------------
// Driving a run: stdout, the live view, the signals, the exit
// ---------------------------------------------------------------------------

/** Erases the `shown` lines of the live view (the cursor is at the end of its last line). */
const erase = (shown: number): string => (shown === 0 ? "" : `\r${shown > 1 ? `\x1b[${shown - 1}A` : ""}\x1b[J`)

type Updates = Stream.Stream<
  Campaign.Update,
  DefenderError | CampaignStore.CampaignStoreError,
  DefenderClient.DefenderClient | CampaignStore.CampaignStore | FileSystem.FileSystem
>

/** Runs `updates` to its end: the id on stdout, the view, the drain on the first Ctrl-C, then the summary and the exit. */
const drive = (
  folder: string,
  format: Format,
  updates: (options: Campaign.RunOptions) => Updates
): Effect.Effect<
  void,
  CampaignCommandError,
  DefenderClient.DefenderClient | CampaignStore.CampaignStore | FileSystem.FileSystem
> =>
  Effect.gen(function*() {
    const drainRequested = yield* Deferred.make<void>()
    const tty = process.stderr.isTTY === true
    let view: View = initialView
    let shown = 0
    let drained = false
    const draw = () => {
      if (!tty || view.campaignId === undefined) return
      const columns = process.stderr.columns
      const width = columns !== undefined && columns > 0 ? Math.max(20, columns - 1) : 79
      const lines = renderView(view, Date.now()).map((l) => l.slice(0, width))
      process.stderr.write(erase(shown) + lines.join("\n"))
      shown = lines.length
    }
    const say = (line: string) => {
      process.stderr.write(`${erase(shown)}${line}\n`)
      shown = 0
      draw()
    }
    const resumeHint = `\`campaign resume --out ${folder}\` finishes the rest`
    const unregister = drainOnFirstSignal(() => {
      drained = true
      say(
        `draining (SIGINT): no new session starts; the ${view.alive} alive are still collected; ${resumeHint}; interrupt again to cancel the alive actions`
      )
      Deferred.unsafeDone(drainRequested, Exit.void)
    })
    const ticker = tty ? yield* Effect.fork(Effect.repeat(Effect.sync(draw), Schedule.spaced("1 second"))) : undefined
    yield* updates({ drain: Deferred.await(drainRequested) }).pipe(
      Stream.runForEach((update) =>
        Effect.sync(() => {
          if (update._tag === "Started") {
            process.stdout.write(
              format === "json" ? `${JSON.stringify({ campaignId: update.campaignId, folder })}\n` : `${update.campaignId}\n`
            )
          }
          view = applyUpdate(view, update, Date.now())
          if (update._tag === "Progress") {
            mayStillRun(update.alive > 0 ? `${update.alive} alive machine action(s) of ${view.campaignId}` : undefined)
          }
          draw()
        })
      ),
      Effect.onInterrupt(() =>
        Effect.sync(() => say(`interrupted: each alive machine action was cancelled once; ${resumeHint}`))
      ),
      Effect.ensuring(Effect.suspend(() => {
        unregister()
        mayStillRun(undefined)
        return Effect.zipRight(
          ticker === undefined ? Effect.void : Fiber.interrupt(ticker),
          Effect.sync(() => {
            process.stderr.write(erase(shown))
            shown = 0
          })
        )
      }))
    )
    const counts: Counts = view.summary ?? (yield* Campaign.summary)
    process.stderr.write(`${counts.campaignId}: ${countsText(counts)}; ${folder}/manifest.jsonl\n`)
    if (format === "json") process.stdout.write(`${JSON.stringify({ ...counts, manifest: `${folder}/manifest.jsonl` })}\n`)
    if (view.summary === undefined && drained) {
      process.stderr.write(`drained: ${resumeHint}\n`)
      return yield* Effect.fail(new CampaignDrained())
    }
    yield* failOn(outcomeOf(counts, folder))
  })

/** Refuses a folder that already holds a campaign. */
const refuseExisting = (folder: string): Effect.Effect<void, CampaignUsage | CampaignStore.CampaignStoreError, CampaignStore.CampaignStore> =>
  Effect.gen(function*() {
    const store = yield* CampaignStore.CampaignStore
    const existing = yield* store.open.pipe(
      Effect.map(Option.some),
      Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed(Option.none()))
    )
    if (Option.isSome(existing)) {
      return yield* Effect.fail(
        new CampaignUsage(
          `${folder} already holds campaign ${existing.value.definition.campaignId}: \`campaign resume --out ${folder}\` continues it (or give another --out)`
        )
      )
    }
  })

// ---------------------------------------------------------------------------
// The commands
// ---------------------------------------------------------------------------

type Services = DefenderClient.DefenderClient | CampaignStore.CampaignStore | FileSystem.FileSystem

/** `campaign start` on a folder (`--out`). */
const startFolder = (params: StartParams, folder: string): Effect.Effect<void, CampaignCommandError, Services> =>
  Effect.gen(function*() {
    const definition = yield* definitionOf(params)
    yield* refuseExisting(folder)
    yield* drive(folder, params.format, (options) => Campaign.start(definition, options))
  })

/** The options only the shared store reads, given without `--store`. */
const storeOnly = (params: StartParams): string | undefined =>
  params.detach ? "--detach" : Option.isSome(params.tenants) ? "--tenants" : undefined

/** `campaign start`: on a folder (`--out`) or in a shared store (`--store`, see campaignShared.ts). */
const startCommand = <E>(
  client: (simulate: boolean) => Layer.Layer<DefenderClient.DefenderClient, E>
): Command.Command<"start", FileSystem.FileSystem, CampaignCommandError | E, StartParams> =>
  Command.make("start", startOptions, (params) => {
    if (Option.isSome(params.store)) {
      if (Option.isSome(params.out)) return Effect.fail(new CampaignUsage("give --out <folder> or --store <postgres-url>, not both"))
      const shared = { ...params, store: params.store.value }
      return startShared(shared, (local) => definitionOf(params, params.simulate || local), client(params.simulate))
    }
    const only = storeOnly(params)
    if (only !== undefined) return Effect.fail(new CampaignUsage(`${only} is for a campaign in a shared store: add --store <postgres-url>`))
    if (Option.isNone(params.out)) {
      return Effect.fail(new CampaignUsage("give --out <folder> (a campaign of this process) or --store <postgres-url> (shared by workers)"))
    }
    const folder = params.out.value
    return startFolder(params, folder).pipe(
      Effect.provide(Layer.merge(client(params.simulate), CampaignStore.layerFolder(folder)))
    )
  }).pipe(Command.withDescription("define a campaign in --out (or --store) and run it on every target"))

const resumeCommand: Command.Command<
  "resume",
  Services,
  CampaignCommandError,
  { readonly out: string; readonly simulate: boolean; readonly format: Format }
> = Command.make(
  "resume",
  { out, simulate, format: formatOption },
  (params) => drive(params.out, params.format, (options) => Campaign.resume(options))
).pipe(Command.withDescription("continue the campaign in --out (after a Ctrl-C, a crash or a kill)"))

/**
 * The status of a folder another process holds (the store is `Locked`): its journal read as
 * it stands, never written — the store's own rules replayed over its whole lines.
 */
const statusWhileRunning = (
  folder: string
): Effect.Effect<Status, CampaignStore.CampaignStoreError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = `${folder}/journal.jsonl`
    const corrupt = (detail: string) => new CampaignStore.CampaignStoreError({ reason: "Corrupt", path, detail })
    const text = yield* fs.readFileString(path).pipe(
      Effect.mapError((e) => new CampaignStore.CampaignStoreError({ reason: "FileSystem", path, detail: e.message }))
    )
    const events = yield* Effect.try({ try: () => journalEvents(text), catch: () => corrupt("a journal line is not JSON") })
    const state = yield* Either.match(CampaignStore.replay(events), { onLeft: Effect.fail, onRight: Effect.succeed })
    return statusOf(folder, countsOf(state), state, true)
  })

/** The status of the folder campaign in `folder`. */
const statusFolder = (
  folder: string,
  format: Format
): Effect.Effect<void, CampaignStore.CampaignStoreError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const definitionFile = `${folder}/campaign.json`
    if (!(yield* fs.exists(definitionFile).pipe(Effect.orElseSucceed(() => false)))) {
      // Checked first: opening the store would create the folder.
      return yield* Effect.fail(
        new CampaignStore.CampaignStoreError({ reason: "NotFound", path: definitionFile, detail: "no campaign.json" })
      )
    }
    const status = yield* Effect.gen(function*() {
      const store = yield* CampaignStore.CampaignStore
      const campaign = yield* store.open
      return statusOf(folder, yield* Campaign.summary, campaign.state)
    }).pipe(
      Effect.provide(CampaignStore.layerFolder(folder)),
      Effect.catchIf((e) => e.reason === "Locked", () => statusWhileRunning(folder))
    )
    process.stdout.write(format === "json" ? `${JSON.stringify(status)}\n` : statusText(status).map((l) => `${l}\n`).join(""))
  })

/** `campaign status`'s options. */
export interface StatusParams {
  readonly out: Option.Option<string>
  readonly store: Option.Option<Redacted.Redacted>
  readonly campaign: Option.Option<string>
  readonly format: Format
}

const statusCommand: Command.Command<"status", FileSystem.FileSystem, CampaignCommandError, StatusParams> = Command.make(
  "status",
  { out: outOrStore, store: storeOption, campaign: campaignIdOption.pipe(Options.optional), format: formatOption },
  (params) => {
    if (Option.isSome(params.store)) {
      return Option.isSome(params.out)
        ? Effect.fail(new CampaignUsage("give --out <folder> or --store <postgres-url>, not both"))
        : statusShared(params.store.value, params.campaign, params.format)
    }
    return Option.match(params.out, {
      onNone: () => Effect.fail(new CampaignUsage("give --out <folder>, or --store <postgres-url> and --campaign <id>")),
      onSome: (folder) => statusFolder(folder, params.format)
    })
  }
).pipe(Command.withDescription("what a campaign has done: --out (reads only the folder; works while it runs) or --store --campaign"))

/**
 * The `campaign` command and its subcommands, each given its layers: `client(simulate)`
 * for the API (the CLI's configured stack, or `layerSimulatedFleet`), and the folder store on
 * `--out` (or the shared store of `--store`: campaignShared.ts).
 */
export const campaign = <E>(
  client: (simulate: boolean) => Layer.Layer<DefenderClient.DefenderClient, E>
): Command.Command<
  "campaign",
  FileSystem.FileSystem,
  CampaignCommandError | E,
  {
    readonly subcommand: Option.Option<
      | StartParams
      | { readonly out: string; readonly simulate: boolean; readonly format: Format }
      | StatusParams
      | WorkParams
      | ExportParams
    >
  }
> =>
  Command.make("campaign").pipe(
    Command.withDescription("one live response across a fleet: start, resume, status; shared by workers: work, export"),
    Command.withSubcommands([
      startCommand(client),
      Command.provide(resumeCommand, (p) => Layer.merge(client(p.simulate), CampaignStore.layerFolder(p.out))),
      statusCommand,
      workCommand(client(false)),
      exportCommand
    ])
  )
