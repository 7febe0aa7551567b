/**
 * Serving the simulator with `node:http` (which Node, Deno and Bun all provide): Node's
 * request to a web `Request`, the web `Response` back out with back-pressure, a dropped
 * connection as a destroyed socket.
 *
 * @internal
 */
import { Effect, Runtime, type Scope } from "effect"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import { createServer as createHttpsServer } from "node:https"
import type { AddressInfo } from "node:net"
import type { DefenderSimulator } from "../DefenderSimulator.ts"

/** @internal The key and certificate (PEM) of an https server. */
export interface TlsOptions {
  readonly key: string
  readonly cert: string
}

/**
 * @internal Listens on 127.0.0.1 (`port`, or a free one) until the scope closes, over https when
 * `tls` is given; answers the port.
 */
export const listen = (
  sim: DefenderSimulator,
  port: number | undefined,
  tls?: TlsOptions | undefined
): Effect.Effect<number, never, Scope.Scope> =>
  Effect.gen(function*() {
    const run = Runtime.runPromise(yield* Effect.runtime<never>())
    const answer = (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Array<Uint8Array> = []
      req.on("data", (chunk: Uint8Array) => chunks.push(chunk))
      req.on("end", () => {
        const request = toRequest(req, chunks, sim.blobOrigin)
        if (request === undefined) {
          // A request the web `Request` cannot represent (a TRACE, a broken URL).
          res.writeHead(400).end()
          return
        }
        run(sim.handle(request))
          .then((response) => {
            if (response === undefined) req.socket.destroy()
            else return write(response, res)
          })
          .catch(() => req.socket.destroy())
      })
    }
    const server = tls === undefined ? createServer(answer) : createHttpsServer({ key: tls.key, cert: tls.cert }, answer)
    const listening = yield* Effect.async<number>((resume) => {
      server.once("error", (error) => resume(Effect.die(error)))
      server.listen(port ?? 0, "127.0.0.1", () => resume(Effect.succeed((server.address() as AddressInfo).port)))
    })
    yield* Effect.addFinalizer(() =>
      Effect.async<void>((resume) => {
        server.closeAllConnections?.()
        server.close(() => resume(Effect.void))
      })
    )
    return listening
  })

const toRequest = (req: IncomingMessage, chunks: Array<Uint8Array>, origin: string): Request | undefined => {
  try {
    const headers = new Headers()
    for (const [key, value] of Object.entries(req.headers)) {
      if (typeof value === "string") headers.set(key, value)
      else if (Array.isArray(value)) headers.set(key, value.join(", "))
    }
    const method = req.method ?? "GET"
    return new Request(new URL(req.url ?? "/", origin), {
      method,
      headers,
      body: method === "GET" || method === "HEAD" ? null : Buffer.concat(chunks)
    })
  } catch {
    return undefined
  }
}

const write = async (response: Response, res: ServerResponse): Promise<void> => {
  const out: Record<string, string> = {}
  response.headers.forEach((value, key) => {
    out[key] = value
  })
  res.writeHead(response.status, out)
  // Status and headers go out now, as a real server's do, not with the first chunk
  // of the body: a trickling body then stalls after the headers, not before them.
  res.flushHeaders()
  if (response.body !== null) {
    const reader = response.body.getReader()
    let closed = false
    res.once("close", () => {
      closed = true
      res.emit("drain")
    })
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      // Respect back-pressure: a 1 GiB result must not pile up in memory; a client
      // that went away ends the loop (and the body) instead of waiting forever.
      if (!res.write(next.value)) await new Promise((resolve) => res.once("drain", resolve))
      if (closed) {
        await reader.cancel()
        return
      }
    }
  }
  res.end()
}
