/**
 * The PostgreSQL store of campaigns shared by several workers. The campaign's state lives in
 * tables (`pgSchema.ts`): each `append` is one transaction that locks the machine's row,
 * checks the event with the journal's own rules (`replay.apply` on that machine's state),
 * and writes the event, the new state and — when the machine changes lane — its job in the
 * work queue, in the same transaction (pg-boss's `send` on the transaction's connection), so
 * that a machine is never without a job nor holds one for the wrong lane. A `Submitting` also
 * takes the campaign's per-tenant session count under an advisory lock: the cap holds across
 * workers. Jobs are pg-boss's (`queue.ts`); results' files go to a shared folder as the
 * folder store writes them.
 *
 * @internal
 */
import { SqlClient, SqlError } from "@effect/sql"
import * as Migrator from "@effect/sql/Migrator"
import { PgClient } from "@effect/sql-pg"
import { Effect, Either, Layer, Option, type Redacted, Runtime, Schema, type Scope } from "effect"
import type {
  CampaignDefinition,
  CampaignEvent,
  CampaignState,
  MachinePhase,
  MachineState,
  ManifestEntry
} from "../../CampaignStore.ts"
import { type CampaignStoreError, storeError } from "./error.ts"
import { eventLine } from "./journal.ts"
import { MIGRATIONS_TABLE, migrations } from "./pgSchema.ts"
import { type Job, type Lane, laneOf, type Queue } from "./queue.ts"
import { apply, empty, entryOfEvent } from "./replay.ts"
import { Definition, Event } from "./schema.ts"

const encodeDefinition = Schema.encodeSync(Definition)
const decodeDefinition = Schema.decodeUnknownEither(Definition)
const decodeEvent = Schema.decodeUnknownEither(Event)

/** @internal A machine of a campaign and the tenant it belongs to. */
export interface Target {
  readonly tenant: string
  readonly machineId: string
}

/** @internal A campaign as the shared store holds it. */
export interface SharedCampaign {
  readonly definition: CampaignDefinition
  readonly tenants: ReadonlyArray<string>
  /** How long a worker's claim on a machine's job lasts before another may take it, in ms. */
  readonly claimExpiry: number
  readonly completed: boolean
}

/** @internal How many machines of a campaign (or of one tenant's part) are in each phase. */
export type PhaseCounts = Record<MachinePhase["_tag"], number>

/** @internal The shared store: what `campaign start/work/status/export` stand on. */
export interface PgStore {
  readonly queue: Queue
  readonly create: (
    definition: CampaignDefinition,
    targets: ReadonlyArray<Target>,
    claimExpiry: number
  ) => Effect.Effect<void, CampaignStoreError>
  readonly campaigns: Effect.Effect<Array<SharedCampaign>, CampaignStoreError>
  readonly campaign: (campaignId: string) => Effect.Effect<SharedCampaign, CampaignStoreError>
  readonly targets: (campaignId: string, tenant: string) => Effect.Effect<Array<string>, CampaignStoreError>
  readonly machines: (campaignId: string, ids: ReadonlyArray<string>) => Effect.Effect<Map<string, MachineState>, CampaignStoreError>
  readonly counts: (campaignId: string, tenant?: string) => Effect.Effect<PhaseCounts, CampaignStoreError>
  /** One event of one machine, checked and made durable with its lane's job; the machine's states before and after. */
  readonly append: (
    campaign: SharedCampaign,
    event: CampaignEvent
  ) => Effect.Effect<{ readonly before: MachineState; readonly after: MachineState }, CampaignStoreError>
  /** Records `Completed` once every machine is finished or never ran; whether the campaign is complete. */
  readonly complete: (campaignId: string) => Effect.Effect<boolean, CampaignStoreError>
  readonly manifest: (campaignId: string) => Effect.Effect<Array<ManifestEntry>, CampaignStoreError>
}

/**
 * `effect` in a transaction, its database failures as `Database` errors. `@effect/sql` makes a
 * failed COMMIT or ROLLBACK (the connection lost mid-transaction: PostgreSQL restarting) a
 * defect; it is an outage like any other here, and ends the worker's round, not the worker.
 * Whether such a COMMIT took effect is unknown, which is safe: the next round reads the
 * tables again, and a `Submitting` that did commit is adopted, never submitted blind.
 */
