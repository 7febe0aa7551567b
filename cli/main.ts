/**
 * The command-line face of the library: `npm run --silent cli -- <command>`.
 * Configured by the environment (see README.md); every failure is one line on
 * stderr and a distinct exit code.
 */
import { Command, Options, ValidationError } from "@effect/cli"
import { FetchHttpClient, FileSystem } from "@effect/platform"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, ConfigError, Console, Effect, Exit, Layer, Option, Redacted, Stream } from "effect"
import { DefenderAuth, DefenderClient, type DefenderError, DefenderRateLimiter, LiveResponse } from "../mod.ts"
import { batch, type OutputError, simulate } from "./batch.ts"
import { demo, layerSimulated } from "./demo.ts"
import { run as runCommand } from "./run.ts"

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
  Unexpected: 1
} as const

class FileError {
  readonly _tag = "FileError"
  constructor(readonly message: string) {}
}

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

const download = Command.make(
  "download",
  { ...ref, out: Options.file("out").pipe(Options.withDescription("the file to write")) },
  ({ action, index, out }) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      // Written next to the target and renamed when complete, so `out` is never half a file.
      const partial = `${out}.partial`
      const fileError = (e: { readonly message: string }) => new FileError(e.message)
      const written = yield* Effect.scoped(
        Effect.gen(function*() {
          const file = yield* fs.open(partial, { flag: "w" }).pipe(Effect.mapError(fileError))
          return yield* LiveResponse.downloadResult({ machineActionId: action, index }).pipe(
            Stream.runFoldEffect(0, (n, chunk) =>
              file.writeAll(chunk).pipe(Effect.mapError(fileError), Effect.as(n + chunk.length)))
          )
        })
      ).pipe(Effect.onError(() => fs.remove(partial).pipe(Effect.ignore)))
      yield* fs.rename(partial, out).pipe(Effect.mapError(fileError))
      yield* Console.error(`wrote ${written} bytes to ${out}`)
    })
).pipe(Command.withDescription("stream a command's raw result (e.g. a GetFile file) to a file"))

// Provided per command, so `--help` and usage errors need no configuration. The same
// stack as `LiveResponse.layerConfig()`, with the rate limiter also exposed (batch's
// progress line shows how many callers wait for quota); one limiter, one budget.
const Live = DefenderClient.layerConfig().pipe(
  Layer.provide(DefenderAuth.layerConfig()),
  Layer.provideMerge(DefenderRateLimiter.layerConfig()),
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
    Command.provide(transcript, stack),
    Command.provide(link, stack),
    Command.provide(download, stack),
    Command.provide(batch, stack),
    Command.provide(runCommand, stack)
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
  Effect.catchAll((error: DefenderError | FileError | OutputError | ConfigError.ConfigError | ValidationError.ValidationError) => {
    if (ValidationError.isValidationError(error)) {
      // @effect/cli has already printed the usage problem.
      return Effect.sync(() => {
        exitCode = EXIT_CODES.Usage
      })
    }
    if (ConfigError.isConfigError(error)) {
      return fail(EXIT_CODES.Config, `configuration: ${String(error)}`)
    }
    return fail(EXIT_CODES[error._tag], `${error._tag}: ${error.message}`)
  }),
  Effect.catchAllCause((cause) =>
    Cause.isInterruptedOnly(cause)
      ? Effect.sync(() => {
        exitCode = 130
      })
      : fail(EXIT_CODES.Unexpected, `unexpected failure: ${Option.getOrElse(Cause.failureOption(cause), () => Cause.pretty(cause).split("\n")[0])}`)
  ),
  Effect.provide(NodeContext.layer)
)

NodeRuntime.runMain(main, {
  disableErrorReporting: true,
  // Ctrl-C interrupts the main fiber itself (after its finalizers, e.g. a session's cancel, ran).
  teardown: (exit, onExit) => onExit(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause) ? 130 : exitCode)
})
