/**
 * Storage technologies become open: a location's technology is the name of a registered storage
 * driver, an integrator's as well as disk, s3 or tape, so the closed enum gives way to the
 * `short_name` domain (the form every technology name takes). Existing values are kept as they
 * are; the server checks each name against its registry at start. Route adapters were text
 * (`display_name`) from the first schema and stay so.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** `data_location.technology` as text in the form of a name, and the enum dropped. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.zipRight(
    sql.unsafe(`alter table data_location alter column technology type short_name using technology::text`).raw,
    sql.unsafe(`drop type storage_technology`).raw
  )).pipe(Effect.asVoid)
