/**
 * Files that appear only complete: the bytes go to a temporary file beside the target
 * (a crypto-random name, created exclusively, so nothing planted there is written
 * through), are synced, and the file is renamed into place; on any failure or
 * interruption the temporary file is removed and the target is untouched.
 *
 * @internal
 */
import { FileSystem } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Effect, Exit, Scope, Stream } from "effect"
import { createHash } from "node:crypto"
import { type CampaignStoreError, storeError } from "./error.ts"

/** @internal A platform error as `CampaignStoreError` `FileSystem` (or `NotFound` for a missing file). */
export const fsError = (path: string) => (e: PlatformError): CampaignStoreError =>
  storeError(e._tag === "SystemError" && e.reason === "NotFound" ? "NotFound" : "FileSystem", e.message.slice(0, 200), {
    path
  })

const tempName = (path: string): string => {
  const bytes = crypto.getRandomValues(new Uint8Array(12))
  return `${path}.partial-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`
}

/**
 * @internal Syncs a directory, so that a file just created or renamed in it survives a power
 * loss (not only a crash). Best effort: some systems (Windows) cannot open a directory.
 */
export const syncDirectory = (fs: FileSystem.FileSystem, dir: string): Effect.Effect<void> =>
  Effect.scoped(Effect.flatMap(fs.open(dir, { flag: "r" }), (d) => d.sync)).pipe(Effect.ignore)

const dirOf = (path: string): string => path.slice(0, Math.max(path.lastIndexOf("/"), 0)) || "/"

/** @internal What was written: its length and SHA-256 (lowercase hex). */
export interface Written {
  readonly bytes: number
  readonly sha256: string
}

/** Writes `bytes` to the open file `file`, counting and hashing. */
const pour = <E, R>(
  file: FileSystem.File,
  path: string,
  bytes: Stream.Stream<Uint8Array, E, R>
): Effect.Effect<Written, E | CampaignStoreError, R> => {
  const hash = createHash("sha256")
  let length = 0
  // An empty chunk is skipped: FileSystem's writeAll fails a write of zero bytes.
  return Stream.runForEach(Stream.filter(bytes, (chunk) => chunk.length > 0), (chunk) =>
    Effect.zipRight(
      file.writeAll(chunk).pipe(Effect.mapError(fsError(path))),
      Effect.sync(() => {
        hash.update(chunk)
        length += chunk.length
      })
    )).pipe(
      Effect.zipRight(file.sync.pipe(Effect.mapError(fsError(path)))),
      Effect.map(() => ({ bytes: length, sha256: hash.digest("hex") }))
    )
}

/** @internal Writes `bytes` to `path` so that it appears only complete (see the module). */
export const writeAtomically = <E, R>(
  fs: FileSystem.FileSystem,
  path: string,
  bytes: Stream.Stream<Uint8Array, E, R>
): Effect.Effect<Written, E | CampaignStoreError, R> =>
  Effect.acquireUseRelease(
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const temp = tempName(path)
      const file = yield* fs.open(temp, { flag: "wx" }).pipe(
        Scope.extend(scope),
        Effect.mapError(fsError(path)),
        Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
      )
      return { scope, temp, file }
    }),
    ({ file, scope, temp }) =>
      pour(file, path, bytes).pipe(
        Effect.ensuring(Scope.close(scope, Exit.void)),
        Effect.zipLeft(fs.rename(temp, path).pipe(Effect.mapError(fsError(path)))),
        Effect.zipLeft(syncDirectory(fs, dirOf(path)))
      ),
    ({ scope, temp }, exit) =>
      Effect.zipRight(Scope.close(scope, exit), Exit.isFailure(exit) ? fs.remove(temp).pipe(Effect.ignore) : Effect.void)
  )

/** @internal The length and SHA-256 of the file at `path`. */
export const hashFile = (fs: FileSystem.FileSystem, path: string): Effect.Effect<Written, CampaignStoreError> =>
  Effect.gen(function*() {
    const hash = createHash("sha256")
    let length = 0
    yield* Stream.runForEach(fs.stream(path), (chunk) =>
      Effect.sync(() => {
        hash.update(chunk)
        length += chunk.length
      })).pipe(Effect.mapError(fsError(path)))
    return { bytes: length, sha256: hash.digest("hex") }
  })

/** @internal `text` as the whole of `path`, appearing only complete. */
export const writeTextAtomically = (
  fs: FileSystem.FileSystem,
  path: string,
  text: string
): Effect.Effect<Written, CampaignStoreError> => writeAtomically(fs, path, Stream.make(new TextEncoder().encode(text)))
