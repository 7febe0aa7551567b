/**
 * `run`: a whole live response session from the command line — start it, wait
 * (a status line on a terminal), print every result, save GetFile results —
 * and Ctrl-C cancels the action on the service before exiting.
 */
import { Command, Options } from "@effect/cli"
import { FileSystem } from "@effect/platform"
import { Clock, Console, Duration, Effect, Fiber, Option, Schedule } from "effect"
import { type DefenderClient, type DefenderError, type DefenderRateLimiter, LiveResponse, type MachineAction } from "../mod.ts"
import { simulate } from "./batch.ts"
import { formatOption as format, MIN_INTERVAL_SECONDS } from "./format.ts"
import { mayStillRun } from "./signals.ts"

const machine = Options.text("machine").pipe(Options.withDescription("the machine (device) id"))
const script = Options.text("script").pipe(Options.withDescription("a script in the live response library"))
const args = Options.text("args").pipe(Options.optional, Options.withDescription("the script's arguments"))
const getfile = Options.text("getfile").pipe(Options.optional, Options.withDescription("a file to collect after the script"))
const out = Options.directory("out").pipe(
  Options.withDefault("."),
  // A folder: GetFile results are files of their own, so there is no stdout form (download --out - is one).
  Options.filterMap(
    (dir) => (dir === "-" ? Option.none() : Option.some(dir)),
    "--out is the folder GetFile results are saved in, so it cannot be - (stdout): use download --out - for one result"
  ),
  Options.withDescription("where GetFile results are saved (default: the current folder)")
)
const interval = Options.integer("interval").pipe(
  Options.withDefault(10),
  Options.filterMap(
    (n) => (n >= MIN_INTERVAL_SECONDS ? Option.some(n) : Option.none()),
    `--interval must be at least ${MIN_INTERVAL_SECONDS} second (each poll spends the Get machine action quota: 100/min, 1500/h)`
  ),
  Options.withDescription(`seconds between two status polls (default 10, at least ${MIN_INTERVAL_SECONDS})`)
)
const comment = Options.text("comment").pipe(
  Options.withDefault("mde-live-response run"),
  Options.withDescription("the action's comment in Defender (default \"mde-live-response run\")")
)

/** The file name of a Windows or POSIX path ("." and ".." name no file: "result.bin" instead). */
const baseName = (path: string): string => {
  const name = path.split(/[\\/]/).filter((p) => p !== "").pop()
  return name === undefined || name === "." || name === ".." ? "result.bin" : name
}

/** The run command's parsed options. */
interface RunParams {
  readonly machine: string
  readonly script: string
  readonly args: Option.Option<string>
  readonly getfile: Option.Option<string>
  readonly out: string
  readonly format: "json" | "text"
  readonly interval: number
  readonly comment: string
}

const session = (params: RunParams) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const commands: Array<MachineAction.Command> = [
      { type: "RunScript", scriptName: params.script, args: Option.getOrUndefined(params.args) }
    ]
    if (Option.isSome(params.getfile)) commands.push({ type: "GetFile", path: params.getfile.value })
    // On a terminal, one status line while starting and waiting.
    const since = yield* Clock.currentTimeMillis
    let actionId = "the session"
    const status = process.stderr.isTTY
      ? yield* Effect.fork(
        Effect.repeat(
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.sync(() =>
              process.stderr.write(`\r\x1b[2Kwaiting for ${actionId}: ${Math.round((now - since) / 1000)} s`)
            )),
          Schedule.spaced("1 second")
        )
      )
      : undefined
    const every = Duration.seconds(params.interval)
    let cancelled = false
    const action = yield* LiveResponse.runAndAwait(
      { machineId: params.machine, commands, comment: params.comment },
      {
        firstDelay: every,
        interval: every,
        onStarted: (started) =>
          Effect.zipRight(
            Effect.sync(() => {
              actionId = started.id
              mayStillRun(`machine action ${started.id} on ${params.machine}`)
            }),
            Console.error(`${status === undefined ? "" : "\r\x1b[2K"}started machine action ${started.id} on ${params.machine}`)
          )
      }
    ).pipe(
      // Ended, or cancelled: a second signal has nothing left to wait for on the service.
      Effect.ensuring(Effect.sync(() => mayStillRun(undefined))),
      // Interrupted while waiting: runAndAwait has sent the cancel by now.
      Effect.onInterrupt(() =>
        Effect.sync(() => {
          cancelled = actionId !== "the session"
        })
      ),
      Effect.ensuring(
        status === undefined
          ? Effect.void
          : Effect.zipRight(Fiber.interrupt(status), Effect.sync(() => process.stderr.write("\r\x1b[2K")))
      ),
      Effect.onInterrupt(() =>
        Console.error(
          cancelled ? `interrupted: cancel sent for machine action ${actionId}` : "interrupted before the session started"
        )
      )
    )

    for (const command of action.commands) {
      const ref = { machineActionId: action.id, index: command.index }
      if (command.command.type === "RunScript") {
        const t = yield* LiveResponse.getTranscript(ref)
        if (params.format === "json") {
          yield* Console.log(JSON.stringify({ machineActionId: action.id, index: command.index, type: "RunScript", transcript: t }))
        } else {
          yield* Console.log(`# [${command.index}] ${t.scriptName} exited with ${t.exitCode}`)
          if (t.output !== "") yield* Effect.sync(() => process.stdout.write(t.output.endsWith("\n") ? t.output : `${t.output}\n`))
          if (t.error !== "") yield* Console.log(`# script error output:\n${t.error}`)
        }
      } else if (command.command.type === "GetFile") {
        const path = command.command.params.find((p) => p.key === "Path")?.value ?? ""
        const target = `${params.out}/${baseName(path)}`
        yield* fs.makeDirectory(params.out, { recursive: true }).pipe(Effect.ignore)
        const saved = yield* LiveResponse.downloadToFile(ref, target)
        yield* params.format === "json"
          ? Console.log(JSON.stringify({
            machineActionId: action.id,
            index: command.index,
            type: "GetFile",
            path,
            savedTo: saved.path,
            bytes: saved.bytes,
            md5Verified: saved.md5Verified
          }))
          : Console.log(`# [${command.index}] ${path} saved to ${saved.path} (${saved.bytes} bytes${saved.md5Verified ? ", MD5 verified" : ""})`)
      }
    }
  })

/** The `run` command. */
export const run: Command.Command<
  "run",
  DefenderClient.DefenderClient | DefenderRateLimiter.DefenderRateLimiter | FileSystem.FileSystem,
  DefenderError,
  RunParams & { readonly simulate: boolean }
> = Command.make(
  "run",
  { machine, script, args, getfile, out, format, interval, comment, simulate },
  (params) => session(params)
).pipe(
  Command.withDescription("run a script on a machine, wait, print each result and save GetFile results (Ctrl-C cancels)")
)

