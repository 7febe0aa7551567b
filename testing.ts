/**
 * Testing aids: a simulated Defender tenant (Entra ID token endpoint, Defender
 * API, blob storage) to run the library against in your own tests, in-process
 * under `TestClock` or served on 127.0.0.1.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { DefenderAuth, DefenderClient, DefenderRateLimiter, LiveResponse } from "@mde/live-response"
 * import { DefenderSimulator } from "@mde/live-response/testing"
 *
 * const program = Effect.gen(function*() {
 *   const sim = yield* DefenderSimulator.make()
 *   const layer = DefenderClient.layer().pipe(
 *     Layer.provide(Layer.merge(DefenderAuth.layerToken(DefenderSimulator.STATIC_TOKEN), DefenderRateLimiter.layer())),
 *     Layer.provide(DefenderSimulator.layerHttpClient(sim))
 *   )
 *   const t = yield* LiveResponse.getTranscript({ machineActionId: DefenderSimulator.ACTIONS.runScript, index: 0 }).pipe(
 *     Effect.provide(layer)
 *   )
 *   return [t.scriptName, sim.count("getResultLink")]
 * })
 * ```
 *
 * @module
 * @since 0.1.0
 */

/** The simulated tenant. @since 0.1.0 */
export * as DefenderSimulator from "./src/testing/DefenderSimulator.ts"
