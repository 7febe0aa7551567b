/**
 * The live response library: uploading a script (`POST /api/libraryfiles`, multipart), listing
 * what was uploaded (`GET /api/libraryfiles`) and deleting a file (`DELETE /api/libraryfiles/{name}`).
 *
 * @internal
 */
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { misCased, misCasedAnswer } from "./bodies.ts"
import { json, odata } from "./responses.ts"
import type { Call, LibraryFile } from "./state.ts"

const UPLOAD_FIELDS: ReadonlyArray<string> = ["file", "Description", "ParametersDescription", "HasParameters", "OverrideIfExists"]
const CONTEXT = "https://api.security.microsoft.com/api/$metadata#LibraryFiles"

/** @internal Answers an upload: the library file, or 400 when the name is taken and `OverrideIfExists` is not `true`. */
export const uploadLibraryFile = ({ now, request, requestId, state }: Call): Effect.Effect<Response> =>
  Effect.gen(function*() {
    const form = yield* Effect.promise(() => request.formData().catch(() => undefined))
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
    const bytes = new Uint8Array(yield* Effect.promise(() => (file as File).arrayBuffer()))
    const parameters = form.get("ParametersDescription")
    const entry: LibraryFile = {
      fileName: name,
      sha256: createHash("sha256").update(bytes).digest("hex"),
      description: String(form.get("Description") ?? ""),
      creationTime: new Date(now).toISOString(),
      createdBy: "simulator@contoso.example",
      hasParameters: form.get("HasParameters") === "true",
      parametersDescription: typeof parameters === "string" ? parameters : null
    }
    state.library.set(name, entry)
    return json(200, { "@odata.context": `${CONTEXT}/$entity`, ...entry })
  })

/** @internal Answers `GET /api/libraryfiles`: every file uploaded, in upload order. */
export const listLibraryFiles = ({ state }: Call): Response =>
  json(200, { "@odata.context": CONTEXT, value: [...state.library.values()] })

/** @internal Answers `DELETE /api/libraryfiles/{name}`: 204, or 404 for a name not in the library. */
export const deleteLibraryFile = ({ requestId, state }: Call, name: string): Response =>
  state.library.delete(name)
    ? new Response(null, { status: 204 })
    : odata(404, "ResourceNotFound", `Library file ${name} was not found`, requestId)
