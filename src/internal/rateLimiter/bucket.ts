/**
 * The rate-limit algorithm, written once over a `Store`: one budget's queue, its
 * wait loop and the life of a permit, whatever keeps the budget.
 *
 * @internal
 */
import { Clock, Deferred, Duration, Effect, Either, Exit, FiberId } from "effect"
import type { RateLimiterUnavailable } from "../../DefenderError.ts"
import type { Store } from "./store.ts"

/**
 * One bucket's budget as its callers see it.
 *
 * @internal
 */
export interface BucketLimiter<X = never> {
  /** Runs `call` once the store grants it a permit; fails with the store's error, without running `call`. */
  readonly withPermit: <A, E, R>(call: Effect.Effect<A, E, R>) => Effect.Effect<A, E | X, R>
  /** Holds every caller of the bucket until `duration` from now has passed. */
  readonly pause: (duration: Duration.DurationInput) => Effect.Effect<void, X>
  /** How many callers are waiting for a permit right now. */
  readonly waiters: () => number
}

/**
 * How a bucket uses its store.
 *
 * @internal
 */
export interface BucketOptions {
  /** Makes this process's permit ids unique in a store other processes share. */
  readonly worker: string
  /**
   * Whether waiting callers queue behind one head that polls the store. Without
   * limits only a pause can hold a caller, so an in-memory bucket needs no queue;
   * a shared one keeps it, so that only the head asks Redis.
   */
  readonly queue: boolean
  /** The attributes of the `DefenderRateLimiter.acquire` span. */
  readonly attributes?: Record<string, string> | undefined
  /**
   * How long (milliseconds) callers wait for a store that cannot be reached, counted from
   * the first failure of the outage; 0 or absent fails at once. Asked at each failure:
   * the Redis limiter does not wait for a Redis it has never reached (a wrong address).
   */
  readonly outageWait?: (() => number) | undefined
}

/**
 * A mutual-exclusion lock that hands itself to waiters in arrival order (Effect's
 * `Semaphore` lets a newcomer take a just-released permit before the woken waiter).
 * Waiting for it can always be interrupted, even inside an uninterruptible region.
 */
const makeFifoLock = () => {
  let held = false
  const waiters: Array<Deferred.Deferred<void>> = []
  const release = () => {
    const next = waiters.shift()
    if (next === undefined) held = false
    else Deferred.unsafeDone(next, Exit.void)
  }
  const take = Effect.suspend(() => {
    if (!held) {
      held = true
      return Effect.void
    }
    const ticket = Deferred.unsafeMake<void>(FiberId.none)
    waiters.push(ticket)
    return Effect.onInterrupt(Effect.interruptible(Deferred.await(ticket)), () =>
      Effect.sync(() => {
        const at = waiters.indexOf(ticket)
        // Still queued: leave the queue; already handed the lock: pass it on.
        if (at >= 0) waiters.splice(at, 1)
        else release()
      }))
  })
  return <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(restore(take), Effect.ensuring(restore(self), Effect.sync(release)))
    )
}