const transaction = <A, E, R>(
  sql: SqlClient.SqlClient,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, Exclude<E, SqlError.SqlError> | CampaignStoreError, R> =>
  sql.withTransaction(effect).pipe(
    Effect.catchIf(
      (e): e is SqlError.SqlError => e instanceof SqlError.SqlError,
      (e) => Effect.fail(dbError(e))
    ),
    Effect.catchSomeDefect((d) => d instanceof SqlError.SqlError ? Option.some(Effect.fail(dbError(d))) : Option.none())
  ) as Effect.Effect<A, Exclude<E, SqlError.SqlError> | CampaignStoreError, R>

/** A database failure, without the connection's URL (it may hold a password). */
export const dbError = (e: unknown): CampaignStoreError => {
  const cause = (e as { cause?: unknown } | undefined)?.cause
  const text = cause instanceof Error ? cause.message : e instanceof Error ? e.message : String(e)
  return storeError("Database", text.replace(/postgres(ql)?:\/\/\S+/g, "postgres://…").slice(0, 300))
}

const zero = (): PhaseCounts => ({ Waiting: 0, Submitting: 0, Alive: 0, Ended: 0, Collecting: 0, Finished: 0, NotRun: 0 })

const machineOf = (event: CampaignEvent): string | undefined =>
  "machineId" in event ? event.machineId : event._tag === "MachineFinished" ? event.entry.machineId : undefined

/** The state of one machine alone, so that `apply` checks an event against it. */
const alone = (campaignId: string, machine: MachineState): CampaignState => ({
  ...empty,
  campaignId,
  targets: [machine.machineId],
  machines: new Map([[machine.machineId, machine]]),
  counts: { ...zero(), [machine.phase._tag]: 1 }
})

/** When a machine's next job in its lane may start. */
const startOf = (campaign: SharedCampaign, phase: MachinePhase, at: number): number =>
  phase._tag === "Waiting" ? Math.max(at, phase.retryAt ?? at) : at + campaign.definition.options.interval

/** The two writing methods that queue jobs: `create` and `append` (apart, so that no function needs a scroll bar). */
const writers = (
  sql: SqlClient.SqlClient,
  queue: Queue,
  q: (effect: Effect.Effect<ReadonlyArray<object>, unknown>) => Effect.Effect<Array<any>, CampaignStoreError>,
  enqueue: (campaign: SharedCampaign, tenant: string, lane: Lane, jobs: ReadonlyArray<Job>) => Effect.Effect<void, CampaignStoreError>
): Pick<PgStore, "create" | "append"> => {
  const create: PgStore["create"] = (definition, targets, claimExpiry) =>
    transaction(sql, Effect.gen(function*() {
      const id = definition.campaignId
      const existing = yield* q(sql`SELECT 1 FROM mlr_campaign WHERE campaign_id = ${id}`)
      if (existing.length > 0) return yield* storeError("AlreadyExists", `campaign ${id} exists`)
      const tenants = [...new Set(targets.map((t) => t.tenant))]
      const shared: SharedCampaign = { definition, tenants, claimExpiry, completed: false }
      for (const tenant of tenants) yield* queue.ensure(shared, tenant)
      const definitionJson = JSON.stringify(encodeDefinition(definition))
      yield* q(sql`INSERT INTO mlr_campaign (campaign_id, definition, tenants, claim_expiry, created_at)
        VALUES (${id}, ${definitionJson}::jsonb, ${JSON.stringify(tenants)}::jsonb, ${claimExpiry}, ${definition.createdAt})`)
      const waiting: MachinePhase = { _tag: "Waiting", retryAt: undefined, lastRefusal: undefined }
      const rows = targets.map((t, ord) => ({
        campaign_id: id,
        machine_id: t.machineId,
        tenant: t.tenant,
        ord,
        phase: "Waiting",
        state: JSON.stringify({ machineId: t.machineId, phase: waiting, attempts: 0, results: [] })
      }))
      for (let i = 0; i < rows.length; i += 500) {
        yield* q(sql`INSERT INTO mlr_machine ${sql.insert(rows.slice(i, i + 500))}`)
      }
      const machineIds = targets.map((t) => t.machineId)
      for (const event of [
        { _tag: "Defined", campaignId: id, at: definition.createdAt },
        { _tag: "TargetsResolved", machineIds, at: definition.createdAt }
      ] as const) {
        const line = yield* eventLine(event)
        yield* q(sql`INSERT INTO mlr_event (campaign_id, tag, event) VALUES (${id}, ${event._tag}, ${line}::jsonb)`)
      }
      for (const tenant of tenants) {
        const jobs = targets.filter((t) => t.tenant === tenant).map((t) => ({ machineId: t.machineId, startAfter: definition.createdAt }))
        yield* enqueue(shared, tenant, "submit", jobs)
      }
    }))

  const append: PgStore["append"] = (campaign, event) =>
    transaction(sql, Effect.gen(function*() {
      const id = campaign.definition.campaignId
      const machineId = machineOf(event)
      if (machineId === undefined) return yield* storeError("InvalidEvent", `${event._tag} is recorded by the store itself`)
      const rows = yield* q(sql`SELECT tenant, state FROM mlr_machine
        WHERE campaign_id = ${id} AND machine_id = ${machineId} FOR UPDATE`)
      if (rows.length === 0) return yield* storeError("InvalidEvent", `machine ${machineId} is not a target of campaign ${id}`)
      const tenant: string = rows[0]!.tenant
      const before = rows[0]!.state as MachineState
      if (event._tag === "Submitting") {
        yield* q(sql`SELECT pg_advisory_xact_lock(hashtext(${`${id}/${tenant}`}))`)
        const alive = yield* q(sql`SELECT count(*)::int AS n FROM mlr_machine
          WHERE campaign_id = ${id} AND tenant = ${tenant} AND phase IN ('Submitting', 'Alive')`)
        const cap = campaign.definition.options.maxSessions
        if (alive[0]!.n >= cap) {
          return yield* storeError("InvalidEvent", `tenant ${tenant} has ${cap} sessions of the campaign alive (its cap)`)
        }
      }
      const next = yield* apply(alone(id, before), event)
      const after = next.machines.get(machineId)!
      const line = yield* eventLine(event)
      yield* q(sql`INSERT INTO mlr_event (campaign_id, machine_id, tag, event)
        VALUES (${id}, ${machineId}, ${event._tag}, ${line}::jsonb)`)
      yield* q(sql`UPDATE mlr_machine SET state = ${JSON.stringify(after)}::jsonb, phase = ${after.phase._tag}
        WHERE campaign_id = ${id} AND machine_id = ${machineId}`)
      const lane = laneOf(after.phase)
      if (lane !== undefined && lane !== laneOf(before.phase)) {
        yield* enqueue(campaign, tenant, lane, [{ machineId, startAfter: startOf(campaign, after.phase, event.at) }])
      }
      return { before, after }
    }))

  return { create, append }
}

const makeStore = (sql: SqlClient.SqlClient, queue: Queue): PgStore => {
  // Rows as the driver gives them (jsonb parsed); each use reads the columns it selected.
  const q = (effect: Effect.Effect<ReadonlyArray<object>, unknown>): Effect.Effect<Array<any>, CampaignStoreError> =>
    Effect.mapError(effect as Effect.Effect<Array<any>, unknown>, dbError)
  const rowOf = (row: any): SharedCampaign | CampaignStoreError => {
    const definition = decodeDefinition(row.definition)
    if (Either.isLeft(definition)) return storeError("Corrupt", `campaign ${row.campaign_id}: its definition does not decode`)
    return {
      definition: definition.right,
      tenants: row.tenants,
      claimExpiry: Number(row.claim_expiry),
      completed: row.completed_at !== null
    }
  }
  const campaigns = Effect.flatMap(
    q(sql`SELECT * FROM mlr_campaign ORDER BY created_at`),
    (rows) => Effect.forEach(rows, (row) => {
      const c = rowOf(row)
      return "definition" in c ? Effect.succeed(c) : Effect.fail(c)
    })
  )
  const campaign = (campaignId: string) =>
    Effect.flatMap(q(sql`SELECT * FROM mlr_campaign WHERE campaign_id = ${campaignId}`), (rows) => {
      if (rows.length === 0) return Effect.fail(storeError("NotFound", `no campaign ${campaignId} in the store`))
      const c = rowOf(rows[0])
      return "definition" in c ? Effect.succeed(c) : Effect.fail(c)
    })
  /** pg-boss statements on this transaction's connection. */
  const inTransaction = Effect.map(Effect.runtime<never>(), (rt) => ({
    executeSql: (text: string, values: Array<unknown>) =>
      Runtime.runPromise(rt)(sql.unsafe(text, values as Array<any>)).then((rows) => ({ rows: rows as Array<any> }))
  }))
  const enqueue = (campaign: SharedCampaign, tenant: string, lane: Lane, jobs: ReadonlyArray<Job>) =>
    Effect.flatMap(inTransaction, (db) => queue.send(campaign, tenant, lane, jobs, db))

  const { append, create } = writers(sql, queue, q, enqueue)

  const counts = (campaignId: string, tenant?: string) =>
    Effect.map(
      q(tenant === undefined
        ? sql`SELECT phase, count(*)::int AS n FROM mlr_machine WHERE campaign_id = ${campaignId} GROUP BY phase`
        : sql`SELECT phase, count(*)::int AS n FROM mlr_machine
            WHERE campaign_id = ${campaignId} AND tenant = ${tenant} GROUP BY phase`),
      (rows) => {
        const c = zero()
        for (const r of rows) c[r.phase as MachinePhase["_tag"]] = r.n
        return c
      }
    )

  const complete = (campaignId: string) =>
    transaction(sql, Effect.gen(function*() {
      const rows = yield* q(sql`SELECT completed_at FROM mlr_campaign WHERE campaign_id = ${campaignId} FOR UPDATE`)
      if (rows.length === 0) return yield* storeError("NotFound", `no campaign ${campaignId} in the store`)
      if (rows[0]!.completed_at !== null) return true
      const open = yield* q(sql`SELECT count(*)::int AS n FROM mlr_machine
        WHERE campaign_id = ${campaignId} AND phase NOT IN ('Finished', 'NotRun')`)
      if (open[0]!.n > 0) return false
      const at = Date.now()
      const line = yield* eventLine({ _tag: "Completed", at })
      yield* q(sql`INSERT INTO mlr_event (campaign_id, tag, event) VALUES (${campaignId}, 'Completed', ${line}::jsonb)`)
      yield* q(sql`UPDATE mlr_campaign SET completed_at = ${at} WHERE campaign_id = ${campaignId}`)
      return true
    }))

  const manifest = (campaignId: string) =>
    Effect.flatMap(
      q(sql`SELECT event FROM mlr_event WHERE campaign_id = ${campaignId}
        AND tag IN ('MachineFinished', 'NotRun') ORDER BY seq`),
      (rows) =>
        Effect.forEach(rows, (r) => {
          const e = decodeEvent(r.event)
          if (Either.isLeft(e)) return Effect.fail(storeError("Corrupt", `campaign ${campaignId}: an event does not decode`))
          return Effect.succeed(entryOfEvent(e.right)!)
        })
    )

  return {
    queue,
    create,
    campaigns,
    campaign,
    targets: (campaignId, tenant) =>
      Effect.map(
        q(sql`SELECT machine_id FROM mlr_machine WHERE campaign_id = ${campaignId} AND tenant = ${tenant} ORDER BY ord`),
        (rows) => rows.map((r) => r.machine_id as string)
      ),
    machines: (campaignId, ids) =>
      Effect.map(
        q(sql`SELECT state FROM mlr_machine WHERE campaign_id = ${campaignId} AND machine_id IN ${sql.in(ids)}`),
        (rows) => new Map(rows.map((r) => [(r.state as MachineState).machineId, r.state as MachineState]))
      ),
    counts,
    append,
    complete,
    manifest
  }
}

/** @internal The PostgreSQL client of `url` (its password never in an error). */
export const layerSql = (url: Redacted.Redacted): Layer.Layer<SqlClient.SqlClient, CampaignStoreError> =>
  Layer.mapError(PgClient.layer({ url, maxConnections: 4 }), dbError)

// The generic migrator: PgMigrator's would also want a shell and files, for schema dumps we do not take.
const runMigrations = Migrator.make({})

/** @internal Applies the migrations (a concurrent first run of another process is tried again). */
export const migrate: Effect.Effect<void, CampaignStoreError, SqlClient.SqlClient> = runMigrations({
  loader: migrations,
  table: MIGRATIONS_TABLE
}).pipe(Effect.retry({ times: 3 }), Effect.mapError(dbError), Effect.asVoid)

/** @internal The store on a migrated database and a started queue. */
export const makePgStore = (
  queue: Queue
): Effect.Effect<PgStore, CampaignStoreError, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* migrate
    return makeStore(sql, queue)
  })

