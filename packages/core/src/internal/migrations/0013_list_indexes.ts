/**
 * Indexes that keep the list endpoints and the planners on the rows they return, not on the
 * catalog. Every list pages by keyset on (a timestamp, id), so each listed table gets that
 * index, and a partial one on its live rows (what is not yet completed, not yet packaged,
 * not PRESENT or DELETED) that the state filters read: those stay as small as the work in
 * flight however long the history grows. Copies get their file's and bundle's own indexes (the
 * live-copy indexes lead with the location, which a lookup by file or bundle does not know).
 *
 * Plain CREATE INDEX, in the migrations' one transaction: on a large ops-db an operator builds
 * them beforehand with CREATE INDEX CONCURRENTLY under the same names (docs/scaling.md), and
 * `if not exists` then finds them there.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** The statements, in order (docs/scaling.md gives the concurrent form of each index). */
export const indexes: ReadonlyArray<string> = [
  // observations: page order, and the ones still open
  "create index if not exists executed_obs_unit_page on executed_obs_unit (start_at, id)",
  "create index if not exists executed_obs_unit_open_page on executed_obs_unit (start_at, id) where status <> 'completed'",
  // files: page order, and the ones not packaged (filed and waiting, corrupt, missing)
  "create index if not exists raw_data_file_page on raw_data_file (filed_at, id)",
  "create index if not exists raw_data_file_unpackaged_page on raw_data_file (filed_at, id) where state <> 'packaged'",
  // packages, bundles, transfer attempts: page order, and the ones not completed
  "create index if not exists raw_data_package_page on raw_data_package (created_at, id)",
  "create index if not exists raw_data_package_open_page on raw_data_package (created_at, id) where status <> 'completed'",
  "create index if not exists data_transfer_package_page on data_transfer_package (created_at, id)",
  "create index if not exists data_transfer_package_open_page on data_transfer_package (created_at, id) where status <> 'completed'",
  "create index if not exists data_transfer_page on data_transfer (created_at, id)",
  "create index if not exists data_transfer_open_page on data_transfer (created_at, id) where status <> 'completed'",
  // copies: page order, per location, the rare states, and by file and by bundle
  "create index if not exists physical_copy_page on physical_copy (created_at, id)",
  "create index if not exists physical_copy_location_page on physical_copy (data_location_id, created_at, id)",
  "create index if not exists physical_copy_location_live_page on physical_copy (data_location_id, status, created_at, id) where status <> 'DELETED'",
  "create index if not exists physical_copy_unsettled_page on physical_copy (created_at, id) where status not in ('PRESENT', 'DELETED')",
  "create index if not exists physical_copy_file on physical_copy (raw_data_file_id) where raw_data_file_id is not null",
  "create index if not exists physical_copy_bundle on physical_copy (data_transfer_package_id) where data_transfer_package_id is not null",
  // the packages with a bad copy, where repair's planners start
  "create index if not exists physical_copy_bad_package on physical_copy (raw_data_package_id) where status in ('CORRUPT', 'MISSING')",
  // how many copies each location holds in each status, together: the two are far from
  // independent (most PRESENT copies are in the archive, most buffer copies are DELETED)
  "create statistics if not exists physical_copy_location_status (mcv) on data_location_id, status from physical_copy",
  // staging requests: page order, all of them and one account's
  "create index if not exists staging_request_page on staging_request (created_at, id)",
  "create index if not exists staging_request_account_page on staging_request (account_id, created_at, id)"
]

/** Adds the list and planner indexes; the start time's own index is replaced by the page-order one. */
export default Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql.unsafe([...indexes, "drop index if exists executed_obs_unit_start"].join(";\n")).raw
).pipe(Effect.asVoid)
