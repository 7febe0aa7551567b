/**
 * The programs a user calls: get a command's result link, download its raw
 * result, or decode its RunScript transcript. Each needs a `DefenderClient`
 * in context; `LiveResponse.layerConfig()` builds the whole stack from the
 * environment.
 *
 * @example
 * ```ts
 * import { FetchHttpClient } from "@effect/platform"
 * import { Effect } from "effect"
 * import { LiveResponse } from "@mde/live-response"
 *
 * const program = Effect.gen(function*() {
 *   const transcript = yield* LiveResponse.getTranscript({ machineActionId: "988cc94e-7a8f-4b28-ab65-54970c5d5018", index: 0 })
 *   console.log(transcript.exitCode, transcript.output)
 * })
 *
 * program.pipe(Effect.provide(LiveResponse.layerConfig()), Effect.provide(FetchHttpClient.layer), Effect.runPromise)
 * ```
 *
 * @module
 * @since 0.1.0
 */
import type { HttpClient } from "@effect/platform"
import { type ConfigError, Effect, Layer, Stream } from "effect"
import * as DefenderAuth from "./DefenderAuth.ts"
import * as DefenderClient from "./DefenderClient.ts"
import type { DefenderError } from "./DefenderError.ts"
import * as DefenderRateLimiter from "./DefenderRateLimiter.ts"
import type { Transcript } from "./Transcript.ts"

/**
 * One command of a machine action: `{ machineActionId, index }`.
 *
 * @since 0.1.0
 */
export type CommandRef = DefenderClient.CommandRef

/**
 * A result's download link (`url` is `Redacted`: it carries a SAS signature).
 *
 * @since 0.1.0
 */
export type ResultLink = DefenderClient.ResultLink

/**
 * Asks Defender for a 30-minute download link of one command's result
 * (`GET /api/machineactions/{id}/GetLiveResponseResultDownloadLink(index=N)`).
 *
 * @since 0.1.0
 */
export const getResultLink = (
  ref: CommandRef
): Effect.Effect<ResultLink, DefenderError, DefenderClient.DefenderClient> =>
  Effect.flatMap(DefenderClient.DefenderClient, (client) => client.getResultLink(ref))

/**
 * Downloads one command's raw result as a byte stream (a GetFile result, or
 * the transcript file itself). An expired link is re-created once.
 *
 * @since 0.1.0
 */
export const downloadResult = (
  ref: CommandRef
): Stream.Stream<Uint8Array, DefenderError, DefenderClient.DefenderClient> =>
  Stream.unwrap(Effect.map(DefenderClient.DefenderClient, (client) => client.downloadResult(ref)))

/**
 * Downloads and decodes one RunScript command's transcript.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LiveResponse } from "@mde/live-response"
 *
 * const exitCode = LiveResponse.getTranscript({ machineActionId: "988cc94e-7a8f-4b28-ab65-54970c5d5018", index: 0 }).pipe(
 *   Effect.map((t) => t.exitCode),
 *   Effect.catchTag("NotFound", () => Effect.succeed(-1))
 * )
 * ```
 *
 * @since 0.1.0
 */
export const getTranscript = (
  ref: CommandRef
): Effect.Effect<Transcript, DefenderError, DefenderClient.DefenderClient> =>
  Effect.flatMap(DefenderClient.DefenderClient, (client) => client.getTranscript(ref))

/**
 * The whole stack from the environment: `DefenderClient.layerConfig`,
 * `DefenderAuth.layerConfig` and `DefenderRateLimiter.layerConfig`. Provide
 * an `HttpClient` (e.g. `FetchHttpClient.layer`) underneath.
 *
 * @since 0.1.0
 */
export const layerConfig = (): Layer.Layer<
  DefenderClient.DefenderClient,
  ConfigError.ConfigError,
  HttpClient.HttpClient
> =>
  DefenderClient.layerConfig().pipe(
    Layer.provide(Layer.merge(DefenderAuth.layerConfig(), DefenderRateLimiter.layerConfig()))
  )
