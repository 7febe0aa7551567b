/**
 * The servers some tests and benchmarks need (Redis, PostgreSQL), how to find one, and the
 * one line printed when none is there.
 *
 * A server is found from its URL variable (`MDE_TEST_REDIS_URL`), else from its binary on
 * the PATH (started on a free loopback port, stopped afterwards). With neither, the tests
 * that need it are skipped with one line saying how to run them, unless
 * `MDE_REQUIRE_SERVERS=1` (`.ci/run` sets it): then a missing server is a failure.
 *
 * No test-runner import: vitest's global setup, the Deno and Bun suites and the
 * benchmarks all use it.
 */
import { spawnSync } from "node:child_process"
import { startPostgres } from "./postgres.ts"
import { startRedis } from "./redis.ts"

/** A server some tests need. */
export interface Server {
  /** As a person names it: `Redis`. */
  readonly title: string
  /** The binary started when no URL is given: `redis-server`. */
  readonly binary: string
  /** The variable that points the tests at a running one. */
  readonly urlVariable: string
  readonly exampleUrl: string
  readonly install: string
  readonly start: () => Promise<RunningServer>
}

export interface RunningServer {
  readonly url: string
  /** Stops it; resolves once it has exited. */
  readonly stop: () => Promise<void>
}

export const SERVERS: { readonly redis: Server; readonly postgres: Server } = {
  redis: {
    title: "Redis",
    binary: "redis-server",
    urlVariable: "MDE_TEST_REDIS_URL",
    exampleUrl: "redis://127.0.0.1:6379",
    install: "apt-get install redis-server",
    start: startRedis
  },
  postgres: {
    title: "PostgreSQL",
    // initdb and postgres are taken from the folder the PATH's pg_ctl is in (scripts/postgres.ts).
    binary: "pg_ctl",
    urlVariable: "MDE_TEST_POSTGRES_URL",
    exampleUrl: "postgres://postgres@127.0.0.1:5432/postgres",
    install: "apt-get install postgresql, with /usr/lib/postgresql/<version>/bin on the PATH",
    start: startPostgres
  }
}

export type ServerName = keyof typeof SERVERS

/** The variable that turns a missing server into a failure. */
export const REQUIRE_SERVERS = "MDE_REQUIRE_SERVERS"

/** Whether a missing server is a failure (`MDE_REQUIRE_SERVERS=1`) rather than a skip. */
export const serversRequired = (): boolean => process.env[REQUIRE_SERVERS] === "1"

/** Whether `binary` runs here (`<binary> --version` exits 0). */
export const onPath = (binary: string): boolean => spawnSync(binary, ["--version"], { stdio: "ignore" }).status === 0

/**
 * Where a server can come from here: its URL variable, its binary on the PATH (`url`
 * undefined, `binary` true), or nowhere (`missing` says why, in words).
 */
export interface Located {
  readonly url: string | undefined
  readonly binary: boolean
  readonly missing: string | undefined
}

export const locate = (name: ServerName): Located => {
  const server = SERVERS[name]
  const given = process.env[server.urlVariable]
  const binary = onPath(server.binary)
  const url = given === undefined || given === "" ? undefined : given
  return {
    url,
    binary,
    missing: url === undefined && !binary ? `no ${server.binary} on the PATH and no ${server.urlVariable}` : undefined
  }
}

/** The running server `located` points at: the given URL (`stop` does nothing), or one started now. */
export const use = async (name: ServerName, located: Located): Promise<RunningServer> =>
  located.url !== undefined ? { url: located.url, stop: () => Promise.resolve() } : await SERVERS[name].start()

/** How to get one; a test that starts its own server needs the binary, a URL does not do. */
const howTo = (name: ServerName, binaryOnly: boolean): string => {
  const server = SERVERS[name]
  return binaryOnly ? server.install : `${server.install}, or set ${server.urlVariable}=${server.exampleUrl}`
}

/** Why a test that starts its own server cannot run here. */
export const binaryMissing = (name: ServerName): string => `no ${SERVERS[name].binary} on the PATH`

/** `skipped 4 Redis test files: no redis-server on the PATH and no MDE_TEST_REDIS_URL (apt-get install …)`. */
export const skipLine = (name: ServerName, what: string, why: string, binaryOnly = false): string =>
  `skipped ${what}: ${why} (${howTo(name, binaryOnly)})`

/** The failure under `MDE_REQUIRE_SERVERS=1`. */
export const requiredLine = (name: ServerName, why: string, binaryOnly = false): string =>
  `${REQUIRE_SERVERS}=1 and the tests need ${SERVERS[name].title}: ${why} (${howTo(name, binaryOnly)})`

/** `1 Redis test file`, `4 Redis test files`. */
export const files = (name: ServerName, n: number): string => `${n} ${SERVERS[name].title} test file${n === 1 ? "" : "s"}`

/**
 * For a suite outside vitest (Deno, Bun): where `name` is, or, when it is nowhere, the skip
 * line printed now (`what` is what gets skipped), or under `MDE_REQUIRE_SERVERS=1` a throw.
 */
export const locateOrSkip = (name: ServerName, what: string): Located => {
  const located = locate(name)
  if (located.missing !== undefined) {
    if (serversRequired()) throw new Error(requiredLine(name, located.missing))
    console.log(skipLine(name, what, located.missing))
  }
  return located
}
