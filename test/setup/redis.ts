/**
 * Vitest global setup: the Redis server the shared-budget tests use. `.ci/run`
 * starts one and passes it as `MDE_TEST_REDIS_URL`; without that variable a
 * `redis-server` from the PATH is started here on a free loopback port (no
 * persistence) and stopped after the run.
 */
import type { TestProject } from "vitest/node"
import { haveRedis, startRedis } from "../../scripts/redis.ts"

declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string
  }
}

export default async function setup(project: TestProject): Promise<(() => void) | undefined> {
  const given = process.env["MDE_TEST_REDIS_URL"]
  if (given !== undefined && given !== "") {
    project.provide("redisUrl", given)
    return undefined
  }
  if (!haveRedis()) {
    throw new Error(
      "the tests need a Redis server: install redis-server (apt-get install -y redis-server) or set MDE_TEST_REDIS_URL"
    )
  }
  const redis = await startRedis()
  project.provide("redisUrl", redis.url)
  return redis.stop
}
