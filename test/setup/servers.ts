/**
 * Vitest global setup: the servers some tests need (scripts/servers.ts). Each is taken
 * from its URL variable (`.ci/run` passes `MDE_TEST_REDIS_URL`), else its binary on the
 * PATH is started on a free loopback port and stopped after the run. With neither, the
 * files that need it skip their tests (test/utils/servers.ts), and this prints one line
 * after the run saying how many and how to run them; with `MDE_REQUIRE_SERVERS=1` a
 * missing server fails the run instead.
 */
import type { RunnerTask } from "vitest"
import type { TestProject } from "vitest/node"
import {
  binaryMissing,
  files,
  locate,
  requiredLine,
  SERVERS,
  type ServerName,
  serversRequired,
  skipLine,
  use
} from "../../scripts/servers.ts"

/** What a test file learns about one server: its URL, whether its binary is here, and why not. */
export interface ServerInfo {
  readonly url: string | undefined
  readonly binary: boolean
  readonly missing: string | undefined
}

declare module "vitest" {
  export interface ProvidedContext {
    servers: Record<ServerName, ServerInfo>
  }
}

/** The marker test/utils/servers.ts puts on a skipped file's placeholder test. */
export interface SkipMark {
  readonly server: ServerName
  readonly binary: boolean
}

const marks = (task: RunnerTask): Array<SkipMark> => [
  ...((task.meta as { skippedFor?: SkipMark }).skippedFor ? [(task.meta as { skippedFor: SkipMark }).skippedFor] : []),
  ...("tasks" in task ? task.tasks.flatMap(marks) : [])
]

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const servers = {} as Record<ServerName, ServerInfo>
  const stops: Array<() => Promise<void>> = []
  for (const name of Object.keys(SERVERS) as Array<ServerName>) {
    const located = locate(name)
    if (located.missing !== undefined && serversRequired()) throw new Error(requiredLine(name, located.missing))
    let url = located.url
    if (located.missing === undefined) {
      const running = await use(name, located)
      url = running.url
      stops.push(running.stop)
    }
    servers[name] = { url, binary: located.binary, missing: located.missing }
  }
  project.provide("servers", servers)
  return async () => {
    await Promise.all(stops.map((stop) => stop()))
    // One line per server, after the run: how many files skipped for want of it.
    const found = project.vitest.state.getFiles().map((file) => ({ file, marks: marks(file) }))
    for (const name of Object.keys(SERVERS) as Array<ServerName>) {
      const skipped = found.filter((f) => f.marks.some((m) => m.server === name))
      if (skipped.length === 0) continue
      const binaryOnly = skipped.every((f) => f.marks.every((m) => m.server !== name || m.binary))
      const why = binaryOnly ? binaryMissing(name) : servers[name].missing!
      process.stdout.write(`\n${skipLine(name, files(name, skipped.length), why, binaryOnly)}\n`)
    }
  }
}
