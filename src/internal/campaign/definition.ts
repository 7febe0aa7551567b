/**
 * A campaign's definition: a fresh id, the commands checked as run live response checks
 * them, and the campaign id carried in every action's Comment so that an action
 * submitted just before a crash can be recognised on resume.
 *
 * @internal
 */
import { Clock, Duration, Effect, Either, Option } from "effect"
import type { CampaignDefinition, DefinitionInput } from "../../CampaignStore.ts"
import { toRequestBody } from "../../MachineAction.ts"
import { type CampaignStoreError, storeError } from "./error.ts"

const MARK = /\[mde-campaign:(cmp-[0-9a-f]{16})\]/g

/** @internal `cmp-` and 16 random hex digits (Web Crypto: the same on Node, Deno and Bun). */
export const newCampaignId = (): string => {
  const bytes = crypto.getRandomValues(new Uint8Array(8))
  return `cmp-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`
}

/** @internal `CampaignStore.commentFor`. */
export const commentFor = (definition: CampaignDefinition): string =>
  `${definition.comment} [mde-campaign:${definition.campaignId}]`

/** @internal `CampaignStore.campaignIdIn`: the last mark wins (a user comment may quote another campaign's). */
export const campaignIdIn = (comment: string | undefined): Option.Option<string> => {
  const found = comment === undefined ? [] : [...comment.matchAll(MARK)]
  return found.length === 0 ? Option.none() : Option.some(found[found.length - 1]![1]!)
}

const millis = (d: Duration.DurationInput | undefined, fallback: Duration.DurationInput): number =>
  Duration.toMillis(Duration.decode(d ?? fallback))

/** @internal What makes a definition unusable, or `undefined`. */
export const checkDefinition = (definition: CampaignDefinition): string | undefined => {
  const body = toRequestBody(definition.commands, commentFor(definition))
  if (Either.isLeft(body)) return body.left
  if (!/^cmp-[0-9a-f]{16}$/.test(definition.campaignId)) return `campaign id ${definition.campaignId} is not cmp-<16 hex>`
  const t = definition.targets
  if (t._tag === "Machines" && t.machineIds.length === 0) return "no target machines"
  if (t._tag === "Machines" && t.machineIds.some((id) => id.trim() === "")) return "an empty machine id"
  if (t._tag === "Query" && t.filter.trim() === "") return "an empty machines query"
  const o = definition.options
  if (!Number.isInteger(o.maxSessions) || o.maxSessions < 1) return "maxSessions must be a positive integer"
  for (const key of ["deadline", "pendingTimeout", "interval"] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 0) return `${key} must be a whole number of milliseconds`
  }
  return undefined
}

/** @internal `CampaignStore.makeDefinition`. */
export const makeDefinition = (input: DefinitionInput): Effect.Effect<CampaignDefinition, CampaignStoreError> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const definition: CampaignDefinition = {
      campaignId: newCampaignId(),
      createdAt: now,
      commands: input.commands,
      comment: input.comment,
      targets: input.targets._tag === "Machines"
        ? { _tag: "Machines", machineIds: [...new Set(input.targets.machineIds)] }
        : input.targets,
      options: {
        maxSessions: input.maxSessions ?? 50,
        deadline: now + Math.round(millis(input.deadline, "24 hours")),
        pendingTimeout: Math.round(millis(input.pendingTimeout, "30 minutes")),
        interval: Math.round(millis(input.interval, "10 seconds"))
      }
    }
    const problem = checkDefinition(definition)
    if (problem !== undefined) return yield* storeError("InvalidDefinition", problem)
    return definition
  })
