/**
 * The machine actions a simulator starts with (`ACTIONS`), and the ones a test adds with
 * `addTranscripts` and `addFiles`.
 *
 * @internal
 */
import { Effect } from "effect"
import type { ACTIONS, CommandSpec } from "../DefenderSimulator.ts"
import { encoder, fileContent, gzip, SEED_TRANSCRIPT, transcriptFor } from "./content.ts"
import { addAction, type State } from "./state.ts"

const runScript = (name: string): CommandSpec => ({
  type: "RunScript",
  params: [{ key: "ScriptName", value: name }]
})

const getFile = (path: string): CommandSpec => ({ type: "GetFile", params: [{ key: "Path", value: path }] })

/** @internal Adds the preset actions under the ids of `ACTIONS`. */
export const addPresets = (state: State, ids: typeof ACTIONS): Effect.Effect<void> =>
  Effect.gen(function*() {
    addAction(state, ids.runScript, [runScript("minidump.ps1")], [encoder.encode(SEED_TRANSCRIPT)])
    addAction(
      state,
      ids.variants,
      [runScript("collect.ps1"), runScript("audit.ps1"), runScript("inventory.ps1")],
      [transcriptFor("collect.ps1", "", 0), transcriptFor("audit.ps1", "", 1), transcriptFor("inventory.ps1", "", 2)]
    )
    const dumpPath = "C:\\windows\\TEMP\\OfficeClickToRun.dmp.zip"
    addAction(state, ids.getFile, [getFile(dumpPath)], [yield* gzip(fileContent(dumpPath, 1024 * 1024))])
    addAction(state, ids.failed, [runScript("broken.ps1")], [undefined], "Failed")
    addAction(state, ids.blobGone, [runScript("old.ps1")], [encoder.encode(SEED_TRANSCRIPT)])
    state.blobs.delete(state.actions.get(ids.blobGone)!.commands[0]!.blob!)
  })

/** @internal A `Succeeded` action whose RunScript commands answer with the given transcripts. */
export const addTranscripts = (state: State, id: string, transcripts: ReadonlyArray<string | Uint8Array>): void =>
  addAction(
    state,
    id,
    transcripts.map((_, i) => runScript(`script-${i}.ps1`)),
    transcripts.map((t) => (typeof t === "string" ? encoder.encode(t) : t))
  )

/** @internal A `Succeeded` action whose GetFile commands answer with the given files (kept, not copied). */
export const addFiles = (
  state: State,
  id: string,
  files: ReadonlyArray<{ readonly path: string; readonly bytes: Uint8Array }>
): void =>
  addAction(
    state,
    id,
    files.map((file) => getFile(file.path)),
    files.map((file) => file.bytes)
  )
