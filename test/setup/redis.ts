/**
 * Vitest global setup: the Redis server the shared-budget tests use. `.ci/run`
 * starts one and passes it as `MDE_TEST_REDIS_URL`; without that variable a
 * `redis-server` from the PATH is started here on a free loopback port (no
 * persistence) and stopped after the run.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { createServer } from "node:net"
import type { TestProject } from "vitest/node"

declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string
  }
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })

export default async function setup(project: TestProject): Promise<(() => void) | undefined> {
  const given = process.env["MDE_TEST_REDIS_URL"]
  if (given !== undefined && given !== "") {
    project.provide("redisUrl", given)
    return undefined
  }
  if (spawnSync("redis-server", ["--version"]).status !== 0) {
    throw new Error(
      "the tests need a Redis server: install redis-server (apt-get install -y redis-server) or set MDE_TEST_REDIS_URL"
    )
  }
  const port = await freePort()
  const child: ChildProcess = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: ["ignore", "pipe", "inherit"] }
  )
  await new Promise<void>((resolve, reject) => {
    let seen = ""
    child.once("exit", (code) => reject(new Error(`redis-server exited with ${code}`)))
    child.stdout!.on("data", (chunk: Buffer) => {
      seen += chunk.toString()
      if (seen.includes("Ready to accept connections")) resolve()
    })
  })
  child.stdout!.resume()
  project.provide("redisUrl", `redis://127.0.0.1:${port}`)
  return () => {
    child.kill()
  }
}
