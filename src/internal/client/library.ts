/**
 * The live response library: `POST /api/libraryfiles` (multipart upload).
 *
 * @internal
 */
import { HttpClientRequest } from "@effect/platform"
import { Effect } from "effect"
import type { LibraryFile, ScriptUpload } from "../../DefenderClient.ts"
import type { DefenderError } from "../../DefenderError.ts"
import { libraryFile } from "./answers.ts"
import { checkFileName } from "./arguments.ts"
import { apiCall } from "./authorizedCall.ts"
import type { ClientContext } from "./context.ts"

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
