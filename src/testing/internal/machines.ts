/**
 * The simulated fleet: a machine's JSON as `GET /api/machines` lists it, the list itself, and
 * when a machine is online.
 *
 * @internal
 */
import type { MachineSpec } from "../DefenderSimulator.ts"
import { listAnswer } from "./paging.ts"
import type { Call, State } from "./state.ts"

const DAY = 24 * 60 * 60_000

/** @internal The properties `$filter` may name on the machines list. */
export const MACHINE_FIELDS: ReadonlySet<string> = new Set([
  "id",
  "computerDnsName",
  "firstSeen",
  "lastSeen",
  "osPlatform",
  "osVersion",
  "version",
  "lastIpAddress",
  "lastExternalIpAddress",
  "healthStatus",
  "rbacGroupId",
  "rbacGroupName",
  "riskScore",
  "exposureLevel",
  "onboardingStatus",
  "deviceValue",
  "aadDeviceId",
  "isAadJoined",
  "machineTags"
])

/** @internal A machine as the API lists it: the spec's properties over the defaults. */
export const machineJson = (state: State, spec: MachineSpec): Record<string, unknown> => {
  const iso = (t: number) => new Date(t).toISOString()
  const defined = Object.fromEntries(Object.entries(spec.properties ?? {}).filter(([, v]) => v !== undefined))
  return {
    id: spec.id,
    computerDnsName: `${spec.id}.contoso.example`,
    firstSeen: iso(state.settings.startedAt - 90 * DAY),
    lastSeen: iso(state.settings.startedAt),
    osPlatform: "Windows11",
    osVersion: null,
    osProcessor: "x64",
    osArchitecture: "64-bit",
    osBuild: 22631,
    version: "23H2",
    lastIpAddress: "10.0.0.1",
    lastExternalIpAddress: "203.0.113.1",
    healthStatus: "Active",
    defenderAvStatus: "Updated",
    rbacGroupId: 0,
    rbacGroupName: null,
    riskScore: "None",
    exposureLevel: "Low",
    onboardingStatus: "Onboarded",
    deviceValue: "Normal",
    isAadJoined: false,
    aadDeviceId: null,
    machineTags: [],
    ...defined
  }
}

/** @internal Answers `GET /api/machines` (`$filter`, `$top`, `$skip`, `@odata.nextLink`). */
export const listMachines = (call: Call): Response =>
  listAnswer(call, {
    context: "https://api.security.microsoft.com/api/$metadata#Machines",
    fields: MACHINE_FIELDS,
    items: [...(call.state.settings.machines?.values() ?? [])].map((spec) => machineJson(call.state, spec))
  })

/** @internal The first moment from `now` on (epoch milliseconds) at which the machine is online, if it ever is. */
export const onlineFrom = (state: State, spec: MachineSpec | undefined, now: number): number | undefined => {
  const online = spec?.online ?? true
  if (online === true) return now
  if (online === false) return undefined
  const from = state.settings.startedAt + online.from
  const until = online.until === undefined ? Infinity : state.settings.startedAt + online.until
  const at = Math.max(now, from)
  return at < until ? at : undefined
}
