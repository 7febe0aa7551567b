/**
 * The folder store: `campaign.json` (the definition), `journal.jsonl` (one event a line,
 * synced before `append` returns), `manifest.jsonl` (derived from the journal, completed
 * from it on open), `results/<machine>/<index>-<name>` and a `lock`. Plain files through
 * `@effect/platform`'s `FileSystem`, so it runs wherever that does (Node, Deno, Bun).
 *
 * @internal
 */
import { FileSystem } from "@effect/platform"
import { Effect, Either, ParseResult, Schema, Scope } from "effect"
import type {
  Campaign,
  CampaignDefinition,
  CampaignEvent,
  CampaignState,
  CampaignStore,
  ManifestEntry,
  SavedResult
} from "../../CampaignStore.ts"
import { checkDefinition } from "./definition.ts"
import { type CampaignStoreError, storeError } from "./error.ts"
import { fsError, hashFile, syncDirectory, writeAtomically, writeTextAtomically } from "./files.ts"
import { entryLine, eventLine, parseJournal } from "./journal.ts"
import { acquireLock } from "./lock.ts"
import { FILES, folderOf, resultFile, under } from "./paths.ts"
import { apply, entryOfEvent, manifestOf, replay } from "./replay.ts"
import { Definition, jsonLine } from "./schema.ts"

const decodeDefinition = Schema.decodeUnknownEither(jsonLine(Definition))
const encodeDefinition = Schema.encodeSync(Definition)

/** @internal What every part of the store needs. */
export interface Folder {
  readonly fs: FileSystem.FileSystem
  readonly scope: Scope.Scope
  readonly at: (file: string) => string
}

/** The campaign once loaded; the journal stays open for appends. */
interface Loaded {
  readonly definition: CampaignDefinition
  readonly journal: FileSystem.File
  state: CampaignState
  entries: Array<ManifestEntry>
  /** An append failed mid-write: the journal may end in a torn line, so nothing more is written. */
  broken: boolean
  /** A manifest append failed: the next one rewrites the whole manifest. */
  manifestStale: boolean
}

const campaignOf = (loaded: Loaded): Campaign => ({ definition: loaded.definition, state: loaded.state })

/** The manifest file made equal to `entries` (rewritten whole when it is not). */
const syncManifest = (folder: Folder, entries: ReadonlyArray<ManifestEntry>): Effect.Effect<void, CampaignStoreError> =>
  Effect.gen(function*() {
    const path = folder.at(FILES.manifest)
    const text = entries.map(entryLine).join("")
    const current = yield* folder.fs.readFileString(path).pipe(Effect.orElseSucceed(() => undefined))
    if (current !== text) yield* writeTextAtomically(folder.fs, path, text)
  })

/** Checks, writes and syncs one event (uninterruptibly: a line is never cut by an interruption), then the manifest. */
const appendTo = (folder: Folder, loaded: Loaded, event: CampaignEvent): Effect.Effect<CampaignState, CampaignStoreError> =>
  Effect.gen(function*() {
    const path = folder.at(FILES.journal)
    if (loaded.broken) return yield* storeError("FileSystem", "an earlier append failed: open the store again", { path })
    const next = yield* apply(loaded.state, event)
    const line = yield* eventLine(event)
    yield* loaded.journal.writeAll(new TextEncoder().encode(line)).pipe(
      Effect.zipRight(loaded.journal.sync),
      Effect.mapError(fsError(path)),
      Effect.tapError(() => Effect.sync(() => (loaded.broken = true))),
      Effect.uninterruptible
    )
    loaded.state = next
    const entry = entryOfEvent(event)
    if (entry !== undefined) {
      loaded.entries.push(entry)
      // The journal holds the line already: a manifest that could not be written is rewritten later.
      const written: Effect.Effect<void, unknown> = loaded.manifestStale
        ? syncManifest(folder, loaded.entries)
        : folder.fs.writeFileString(folder.at(FILES.manifest), entryLine(entry), { flag: "a" })
      const ok = yield* written.pipe(Effect.as(true), Effect.orElseSucceed(() => false), Effect.uninterruptible)
      loaded.manifestStale = !ok
    }
    return next
  })

/** The journal's events; a torn last line is truncated away. */
const readJournal = (folder: Folder): Effect.Effect<Array<CampaignEvent>, CampaignStoreError> =>
  Effect.gen(function*() {
    const path = folder.at(FILES.journal)
    const bytes = yield* folder.fs.readFile(path).pipe(
      Effect.catchIf((e) => e._tag === "SystemError" && e.reason === "NotFound", () => Effect.succeed(new Uint8Array())),
      Effect.mapError(fsError(path))
    )
    const parsed = yield* parseJournal(bytes, path)
    if (parsed.keep !== undefined) yield* folder.fs.truncate(path, parsed.keep).pipe(Effect.mapError(fsError(path)))
    return parsed.events
  })

/**
 * Removes the temporary files a crash left in `results/` (ours and `downloadToFile`'s:
 * `<name>.partial-<24 hex>`); holding the lock, nobody else is writing them.
 */
const removeLeftovers = (folder: Folder): Effect.Effect<void, CampaignStoreError> =>
  Effect.gen(function*() {
    const dir = folder.at(FILES.results)
    if (!(yield* folder.fs.exists(dir).pipe(Effect.mapError(fsError(dir))))) return
    const names = yield* folder.fs.readDirectory(dir, { recursive: true }).pipe(Effect.mapError(fsError(dir)))
    const left = names.filter((name) => /\.partial-[0-9a-f]{24}$/.test(name))
    yield* Effect.forEach(left, (name) => folder.fs.remove(`${dir}/${name}`).pipe(Effect.mapError(fsError(dir))), {
      discard: true
    })
  })

