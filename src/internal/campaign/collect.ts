/**
 * Saving the results of a succeeded action, each once: a RunScript transcript decoded and
 * written as JSON (`<index>-transcript.json`; `md5Verified` false: the file is our JSON, not
 * the storage's bytes), a GetFile result saved by `downloadToFile` (`<index>-<file name>`, the
 * bytes as the storage holds them, often gzip; `md5Verified` as it checked). A file already
 * complete at its place (a crash after the rename, before `ResultSaved`) is hashed and recorded
 * without a download (`md5Verified` false then). After the last one, `MachineFinished`.
 * A result the service no longer has (404, a gone blob, an undecodable transcript) is left out
 * of the manifest line; any other failure is tried again on the next tick.
 *
 * @internal
 */
import { FileSystem } from "@effect/platform"
import { Effect, Stream } from "effect"
import type { MachineState } from "../../CampaignStore.ts"
import type { DefenderError } from "../../DefenderError.ts"
import { type Ctx, finish, now, record } from "./context.ts"
import type { CampaignStoreError } from "./error.ts"

/** The result's name under `results/<machine>/`: `<index>-<name>`. */
const nameFor = (type: string, path: string | undefined): string | undefined => {
  if (type === "RunScript") return "transcript.json"
  if (type !== "GetFile") return undefined
  const base = (path ?? "").split(/[\\/]/).filter((p) => p !== "").pop()
  return base === undefined || base === "" ? "getfile.bin" : base
}

const permanent = (e: DefenderError): boolean =>
  e._tag === "NotFound" || e._tag === "TranscriptDecodeError" ||
  (e._tag === "ResultLinkError" && e.reason === "BlobNotFound")

/** Saves one command's result and records it; `false` when it must be tried again later. */
const saveOne = (
  ctx: Ctx,
  machine: MachineState,
  machineActionId: string,
  index: number,
  type: string
): Effect.Effect<boolean, CampaignStoreError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const command = ctx.definition.commands[index]
    const name = nameFor(type, command?.type === "GetFile" ? command.path : undefined)
    if (name === undefined) return true
    const machineId = machine.machineId
    const path = yield* ctx.store.resultPath(machineId, index, name)
    const ref = { machineActionId, index }
    const complete = yield* fs.exists(path).pipe(Effect.orElseSucceed(() => false))
    const saved = complete
      ? Effect.map(ctx.store.recordResult(machineId, index, name), (r) => ({ ...r, md5Verified: false }))
      : type === "RunScript"
      ? ctx.client.getTranscript(ref).pipe(
        Effect.flatMap((t) =>
          ctx.store.saveResult(machineId, index, name, Stream.make(new TextEncoder().encode(JSON.stringify(t, null, 2))))
        ),
        Effect.map((r) => ({ ...r, md5Verified: false }))
      )
      : ctx.client.downloadToFile(ref, path).pipe(
        Effect.flatMap((file) =>
          Effect.map(ctx.store.recordResult(machineId, index, name), (r) => ({ ...r, md5Verified: file.md5Verified }))
        )
      )
    const result = yield* Effect.either(saved)
    if (result._tag === "Left") {
      const e = result.left
      if (e._tag === "CampaignStoreError") return yield* Effect.fail(e)
      yield* Effect.logWarning(`campaign: result ${index} of machine ${machineId}: ${e._tag}: ${e.message}`)
      return permanent(e)
    }
    yield* record(ctx, { _tag: "ResultSaved", machineId, machineActionId, type, ...result.right, at: yield* now })
    return true
  })

/** @internal Saves what is left of a `Collecting` machine's results; finishes it when nothing is. */
export const collect = (ctx: Ctx, machineId: string): Effect.Effect<void, CampaignStoreError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const machine = ctx.state.machines.get(machineId)
    if (machine === undefined || machine.phase._tag !== "Collecting") return
    const { commands, machineActionId } = machine.phase
    let done = true
    for (const c of commands) {
      if (machine.results.some((r) => r.index === c.index)) continue
      const ok = yield* saveOne(ctx, machine, machineActionId, c.index, c.type)
      done = done && ok
    }
    if (done) yield* finish(ctx, machineId)
  })
