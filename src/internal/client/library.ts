/**
 * The live response library: `POST /api/libraryfiles` (multipart upload),
 * `GET /api/libraryfiles` (the list) and `DELETE /api/libraryfiles/{name}`.
 *
 * @internal
 */
import { HttpClientRequest } from "@effect/platform"
import { Chunk, Effect, Either, Stream } from "effect"
import type { LibraryFile, LibraryFileDetails, ScriptUpload } from "../../DefenderClient.ts"
import type { DefenderError } from "../../DefenderError.ts"
import { libraryFile } from "./answers.ts"
import { checkFileName } from "./arguments.ts"
import { apiCall } from "./authorizedCall.ts"
import type { ClientContext } from "./context.ts"
import { pagedList } from "./paging.ts"

/** The multipart form the API documents, names spelled as it spells them. */
const uploadForm = (upload: ScriptUpload, fileName: string): FormData => {
  const form = new FormData()
  const bytes = typeof upload.content === "string" ? new TextEncoder().encode(upload.content) : upload.content
  form.append("file", new Blob([bytes as Uint8Array<ArrayBuffer>]), fileName)
  form.append("Description", upload.description ?? "")
  if (upload.parametersDescription !== undefined) form.append("ParametersDescription", upload.parametersDescription)
  form.append("HasParameters", String(upload.hasParameters ?? upload.parametersDescription !== undefined))
  form.append("OverrideIfExists", String(upload.overrideIfExists ?? false))
  return form
}

/** @internal `DefenderClient.uploadScript`. */
export const uploadScript = (
  ctx: ClientContext
): (upload: ScriptUpload) => Effect.Effect<LibraryFile, DefenderError> =>
  Effect.fn("DefenderClient.uploadScript")(function*(upload: ScriptUpload) {
    const fileName = yield* checkFileName(upload.fileName)
    yield* Effect.annotateCurrentSpan("mde.file_name", fileName)
    const url = `${ctx.cloud.apiBaseUrl}/api/libraryfiles`
    const answer = yield* apiCall(
      ctx,
      HttpClientRequest.post(url).pipe(HttpClientRequest.bodyFormData(uploadForm(upload, fileName))),
      `library file ${fileName}`,
      "machineActions"
    )
    return yield* libraryFile(answer, { method: "POST", url }, fileName)
  })

const text = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined)

/** One entry of the library list: a `fileName` is needed, the rest only informs. */
const decodeLibraryFile = (json: unknown): Either.Either<LibraryFileDetails, string> => {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return Either.left("not an object")
  const f = json as Record<string, unknown>
  if (typeof f.fileName !== "string" || f.fileName === "") return Either.left("fileName: is missing")
  return Either.right({
    fileName: f.fileName,
    sha256: text(f.sha256),
    description: text(f.description),
    creationTime: text(f.creationTime),
    lastUpdatedTime: text(f.lastUpdatedTime),
    createdBy: text(f.createdBy),
    hasParameters: f.hasParameters === true,
    parametersDescription: text(f.parametersDescription)
  })
}

/** @internal `DefenderClient.listLibraryFiles`: one call (more only if the API ever pages it). */
export const listLibraryFiles = (
  ctx: ClientContext
): () => Effect.Effect<ReadonlyArray<LibraryFileDetails>, DefenderError> =>
() =>
  pagedList(ctx, {
    span: "DefenderClient.listLibraryFiles",
    path: "/api/libraryfiles",
    resource: "the live response library",
    what: "a library file",
    decode: decodeLibraryFile
  }, undefined).pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray))

/** @internal `DefenderClient.deleteLibraryFile`: 204; a 404 is `NotFound`; retried (deleting twice is harmless). */
export const deleteLibraryFile = (
  ctx: ClientContext
): (fileName: string) => Effect.Effect<void, DefenderError> =>
  Effect.fn("DefenderClient.deleteLibraryFile")(function*(input: string) {
    const fileName = yield* checkFileName(input)
    yield* Effect.annotateCurrentSpan("mde.file_name", fileName)
    const url = `${ctx.cloud.apiBaseUrl}/api/libraryfiles/${encodeURIComponent(fileName)}`
    yield* apiCall(ctx, HttpClientRequest.del(url), `library file ${fileName}`, "machineActions", true)
  })
