/**
 * When each RawDataPackage was archived, so cleanup starts from the packages whose retention
 * ends now instead of judging every live copy at a site's SOURCE and BUFFER each tick:
 *
 * - `raw_data_package.archived_at`, stamped in the transaction that records the archive copy
 *   completing the package's target, with an index on the stamped rows;
 * - the completed packages not stamped yet, by their own partial index: the ones completed before
 *   this migration, which the cleanup planner stamps a batch at a time (short statements, no long
 *   row locks), judging the whole site each tick until none is left;
 * - `cleanup_mark`: per site, when its cleanup planner last judged what changed, and when it last
 *   judged every live copy (its safety net for changes no stamp records);
 * - `updated_at` of transfers and bundles, by which it finds those closed since its last tick
 *   (their end frees the buffer copies they held).
 *
 * Expand-only: the column is nullable with no default (no table rewrite) and nothing reads it as
 * required. The indexes are plain CREATE INDEX in the migrations' transaction, as in 0013: on a
 * large ops-db build them beforehand with CREATE INDEX CONCURRENTLY under the same names
 * (docs/scaling.md), and `if not exists` finds them.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = String.raw`
alter table raw_data_package add column if not exists archived_at timestamptz;
create index if not exists raw_data_package_archived on raw_data_package (archived_at) where archived_at is not null;
create index if not exists raw_data_package_unstamped on raw_data_package (id) where status = 'completed' and archived_at is null;
create index if not exists data_transfer_updated on data_transfer (updated_at);
create index if not exists data_transfer_package_updated on data_transfer_package (updated_at);
create table if not exists cleanup_mark (
  site_id uuid primary key references site (id) on delete cascade,
  ticked_at timestamptz not null,
  full_pass_at timestamptz not null
);
`

/** Adds packages' `archived_at`, the cleanup planner's mark per site, and the indexes they are read by. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
