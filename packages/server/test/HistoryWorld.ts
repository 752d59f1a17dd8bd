/**
 * An ops-db's history as a release before the partitioned event log left it: the migrations up to
 * 0017, seeded with events over several years and finished and live transfer attempts, and the
 * readings (the log row by row, the maintained counts, the repairs counted, the partitions) that
 * an upgrade, the history job and a restore must keep.
 */
import { Migrations } from "@ccat/core"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import * as RepairFigures from "../src/observability/internal/RepairFigures.js"

/** The migrations a release before the history tables had. */
export const before18 = Object.keys(Migrations.migrations).filter((n) => n < "0018")

/** Runs just the named migrations, as an older release would have. */
export const runOnly = (names: ReadonlyArray<string>) =>
  Migrator.make({})({
    loader: Migrator.fromRecord(Object.fromEntries(names.map((n) => [n, Migrations.migrations[n]!]))),
    table: Migrations.table
  })

/** A checksum for rows whose content no test reads. */
export const sha = `sha256:${"a".repeat(64)}`

/** Ids of the rows the tests look at again. */
export interface World {
  readonly buffers: readonly [string, string]
  readonly bundles: { readonly done: string; readonly doneToo: string; readonly live: string; readonly recent: string }
  readonly item: string
}

/**
 * Sites, buffers and an archive, bundles with finished and live chains of transfer attempts, two
 * repaired archive copies, a year of events and an item with events in March 2024 and now.
 */
export const seed = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [chile] = yield* sql<{ id: string }>`insert into site (name, short_name, role) values ('chile', 'cl', 'secondary') returning id`
  const [cologne] = yield* sql<{ id: string }>`insert into site (name, short_name, role) values ('cologne', 'col', 'main') returning id`
  const location = (site: string, name: string, type: string) =>
    Effect.map(
      sql<
        { id: string }
      >`insert into data_location (site_id, name, type, technology) values (${site}, ${name}, ${type}::location_type, 'disk') returning id`,
      (r) => r[0]!.id
    )
  const from = yield* location(chile!.id, "chile-buffer", "BUFFER")
  const to = yield* location(cologne!.id, "cologne-buffer", "BUFFER")
  const archive = yield* location(cologne!.id, "cologne-archive", "LONG_TERM_ARCHIVE")
  const bundle = (name: string, status: string) =>
    Effect.map(
      sql<{ id: string }>`
      insert into data_transfer_package (relative_path, size_bytes, checksum, status) values (${`bundles/chile/${name}.tar`}, 10, ${sha}, ${status}::operation_status) returning id`,
      (r) => r[0]!.id
    )
  const bundles = {
    done: yield* bundle("done", "completed"),
    doneToo: yield* bundle("done-too", "completed"),
    live: yield* bundle("live", "in_progress"),
    recent: yield* bundle("recent", "completed")
  }
  const attempt = (bundleId: string, n: number, status: string, at: string | null, previous: string | null, ms: number) =>
    Effect.map(
      sql<{ id: string }>`
      insert into data_transfer (data_transfer_package_id, from_location_id, to_location_id, previous_attempt_id, attempt, adapter, status,
        bytes_transferred, duration_ms, error_reason, started_at, finished_at, created_at)
      values (${bundleId}, ${from}, ${to}, ${previous}, ${n}, 'rsync', ${status}::operation_status, ${status === "completed" ? 10 : 0},
        ${status === "completed" ? ms : null}, ${status === "failed" ? "Timeout" : null},
        coalesce(${at}::timestamptz, now()), ${
          status === "completed" || status === "failed" ? at : null
        }::timestamptz, coalesce(${at}::timestamptz, now()))
      returning id`,
      (r) => r[0]!.id
    )
  const failed = yield* attempt(bundles.done, 1, "failed", "2024-02-10T10:00:00Z", null, 0)
  yield* attempt(bundles.done, 2, "completed", "2024-02-11T10:00:00Z", failed, 4000)
  yield* attempt(bundles.doneToo, 1, "completed", "2024-03-05T10:00:00Z", null, 70_000)
  const liveFailed = yield* attempt(bundles.live, 1, "failed", "2024-03-07T10:00:00Z", null, 0)
  yield* attempt(bundles.live, 2, "in_progress", null, liveFailed, 0)
  yield* attempt(bundles.recent, 1, "completed", new Date().toISOString(), null, 2000)
  // Two archive copies that repair replaced: one in 2024, one now.
  const copy = (path: string) =>
    Effect.map(
      sql<{ id: string }>`
      insert into physical_copy (data_transfer_package_id, data_location_id, path, size_bytes, checksum, status)
      values (${bundles.done}, ${archive}, ${path}, 10, ${sha}, 'DELETED') returning id`,
      (r) => r[0]!.id
    )
  for (const [path, at] of [["a/old", "2024-04-02T00:00:00Z"], ["a/new", new Date().toISOString()]] as const) {
    const id = yield* copy(path)
    yield* sql`insert into event_log (entity_kind, entity_id, from_state, to_state, at, details)
      values ('PhysicalCopy', ${id}, 'CORRUPT', 'DELETED', ${at}::timestamptz, '{"action":"repaired"}')`
  }
  // A year of events, one every five days, and an item with events in March 2024 and now.
  yield* sql`insert into event_log (entity_kind, entity_id, from_state, to_state, at, actor, details)
    select 'RawDataFile', gen_random_uuid(), 'filed', 'packaged', timestamptz '2024-01-01' + make_interval(days => g, secs => g), 'history-test',
      jsonb_build_object('n', g)
    from generate_series(0, 365, 5) g`
  const item = randomUUID()
  yield* sql`insert into event_log (entity_kind, entity_id, from_state, to_state, at) values
    ('DataTransferPackage', ${item}, null, 'pending', '2024-03-01T00:00:00Z'), ('DataTransferPackage', ${item}, 'pending', 'completed', now())`
  return { buffers: [from, to], bundles, item } satisfies World
})

/** The event log as text, row by row in id order: what must not change. */
export const eventRows = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    Effect.map(
      sql<{ t: string }>`select coalesce(string_agg(e::text, E'\n' order by id), '') as t from (
    select id, entity_kind, entity_id, from_state, to_state, at, actor, details from event_log) e`,
      (r) => r[0]!.t
    )
)

/** The maintained counts and histogram of transfer attempts, summed per key. */
export const transferCounts = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    Effect.map(
      sql<{ t: string }>`select coalesce(string_agg(k, E'\n' order by k), '') as t from (
      select format('%s %s %s %s %s %s %s', state, kind, reason, sum(n), sum(bytes), sum(ms), sum(retries)) as k
      from ops_count where entity = 'DataTransfer' group by state, kind, reason having sum(n) <> 0
      union all
      select format('h %s %s %s', le, sum(n), sum(total)) from ops_histogram where name = 'transfer_duration' group by le having sum(n) <> 0) x`,
      (r) => r[0]!.t
    )
)

/** The repairs the metrics count. */
export const repairedTotal = Effect.map(
  RepairFigures.collect(undefined),
  (families) => families.find((f) => f.name === "ccat_copies_repaired_total")!.samples.reduce((n, s) => n + s.value, 0)
)

/** The event log's partitions by name. */
export const partitions = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ name: string }>`
    select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'event_log'::regclass order by 1`,
    (r) => r.map((x) => x.name)
  ))

/** The name of a year's partition of the event log. */
export const yearName = (y: number) => `event_log_y${y}`
/** This year, in UTC. */
export const thisYear = () => new Date().getUTCFullYear()
