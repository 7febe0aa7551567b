/**
 * Microsoft Defender for Endpoint live response results as composable Effect
 * programs: typed transcripts, one shared rate budget, Retry-After aware
 * retries, expired links re-created, and no secret in any log.
 *
 * @example
 * ```ts
 * import { FetchHttpClient } from "@effect/platform"
 * import { Effect } from "effect"
 * import { LiveResponse } from "@mde/live-response"
 *
 * const program = Effect.gen(function*() {
 *   const transcript = yield* LiveResponse.getTranscript({ machineActionId: "988cc94e-7a8f-4b28-ab65-54970c5d5018", index: 0 })
 *   console.log(transcript.scriptName, transcript.exitCode, transcript.output)
 * })
 * program.pipe(Effect.provide(LiveResponse.layerConfig()), Effect.provide(FetchHttpClient.layer), Effect.runPromise)
 * ```
 *
 * @module
 * @since 0.1.0
 */

/** The programs a user calls: `getResultLink`, `downloadResult`, `getTranscript`. @since 0.1.0 */
export * as LiveResponse from "./src/LiveResponse.ts"
/** The API client service and its layers. @since 0.1.0 */
export * as DefenderClient from "./src/DefenderClient.ts"
/** Bearer tokens: client secret, static token, `@azure/identity` credentials. @since 0.1.0 */
export * as DefenderAuth from "./src/DefenderAuth.ts"
/** The shared rate budget. @since 0.1.0 */
export * as DefenderRateLimiter from "./src/DefenderRateLimiter.ts"
/** Clouds: commercial, geo hosts, GCC, GCC High, DoD. @since 0.1.0 */
export * as DefenderCloud from "./src/DefenderCloud.ts"
/** Machine actions: the type `runLiveResponse` answers, its commands, schema and decoder. @since 0.1.0 */
export * as MachineAction from "./src/MachineAction.ts"
/** Machines as the machines list reports them: the type, its decoder and `$filter` helpers. @since 0.1.0 */
export * as Machine from "./src/Machine.ts"
/** Tolerant RunScript transcript decoding. @since 0.1.0 */
export * as Transcript from "./src/Transcript.ts"
/** A campaign's durable journal, results and evidence manifest: the store and its folder layer. @since 0.1.0 */
export * as CampaignStore from "./src/CampaignStore.ts"
/** Campaigns: one live response across a fleet, within every limit, durable and resumable. @since 0.1.0 */
export * as Campaign from "./src/Campaign.ts"
/** Every typed error. @since 0.1.0 */
export * from "./src/DefenderError.ts"