/** Counts the callers waiting in `self` (for `waiting`). */
const counted = () => {
  let waiters = 0
  return {
    waiters: () => waiters,
    around: <A, E>(self: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      Effect.acquireUseRelease(Effect.sync(() => waiters++), () => self, () => Effect.sync(() => waiters--))
  }
}

/** A wait for a permit that can be interrupted even where the permit's taking cannot. */
const sleepMillis = (millis: number) => Effect.interruptible(Effect.sleep(Duration.millis(millis)))

/** The first and the longest pause between two tries of an unreachable store. */
const OUTAGE_POLL_FIRST = 100
const OUTAGE_POLL_MAX = 1000

/**
 * One outage of a bucket's store, as its callers live through it: when it began (the
 * first failure since the store last answered), its last failure, and how long a try
 * may still wait for the store to come back.
 */
const makeOutage = <X>(outageWait: () => number) => {
  let since: number | undefined
  let last: { readonly at: number; readonly error: X } | undefined
  return {
    answered: (): void => {
      since = undefined
      last = undefined
    },
    failed: (now: number, error: X): void => {
      since ??= now
      last = { at: now, error }
    },
    /** How long callers may still wait from `now`, counted from the outage's start (0: fail now). */
    left: (now: number): number => since === undefined ? 0 : Math.max(0, since + outageWait() - now),
    /**
     * The error a caller who has waited since `arrived` fails with at once, without asking
     * the store again: the outage's wait is over and the store failed after it arrived (so
     * the queue behind a head that gave up drains at once, even if each try would hang).
     */
    over: (now: number, arrived: number): X | undefined =>
      last !== undefined && last.at > arrived && since !== undefined && now >= since + outageWait()
        ? last.error
        : undefined
  }
}

/**
 * One budget over `store`: the head of the queue sleeps until its permit is due,
 * the others wait behind it in arrival order, so nobody spins or jumps the queue.
 *
 * @internal
 */
export const makeBucket = <X extends RateLimiterUnavailable>(store: Store<X>, options: BucketOptions): BucketLimiter<X> => {
  const lock = makeFifoLock()
  const outage = makeOutage<X>(options.outageWait ?? (() => 0))
  let counter = 0

  // A wait the store computes is a lower bound (a 429 may extend the pause, calls that
  // end meanwhile move their stamps later, other processes take permits too), so it is
  // checked again after every sleep. An unreachable store is asked again with a backoff
  // until the outage's wait is over; the head keeps the lock meanwhile, so the queue
  // keeps its order, and the callers behind it give up together with it.
  const waitForPermit = (arrived: number) =>
    Effect.gen(function*() {
      const id = `${options.worker}:${++counter}`
      const over = outage.over(yield* Clock.currentTimeMillis, arrived)
      if (over !== undefined) return yield* Effect.fail(over)
      let poll = OUTAGE_POLL_FIRST
      while (true) {
        const now = yield* Clock.currentTimeMillis
        const result = yield* Effect.either(store.acquire(now, id))
        if (Either.isLeft(result)) {
          const failedAt = yield* Clock.currentTimeMillis
          outage.failed(failedAt, result.left)
          const left = outage.left(failedAt)
          if (left <= 0) return yield* Effect.fail(result.left)
          yield* sleepMillis(Math.min(poll, left))
          poll = Math.min(poll * 2, OUTAGE_POLL_MAX)
          continue
        }
        outage.answered()
        poll = OUTAGE_POLL_FIRST
        if (result.right <= 0) return id
        yield* sleepMillis(result.right)
      }
    })

  const waiting = counted()
  const acquire = waiting.around(Effect.flatMap(
    Clock.currentTimeMillis,
    (arrived) => options.queue ? lock(waitForPermit(arrived)) : waitForPermit(arrived)
  )).pipe(
    Effect.withSpan("DefenderRateLimiter.acquire", { attributes: options.attributes ?? {} })
  )
  const release = (id: string) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => store.release(id, now)).pipe(
      // Unreleased, the permit leaves the windows after its lease: later, never sooner.
      Effect.catchAll((error) => Effect.logDebug(`mde-live-response: could not release a permit: ${error.detail}`))
    )

  return {
    // `acquire` runs uninterruptibly (its waits are interruptible), so a permit once
    // taken is always released: an interruption never leaves it counted as in flight.
    withPermit: (call) => Effect.acquireUseRelease(acquire, () => call, release),
    pause: (duration) =>
      Effect.flatMap(
        Clock.currentTimeMillis,
        (now) => store.pause(now + Duration.toMillis(Duration.decode(duration)), now)
      ),
    waiters: waiting.waiters
  }
}

/**
 * How many callers wait in all of `buckets`.
 *
 * @internal
 */
export const waitersIn = (buckets: Record<string, { readonly waiters: () => number }>): number => {
  let total = 0
  for (const bucket of Object.values(buckets)) total += bucket.waiters()
  return total
}
