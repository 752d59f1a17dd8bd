/**
 * Indexes that let the integrity view (`GET /integrity`, its metrics) answer from a few index
 * descents per location instead of passes over tables of millions of rows:
 * - live copies by location, status and verifiedAt: counts per location and status, audited
 *   copies, and the oldest and latest verification (min and max per status are one descent each);
 * - the copies repair replaced: their `repaired` move to DELETED, a small part of the event log.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = String.raw`
create index physical_copy_integrity on physical_copy (data_location_id, status, verified_at) where status <> 'DELETED';
create index event_log_repaired_copy on event_log (entity_id)
  where entity_kind = 'PhysicalCopy' and to_state = 'DELETED' and (details->>'action') = 'repaired';
`

/** Adds the integrity view's indexes. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
