/**
 * The npm entry points' first check: that the `effect` this program loaded is
 * the 3.x line the library is built on. Effect 4 links against most of the
 * same names and then fails deep inside a layer (`GenericTag is not a
 * function`); this names the versions instead, in one line, before any of the
 * library is evaluated (dist/entry/*.js import the library only after it).
 * Only a namespace import of "effect" is used, so a missing export cannot fail
 * the link before the check runs.
 */
import * as EffectModule from "effect"

/** What the library needs, as install lines say it. */
export const REQUIRED =
  "effect 3.x (>= 3.22.4) with @effect/platform 0.97.x (and @effect/platform-node 0.108.x for a Node runtime)"

/** The problem with an `effect` module namespace, or `undefined` when it is the 3.x line. */
export const effectProblem = (effect: Readonly<Record<string, unknown>>): string | undefined => {
  const context = effect["Context"] as { readonly GenericTag?: unknown } | undefined
  const isThree = typeof context?.GenericTag === "function" && effect["Either"] !== undefined &&
    effect["ParseResult"] !== undefined
  return isThree
    ? undefined
    : `mde-live-response needs ${REQUIRED}, but this program loaded another effect (Effect 4?): npm install effect@3 @effect/platform@0.97`
}

/** Throws a one-line error (no stack) when the loaded `effect` is not the 3.x line. */
export const ensureEffect3 = (): void => {
  const problem = effectProblem(EffectModule as unknown as Readonly<Record<string, unknown>>)
  if (problem === undefined) return
  const error = new Error(problem)
  error.stack = `Error: ${problem}`
  throw error
}
