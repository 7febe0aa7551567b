/**
 * `downloadToFile`: one result saved to disk with constant memory. The bytes go
 * to a temporary file beside the target, renamed into place only when complete
 * and verified, and removed on any failure or interruption; a broken connection
 * is resumed (see `resume.ts` for each decision), an expired link re-created. The
 * temporary file has a crypto-random name and is created exclusively, so a file or
 * symlink planted beside the target is never written through.
 *
 * @internal
 */
import { FileSystem } from "@effect/platform"
import { Effect, Exit, Scope, Stream } from "effect"
import { createHash, type Hash, randomBytes } from "node:crypto"
import type { CommandRef, SavedFile, SaveOptions } from "../../DefenderClient.ts"
import { type DefenderError, FileDownloadError, ResultLinkError } from "../../DefenderError.ts"
import type { ClientContext } from "./context.ts"
import * as BufferedWrite from "./bufferedWrite.ts"
import { afterBody, type DownloadState, initialState, planAnswer, resumeHeaders, verify } from "./resume.ts"
import { getResultLink } from "./resultLink.ts"
import { body, openLink } from "./storage.ts"

/** How many bytes `downloadToFile` collects before one write to the file. */
const WRITE_BUFFER = 1024 * 1024

/** How often one download may re-create its link (it may expire more than once in a long download). */
const MAX_RENEWALS = 5

/** How many crypto-random names `createTemp` tries before it gives up (each taken one is left alone). */
const MAX_TEMP_NAMES = 5

/** @internal A temporary name beside `path` that nobody can predict. */
export const tempName = (path: string): string => `${path}.partial-${randomBytes(12).toString("hex")}`

/**
 * @internal Creates a new temporary file beside `path`, exclusively (`wx`): an existing path
 * there — a file, or a symlink planted to redirect the write — fails the open instead of being
 * followed or truncated, and another name is tried. The file is closed when the scope closes.
 */
export const createTemp = (
  fs: FileSystem.FileSystem,
  path: string,
  nextName: (path: string) => string = tempName
): Effect.Effect<{ readonly temp: string; readonly file: FileSystem.File }, FileDownloadError, Scope.Scope> =>
  Effect.gen(function*() {
    for (let attempt = 1; attempt <= MAX_TEMP_NAMES; attempt++) {
      const temp = nextName(path)
      const opened = yield* Effect.either(fs.open(temp, { flag: "wx" }))
      if (opened._tag === "Right") return { temp, file: opened.right }
      if (opened.left._tag !== "SystemError" || opened.left.reason !== "AlreadyExists") {
        return yield* new FileDownloadError({ reason: "FileSystem", path, detail: opened.left.message.slice(0, 200) })
      }
    }
    return yield* new FileDownloadError({
      reason: "FileSystem",
      path,
      detail: `${MAX_TEMP_NAMES} temporary names beside it already existed`
    })
  })

/**
 * Creates the temporary file, writes it through `save`, closes it and renames it to `path`
 * (a rename replaces whatever is at `path`, a symlink included, and never writes through it).
 * The file is created while uninterruptible and removed on any failure or interruption, so
 * nothing is left behind; a path that existed before (a taken name) is never removed.
 */
const intoPlace = <A>(
  fs: FileSystem.FileSystem,
  path: string,
  save: (file: FileSystem.File) => Effect.Effect<A, DefenderError>
): Effect.Effect<A, DefenderError> =>
  Effect.acquireUseRelease(
    Effect.flatMap(Scope.make(), (scope) =>
      createTemp(fs, path).pipe(
        Scope.extend(scope),
        Effect.map((created) => ({ ...created, scope })),
        Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
      )),
    ({ file, scope, temp }) =>
      Effect.zipLeft(
        Effect.ensuring(save(file), Scope.close(scope, Exit.void)),
        fs.rename(temp, path).pipe(
          Effect.mapError((e) => new FileDownloadError({ reason: "FileSystem", path, detail: e.message.slice(0, 200) }))
        )
      ),
    ({ scope, temp }, exit) =>
      Effect.zipRight(Scope.close(scope, exit), Exit.isFailure(exit) ? fs.remove(temp).pipe(Effect.ignore) : Effect.void)
  )

