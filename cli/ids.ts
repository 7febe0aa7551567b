/**
 * The CLI's check of a machine action id: Defender's ids are GUIDs, so anything else is
 * refused as `InvalidArgument` (exit 2) before a token is asked for or a request is sent.
 * The library itself only refuses ids that could address another resource; the CLI is
 * stricter because a typo on a command line is far more likely than a non-GUID id.
 */
import { Effect } from "effect"
import { InvalidArgument } from "../mod.ts"

/** A GUID as Defender writes machine action ids: 8-4-4-4-12 hex digits, either case, no braces. */
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Whether `text` (trimmed) is a GUID. */
export const isGuid = (text: string): boolean => GUID.test(text.trim())

/**
 * The machine action id of `--action` (or of a batch line: pass its own `argument` name),
 * trimmed; `InvalidArgument` when it is not a GUID. The message shows at most 60 characters
 * of what was given, control characters escaped.
 */
export const machineActionId = (
  text: string,
  argument: string = "--action"
): Effect.Effect<string, InvalidArgument> => {
  const id = text.trim()
  if (GUID.test(id)) return Effect.succeed(id)
  const shown = JSON.stringify(id.length > 60 ? `${id.slice(0, 60)}…` : id)
  return Effect.fail(
    new InvalidArgument({
      argument,
      detail: `a machine action id is a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), got ${shown}`
    })
  )
}
