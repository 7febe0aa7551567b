/**
 * Where the folder store keeps things, and names made safe for paths: a machine id or a
 * result name becomes one path segment that cannot climb out of the folder (no separator,
 * no `..`, no leading dot) and still names one thing only (escaping is reversible).
 *
 * @internal
 */
import { Either } from "effect"
import { type CampaignStoreError, storeError } from "./error.ts"

/** @internal The folder store's files, relative to its folder. */
export const FILES = {
  definition: "campaign.json",
  journal: "journal.jsonl",
  manifest: "manifest.jsonl",
  lock: "lock",
  results: "results"
} as const

const escapeChar = (c: string): string =>
  Array.from(new TextEncoder().encode(c), (b) => `%${b.toString(16).toUpperCase().padStart(2, "0")}`).join("")

/** @internal `value` as one safe path segment: anything but letters, digits, `_`, `-` and an inner `.` is %-escaped. */
export const segment = (value: string): string =>
  Array.from(value, (c, i) => /^[A-Za-z0-9_-]$/.test(c) || (c === "." && i > 0) ? c : escapeChar(c)).join("")

/** @internal `results/<machine>/<index>-<name>`, relative to the folder, with `/` separators. */
export const resultFile = (machineId: string, index: number, name: string): Either.Either<string, CampaignStoreError> => {
  if (machineId === "" || name === "") return Either.left(storeError("InvalidEvent", "a result needs a machine id and a name"))
  if (!Number.isInteger(index) || index < 0) return Either.left(storeError("InvalidEvent", `command index ${index}`))
  return Either.right(`${FILES.results}/${segment(machineId)}/${index}-${segment(name)}`)
}

/** @internal `file` (relative, `/`-separated) under `dir`. */
export const under = (dir: string, file: string): string => `${dir.replace(/[\\/]+$/, "")}/${file}`

/** @internal The folder part of a relative file. */
export const folderOf = (file: string): string => file.slice(0, file.lastIndexOf("/"))
