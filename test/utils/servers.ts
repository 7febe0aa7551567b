/**
 * For a test file that needs a server (Redis now; see scripts/servers.ts): where it is,
 * or, when there is none here, whether to skip. A skipped file gets one placeholder test
 * marked for the server, which test/setup/servers.ts counts into the one line it prints
 * after the run. Under `MDE_REQUIRE_SERVERS=1` a missing server fails the file instead.
 *
 * ```ts
 * const redis = needServer("redis")
 * describe.skipIf(redis.skip)("…", () => { … redis.url … })
 * ```
 */
import { inject, it, type TestOptions } from "vitest"
import { binaryMissing, requiredLine, SERVERS, type ServerName, serversRequired } from "../../scripts/servers.ts"
import type { SkipMark } from "../setup/servers.ts"

export interface Needed {
  /** The server's URL; `""` when `skip`. */
  readonly url: string
  readonly skip: boolean
}

const skipping = (mark: SkipMark, why: string): Needed => {
  if (serversRequired()) throw new Error(requiredLine(mark.server, why, mark.binary))
  // Skipped on purpose: a placeholder that makes the skip visible in the run's report.
  // vitest 3 copies a test's `meta` option onto its task (not in the option's type); the
  // test in test/servers.test.ts fails if that stops.
  it.skip(`needs ${SERVERS[mark.server].title}: ${why}`, { meta: { skippedFor: mark } } as TestOptions, () => {})
  return { url: "", skip: true }
}

/** A running server of `name`: the one given by its URL variable, or the one the global setup started. */
export const needServer = (name: ServerName): Needed => {
  const info = inject("servers")[name]
  return info.url === undefined ? skipping({ server: name, binary: false }, info.missing!) : { url: info.url, skip: false }
}

/** The server's binary, for a file that starts and stops servers of its own (`url` is `""`). */
export const needServerBinary = (name: ServerName): Needed => {
  const info = inject("servers")[name]
  return info.binary ? { url: "", skip: false } : skipping({ server: name, binary: true }, binaryMissing(name))
}
