/**
 * The simulated tenant's state: its machine actions and their lifecycle on the clock, the
 * results in storage, library files, issued tokens, signed links, the received log, the
 * quotas and the fault dice. Every part of the simulator reads and changes this one object.
 *
 * @internal
 */
import { createHash } from "node:crypto"
import type { RateLimit } from "../../DefenderRateLimiter.ts"
import type { CommandSpec, Faults, MachineSpec, Received } from "../DefenderSimulator.ts"
import { prng } from "./faults.ts"
import { makeWindows, type Quota } from "./quota.ts"

/** @internal A machine action's status, as the API names it. */
export type Status = "Pending" | "InProgress" | "Succeeded" | "Failed" | "TimeOut" | "Cancelled"

/** @internal One command of a machine action. */
export interface SimCommand {
  readonly spec: CommandSpec
  /** The blob holding the result, if the command has one. */
  blob: string | undefined
  errors: Array<string>
}

/** @internal A machine action. */
export interface SimAction {
  readonly id: string
  readonly machineId: string
  readonly comment: string
  readonly createdAt: number
  /** When the action leaves Pending and when it ends; `Infinity` never. */
  readonly startsAt: number
  readonly endsAt: number
  readonly outcome: "Succeeded" | "Failed" | "TimeOut"
  /** It never left Pending: its machine stayed offline for the whole queueing time. */
  readonly expired?: boolean | undefined
  /** The machine's name, when the fleet knows it. */
  readonly computerDnsName?: string | undefined
  cancelledAt: number | undefined
  readonly commands: Array<SimCommand>
}

/** @internal A result file in blob storage. */
export interface StoredBlob {
  readonly bytes: Uint8Array
  readonly md5: string
  readonly etag: string
  readonly contentType: string
}

/** @internal A signed result link (its SAS signature is the key). */
export interface Link {
  readonly blob: string
  readonly expiresAt: number
}

/** @internal The options with their defaults filled in, durations in milliseconds. */
export interface Settings {
  readonly tenantId: string
  readonly clientId: string
  readonly clientSecret: string
  /** The certificates (PEM or DER) whose keys may sign a certificate login's assertion. */
  readonly clientCertificates?: ReadonlyArray<string | Uint8Array> | undefined
  readonly staticTokens: ReadonlySet<string>
  readonly tokenLifetime: number
  readonly linkLifetime: number
  readonly pendingFor: number
  readonly runFor: number
  readonly visibleAfter: number
  readonly rateLimits: ReadonlyArray<RateLimit>
  readonly runLimits: ReadonlyArray<RateLimit>
  /** Live response actions alive (Pending or InProgress) at once per tenant. */
  readonly sessionCap: number
  /** How long an action waits for an offline machine before it ends `TimeOut`. */
  readonly queueTimeout: number
  /** The default and largest page of the list endpoints. */
  readonly pageSize: number
  /** The fleet by machine id; `undefined`: no fleet, any machine id works. */
  readonly machines: ReadonlyMap<string, MachineSpec> | undefined
  /** When the simulator was made (epoch milliseconds): machine specs' times count from here. */
  readonly startedAt: number
  /** The application permissions the issued tokens' `roles` claim lists. */
  readonly roles: ReadonlyArray<string>
  /** How far the service's clock is ahead of the caller's, in milliseconds (its `Date` header, the tokens' times). */
  readonly clockOffset: number
}

/** @internal A file in the live response library, as the API lists it. */
export interface LibraryFile {
  readonly fileName: string
  readonly sha256: string
  readonly description: string
  readonly creationTime: string
  readonly createdBy: string
  readonly hasParameters: boolean
  readonly parametersDescription: string | null
}

