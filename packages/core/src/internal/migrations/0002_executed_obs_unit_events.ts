/**
 * The event log records the closing of an ExecutedObsUnit (its end time, final status and
 * quality), so an observation's history is as auditable as its files'. Only the enum grows: rows
 * already logged keep their kinds. PostgreSQL (12 and later) adds an enum value inside the
 * migration's transaction; the value is usable once that transaction commits.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** Adds `ExecutedObsUnit` to the event log's entity kinds. */
export default Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql.unsafe(`alter type entity_kind add value if not exists 'ExecutedObsUnit'`).raw
).pipe(Effect.asVoid)
