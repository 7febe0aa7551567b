/**
 * The command-line face of the library: `mde-live-response <command>` (from a checkout,
 * `npm run --silent cli -- <command>`). Configured by the environment (see README.md);
 * every failure is one line on stderr (`--format json`: one JSON line) and a distinct exit code.
 */
import { Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import { FetchHttpClient } from "@effect/platform"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Cause, ConfigError, Console, Effect, Exit, Layer, Logger, Option, Redacted } from "effect"
import { type CampaignStore, DefenderAuth, DefenderClient, type DefenderError, DefenderRateLimiter, LiveResponse } from "../mod.ts"
import { batch, type OutputError, simulate } from "./batch.ts"
import { campaign, type CampaignCommandError, layerSimulatedFleet, machineActionLimitsConfig } from "./campaign.ts"
import { demo, layerSimulated } from "./demo.ts"
import { doctor } from "./doctor.ts"
import { download, FileError } from "./download.ts"
import { cliConsole, colorEnabled, errorLine, type Format, formatOption, stripColor } from "./format.ts"
import * as Help from "./help.ts"
import { machineActionId } from "./ids.ts"
import { run as runCommand } from "./run.ts"
import { simulator } from "./simulator.ts"
import { installSignalHandlers, interruptedExitCode, runMain, stdoutClosed, watchStdout } from "./signals.ts"

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

const action = Options.text("action").pipe(Options.withDescription("the machine action id (a GUID)"))
const index = Options.integer("index").pipe(
  Options.withDefault(0),
  Options.withDescription("the command's index in the machine action (default 0)")
)
const ref = { action, index, simulate }