/** The download loop over an open file: ask, decide, write, resume, until done. */
const saveTo = (
  ctx: ClientContext,
  ref: CommandRef,
  path: string,
  file: FileSystem.File,
  maxInterruptions: number
): Effect.Effect<SavedFile, DefenderError> =>
  Effect.gen(function*() {
    const fail = (reason: FileDownloadError["reason"], detail: string) => new FileDownloadError({ reason, path, detail })
    const fileError = (e: { readonly message: string }) => fail("FileSystem", e.message.slice(0, 200))
    const linkFor = getResultLink(ctx)
    let link = yield* linkFor(ref)
    let renewals = 0
    let interruptions = 0
    let state: DownloadState = initialState
    let hash: Hash = createHash("md5")
    const restart = Effect.suspend(() => {
      state = initialState
      hash = createHash("md5")
      return Effect.zipRight(file.truncate(0).pipe(Effect.mapError(fileError)), file.seek(0, "start"))
    })
    const interrupted = (detail: () => string) =>
      ++interruptions > maxInterruptions ? Effect.fail(fail("TooManyInterruptions", detail())) : Effect.void
    while (true) {
      const opened = yield* openLink(ctx, link, resumeHeaders(state))
      if (opened === "expired") {
        if (++renewals > MAX_RENEWALS) {
          return yield* new ResultLinkError({ reason: "Expired", status: 403, detail: "the link kept expiring" })
        }
        link = yield* linkFor(ref)
        continue
      }
      if (opened === "changed") {
        yield* restart
        continue
      }
      const plan = planAnswer(state, opened)
      if (plan._tag === "wrongRange") {
        yield* restart
        yield* interrupted(() => "the storage kept answering with the wrong range")
        continue
      }
      if (plan.restarted) yield* restart
      state = plan.state
      // Written a buffer at a time, each write overlapping the next buffer's filling; `offset`
      // counts only what is in the file, so a resume asks for exactly what is missing.
      const read = yield* Effect.scoped(Effect.gen(function*() {
        const writer = yield* BufferedWrite.make(
          (bytes) => file.writeAll(bytes).pipe(Effect.mapError(fileError)),
          WRITE_BUFFER,
          (n) => {
            state = { ...state, offset: state.offset + n }
          }
        )
        const took = yield* Stream.runForEachChunk(body(ctx, opened), (chunks) =>
          Effect.forEach(chunks, (chunk) => {
            hash.update(chunk)
            return writer.write(chunk)
          }, { discard: true })).pipe(Effect.either)
        yield* writer.flush
        return took
      }))
      // Only a broken or stalled connection is resumed; a file error or a body over maxResultBytes is final.
      if (read._tag === "Left" && !(read.left._tag === "HttpError" && read.left.reason === "Transport")) {
        return yield* read.left
      }
      if (afterBody(state, read._tag === "Left") === "done") break
      // The connection broke mid-body: resume where it stopped.
      yield* interrupted(() => `${interruptions - 1} resumes at ${state.offset} bytes`)
      yield* Effect.annotateCurrentSpan("mde.resumes", interruptions)
    }
    const mismatch = verify(state, hash.digest("base64"))
    if (mismatch !== undefined) return yield* fail(mismatch.reason, mismatch.detail)
    return { path, bytes: state.offset, md5Verified: state.md5 !== undefined, resumes: interruptions } satisfies SavedFile
  })

/** @internal `DefenderClient.downloadToFile`. */
export const downloadToFile = (ctx: ClientContext): (
  ref: CommandRef,
  path: string,
  options?: SaveOptions
) => Effect.Effect<SavedFile, DefenderError, FileSystem.FileSystem> =>
  Effect.fn("DefenderClient.downloadToFile")(function*(ref: CommandRef, path: string, options?: SaveOptions) {
    const fs = yield* FileSystem.FileSystem
    yield* Effect.annotateCurrentSpan({ "mde.machine_action_id": ref.machineActionId, "mde.command_index": ref.index })
    const maxInterruptions = options?.maxInterruptions ?? 10
    return yield* intoPlace(fs, path, (file) => saveTo(ctx, ref, path, file, maxInterruptions))
  })
