/**
 * The token cache behind every refreshing `DefenderAuth`: one shared request at a
 * time, refreshed ahead in the background while the cached token still works, and
 * waited for only when there is no token that is still valid.
 *
 * @internal
 */
import { Clock, Deferred, Effect, Exit, FiberId, Redacted, type Scope } from "effect"
import type { DefenderAuth, IssuedToken } from "../../DefenderAuth.ts"
import type { AuthenticationError } from "../../DefenderError.ts"

interface Cached {
  readonly token: Redacted.Redacted<string>
  readonly expiresAt: number
  readonly refreshAt: number
}

type Shared = Deferred.Deferred<Redacted.Redacted<string>, AuthenticationError>

/** @internal The wait after the first failed background refresh before the next: 5 seconds, doubling. */
export const FIRST_BACKOFF_MILLIS = 5_000

/** @internal The longest wait between two failed background refreshes: 1 minute. */
export const MAX_BACKOFF_MILLIS = 60_000

/**
 * @internal When to start replacing a token: `marginMillis` before it expires (half its life
 * for a short-lived one), or earlier when the issuer said so (`refresh_in`).
 */
export const refreshAtOf = (issued: IssuedToken, now: number, marginMillis: number): number => {
  const byMargin = issued.expiresAt - Math.min(marginMillis, Math.max(0, issued.expiresAt - now) / 2)
  return issued.refreshAt === undefined ? byMargin : Math.min(issued.refreshAt, byMargin)
}

/**
 * @internal Builds the cache over `issue`. A token inside its refresh window is still handed
 * out while one background refresh runs in the scope; a failed refresh fails no caller while
 * the token is valid, and the next is started by a caller after a backoff. A caller with no
 * valid token joins the request in flight, or starts one, and sees its outcome.
 */
export const make = (
  issue: Effect.Effect<IssuedToken, AuthenticationError>,
  marginMillis: number
): Effect.Effect<DefenderAuth, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    let cached: Cached | undefined
    let inflight: Shared | undefined
    let failures = 0
    let notBefore = 0

    const succeeded = (issued: IssuedToken) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        cached = { token: issued.token, expiresAt: issued.expiresAt, refreshAt: refreshAtOf(issued, now, marginMillis) }
        failures = 0
        notBefore = 0
        return issued.token
      })

    const failedWhileValid = (error: AuthenticationError) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        failures += 1
        const backoff = Math.min(MAX_BACKOFF_MILLIS, FIRST_BACKOFF_MILLIS * 2 ** (failures - 1))
        notBefore = now + backoff
        if (cached === undefined || now >= cached.expiresAt) return Effect.void
        return Effect.logWarning(
          `mde-live-response: refreshing the token failed; the cached one (valid ${
            Math.round((cached.expiresAt - now) / 1000)
          } s more) is used, next try in ${backoff / 1000} s: ${error.message}`
        )
      })

    // Runs in the layer's scope, so a caller that gives up does not cancel it for the others.
    const start = (shared: Shared): Effect.Effect<void> =>
      issue.pipe(
        Effect.flatMap(succeeded),
        Effect.tapError(failedWhileValid),
        Effect.onExit((exit: Exit.Exit<Redacted.Redacted<string>, AuthenticationError>) => {
          if (inflight === shared) inflight = undefined
          return Deferred.done(shared, exit)
        }),
        // A fiber forked here would inherit the uninterruptible region, and then no
        // timeout inside the request could cut it short.
        Effect.interruptible,
        Effect.forkIn(scope),
        Effect.asVoid
      )

    const announce = (): Shared => {
      const shared = Deferred.unsafeMake<Redacted.Redacted<string>, AuthenticationError>(FiberId.none)
      inflight = shared
      return shared
    }

    // Decided synchronously, so two callers can never both start a request; only
    // the wait is interruptible, so a request is always started once announced.
    const token = Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const current = cached
        if (current !== undefined && now < current.expiresAt) {
          if (now < current.refreshAt || inflight !== undefined || now < notBefore) return Effect.succeed(current.token)
          return Effect.as(start(announce()), current.token)
        }
        if (inflight !== undefined) return restore(Deferred.await(inflight))
        const shared = announce()
        return Effect.zipRight(start(shared), restore(Deferred.await(shared)))
      })
    )

    const invalidate = (used: Redacted.Redacted<string>) =>
      Effect.sync(() => {
        if (cached !== undefined && Redacted.value(cached.token) === Redacted.value(used)) cached = undefined
        return true
      })

    return { token, invalidate }
  })
