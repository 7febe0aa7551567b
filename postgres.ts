/**
 * Campaigns shared by workers and tenants on PostgreSQL (`mde-live-response/postgres`): it
 * needs the optional peer dependencies `@effect/sql`, `@effect/sql-pg` and `pg-boss` 10.x,
 * which the main entry (`mde-live-response`) never loads.
 *
 * @module
 * @since 0.1.0
 */

/** The shared store and its workers. @since 0.1.0 */
export * as CampaignPostgres from "./src/CampaignPostgres.ts"