/** @internal The tenant. */
export interface State {
  readonly settings: Settings
  /** Changed by `setFaults`; read at the moment each fault is rolled. */
  faults: Faults | undefined
  /** The fault dice (also salt of tokens and link signatures), seeded so a run repeats. */
  readonly dice: () => number
  readonly quotas: {
    /** Get result link. */
    readonly results: Quota
    /** Get machine action, cancel and library upload. */
    readonly actions: Quota
    /** Run live response. */
    readonly runs: Quota
    /** List machines. */
    readonly machines: Quota
  }
  /** Issued token → when it expires. */
  readonly tokens: Map<string, number>
  /** Library file name → the file. */
  readonly library: Map<string, LibraryFile>
  readonly actions: Map<string, SimAction>
  readonly blobs: Map<string, StoredBlob>
  /** SAS signature → link. */
  readonly links: Map<string, Link>
  readonly received: Array<Received>
  /** The last id handed out by `nextId`. */
  sequence: number
  /** Where result links point now (the simulator's `blobOrigin`, which `serve` changes). */
  readonly blobOrigin: () => string
}

/** @internal One request being answered: the tenant, the request, and the moment and id it gets. */
export interface Call {
  readonly state: State
  readonly request: Request
  readonly url: URL
  /** Simulated time, epoch milliseconds. */
  readonly now: number
  readonly requestId: string
}

/** @internal A tenant with no actions yet. */
export const makeState = (settings: Settings, faults: Faults | undefined, blobOrigin: () => string): State => ({
  settings,
  faults,
  dice: prng(faults?.seed ?? 1),
  quotas: {
    results: makeWindows(settings.rateLimits),
    actions: makeWindows(settings.rateLimits),
    runs: makeWindows(settings.runLimits),
    machines: makeWindows(settings.rateLimits)
  },
  tokens: new Map(),
  library: new Map(),
  actions: new Map(),
  blobs: new Map(),
  links: new Map(),
  received: [],
  sequence: 0,
  blobOrigin
})

/** @internal A new id: the prefix and a 12-digit hexadecimal sequence number. */
export const nextId = (state: State, prefix: string): string =>
  `${prefix}${(++state.sequence).toString(16).padStart(12, "0")}`

/** @internal Stores a result file; answers its blob name. */
export const putBlob = (state: State, bytes: Uint8Array, contentType: string): string => {
  const id = nextId(state, "blob-")
  const md5 = createHash("md5").update(bytes).digest("base64")
  state.blobs.set(id, {
    bytes,
    md5,
    etag: `"0x8D${createHash("md5").update(id).digest("hex").slice(0, 12).toUpperCase()}"`,
    contentType
  })
  return id
}

/** @internal Replaces a command's result file (a new ETag), as if it had been rewritten. */
export const replaceResult = (state: State, id: string, index: number, bytes: Uint8Array): void => {
  const blob = state.actions.get(id)?.commands[index]?.blob
  if (blob === undefined) throw new Error(`no result at ${id} #${index}`)
  const md5 = createHash("md5").update(bytes).digest("base64")
  state.blobs.set(blob, { bytes, md5, etag: `"0x8D${md5.slice(0, 12)}"`, contentType: "application/octet-stream" })
}

/** @internal Adds a finished machine action (at `at`, default the epoch) with a result per command, or none. */
export const addAction = (
  state: State,
  id: string,
  specs: ReadonlyArray<CommandSpec>,
  results: ReadonlyArray<Uint8Array | undefined>,
  outcome: SimAction["outcome"] = "Succeeded",
  at = 0
): void => {
  state.actions.set(id, {
    id,
    machineId: `machine-${id.slice(-4)}`,
    comment: "preset",
    createdAt: at,
    startsAt: at,
    endsAt: at,
    outcome,
    cancelledAt: undefined,
    commands: specs.map((spec, i) => ({
      spec,
      blob: results[i] === undefined ? undefined : putBlob(state, results[i]!, "application/octet-stream"),
      errors: outcome === "Failed" ? ["Script execution failed: the script threw an exception"] : []
    }))
  })
}

/** @internal A machine action's status at `now`. */
export const statusAt = (action: SimAction, now: number): Status => {
  if (action.cancelledAt !== undefined && action.cancelledAt < action.endsAt) return "Cancelled"
  if (now < action.startsAt) return "Pending"
  if (now < action.endsAt) return "InProgress"
  return action.outcome
}
