/**
 * What every part of the client shares: its dependencies, resolved options and
 * retry policies. Built once by `DefenderClient.make`.
 *
 * @internal
 */
import type { HttpClient } from "@effect/platform"
import type { Duration, Schedule } from "effect"
import type { DefenderAuth } from "../../DefenderAuth.ts"
import type * as DefenderCloud from "../../DefenderCloud.ts"
import type { DefenderError } from "../../DefenderError.ts"
import type { DefenderRateLimiter } from "../../DefenderRateLimiter.ts"

/** @internal The client's dependencies and settings, as its parts need them. */
export interface ClientContext {
  readonly auth: DefenderAuth
  readonly limiter: DefenderRateLimiter
  /** API calls: the user's `HttpClient`, following no redirect. */
  readonly http: HttpClient.HttpClient
  /** Storage downloads: `http` with the platform's span off (it would record the SAS URL). */
  readonly storage: HttpClient.HttpClient
  readonly cloud: DefenderCloud.DefenderCloud
  /** Why the cloud's API base is refused (plain http off loopback), checked once; every call then fails. */
  readonly cloudProblem: string | undefined
  /** Retries of reads (and of anything idempotent). */
  readonly readPolicy: Schedule.Schedule<unknown, DefenderError>
  /** Retries of a POST: only a 429, which Defender never carried out. */
  readonly postPolicy: Schedule.Schedule<unknown, DefenderError>
  /** The user's schedule, for the policies built from it elsewhere. */
  readonly schedule: Schedule.Schedule<unknown, DefenderError>
  readonly allowedHosts: ReadonlyArray<string>
  readonly maxTranscriptBytes: number
  /** The time limit of one attempt. */
  readonly timeout: Duration.Duration
  /** The time limit of one read of a download's body, from its headers to its end. */
  readonly bodyDeadline: Duration.Duration
  /** The largest result a download may deliver (`downloadResult`, `downloadToFile`…); none when undefined. */
  readonly maxResultBytes: number | undefined
}
