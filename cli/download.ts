/**
 * `download`: one command's raw result saved to a file through
 * `LiveResponse.downloadToFile` (a temporary file created exclusively beside it,
 * length and MD5 checked, a broken connection resumed, renamed into place when
 * complete), or streamed to stdout with `--out -`.
 */
import { Command, Options } from "@effect/cli"
import type { FileSystem } from "@effect/platform"
import { Console, Effect, Stream } from "effect"
import { lstat } from "node:fs/promises"
import { type DefenderClient, type DefenderError, type DefenderRateLimiter, LiveResponse } from "../mod.ts"
import { OutputError, simulate } from "./batch.ts"
import { type Format, formatOption } from "./format.ts"

/** The output file cannot be written (or exists, without `--force`): the CLI exits with 12. */
export class FileError {
  readonly _tag = "FileError"
  constructor(readonly message: string) {}
}

/** Fails when something (a file, a directory, a symlink, even a dangling one) is at `path`. */
const refuseExisting = (path: string): Effect.Effect<void, FileError> =>
  Effect.tryPromise({ try: () => lstat(path), catch: (e) => e as NodeJS.ErrnoException }).pipe(
    Effect.matchEffect({
      onSuccess: () => Effect.fail(new FileError(`${path} already exists; pass --force to replace it`)),
      onFailure: (e) =>
        e.code === "ENOENT" ? Effect.void : Effect.fail(new FileError(`cannot check ${path}: ${e.code ?? e.message}`))
    })
  )

/** Writes one chunk to stdout and waits until it is flushed, so memory stays constant. */
const writeStdout = (chunk: Uint8Array): Effect.Effect<void, OutputError> =>
  Effect.async<void, OutputError>((resume) => {
    process.stdout.write(chunk, (error) => {
      resume(error ? Effect.fail(new OutputError(`cannot write to stdout: ${error.message}`)) : Effect.void)
    })
  })

/** Streams the raw result to stdout; a closed pipe fails the write (exit 12) instead of crashing. */
const toStdout = (ref: LiveResponse.CommandRef) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const ignore = () => {}
      process.stdout.on("error", ignore)
      return ignore
    }),
    () =>
      LiveResponse.downloadResult(ref).pipe(
        Stream.runFoldEffect(0, (n, chunk) => Effect.as(writeStdout(chunk), n + chunk.length)),
        Effect.flatMap((written) => Console.error(`wrote ${written} bytes to stdout`))
      ),
    (ignore) => Effect.sync(() => process.stdout.off("error", ignore))
  )

/** The download command's parsed options. */
interface DownloadParams {
  readonly action: string
  readonly index: number
  readonly out: string
  readonly force: boolean
  readonly simulate: boolean
  readonly format: Format
}

/** The `download` command. */
export const download: Command.Command<
  "download",
  DefenderClient.DefenderClient | DefenderRateLimiter.DefenderRateLimiter | FileSystem.FileSystem,
  DefenderError | FileError | OutputError,
  DownloadParams
> = Command.make(
  "download",
  {
    action: Options.text("action").pipe(Options.withDescription("the machine action id (a GUID)")),
    index: Options.integer("index").pipe(
      Options.withDefault(0),
      Options.withDescription("the command's index in the machine action (default 0)")
    ),
    simulate,
    out: Options.file("out").pipe(Options.withDescription("the file to write, or - for the raw bytes on stdout")),
    force: Options.boolean("force").pipe(Options.withDescription("replace --out if it already exists")),
    format: formatOption
  },
  ({ action, force, format, index, out }) =>
    Effect.gen(function*() {
      const ref = { machineActionId: action, index }
      if (out === "-") return yield* toStdout(ref)
      // Checked before anything is sent; the rename at the end replaces a symlink, never writes through it.
      if (!force) yield* refuseExisting(out)
      const saved = yield* LiveResponse.downloadToFile(ref, out)
      // Under json the facts go to stdout as one object; the text line is for a person, on stderr.
      yield* format === "json"
        ? Console.log(JSON.stringify({ path: saved.path, bytes: saved.bytes, md5Verified: saved.md5Verified }))
        : Console.error(`wrote ${saved.bytes} bytes to ${saved.path}${saved.md5Verified ? " (MD5 verified)" : ""}`)
    })
).pipe(Command.withDescription("save a command's raw result (e.g. a GetFile file) to a file, verified, or stream it to stdout"))
