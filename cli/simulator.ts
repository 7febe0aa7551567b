/**
 * `simulator`: the simulated Defender tenant served on 127.0.0.1 until Ctrl-C, and on stdout
 * the shell lines that point the library and the CLI at it. One simulator for the whole
 * process, so what one command starts (`run`) another one finds (`transcript`), and every
 * command works against it through plain configuration, without `--simulate`.
 *
 * stdout is a POSIX shell file: `export`/`unset` lines, then `#` comments for a person (the
 * ready-made machine actions, some machines, the quotas). It is written once, after the server
 * listens, so `simulator > sim.env &` then `. ./sim.env` works as soon as the file is not empty.
 */
import { Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import { Effect, Either, Option, Redacted, Schedule } from "effect"
import { DefenderRateLimiter } from "../mod.ts"
import { DefenderSimulator } from "../testing.ts"
import { type Format, formatOption } from "./format.ts"

const { ACTIONS } = DefenderSimulator

/** The ready-made machine actions and what each one is: `--help`, stdout and the README say the same. */
export const ACTION_NOTES: ReadonlyArray<readonly [id: string, note: string]> = [
  [ACTIONS.runScript, "RunScript minidump.ps1, exit 0: the transcript of Microsoft's docs"],
  [ACTIONS.variants, "three RunScript commands (--index 0, 1, 2): collect.ps1 exit 0, audit.ps1 exit 1, inventory.ps1"],
  [ACTIONS.getFile, "GetFile: a gzip file (download --out dump.zip.gz)"],
  [ACTIONS.failed, "Failed: its command has no result (NotFound, exit 6)"],
  [ACTIONS.blobGone, "Succeeded, but its result is gone from storage (ResultLinkError, exit 9)"]
]

/** The fleet's size: the seeded `DefenderSimulator.fleet`, the same machine ids on every start. */
const FLEET_SIZE = 50

/** Live response sessions alive at once: Defender's documented tenant cap. */
const SESSION_CAP = 50

/** The API's quota (result links, machine actions, lists): Defender's own. */
const DEFAULT_RATE_LIMITS = "100/1m,1500/1h"

/** Run live response: three times Defender's 10/min, so the quota holds a campaign over the fleet's 45 online machines for 1.5 min, not 4.5. */
const DEFAULT_RUN_RATE_LIMITS = "30/1m"

const limits = (name: string, fallback: string, what: string) =>
  Options.text(name).pipe(
    Options.withDefault(fallback),
    Options.mapEffect((text) =>
      Either.match(DefenderRateLimiter.parseLimits(text), {
        onLeft: (message) => Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--${name}: ${message}`))),
        onRight: (parsed) => Effect.succeed({ text, parsed })
      })
    ),
    Options.withDescription(`${what}, as in MDE_RATE_LIMITS (default ${fallback}); exported to the clients too`)
  )

const port = Options.integer("port").pipe(
  Options.withDefault(0),
  Options.filterMap(
    (n) => (Number.isInteger(n) && n >= 0 && n <= 65535 ? Option.some(n) : Option.none()),
    "--port must be 0 to 65535"
  ),
  Options.withDescription("the port on 127.0.0.1 (default 0: a free one)")
)

const log = Options.boolean("log").pipe(
  Options.withDescription("one line per request on stderr: time, method, path (no query string), status")
)

/** A machine of the fleet and how it behaves, for the `#` lines. */
const behaviour = (m: DefenderSimulator.MachineSpec): string => {
  const seconds = `${Math.round(Number(m.runFor ?? 5000) / 1000)} s`
  if (m.online !== undefined && m.online !== true) return "offline: an action waits 2 h, then TimeOut"
  if (m.outcome === "Failed") return `its actions fail after ${seconds}`
  if (m.outcome === "TimeOut") return "its actions time out (after 10 min)"
  if (m.busyUntil !== undefined) return `busy with another session for its first ${Math.round(m.busyUntil / 60_000)} min`
  return `its actions succeed after ${seconds}`
}

/** Some machines worth trying: the three quickest healthy ones, then one of each other kind. */
const showcase = (machines: ReadonlyArray<DefenderSimulator.MachineSpec>): Array<DefenderSimulator.MachineSpec> => {
  const healthy = machines.filter((m) => m.online === undefined && m.outcome === undefined && m.busyUntil === undefined)
  const quickest = [...healthy].sort((a, b) => Number(a.runFor) - Number(b.runFor)).slice(0, 3)
  const first = (p: (m: DefenderSimulator.MachineSpec) => boolean) => machines.filter(p).slice(0, 1)
  return [
    ...quickest,
    ...first((m) => m.outcome === "Failed"),
    ...first((m) => m.busyUntil !== undefined),
    ...first((m) => m.online !== undefined)
  ]
}

/** What the simulator serves with: its quotas, as text (exported) and parsed. */
interface Quotas {
  readonly rateLimits: { readonly text: string; readonly parsed: ReadonlyArray<DefenderRateLimiter.RateLimit> }
  readonly runRateLimits: { readonly text: string; readonly parsed: ReadonlyArray<DefenderRateLimiter.RateLimit> }
}

const quote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`

/**
 * Everything `LiveResponse.layerConfig()` and the CLI read, pointed at `url`, with the client
 * budgets equal to the simulator's quotas; and what would send a real tenant's token or budget
 * here (`MDE_TOKEN`, `MDE_REDIS_URL`), or ask for another scope, to unset.
 */
export const environment = (url: string, quotas: Quotas): {
  readonly set: Readonly<Record<string, string>>
  readonly unset: ReadonlyArray<string>
} => ({
  set: {
    AZURE_TENANT_ID: DefenderSimulator.SIMULATED_TENANT,
    AZURE_CLIENT_ID: DefenderSimulator.SIMULATED_CLIENT_ID,
    // The simulated app's secret is a public constant of the library.
    AZURE_CLIENT_SECRET: Redacted.value(DefenderSimulator.SIMULATED_CLIENT_SECRET),
    AZURE_AUTHORITY_HOST: url,
    MDE_CLOUD: "commercial",
    MDE_API_URL: url,
    MDE_DOWNLOAD_HOSTS: "127.0.0.1",
    MDE_RATE_LIMITS: quotas.rateLimits.text,
    MDE_RUN_RATE_LIMITS: quotas.runRateLimits.text
  },
  unset: ["MDE_TOKEN", "MDE_SCOPE", "MDE_REDIS_URL", "MDE_MACHINE_ACTION_RATE_LIMITS"]
})

/** The shell lines: an `export` per setting, one `unset`. */
export const exportLines = (env: ReturnType<typeof environment>): Array<string> => [
  ...Object.entries(env.set).map(([name, value]) => `export ${name}=${quote(value)}`),
  `unset ${env.unset.join(" ")}`
]

/** The `#` lines for a person: what is served, the ready-made ids, some machines, the quotas, how to stop it. */
export const commentLines = (
  url: string,
  quotas: Quotas,
  machines: ReadonlyArray<DefenderSimulator.MachineSpec>
): Array<string> => [
  `# mde-live-response simulator: a simulated Defender tenant on ${url} (Entra ID login, API, result storage)`,
  "# its state (the actions you start, the scripts you upload) lasts until it stops",
  "# ready-made machine actions (transcript, link, download, batch):",
  ...ACTION_NOTES.map(([id, note]) => `#   ${id}  ${note}`),
  `# machines (run, campaign): ${machines.length} in all, e.g.`,
  ...showcase(machines).map((m) => `#   ${m.id}  ${m.properties?.computerDnsName ?? ""}  ${behaviour(m)}`),
  "# any script name runs (one whose name has fail or timeout in it fails or times out)",
  `# quotas: ${quotas.rateLimits.text} for results, machine actions and lists; ${quotas.runRateLimits.text} for run live response; ${SESSION_CAP} sessions at once`,
  "# Ctrl-C (SIGINT) or SIGTERM stops it"
]

/** `--format json`: the same as one JSON object (the settings, the ids, the machines, the quotas). */
export const jsonLine = (
  url: string,
  quotas: Quotas,
  machines: ReadonlyArray<DefenderSimulator.MachineSpec>
): string =>
  JSON.stringify({
    url,
    env: environment(url, quotas).set,
    unset: environment(url, quotas).unset,
    actions: ACTION_NOTES.map(([id, note]) => ({ id, note })),
    machines: showcase(machines).map((m) => ({
      id: m.id,
      computerDnsName: m.properties?.computerDnsName,
      note: behaviour(m)
    })),
    fleetSize: machines.length,
    quotas: { rateLimits: quotas.rateLimits.text, runRateLimits: quotas.runRateLimits.text, sessionCap: SESSION_CAP }
  })

/** `--log`: the requests received so far, one line each, every 200 ms (the query string left out: a link's `sig=`). */
const logRequests = (sim: DefenderSimulator.DefenderSimulator): Effect.Effect<void> => {
  let seen = 0
  const flush = Effect.sync(() => {
    const fresh = sim.received.slice(seen)
    seen += fresh.length
    for (const r of fresh) {
      const path = r.url.replace(/^[a-z]+:\/\/[^/]+/i, "").replace(/[?#].*$/, "")
      const at = new Date(r.at).toISOString().slice(11, 23)
      process.stderr.write(`${at} ${r.method} ${path} ${r.status === 0 ? "dropped" : r.status}\n`)
    }
  })
  return Effect.asVoid(Effect.repeat(flush, Schedule.spaced("200 millis")))
}

/** The command's parsed options. */
interface SimulatorParams extends Quotas {
  readonly port: number
  readonly log: boolean
  readonly format: Format
}

/** Serves `sim`; a port that cannot be had (taken, or privileged) is a usage error, which the CLI prints (exit 2). */
const listening = (sim: DefenderSimulator.DefenderSimulator, port: number) =>
  DefenderSimulator.serve(sim, { port }).pipe(
    Effect.catchAllDefect((defect) =>
      Effect.fail(ValidationError.invalidValue(HelpDoc.p(
        `cannot listen on 127.0.0.1:${port} (${
          (defect as { readonly code?: string }).code ?? String(defect)
        }): give another --port, or --port 0 for a free one`
      )))
    )
  )

const serveUntilStopped = (params: SimulatorParams): Effect.Effect<never, ValidationError.ValidationError> =>
  Effect.scoped(Effect.gen(function*() {
    const machines = DefenderSimulator.fleet(FLEET_SIZE, { now: Date.now() })
    const sim = yield* DefenderSimulator.make({
      machines,
      sessionCap: SESSION_CAP,
      rateLimits: params.rateLimits.parsed,
      runLimits: params.runRateLimits.parsed
    })
    const served = yield* listening(sim, params.port)
    // One write, so a file it is redirected to holds all of it or nothing.
    const text = params.format === "json"
      ? jsonLine(served.url, params, machines)
      : [...exportLines(environment(served.url, params)), ...commentLines(served.url, params, machines)].join("\n")
    yield* Effect.sync(() => process.stdout.write(`${text}\n`))
    if (params.log) yield* Effect.forkScoped(logRequests(sim))
    // Until SIGINT or SIGTERM interrupts the CLI's main fiber; the scope then stops the server.
    return yield* Effect.never
  }))

const description = HelpDoc.blocks([
  HelpDoc.p("serve a simulated tenant on 127.0.0.1 until Ctrl-C; print the shell lines that point the other commands at it"),
  HelpDoc.p(
    "stdout: export lines, then # lines (ids, machines, quotas), so `simulator > sim.env &` then `. ./sim.env` works once the file is not empty; its state (the actions run starts) lasts while it runs"
  ),
  HelpDoc.p(
    `quotas: ${DEFAULT_RATE_LIMITS} for results, machine actions and lists (Defender's own); ${DEFAULT_RUN_RATE_LIMITS} for run live response (3× Defender's 10/1m: the quota holds a campaign over the fleet's 45 online machines for 1.5 min, not 4.5); ${SESSION_CAP} sessions at once`
  ),
  HelpDoc.p("ready-made machine actions (transcript, link, download, batch):"),
  ...ACTION_NOTES.map(([id, note]) => HelpDoc.p(`${id}  ${note}`))
])

/** The `simulator` command. */
export const simulator: Command.Command<"simulator", never, ValidationError.ValidationError, SimulatorParams> = Command
  .make(
    "simulator",
    {
      port,
      log,
      format: formatOption,
      rateLimits: limits("rate-limits", DEFAULT_RATE_LIMITS, "the quota of results, machine actions and lists"),
      runRateLimits: limits("run-rate-limits", DEFAULT_RUN_RATE_LIMITS, "the quota of run live response")
    },
    serveUntilStopped
  )
  .pipe(Command.withDescription(description))
