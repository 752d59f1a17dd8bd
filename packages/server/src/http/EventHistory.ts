/**
 * The statement that reads one page of an item's events. The event log is partitioned by year
 * (migration 0018), and an item's events are never older than the item itself: bounding `at`
 * below by the item's creation (less a day, for clocks) lets PostgreSQL skip every year before
 * it, so an item's history reads the years it lived in, not the decade the log holds. The bound
 * is a value, not an expression, so the planner prunes before it plans.
 */
import type * as SqlClient from "@effect/sql/SqlClient"

/** The column holding when a row of `table` was created (files say when they were filed, incidents when they opened). */
export const bornColumn = (table: string): string =>
  table === "raw_data_file" ? "filed_at" : table === "alert_incident" ? "opened_at" : "created_at"

/** What a page asks for. */
export interface PageOf {
  readonly entity: string
  readonly id: string
  /** When the item was created: no event of it is older. */
  readonly born: Date
  /** The id of the last event already seen (0 for the first page). */
  readonly after: number
  readonly limit: number
}

/** One page of an item's events, oldest first (`limit + 1` rows, to tell whether more follow). */
export const page = (sql: SqlClient.SqlClient, q: PageOf) => sql<{ id: number }>`
    select * from event_log
    where entity_kind = ${q.entity} and entity_id = ${q.id} and id > ${q.after}
      and at >= ${new Date(new Date(q.born).getTime() - 86_400_000)}
    order by id limit ${q.limit + 1}`
