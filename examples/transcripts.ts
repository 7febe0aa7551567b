/**
 * Fetch the RunScript transcripts of several machine actions at once, inside
 * the shared rate budget, and print one line per action — failures included.
 *
 *   AZURE_TENANT_ID=… AZURE_CLIENT_ID=… AZURE_CLIENT_SECRET=… \
 *     node --import tsx examples/transcripts.ts <machineActionId>...
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
  Effect.runPromise
).catch((error) => {
  console.error(String(error))
  process.exitCode = 1
})
