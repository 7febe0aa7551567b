/**
 * Which of these machine actions failed? Fetches the RunScript transcripts of
 * the given actions concurrently, inside the shared rate budget, and prints one
 * JSON line per failure — a non-zero exit code, or a typed error — and nothing
 * for the ones that succeeded. Exits 1 when something failed, 0 when nothing
 * did, 2 without ids, 3 on a configuration error (one `error: …` line).
 *
 *   MDE_TOKEN=… deno run --allow-env --allow-net --allow-read examples/failed.deno.ts <machineActionId>...
 *   cut -f1 actions.tsv | deno run --allow-env --allow-net --allow-read examples/failed.deno.ts
 *
 * Lines look like
 *   {"machineActionId":"…","index":0,"scriptName":"collect.ps1","exitCode":3,"stderr":"…"}
 *   {"machineActionId":"…","index":0,"error":{"_tag":"NotFound","message":"…"}}
 */
import { FetchHttpClient } from "@effect/platform"
import { Console, Effect } from "effect"
import { type DefenderError, LiveResponse } from "../mod.ts"

/** Action ids from the arguments or, when there are none, whitespace-separated on stdin. */
const readIds = async (): Promise<ReadonlyArray<string>> => {
  if (Deno.args.length === 0 && Deno.stdin.isTerminal()) return []
  const text = Deno.args.length > 0 ? Deno.args.join(" ") : await new Response(Deno.stdin.readable).text()
  return text.split(/\s+/).filter((id) => id !== "")
}

const describe = (error: DefenderError) => ({
  _tag: error._tag,
  ...("reason" in error ? { reason: error.reason } : {}),
  message: error.message
})

/** The failure line of one action, or `undefined` when its script exited with 0. */
const check = (machineActionId: string) =>
  LiveResponse.getTranscript({ machineActionId, index: 0 }).pipe(
    Effect.map((t) =>
      t.exitCode === 0
        ? undefined
        : { machineActionId, index: 0, scriptName: t.scriptName, exitCode: t.exitCode, stderr: t.error }
    ),
    // Every failure is typed: report it as a line and let the other actions go on.
    Effect.catchAll((error) => Effect.succeed({ machineActionId, index: 0, error: describe(error) }))
  )

const ids = await readIds()
if (ids.length === 0) {
  console.error("usage: deno run --allow-env --allow-net --allow-read examples/failed.deno.ts <machineActionId>... (or ids on stdin)")
  Deno.exit(2)
}

const failures = await Effect.forEach(
  ids,
  (id) => check(id).pipe(Effect.tap((line) => line === undefined ? Effect.void : Console.log(JSON.stringify(line)))),
  { concurrency: 10 }
).pipe(
  Effect.map((lines) => lines.filter((line) => line !== undefined).length),
  Effect.provide(LiveResponse.layerConfig()),
  Effect.provide(FetchHttpClient.layer),
  // Only a configuration error gets here (no MDE_TOKEN nor AZURE_*, a bad MDE_API_URL…).
  Effect.catchAll((error) => Effect.as(Console.error(`error: configuration: ${String(error)}`), -1)),
  // A bug is one line too, not a FiberFailure dump.
  Effect.catchAllDefect((defect) => Effect.as(Console.error(`error: ${defect instanceof Error ? defect.message : String(defect)}`), -2)),
  Effect.runPromise
)

Deno.exitCode = failures === -1 ? 3 : failures !== 0 ? 1 : 0
