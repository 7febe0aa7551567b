/**
 * One writer per folder: a lock file created exclusively (`wx`) that holds the writer's
 * pid and host. A lock whose pid is gone on this host is stale and taken over; a live
 * one — or one from another host, which cannot be checked — is `Locked`. The lock is
 * removed when the scope closes, if it is still ours.
 *
 * @internal
 */
import type { FileSystem } from "@effect/platform"
import { Clock, Effect, Option, type Scope } from "effect"
import { hostname } from "node:os"
import process from "node:process"
import { type CampaignStoreError, storeError } from "./error.ts"
import { fsError } from "./files.ts"

interface Holder {
  readonly pid: number
  readonly host: string
  readonly since: number
}

const readHolder = (text: string): Option.Option<Holder> => {
  try {
    const value = JSON.parse(text) as Partial<Holder>
    return typeof value.pid === "number" && typeof value.host === "string"
      ? Option.some({ pid: value.pid, host: value.host, since: typeof value.since === "number" ? value.since : 0 })
      : Option.none()
  } catch {
    return Option.none()
  }
}

/** @internal Whether `holder` may still be running: its pid answers signal 0 (EPERM: it exists, not ours). */
export const isAlive = (holder: { readonly pid: number; readonly host: string }): boolean => {
  if (holder.host !== hostname() || holder.pid === process.pid) return true
  try {
    process.kill(holder.pid, 0)
    return true
  } catch (e) {
    return (e as { code?: string }).code === "EPERM"
  }
}

/** Creates the lock, or answers who holds it (`Option.none()` when unreadable: a writer that died creating it). */
const tryCreate = (
  fs: FileSystem.FileSystem,
  path: string,
  text: string
): Effect.Effect<{ readonly created: true } | { readonly created: false; readonly holder: Option.Option<Holder> }, CampaignStoreError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const opened = yield* Effect.either(fs.open(path, { flag: "wx" }))
      if (opened._tag === "Right") {
        yield* opened.right.writeAll(new TextEncoder().encode(text)).pipe(
          Effect.zipRight(opened.right.sync),
          Effect.mapError(fsError(path))
        )
        return { created: true } as const
      }
      if (opened.left._tag !== "SystemError" || opened.left.reason !== "AlreadyExists") return yield* fsError(path)(opened.left)
      const current = yield* fs.readFileString(path).pipe(Effect.orElseSucceed(() => ""))
      return { created: false, holder: readHolder(current) } as const
    })
  )

/** @internal Takes the folder's lock for the scope (see the module). */
export const acquireLock = (
  fs: FileSystem.FileSystem,
  path: string
): Effect.Effect<void, CampaignStoreError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const text = JSON.stringify({ pid: process.pid, host: hostname(), since: yield* Clock.currentTimeMillis })
      for (let attempt = 1; attempt <= 3; attempt++) {
        const result = yield* tryCreate(fs, path, text)
        if (result.created) return text
        if (Option.isSome(result.holder) && isAlive(result.holder.value)) {
          const h = result.holder.value
          return yield* storeError("Locked", `process ${h.pid} on ${h.host} holds it (since ${new Date(h.since).toISOString()})`, {
            path
          })
        }
        // Stale: its writer is gone. Remove it and try again (another taker may win the race: then it is live).
        yield* fs.remove(path).pipe(Effect.catchAll(() => Effect.void))
      }
      return yield* storeError("Locked", "the lock kept reappearing while being taken over", { path })
    }),
    (text) =>
      fs.readFileString(path).pipe(
        Effect.flatMap((current) => current === text ? fs.remove(path) : Effect.void),
        Effect.ignore
      )
  ).pipe(Effect.asVoid)
