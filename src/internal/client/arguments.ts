/**
 * Argument checks, before anything is sent: ids that cannot address another
 * resource, indexes that are indexes, plain file names.
 *
 * @internal
 */
import { Effect } from "effect"
import type { CommandRef } from "../../DefenderClient.ts"
import { InvalidArgument } from "../../DefenderError.ts"

/** @internal A machine action id (trimmed) and a non-negative command index. */
export const checkRef = (ref: CommandRef): Effect.Effect<CommandRef, InvalidArgument> => {
  const id = typeof ref.machineActionId === "string" ? ref.machineActionId.trim() : ""
  if (id === "" || id === "." || id === ".." || id.length > 256 || /[\u0000-\u001f\u007f]/.test(id)) {
    return Effect.fail(
      new InvalidArgument({
        argument: "machineActionId",
        detail: "must be a non-empty machine action id (a GUID), without control characters"
      })
    )
  }
  if (!Number.isSafeInteger(ref.index) || ref.index < 0) {
    return Effect.fail(
      new InvalidArgument({ argument: "index", detail: `must be a non-negative integer, got ${String(ref.index)}` })
    )
  }
  return Effect.succeed({ machineActionId: id, index: ref.index })
}

/** @internal A machine action id alone (trimmed). */
export const checkActionId = (machineActionId: string): Effect.Effect<string, InvalidArgument> =>
  Effect.map(checkRef({ machineActionId, index: 0 }), (ref) => ref.machineActionId)

/** @internal A machine id (trimmed). */
export const checkMachineId = (machineId: string): Effect.Effect<string, InvalidArgument> => {
  const id = typeof machineId === "string" ? machineId.trim() : ""
  return id === "" || id === "." || id === ".." || /[\u0000-\u001f]/.test(id)
    ? Effect.fail(new InvalidArgument({ argument: "machineId", detail: "must be a non-empty machine id" }))
    : Effect.succeed(id)
}

/** @internal A library file name (trimmed), without a path. */
export const checkFileName = (fileName: string): Effect.Effect<string, InvalidArgument> => {
  const name = typeof fileName === "string" ? fileName.trim() : ""
  return name === "" || /[\\/\u0000-\u001f]/.test(name)
    ? Effect.fail(new InvalidArgument({ argument: "fileName", detail: "must be a plain file name such as collect.ps1" }))
    : Effect.succeed(name)
}
