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

/** Watches `sim`'s actions every 50 ms until interrupted: the most alive (Pending or InProgress) at once. */
const watchAlive = (sim: DefenderSimulator.DefenderSimulator) =>
  Effect.gen(function*() {
    let most = 0
    const fiber = yield* Effect.fork(Effect.repeat(
      Effect.flatMap(simActions(sim), (actions) =>
        Effect.sync(() => {
          most = Math.max(most, actions.filter((x: any) => x.status === "Pending" || x.status === "InProgress").length)
        })),
      Schedule.spaced("50 millis")
    ))
    return { most: () => most, stop: Fiber.interrupt(fiber) }
  })

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
      const watcher = yield* watchAlive(sim)
      const [one, two] = yield* Effect.all([work(a, { results, tenants }), work(b, { results, tenants })], {
        concurrency: 2
      }).pipe(Effect.provide(NodeFileSystem.layer))
      yield* watcher.stop
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
      expect(watcher.most()).toBeLessThanOrEqual(3)
      expect(yield* a.complete(definition.campaignId)).toBe(true)
    }).pipe(Effect.scoped), 60_000)

  it.live("two tenants, each its own client and cap: the small one's machines are not stuck behind the big one's", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase("mde_campaign_tenants")
      const fleet = (prefix: string, n: number) =>
        Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i + 1}`, properties: { healthStatus: "Active" as const }, runFor: 1000 }))
      const big = fleet("big", 16)
      const small = fleet("small", 3)
      // Quotas far above the clients' budgets (the simulator's default run quota is Defender's 10 a minute).
      const quota = { rateLimits: [{ limit: 100_000, window: 60_000 }], runLimits: [{ limit: 100_000, window: 60_000 }], pendingFor: 200 }
      const bigSim = yield* DefenderSimulator.make({ machines: big, ...quota })
      const smallSim = yield* DefenderSimulator.make({ machines: small, ...quota })
      const definition = yield* makeDefinition({
        commands: [{ type: "RunScript", scriptName: "triage.ps1" }],
        comment: "tenants",
        targets: { _tag: "Machines", machineIds: [...big, ...small].map((m) => m.id) },
        maxSessions: 2,
        interval: "200 millis",
        pendingTimeout: "30 seconds"
      })
      const store = yield* storeOn(url)
      // The big tenant's machines first in the targets: a single queue in target order would serve them first.
      yield* store.create(definition, [
        ...big.map((m) => ({ tenant: "big", machineId: m.id })),
        ...small.map((m) => ({ tenant: "small", machineId: m.id }))
      ], 3000)
      const tenants = new Map([["big", yield* clientOf(bigSim)], ["small", yield* clientOf(smallSim)]])
      const watchers = [yield* watchAlive(bigSim), yield* watchAlive(smallSim)]
      const [summary] = yield* work(store, { results: tempDir(), tenants }).pipe(Effect.provide(NodeFileSystem.layer))
      for (const w of watchers) yield* w.stop
      expect(summary!.succeeded).toBe(19)
      // The cap is each tenant's own: two alive in each, never more.
      expect(watchers[0]!.most()).toBe(2)
      expect(watchers[1]!.most()).toBeLessThanOrEqual(2)
      // Each tenant's calls went to its own API: no machine of one was run through the other's client.
      const ranOn = (sim: DefenderSimulator.DefenderSimulator) =>
        new Set(sim.received.filter((r) => r.endpoint === "runLiveResponse" && r.status === 201).map((r) => /\/api\/machines\/([^/]+)\/runliveresponse/i.exec(r.url)?.[1]))
      expect([...ranOn(bigSim)].sort()).toEqual(big.map((m) => m.id).sort())
      expect([...ranOn(smallSim)].sort()).toEqual(small.map((m) => m.id).sort())
      // Fair: the small tenant's 3 machines finished among the first 8 of 19 (two big ones at a time take 8 rounds of actions).
      const order = (yield* store.manifest(definition.campaignId)).map((e) => e.machineId)
      const positions = small.map((m) => order.indexOf(m.id))
      expect(Math.max(...positions), order.join(" ")).toBeLessThan(8)
    }).pipe(Effect.scoped), 60_000)
})