const transcript = Command.make(
  "transcript",
  { ...ref, format: formatOption },
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

const link = Command.make("link", { ...ref, format: formatOption }, ({ action, format, index }) =>
  Effect.gen(function*() {
    const result = yield* LiveResponse.getResultLink({ machineActionId: action, index })
    // Printing the link is what this command is for; it is never logged.
    const url = Redacted.value(result.url)
    yield* Console.log(format === "json" ? JSON.stringify({ url }) : url)
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

/** `--action` must be a GUID: checked before the command's layers are built, so nothing is configured or sent. */
const checkAction = <Name extends string, R, E, A extends { readonly action: string }>(
  command: Command.Command<Name, R, E, A>
) => Command.transformHandler(command, (effect, { action }) => Effect.zipRight(machineActionId(action), effect))

const demoCommand = Command.make("demo", {}, () => demo).pipe(
  Command.withDescription("start a simulated Defender tenant on 127.0.0.1 and run the library against it (npm start)")
)

const plainConsole = Effect.runSync(Effect.console)

const root = Command.make(Help.BIN).pipe(
  Command.withDescription("Microsoft Defender for Endpoint live response results"),
  Command.withSubcommands([
    demoCommand,
    doctor,
    checkAction(Command.provide(transcript, stack)),
    checkAction(Command.provide(link, stack)),
    checkAction(Command.provide(download, stack)),
    Command.provide(batch, stack),
    Command.provide(runCommand, stack),
    campaign((simulate) => (simulate ? layerSimulatedFleet : Live)),
    simulator
  ]),
  // @effect/cli's own messages go through cliConsole (see `main`); the commands print through the plain one.
  Command.transformHandler((effect) => Effect.withConsole(effect, plainConsole))
)

const VERSION = "0.1.0"

const run = Command.run(root, { name: Help.BIN, version: VERSION })

/** Outputs fixed by the command: `--format` may name them, not change them. */
const FIXED_FORMAT: Readonly<Record<string, Format>> = { batch: "json", demo: "text" }

const tree = Help.describe(root as unknown as Command.Command<string, never, unknown, unknown>)
const prepared = Help.prepare(tree, process.argv.slice(2))
const format: Format = prepared.format === "json" ? "json" : "text"
/** Exit code of a closed stdout: batch's documented 12, else 141 (128 + SIGPIPE, as a shell reports `yes | head`). */
const pipeExitCode = prepared.path[0] === "batch" ? EXIT_CODES.OutputError : 141

let exitCode = 0
/** Whether @effect/cli has printed a usage error itself (in text; cliConsole drops it under json). */
let cliPrinted = false

/** One failure's line on stderr (`error: Tag: message`, or JSON); `label` replaces the tag in text. */
const fail = (code: number, tag: string, message: string, label: string = tag) =>
  Effect.sync(() => {
    exitCode = code
    const line = errorLine(format, tag, message, code)
    process.stderr.write(format === "json" ? line : line.replace(`error: ${tag}:`, `error: ${label}:`))
  })

/** What the command line asks for before @effect/cli parses it: help, completion, or a fixed --format checked. */
const preflight: Effect.Effect<boolean, ValidationError.ValidationError> = Effect.suspend(() => {
  if (prepared.help) {
    process.stdout.write(
      Help.render(tree, prepared.path, { version: VERSION, exitCodes: EXIT_CODES, examples: Help.EXAMPLES, environment: Help.ENVIRONMENT })
    )
    return Effect.succeed(true)
  }
  if (prepared.version) {
    // @effect/cli's own answer ends with an empty line; a version is one line.
    process.stdout.write(`${VERSION}\n`)
    return Effect.succeed(true)
  }
  if (prepared.completions !== undefined) {
    const shell = prepared.completions
    const script = shell === "bash" || shell === "sh"
      ? Effect.map(Command.getBashCompletions(root, Help.BIN), (lines) => Help.fixBashCompletion(lines.join("\n")))
      : shell === "zsh"
      ? Effect.map(Command.getZshCompletions(root, Help.BIN), (lines) => lines.join("\n"))
      : shell === "fish"
      ? Effect.map(Command.getFishCompletions(root, Help.BIN), (lines) => lines.join("\n"))
      : undefined
    if (script === undefined) {
      return Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--completions must be bash, zsh or fish, got: ${shell}`)))
    }
    return Effect.as(Effect.flatMap(script, (text) => Effect.sync(() => process.stdout.write(`${text}\n`))), true)
  }
  if (prepared.consumedFormat && prepared.format !== "json" && prepared.format !== "text") {
    return Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--format must be json or text, got: ${prepared.format ?? ""}`)))
  }
  const fixed = FIXED_FORMAT[prepared.path[0] ?? ""]
  if (prepared.consumedFormat && fixed !== undefined && prepared.format !== fixed) {
    return Effect.fail(ValidationError.invalidValue(HelpDoc.p(
      `${prepared.path[0]} prints ${fixed} only: --format ${fixed}, or no --format`
    )))
  }
  return Effect.succeed(false)
})

const main = preflight.pipe(
  Effect.flatMap((done) => (done ? Effect.void : run([...process.argv.slice(0, 2), ...prepared.args]))),
  Effect.withConsole(Effect.runSync(cliConsole(format, () => {
    cliPrinted = true
  }))),
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
      // In text, @effect/cli has already printed the usage problem (cliConsole drops it under json).
      const text = stripColor(HelpDoc.toAnsiText(error.error))
      return format === "json" || !cliPrinted
        ? fail(EXIT_CODES.Usage, "Usage", text)
        : Effect.sync(() => {
          exitCode = EXIT_CODES.Usage
        })
    }
    if (ConfigError.isConfigError(error)) {
      return fail(EXIT_CODES.Config, "Config", `${String(error)}${ConfigError.isMissingDataOnly(error) ? ", or add --simulate to try the built-in simulator" : ""}`, "configuration")
    }
    if (error._tag === "OutputError" && stdoutClosed()) {
      // The reader went away (`| head`): nothing to say, the exit code tells it.
      return Effect.sync(() => {
        exitCode = pipeExitCode
      })
    }
    if (error._tag === "CampaignDrained") {
      // stderr has said what is left; the exit is the signal's.
      return Effect.sync(() => {
        exitCode = interruptedExitCode()
      })
    }
    if (error._tag === "CampaignStoreError") return fail(storeExitCode(error), error._tag, error.message)
    return fail(EXIT_CODES[error._tag], error._tag, error.message)
  }),
  Effect.catchAllCause((cause) =>
    Cause.isInterruptedOnly(cause)
      ? Effect.sync(() => {
        exitCode = interruptedExitCode()
      })
      : fail(
        EXIT_CODES.Unexpected,
        "Unexpected",
        String(Option.getOrElse(Cause.failureOption(cause), () => Cause.pretty(cause).split("\n")[0])),
        "unexpected failure"
      )
  ),
  // Logs go to stderr (stdout is the command's output), coloured only where colorEnabled says.
  Effect.provide(Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ colors: colorEnabled(process.stderr), stderr: true }))),
  Effect.provide(NodeContext.layer)
)

installSignalHandlers()
watchStdout(pipeExitCode)

runMain(main, {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  // Ctrl-C or SIGTERM interrupts the main fiber itself (after its finalizers, e.g. a session's cancel, ran).
  // A closed stdout ends with pipeExitCode unless something else failed first.
  teardown: (exit, onExit) =>
    onExit(
      Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)
        ? interruptedExitCode()
        : stdoutClosed() && exitCode === 0
        ? pipeExitCode
        : exitCode
    )
})
