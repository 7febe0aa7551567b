/**
 * The live response library: uploading a script (`POST /api/libraryfiles`, multipart).
 *
 * @internal
 */
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { misCased, misCasedAnswer } from "./bodies.ts"
import { json, odata } from "./responses.ts"
import type { Call } from "./state.ts"

const UPLOAD_FIELDS: ReadonlyArray<string> = ["file", "Description", "ParametersDescription", "HasParameters", "OverrideIfExists"]

/** @internal Answers an upload: the library file, or 400 when the name is taken and `OverrideIfExists` is not `true`. */
export const uploadLibraryFile = ({ request, requestId, state }: Call): Effect.Effect<Response> =>
  Effect.map(
    Effect.promise(() => request.formData().catch(() => undefined)),
    (form): Response => {
      const wrong = form === undefined ? undefined : misCased(form.keys(), UPLOAD_FIELDS)
      if (wrong !== undefined) return misCasedAnswer(wrong, UPLOAD_FIELDS, requestId)
      const file = form?.get("file")
      if (form === undefined || file === null || file === undefined || typeof file === "string") {
        return odata(400, "InvalidRequestBody", "A multipart body with a file is required", requestId)
      }
      const name = (file as File).name
      if (state.library.has(name) && form.get("OverrideIfExists") !== "true") {
        return odata(400, "FileAlreadyExists", `A library file named ${name} already exists`, requestId)
      }
      state.library.set(name, String(form.get("Description") ?? ""))
      return json(200, {
        "@odata.context": "https://api.security.microsoft.com/api/$metadata#LibraryFiles/$entity",
        fileName: name,
        sha256: createHash("sha256").update(name).digest("hex"),
        description: form.get("Description"),
        hasParameters: form.get("HasParameters") === "true",
        parametersDescription: form.get("ParametersDescription")
      })
    }
  )
