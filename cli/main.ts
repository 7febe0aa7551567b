/**
 * The command-line face of the library: `npm run --silent cli -- <command>`.
 * Configured by the environment (see README.md); every failure is one line on
 * stderr and a distinct exit code.
 */
import { Command, Options, ValidationError } from "@effect/cli"
import { FetchHttpClient } from "@effect/platform"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Cause, ConfigError, Console, Effect, Exit, Layer, Option, Redacted } from "effect"
import { type CampaignStore, DefenderAuth, DefenderClient, type DefenderError, DefenderRateLimiter, LiveResponse } from "../mod.ts"
import { batch, type OutputError, simulate } from "./batch.ts"
import { campaign, type CampaignCommandError, layerSimulatedFleet, machineActionLimitsConfig } from "./campaign.ts"
import { demo, layerSimulated } from "./demo.ts"
import { doctor } from "./doctor.ts"
import { download, FileError } from "./download.ts"
import { run as runCommand } from "./run.ts"
import { simulator } from "./simulator.ts"
import { installSignalHandlers, interruptedExitCode, runMain } from "./signals.ts"

/** One exit code per kind of failure; the README's error table lists them. */
export const EXIT_CODES = {
  Usage: 2,
  Config: 3,
  AuthenticationError: 4,
  PermissionDenied: 5,
  NotFound: 6,
  Throttled: 7,
  DownloadRefused: 8,
  ResultLinkError: 9,
  TranscriptDecodeError: 10,
  HttpError: 11,
  InvalidArgument: 2,
  FileError: 12,
  OutputError: 12,
  ActiveSessionExists: 13,
  MachineActionFailed: 14,
  DeadlineExceeded: 15,
  FileDownloadError: 12,
  RateLimiterUnavailable: 16,
  CampaignUsage: 2,
  CampaignStoreError: 12,
  CampaignFailed: 20,
  CampaignNotRun: 21,
  CampaignDrained: 130,
  Unexpected: 1
} as const

/** A campaign store's failure: 2 for a wrong folder (none there to resume, or a bad definition), 12 for the folder itself. */
const storeExitCode = (error: CampaignStore.CampaignStoreError): number =>
  error.reason === "NotFound" || error.reason === "AlreadyExists" || error.reason === "InvalidDefinition"
    ? EXIT_CODES.Usage
    : error.reason === "InvalidEvent"
    ? EXIT_CODES.Unexpected
    : EXIT_CODES.CampaignStoreError

const action = Options.text("action").pipe(Options.withDescription("the machine action id"))
const index = Options.integer("index").pipe(
  Options.withDefault(0),
  Options.withDescription("the command's index in the machine action (default 0)")
)
const ref = { action, index, simulate }

const transcript = Command.make(
  "transcript",
  { ...ref, format: Options.choice("format", ["json", "text"]).pipe(Options.withDefault("text")) },
  ({ action, format, index }) =>
    Effect.gen(function*() {
      const t = yield* LiveResponse.getTranscript({ machineActionId: action, index })
      if (format === "json") {
        yield* Console.log(
          JSON.stringify({ scriptName: t.scriptName, exitCode: t.exitCode, output: t.output, error: t.error })
        )
        return
      }
      yield* Console.log(`# ${t.scriptName} exited with ${t.exitCode}`)
      if (t.output !== "") yield* Effect.sync(() => process.stdout.write(t.output.endsWith("\n") ? t.output : `${t.output}\n`))
      if (t.error !== "") {
        yield* Console.log("# script error output:")
        yield* Effect.sync(() => process.stdout.write(t.error.endsWith("\n") ? t.error : `${t.error}\n`))
      }
    })
).pipe(Command.withDescription("download and decode a RunScript command's transcript"))

const link = Command.make("link", ref, ({ action, index }) =>
  Effect.gen(function*() {
    const result = yield* LiveResponse.getResultLink({ machineActionId: action, index })
    // Printing the link is what this command is for; it is never logged.
    yield* Console.log(Redacted.value(result.url))
  })).pipe(Command.withDescription("print a command's 30-minute download link"))

// Provided per command, so `--help` and usage errors need no configuration. The same
// stack as `LiveResponse.layerConfig()`, with the rate limiter also exposed (batch's
// progress line shows how many callers wait for quota); one limiter, one budget.
const Live = DefenderClient.layerConfig().pipe(
  Layer.provide(DefenderAuth.layerConfig()),
  Layer.provideMerge(DefenderRateLimiter.layerConfig({ machineActionLimits: machineActionLimitsConfig })),
  Layer.provide(FetchHttpClient.layer)
)

// `--simulate` swaps the configured tenant for an in-process simulator.
const stack = (args: { readonly simulate: boolean }) => (args.simulate ? layerSimulated : Live)

const demoCommand = Command.make("demo", {}, () => demo).pipe(
  Command.withDescription("start a simulated Defender tenant on 127.0.0.1 and run the library against it (npm start)")
)

const root = Command.make("mde-live-response").pipe(
  Command.withDescription("Microsoft Defender for Endpoint live response results"),
  Command.withSubcommands([
    demoCommand,
    doctor,
    Command.provide(transcript, stack),
    Command.provide(link, stack),
    Command.provide(download, stack),
    Command.provide(batch, stack),
    Command.provide(runCommand, stack),
    campaign((simulate) => (simulate ? layerSimulatedFleet : Live)),
    simulator
  ])
)

const run = Command.run(root, { name: "mde-live-response", version: "0.1.0" })

let exitCode = 0

const fail = (code: number, line: string) =>
  Effect.sync(() => {
    exitCode = code
    process.stderr.write(`error: ${line.replace(/\s+/g, " ").trim()}\n`)
  })

const main = run(process.argv).pipe(
  Effect.catchAll((
    error:
      | DefenderError
      | FileError
      | OutputError
      | CampaignCommandError
      | ConfigError.ConfigError
      | ValidationError.ValidationError
  ) => {
    if (ValidationError.isValidationError(error)) {
      // @effect/cli has already printed the usage problem.
      return Effect.sync(() => {
        exitCode = EXIT_CODES.Usage
      })
    }
    if (ConfigError.isConfigError(error)) {
      return fail(EXIT_CODES.Config, `configuration: ${String(error)}`)
    }
    if (error._tag === "CampaignDrained") {
      // stderr has said what is left; the exit is the signal's.
      return Effect.sync(() => {
        exitCode = interruptedExitCode()
      })
    }
    if (error._tag === "CampaignStoreError") return fail(storeExitCode(error), `${error._tag}: ${error.message}`)
    return fail(EXIT_CODES[error._tag], `${error._tag}: ${error.message}`)
  }),
  Effect.catchAllCause((cause) =>
    Cause.isInterruptedOnly(cause)
      ? Effect.sync(() => {
        exitCode = interruptedExitCode()
      })
      : fail(EXIT_CODES.Unexpected, `unexpected failure: ${Option.getOrElse(Cause.failureOption(cause), () => Cause.pretty(cause).split("\n")[0])}`)
  ),
  Effect.provide(NodeContext.layer)
)

installSignalHandlers()

runMain(main, {
  disableErrorReporting: true,
  // Ctrl-C or SIGTERM interrupts the main fiber itself (after its finalizers, e.g. a session's cancel, ran).
  teardown: (exit, onExit) =>
    onExit(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause) ? interruptedExitCode() : exitCode)
})
