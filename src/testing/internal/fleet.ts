/**
 * The ready-made fleet (`DefenderSimulator.fleet`): a seeded mix of healthy, offline, failing,
 * timing-out and busy machines with varied properties.
 *
 * @internal
 */
import { createHash } from "node:crypto"
import type { HealthStatus, MachineProperties, MachineSpec } from "../DefenderSimulator.ts"
import { prng } from "./faults.ts"

/** @internal How a fleet machine behaves. */
export type Kind = "healthy" | "offline" | "failing" | "timeout" | "busy"

const MINUTE = 60_000
const DAY = 24 * 60 * MINUTE
const PLATFORMS: ReadonlyArray<readonly [string, string]> = [
  ["Windows11", "ws"],
  ["Windows10", "ws"],
  ["WindowsServer2022", "srv"],
  ["WindowsServer2019", "srv"],
  ["Linux", "lnx"],
  ["macOS", "mac"]
]
const TAGS: ReadonlyArray<string> = ["prod", "test", "finance", "web", "db", "dc"]
const RISK: ReadonlyArray<MachineProperties["riskScore"]> = ["None", "Informational", "Low", "Medium", "High"]
const EXPOSURE: ReadonlyArray<MachineProperties["exposureLevel"]> = ["None", "Low", "Medium", "High"]

/** @internal The kinds of a fleet of `size`, in a seeded order: a tenth offline, 6% failing, 4% timing out, 6% busy. */
export const kinds = (size: number, dice: () => number): Array<Kind> => {
  const share = (rate: number) => Math.round(size * rate)
  const list: Array<Kind> = [
    ...Array<Kind>(share(0.1)).fill("offline"),
    ...Array<Kind>(share(0.06)).fill("failing"),
    ...Array<Kind>(share(0.04)).fill("timeout"),
    ...Array<Kind>(share(0.06)).fill("busy")
  ].slice(0, size)
  while (list.length < size) list.push("healthy")
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(dice() * (i + 1))
    ;[list[i], list[j]] = [list[j]!, list[i]!]
  }
  return list
}

const pick = <A>(dice: () => number, from: ReadonlyArray<A>): A => from[Math.floor(dice() * from.length)]!

const health = (kind: Kind, dice: () => number): HealthStatus =>
  kind === "offline"
    ? "Inactive"
    : kind === "timeout"
    ? "ImpairedCommunication"
    : kind === "failing"
    ? "NoSensorData"
    : dice() < 0.05
    ? "ImpairedCommunication"
    : "Active"

/** @internal `size` machines, the same for the same seed; `lastSeen` counts back from `now`. */
export const fleet = (size: number, seed: number, now: number): Array<MachineSpec> => {
  const dice = prng(seed)
  return kinds(Math.max(0, Math.floor(size)), dice).map((kind, i): MachineSpec => {
    const [osPlatform, prefix] = pick(dice, PLATFORMS)
    const tags = TAGS.filter(() => dice() < 0.3)
    const seenAgo = kind === "offline" ? (2 + dice() * 28) * DAY : dice() * 30 * MINUTE
    const properties: MachineProperties = {
      computerDnsName: `${prefix}-${String(i + 1).padStart(4, "0")}.contoso.example`,
      osPlatform,
      healthStatus: health(kind, dice),
      lastSeen: new Date(now - Math.round(seenAgo)).toISOString(),
      machineTags: tags,
      riskScore: pick(dice, RISK),
      exposureLevel: pick(dice, EXPOSURE),
      rbacGroupId: 1 + Math.floor(dice() * 3),
      lastIpAddress: `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`
    }
    return {
      id: createHash("sha1").update(`fleet:${seed}:${i}`).digest("hex"),
      properties,
      runFor: Math.round((3 + dice() * 27) * 1000),
      ...(kind === "offline" ? { online: { from: DAY } } : {}),
      ...(kind === "failing" ? { outcome: "Failed" as const } : {}),
      ...(kind === "timeout" ? { outcome: "TimeOut" as const } : {}),
      ...(kind === "busy" ? { busyUntil: Math.round((1 + dice() * 9) * MINUTE) } : {})
    }
  })
}