/** Loads the campaign of `definition` from its journal; a journal left empty by a crash in `create` is begun again. */
const load = (folder: Folder, definition: CampaignDefinition): Effect.Effect<Loaded, CampaignStoreError> =>
  Effect.gen(function*() {
    const path = folder.at(FILES.journal)
    const events = yield* readJournal(folder)
    const state = yield* replay(events).pipe(
      Either.mapLeft((e) => storeError("Corrupt", e.detail, { path, line: e.line }))
    )
    const journal = yield* folder.fs.open(path, { flag: "a" }).pipe(Scope.extend(folder.scope), Effect.mapError(fsError(path)))
    yield* syncDirectory(folder.fs, folder.at("."))
    const loaded: Loaded = { definition, journal, state, entries: manifestOf(events), broken: false, manifestStale: false }
    if (state.events === 0) {
      yield* appendTo(folder, loaded, { _tag: "Defined", campaignId: definition.campaignId, at: definition.createdAt })
      if (definition.targets._tag === "Machines") {
        const machineIds = definition.targets.machineIds
        yield* appendTo(folder, loaded, { _tag: "TargetsResolved", machineIds, at: definition.createdAt })
      }
    }
    if (loaded.state.campaignId !== definition.campaignId) {
      return yield* storeError("Corrupt", `the journal is of campaign ${loaded.state.campaignId}, not ${definition.campaignId}`, {
        path
      })
    }
    yield* syncManifest(folder, loaded.entries)
    yield* removeLeftovers(folder)
    return loaded
  })

const readDefinition = (folder: Folder): Effect.Effect<CampaignDefinition, CampaignStoreError> =>
  Effect.gen(function*() {
    const path = folder.at(FILES.definition)
    const text = yield* folder.fs.readFileString(path).pipe(Effect.mapError(fsError(path)))
    return yield* decodeDefinition(text).pipe(
      Either.mapLeft((e) => storeError("Corrupt", ParseResult.TreeFormatter.formatErrorSync(e).slice(0, 300), { path }))
    )
  })

/** @internal The result methods: they need no loaded campaign, only the folder (a shared campaign's results use them too). */
export const resultsOf = (
  folder: Pick<Folder, "fs" | "at">
): Pick<CampaignStore, "saveResult" | "resultPath" | "recordResult"> => {
  const place = (machineId: string, index: number, name: string) =>
    Effect.gen(function*() {
      const file = yield* resultFile(machineId, index, name)
      const dir = folder.at(folderOf(file))
      yield* folder.fs.makeDirectory(dir, { recursive: true }).pipe(Effect.mapError(fsError(dir)))
      return { file, path: folder.at(file) }
    })
  return {
    saveResult: (machineId, index, name, bytes) =>
      Effect.flatMap(place(machineId, index, name), ({ file, path }) =>
        Effect.map(writeAtomically(folder.fs, path, bytes), (w): Omit<SavedResult, "md5Verified" | "type"> => ({
          index,
          file,
          ...w
        }))),
    resultPath: (machineId, index, name) => Effect.map(place(machineId, index, name), ({ path }) => path),
    recordResult: (machineId, index, name) =>
      Effect.gen(function*() {
        const file = yield* resultFile(machineId, index, name)
        return { index, file, ...(yield* hashFile(folder.fs, folder.at(file))) }
      })
  }
}

/** @internal `CampaignStore.makeFolder`. */
export const makeFolderStore = (
  dir: string
): Effect.Effect<CampaignStore, CampaignStoreError, FileSystem.FileSystem | Scope.Scope> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const root = dir === "" ? "." : dir
    const folder: Folder = { fs, scope: yield* Effect.scope, at: (file) => under(root, file) }
    yield* fs.makeDirectory(root, { recursive: true }).pipe(Effect.mapError(fsError(root)))
    yield* acquireLock(fs, folder.at(FILES.lock))
    const one = yield* Effect.makeSemaphore(1)
    let loaded: Loaded | undefined
    const opened = Effect.suspend(() =>
      loaded !== undefined
        ? Effect.succeed(loaded)
        : Effect.tap(Effect.flatMap(readDefinition(folder), (d) => load(folder, d)), (l) => (loaded = l))
    )
    const create = (definition: CampaignDefinition) =>
      Effect.gen(function*() {
        const path = folder.at(FILES.definition)
        const problem = checkDefinition(definition)
        if (problem !== undefined) return yield* storeError("InvalidDefinition", problem)
        if (loaded !== undefined || (yield* fs.exists(path).pipe(Effect.mapError(fsError(path))))) {
          return yield* storeError("AlreadyExists", "campaign.json exists", { path })
        }
        const text = `${JSON.stringify(encodeDefinition(definition), null, 2)}\n`
        yield* writeTextAtomically(fs, path, text)
        loaded = yield* load(folder, definition)
        return campaignOf(loaded)
      })
    return {
      create: (definition) => one.withPermits(1)(create(definition)),
      open: one.withPermits(1)(Effect.map(opened, campaignOf)),
      append: (event) => one.withPermits(1)(Effect.flatMap(opened, (l) => appendTo(folder, l, event))),
      manifest: one.withPermits(1)(Effect.map(opened, (l): ReadonlyArray<ManifestEntry> => [...l.entries])),
      ...resultsOf(folder)
    }
  })
