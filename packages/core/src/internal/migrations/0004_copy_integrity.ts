/**
 * A PhysicalCopy whose bytes were found wrong (CORRUPT) or gone (MISSING) keeps that as its
 * status, so it stops counting as a good copy everywhere that counts PRESENT copies (retention,
 * staging, archiving) and repair can find it. Only the enum grows here: PostgreSQL adds a value
 * inside the migration's transaction, and the value is usable once the run commits, so no later
 * migration of the same run may name it.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** Adds `CORRUPT` and `MISSING` to the PhysicalCopy statuses. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.zipRight(
    sql.unsafe(`alter type physical_copy_status add value if not exists 'CORRUPT'`).raw,
    sql.unsafe(`alter type physical_copy_status add value if not exists 'MISSING'`).raw
  )).pipe(Effect.asVoid)
