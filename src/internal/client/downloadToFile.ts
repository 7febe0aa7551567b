/**
 * `downloadToFile`: one result saved to disk with constant memory. The bytes go
 * to a temporary file beside the target, renamed into place only when complete
 * and verified, and removed on any failure or interruption; a broken connection
 * is resumed (see `resume.ts` for each decision), an expired link re-created.
 *
 * @internal
 */
import { FileSystem } from "@effect/platform"
import { Effect, Stream } from "effect"
import { createHash, type Hash } from "node:crypto"
import type { CommandRef, SavedFile, SaveOptions } from "../../DefenderClient.ts"
import { type DefenderError, FileDownloadError, ResultLinkError } from "../../DefenderError.ts"
import type { ClientContext } from "./context.ts"
import { afterBody, type DownloadState, initialState, planAnswer, resumeHeaders, verify } from "./resume.ts"
import { getResultLink } from "./resultLink.ts"
import { body, openLink } from "./storage.ts"

/** How often one download may re-create its link (it may expire more than once in a long download). */
const MAX_RENEWALS = 5

/**
 * Writes `temp` through `save`, then renames it to `path` in the same protected region, so
 * neither a failure nor an interruption can leave the temporary file behind.
 */
const intoPlace = <A>(
  fs: FileSystem.FileSystem,
  path: string,
  save: (temp: string) => Effect.Effect<A, DefenderError>
): Effect.Effect<A, DefenderError> => {
  const temp = `${path}.partial-${Math.random().toString(36).slice(2, 10)}`
  const renamed = fs.rename(temp, path).pipe(
    Effect.mapError((e) => new FileDownloadError({ reason: "FileSystem", path, detail: e.message.slice(0, 200) }))
  )
  return Effect.zipLeft(save(temp), renamed).pipe(
    Effect.onExit((exit) => (exit._tag === "Failure" ? fs.remove(temp).pipe(Effect.ignore) : Effect.void))
  )
}

/** The download loop over an open file: ask, decide, write, resume, until done. */
const saveTo = (
  ctx: ClientContext,
  fs: FileSystem.FileSystem,
  ref: CommandRef,
  path: string,
  temp: string,
  maxInterruptions: number
): Effect.Effect<SavedFile, DefenderError> =>
  Effect.scoped(Effect.gen(function*() {
    const fail = (reason: FileDownloadError["reason"], detail: string) => new FileDownloadError({ reason, path, detail })
    const fileError = (e: { readonly message: string }) => fail("FileSystem", e.message.slice(0, 200))
    const file = yield* fs.open(temp, { flag: "w" }).pipe(Effect.mapError(fileError))
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
      const read = yield* Stream.runForEach(body(ctx, opened), (chunk) =>
        Effect.zipRight(
          file.writeAll(chunk).pipe(Effect.mapError(fileError)),
          Effect.sync(() => {
            hash.update(chunk)
            state = { ...state, offset: state.offset + chunk.length }
          })
        )).pipe(Effect.either)
      if (read._tag === "Left" && read.left._tag === "FileDownloadError") return yield* read.left
      if (afterBody(state, read._tag === "Left") === "done") break
      // The connection broke mid-body: resume where it stopped.
      yield* interrupted(() => `${interruptions - 1} resumes at ${state.offset} bytes`)
      yield* Effect.annotateCurrentSpan("mde.resumes", interruptions)
    }
    const mismatch = verify(state, hash.digest("base64"))
    if (mismatch !== undefined) return yield* fail(mismatch.reason, mismatch.detail)
    return { path, bytes: state.offset, md5Verified: state.md5 !== undefined, resumes: interruptions } satisfies SavedFile
  }))

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
    return yield* intoPlace(fs, path, (temp) => saveTo(ctx, fs, ref, path, temp, maxInterruptions))
  })
