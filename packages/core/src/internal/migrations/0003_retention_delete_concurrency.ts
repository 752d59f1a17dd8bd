/**
 * How many deletions cleanup runs at once at a location: a local disk takes many in parallel, a
 * tape library or a slow NFS mount few. Existing retention rows get the default (4) and keep
 * every other setting.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** Adds `retention_policy.delete_concurrency`, 1 to 256, default 4. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql.unsafe(`
    alter table retention_policy
      add column delete_concurrency integer not null default 4
      constraint retention_policy_delete_concurrency check (delete_concurrency between 1 and 256)`).raw).pipe(Effect.asVoid)
