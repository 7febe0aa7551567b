/**
 * The PostgreSQL that campaigns across workers will stand on (issue 14), and the two
 * behaviours of the engines on it that design counts on: @effect/sql's migrator
 * creates the tables once (a second run applies nothing), and pg-boss 10 keeps one
 * job per singleton key only in a `stately` (or `short`) queue — a second `send` with
 * the key is refused (`null`) — while a `standard` queue accepts the duplicate. A real server (test/setup/servers.ts, scripts/postgres.ts), so real time.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { SqlClient } from "@effect/sql"
import * as Migrator from "@effect/sql/Migrator"
import { PgClient, PgMigrator } from "@effect/sql-pg"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import PgBoss from "pg-boss"
import { freshDatabase as freshDb } from "./utils/postgres.ts"
import { needServer } from "./utils/servers.ts"

const postgres = needServer("postgres")

const freshDatabase = (name: string) => freshDb(postgres.url, name)

const migrations = Migrator.fromRecord({
  "0001_targets": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`CREATE TABLE targets (campaign text NOT NULL, machine text NOT NULL, PRIMARY KEY (campaign, machine))`)
})

describe.skipIf(postgres.skip)("PostgreSQL for campaigns", () => {
  it.live("the migrator creates the tables once; a second run applies nothing", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase("mde_migrator_test")
      const layer = Layer.merge(PgClient.layer({ url: Redacted.make(url) }), NodeContext.layer)
      const first = yield* PgMigrator.run({ loader: migrations }).pipe(Effect.provide(layer))
      const second = yield* PgMigrator.run({ loader: migrations }).pipe(Effect.provide(layer))
      const rows = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ n: number }>`SELECT count(*)::int AS n FROM targets`).pipe(Effect.provide(layer))
      expect(first).toEqual([[1, "targets"]])
      expect(second).toEqual([])
      expect(rows).toEqual([{ n: 0 }])
    }), 30_000)

  it.live("pg-boss keeps one job per singleton key in a stately queue, not in a standard one", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase("mde_pgboss_test")
      const boss = new PgBoss({ connectionString: url })
      boss.on("error", () => {})
      yield* Effect.promise(() => boss.start())
      yield* Effect.addFinalizer(() => Effect.promise(() => boss.stop({ graceful: false })))
      yield* Effect.promise(() => boss.createQueue("machines", { name: "machines", policy: "stately" }))
      yield* Effect.promise(() => boss.createQueue("plain", { name: "plain", policy: "standard" }))
      const send = (queue: string, machine: string) =>
        Effect.promise(() => boss.send(queue, { machine }, { singletonKey: `campaign-1:${machine}` }))
      const first = yield* send("machines", "m1")
      const again = yield* send("machines", "m1")
      const other = yield* send("machines", "m2")
      expect(first).toEqual(expect.any(String))
      expect(again).toBeNull()
      expect(other).toEqual(expect.any(String))
      yield* send("plain", "m1")
      expect(yield* send("plain", "m1")).toEqual(expect.any(String))
    }).pipe(Effect.scoped), 30_000)
})
