/** A PostgreSQL database of a test's own, dropped and created again on the tests' server: its URL. */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"

export const freshDatabase = (serverUrl: string, name: string): Effect.Effect<string, SqlError> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    yield* sql.unsafe(`CREATE DATABASE ${name}`)
    const url = new URL(serverUrl)
    url.pathname = `/${name}`
    return url.toString()
  }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(serverUrl) })))
