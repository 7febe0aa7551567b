/**
 * `journal.jsonl` as events: one JSON line per event. A last line without its newline is a
 * crash mid-append — its `append` never returned — and is dropped (the store truncates it
 * away); any other line that does not decode is corruption, reported with its number.
 *
 * @internal
 */
import { Either, ParseResult, Schema } from "effect"
import type { CampaignEvent, ManifestEntry } from "../../CampaignStore.ts"
import { type CampaignStoreError, storeError } from "./error.ts"
import { Entry, Event, jsonLine } from "./schema.ts"

const decodeEvent = Schema.decodeUnknownEither(jsonLine(Event))
const encodeEvent = Schema.encodeEither(Event)
const encodeEntry = Schema.encodeSync(Entry)

/**
 * @internal The events of a journal's bytes, and the length to truncate it to when its
 * last line is torn (`undefined` when it is whole).
 */
export const parseJournal = (
  bytes: Uint8Array,
  path: string
): Either.Either<{ readonly events: Array<CampaignEvent>; readonly keep: number | undefined }, CampaignStoreError> => {
  const end = bytes.lastIndexOf(0x0a) + 1
  let text: string
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, end))
  } catch {
    return Either.left(storeError("Corrupt", "the journal is not UTF-8 text", { path }))
  }
  const events: Array<CampaignEvent> = []
  const lines = text.split("\n")
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    if (line.trim() === "") continue
    const decoded = decodeEvent(line)
    if (Either.isLeft(decoded)) {
      const detail = ParseResult.TreeFormatter.formatErrorSync(decoded.left).slice(0, 300)
      return Either.left(storeError("Corrupt", `a journal line does not decode: ${detail}`, { path, line: i + 1 }))
    }
    events.push(decoded.right)
  }
  return Either.right({ events, keep: end < bytes.length ? end : undefined })
}

/** @internal An event as its journal line (newline included), or `InvalidEvent` for one the schema refuses. */
export const eventLine = (event: CampaignEvent): Either.Either<string, CampaignStoreError> =>
  encodeEvent(event).pipe(
    Either.map((encoded) => `${JSON.stringify(encoded)}\n`),
    Either.mapLeft((e) => storeError("InvalidEvent", ParseResult.TreeFormatter.formatErrorSync(e).slice(0, 300)))
  )

/** @internal A manifest entry as its `manifest.jsonl` line (newline included). */
export const entryLine = (entry: ManifestEntry): string => `${JSON.stringify(encodeEntry(entry))}\n`
