/**
 * The transfer attempts of one location, page by page, from its own rows: an index per end of
 * an attempt (where it came from, where it went), each in page order. The list reads the two as
 * two ordered branches and merges them (`Paging.page`'s `anyOf`), so a page reads about a page of
 * rows whatever the history; with only the page-order index it walked every attempt ever made
 * for a location with few or none (an archive, which no attempt names).
 *
 * Expand-only, plain CREATE INDEX in the migration's transaction as in 0013: on a large ops-db
 * build them beforehand with CREATE INDEX CONCURRENTLY under the same names (docs/scaling.md).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** The statements, in order (docs/scaling.md gives their concurrent form). */
export const indexes: ReadonlyArray<string> = [
  "create index if not exists data_transfer_from_page on data_transfer (from_location_id, created_at, id)",
  "create index if not exists data_transfer_to_page on data_transfer (to_location_id, created_at, id)"
]

/** Adds the per-location page indexes of transfer attempts. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(indexes.join(";\n")).raw).pipe(Effect.asVoid)
