/**
 * How a campaign command ends when it does not end well; main.ts's EXIT_CODES map each tag
 * to its exit (2, 20, 21, 130).
 */
import { Effect } from "effect"
import type { Outcome } from "./campaignView.ts"

/** A campaign command used wrongly (both or neither target option, a bad duration, a folder that holds a campaign…): exit 2. */
export class CampaignUsage {
  readonly _tag = "CampaignUsage"
  constructor(readonly message: string) {}
}

/** Some machine's action failed, timed out or was cancelled: exit 20. */
export class CampaignFailed {
  readonly _tag = "CampaignFailed"
  constructor(readonly message: string) {}
}

/** Every machine that ran succeeded, but some never ran: exit 21. */
export class CampaignNotRun {
  readonly _tag = "CampaignNotRun"
  constructor(readonly message: string) {}
}

/** The first Ctrl-C drained the run: the CLI exits with 130 (stderr has said what is left). */
export class CampaignDrained {
  readonly _tag = "CampaignDrained"
  readonly message = "drained"
}

/** Fails with the outcome's error, when it is one. */
export const failOn = (outcome: Outcome): Effect.Effect<void, CampaignFailed | CampaignNotRun> =>
  outcome._tag === "CampaignFailed"
    ? Effect.fail(new CampaignFailed(outcome.message))
    : outcome._tag === "CampaignNotRun"
    ? Effect.fail(new CampaignNotRun(outcome.message))
    : Effect.void
