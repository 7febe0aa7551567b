/**
 * Campaigns shared by workers, in-process: the PostgreSQL store (tables by the migrator,
 * checked transactions), pg-boss's lanes and two workers on one campaign against the
 * in-process simulator. A real PostgreSQL (test/setup/servers.ts), so real time: the store's
 * transactions and pg-boss's polling are real I/O the TestClock cannot run.
 */
import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Redacted, Schedule, type Scope } from "effect"
import { existsSync } from "node:fs"
import { join } from "node:path"
import * as DefenderAuth from "../src/DefenderAuth.ts"
import * as DefenderClient from "../src/DefenderClient.ts"
import * as DefenderRateLimiter from "../src/DefenderRateLimiter.ts"
import { makeDefinition } from "../src/internal/campaign/definition.ts"
import type { CampaignStoreError } from "../src/internal/campaign/error.ts"
import { makePgStore, layerSql, type PgStore } from "../src/internal/campaign/pgStore.ts"
import { makeQueue } from "../src/internal/campaign/queue.ts"
import { work } from "../src/internal/campaign/worker.ts"
import * as DefenderSimulator from "../src/testing/DefenderSimulator.ts"
import { sha256, simActions, startedPerMachine, tempDir } from "./utils/campaign.ts"
import { freshDatabase as freshDb } from "./utils/postgres.ts"
import { needServer } from "./utils/servers.ts"

const postgres = needServer("postgres")

const freshDatabase = (name: string) => freshDb(postgres.url, name)

/** A store of its own (a worker's: its own pool and pg-boss), on `url`. */
const storeOn = (url: string): Effect.Effect<PgStore, CampaignStoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* makeQueue(url, 1000)
    const context = yield* Layer.build(layerSql(Redacted.make(url)))
    return yield* makePgStore(queue).pipe(Effect.provide(context))
  })

const clientOf = (sim: DefenderSimulator.DefenderSimulator) =>
  Effect.map(
    Layer.build(
      DefenderClient.layer().pipe(
        Layer.provide(Layer.mergeAll(
          DefenderSimulator.layerHttpClient(sim),
          DefenderAuth.layerToken(DefenderSimulator.STATIC_TOKEN),
          DefenderRateLimiter.layer({
            runLimits: [{ limit: 50, window: "1 second" }],
            machineActionLimits: [{ limit: 500, window: "1 second" }],
            limits: [{ limit: 500, window: "1 second" }]
          })
        ))
      )
    ),
    (ctx) => Context.get(ctx, DefenderClient.DefenderClient)
  )

describe.skipIf(postgres.skip)("campaigns on PostgreSQL, in-process", () => {
  it.live("two workers share a campaign: every machine once, each result saved once and hashed, the cap held", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase("mde_campaign_inproc")
      const machines = Array.from({ length: 8 }, (_, i) => ({
        id: `pg${i + 1}`,
        properties: { healthStatus: "Active" as const },
        runFor: 1000
      }))
      // Quotas far above the clients' budgets: the test's own watch lists the actions every 50 ms.
      const sim = yield* DefenderSimulator.make({ machines, rateLimits: [{ limit: 100_000, window: 60_000 }] })
      const results = tempDir()
      const definition = yield* makeDefinition({
        commands: [{ type: "RunScript", scriptName: "triage.ps1" }],
        comment: "pg",
        targets: { _tag: "Machines", machineIds: machines.map((m) => m.id) },
        maxSessions: 3,
        interval: "200 millis",
        pendingTimeout: "30 seconds"
      })
      const a = yield* storeOn(url)
      const b = yield* storeOn(url)
      yield* a.create(definition, machines.map((m) => ({ tenant: "default", machineId: m.id })), 3000)
      const client = yield* clientOf(sim)
      const tenants = new Map([["default", client]])
      let maxAlive = 0
      const watchAlive = Effect.repeat(
        Effect.flatMap(simActions(sim), (actions) =>
          Effect.sync(() => {
            maxAlive = Math.max(maxAlive, actions.filter((x: any) => x.status === "Pending" || x.status === "InProgress").length)
          })),
        Schedule.spaced("50 millis")
      ).pipe(Effect.fork)
      const watcher = yield* watchAlive
      const [one, two] = yield* Effect.all([work(a, { results, tenants }), work(b, { results, tenants })], {
        concurrency: 2
      }).pipe(Effect.provide(NodeFileSystem.layer))
      yield* Fiber.interrupt(watcher)
      expect(one[0]!.succeeded).toBe(8)
      expect(two[0]!.succeeded).toBe(8)
      const manifest = yield* a.manifest(definition.campaignId)
      expect(manifest.map((e) => e.machineId).sort()).toEqual(machines.map((m) => m.id).sort())
      for (const entry of manifest) {
        const file = entry.commands[0]!.file!
        const path = join(results, definition.campaignId, file)
        expect(existsSync(path)).toBe(true)
        expect(sha256(path)).toBe(entry.commands[0]!.sha256)
      }
      for (const [, n] of startedPerMachine(sim, yield* simActions(sim))) expect(n).toBe(1)
      expect(maxAlive).toBeLessThanOrEqual(3)
      expect(yield* a.complete(definition.campaignId)).toBe(true)
    }).pipe(Effect.scoped), 60_000)
})
