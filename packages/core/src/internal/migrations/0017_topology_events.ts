/**
 * The topology joins the event log: a Site, DataLocation or Route created or changed by the
 * configuration sync, and every availability switch of a location, are recorded with who made
 * them, in the transaction that makes them. Only the enum grows (the table keeps its shape); the
 * values are usable once the migration's transaction commits.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** Adds `Site`, `DataLocation` and `Route` to the event log's entity kinds. */
export default Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    Effect.forEach(["Site", "DataLocation", "Route"], (kind) => sql.unsafe(`alter type entity_kind add value if not exists '${kind}'`).raw)
).pipe(Effect.asVoid)
