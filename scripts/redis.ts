/**
 * Starts a throwaway `redis-server` (from the PATH) on a free 127.0.0.1 port with
 * no persistence, for the tests and benchmarks that need a real Redis.
 */
import { spawn } from "node:child_process"
import { createServer } from "node:net"

export interface RunningRedis {
  readonly url: string
  /** Stops it; resolves once it has exited. */
  readonly stop: () => Promise<void>
}

/** A free TCP port on 127.0.0.1. */
export const freePort = (): Promise<number> =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })

export const startRedis = async (): Promise<RunningRedis> => {
  const port = await freePort()
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: ["ignore", "pipe", "inherit"] }
  )
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  await new Promise<void>((resolve, reject) => {
    let seen = ""
    child.once("exit", (code) => reject(new Error(`redis-server exited with ${code}`)))
    child.stdout!.on("data", (chunk: Buffer) => {
      seen += chunk.toString()
      if (seen.includes("Ready to accept connections")) resolve()
    })
  })
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: () => {
      child.kill()
      return exited
    }
  }
}
