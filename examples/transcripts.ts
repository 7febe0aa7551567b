/**
 * Fetch the RunScript transcripts of several machine actions at once, inside
 * the shared rate budget, and print one line per action — failures included.
 *
 *   AZURE_TENANT_ID=… AZURE_CLIENT_ID=… AZURE_CLIENT_SECRET=… \
 *     node --import tsx examples/transcripts.ts <machineActionId>...
 *
 * Exits 0 once every action has its line, 3 (one `error: …` line) when the configuration is missing or wrong.
 */
import { FetchHttpClient } from "@effect/platform"
import { Console, Effect } from "effect"
import { LiveResponse } from "../mod.ts"

const ids = process.argv.slice(2)

const program = Effect.forEach(
  ids,
  (machineActionId) =>
    LiveResponse.getTranscript({ machineActionId, index: 0 }).pipe(
      Effect.flatMap((t) => Console.log(`${machineActionId}: ${t.scriptName} exited with ${t.exitCode}`)),
      // Every failure is typed: one line per action, and the others go on.
      Effect.catchAll((error) => Console.log(`${machineActionId}: failed, ${error._tag}: ${error.message}`))
    ),
  { concurrency: 10, discard: true }
)

program.pipe(
  Effect.provide(LiveResponse.layerConfig()),
  Effect.provide(FetchHttpClient.layer),
  // Only a configuration error gets here (no MDE_TOKEN nor AZURE_*, a bad MDE_API_URL…): one line, exit 3.
  Effect.catchAll((error) => Effect.as(Console.error(`error: configuration: ${String(error)}`), 3)),
  // A bug is one line too, not a FiberFailure dump.
  Effect.catchAllDefect((defect) => Effect.as(Console.error(`error: ${defect instanceof Error ? defect.message : String(defect)}`), 1)),
  Effect.runPromise
).then((code) => {
  if (code !== undefined) process.exitCode = code
})
