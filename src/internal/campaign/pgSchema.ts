/**
 * The PostgreSQL tables of campaigns shared by several workers, created by `@effect/sql`'s
 * migrator (`PgMigrator`, its own `mlr_migrations` table): a campaign's definition and tenants,
 * one row per machine (its replayed `MachineState`, its phase for counting, its tenant) and the
 * journal of events in commit order. The work queue is pg-boss's own schema (`pgboss`).
 *
 * @internal
 */
import { SqlClient } from "@effect/sql"
import * as Migrator from "@effect/sql/Migrator"
import { Effect } from "effect"

/** @internal The migrations, in order; never edit one that shipped: add the next. */
export const migrations: Migrator.Loader<SqlClient.SqlClient> = Migrator.fromRecord({
  "0001_campaigns": Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all([
      sql`CREATE TABLE mlr_campaign (
        campaign_id text PRIMARY KEY,
        definition jsonb NOT NULL,
        tenants jsonb NOT NULL,
        claim_expiry bigint NOT NULL,
        created_at bigint NOT NULL,
        completed_at bigint
      )`,
      sql`CREATE TABLE mlr_machine (
        campaign_id text NOT NULL REFERENCES mlr_campaign,
        machine_id text NOT NULL,
        tenant text NOT NULL,
        ord integer NOT NULL,
        phase text NOT NULL,
        state jsonb NOT NULL,
        PRIMARY KEY (campaign_id, machine_id)
      )`,
      sql`CREATE INDEX mlr_machine_phase ON mlr_machine (campaign_id, tenant, phase)`,
      sql`CREATE TABLE mlr_event (
        seq bigserial PRIMARY KEY,
        campaign_id text NOT NULL REFERENCES mlr_campaign,
        machine_id text,
        tag text NOT NULL,
        event jsonb NOT NULL
      )`,
      sql`CREATE INDEX mlr_event_campaign ON mlr_event (campaign_id, seq)`
    ], { discard: true }))
})

/** @internal The migrator's own table. */
export const MIGRATIONS_TABLE = "mlr_migrations"
