/**
 * The in-memory store: one bucket's sliding logs and pause, kept in this process.
 *
 * @internal
 */
import { Effect } from "effect"
import type { Store, WindowSpec } from "./store.ts"

/** One permit's time in the windows: when it was granted, then when its call ended. */
interface Stamp {
  time: number
  ended: boolean
}

/**
 * A sliding log per limit: the stamps of the last `limit` permits, so no rolling
 * window ever holds more than its limit.
 *
 * @internal
 */
export const makeMemoryStore = (specs: ReadonlyArray<WindowSpec>): Store => {
  const windows = specs.map((w) => ({ ...w, stamps: [] as Array<Stamp> }))
  const inFlight = new Map<string, Stamp>()
  let pausedUntil = 0

  const waitMillis = (now: number): number => {
    let wait = pausedUntil - now
    for (const w of windows) {
      if (w.stamps.length >= w.limit) {
        // A new call may start once one of the last `limit` calls has left the window.
        // A call still in flight may reach the API at any moment: it cannot leave the window yet.
        let oldest = Infinity
        for (const stamp of w.stamps) oldest = Math.min(oldest, stamp.ended ? stamp.time : now)
        wait = Math.max(wait, oldest + w.millis - now)
      }
    }
    return wait
  }

  const take = (now: number): Stamp => {
    const stamp: Stamp = { time: now, ended: false }
    for (const w of windows) {
      if (w.stamps.length >= w.limit) {
        // Drop the call that has left the window — the earliest to have ended, which is
        // not always the earliest granted (a slow call ends after faster later ones).
        let drop = 0
        for (let i = 1; i < w.stamps.length; i++) {
          const a = w.stamps[i]!
          const b = w.stamps[drop]!
          if ((a.ended ? a.time : Infinity) < (b.ended ? b.time : Infinity)) drop = i
        }
        w.stamps.splice(drop, 1)
      }
      w.stamps.push(stamp)
    }
    return stamp
  }

  return {
    acquire: (now, permitId) =>
      Effect.sync(() => {
        const wait = waitMillis(now)
        if (wait > 0) return wait
        inFlight.set(permitId, take(now))
        return 0
      }),
    release: (permitId, now) =>
      Effect.sync(() => {
        const stamp = inFlight.get(permitId)
        if (stamp === undefined) return
        inFlight.delete(permitId)
        stamp.time = Math.max(stamp.time, now)
        stamp.ended = true
      }),
    pause: (until) =>
      Effect.sync(() => {
        pausedUntil = Math.max(pausedUntil, until)
      })
  }
}
