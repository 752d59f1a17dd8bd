/**
 * The ops-db figures behind the metrics: a handful of aggregate queries, each one pass over a
 * table (or over an open-work partial index), run at collection time. Every state of an enum is
 * reported, with zero when no row is in it, so a series never vanishes when its last row moves.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type { Family, Sample } from "../Exposition.js"
import * as IntegrityFamilies from "./IntegrityFamilies.js"

type Labels = Readonly<Record<string, string>>

/** A gauge family from labelled values. */
export const gauge = (name: string, help: string, rows: ReadonlyArray<{ labels: Labels; value: number }>): Family => ({
  name,
  help,
  type: "gauge",
  samples: rows.map((r) => ({ name, labels: r.labels, value: r.value }))
})

/** A counter family (values only grow: they are sums over rows that are never deleted). */
export const counter = (name: string, help: string, rows: ReadonlyArray<{ labels: Labels; value: number }>): Family => ({
  ...gauge(name, help, rows),
  type: "counter"
})

const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v))

/** Bucket bounds in seconds for durations of minutes to days. */
const longBounds = [60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400]
/** Bucket bounds in seconds for one transfer attempt. */
const transferBounds = [1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400]

/**
 * A histogram from a subquery yielding key columns and `v` (seconds): one pass, the rows crossed
 * with the bounds, cumulative counts per `le` as Prometheus wants them.
 */
const histogram = (
  sql: SqlClient.SqlClient,
  name: string,
  help: string,
  keys: ReadonlyArray<string>,
  subquery: string,
  bounds: ReadonlyArray<number>
): Effect.Effect<Family, SqlError.SqlError> =>
  Effect.gen(function* () {
    const keyList = keys.map((k) => `x.${k}`).join(", ")
    const rows = yield* sql.unsafe<Record<string, unknown>>(
      `select ${keyList}${keys.length > 0 ? "," : ""} b.le as le,
         count(*) filter (where x.v <= b.le)::float8 as n,
         coalesce(sum(x.v) filter (where b.le = 'Infinity'), 0)::float8 as total
       from (${subquery}) x cross join unnest(array[${[...bounds, "'Infinity'"].join(",")}]::float8[]) b(le)
       group by ${keys.length > 0 ? `${keyList}, ` : ""}b.le
       order by ${keys.length > 0 ? `${keyList}, ` : ""}b.le`
    )
    const samples: Array<Sample> = []
    for (const r of rows) {
      const labels = Object.fromEntries(keys.map((k) => [labelOf[k] ?? k, String(r[k] ?? "")]))
      const le = num(r.le)
      samples.push({ name: `${name}_bucket`, labels: { ...labels, le: le === Infinity ? "+Inf" : String(le) }, value: num(r.n) })
      if (le === Infinity) {
        samples.push({ name: `${name}_sum`, labels, value: num(r.total) }, { name: `${name}_count`, labels, value: num(r.n) })
      }
    }
    return { name, help, type: "histogram", samples } satisfies Family
  })

// SQL column names of histogram keys that are keywords in SQL, as their label names.
const labelOf: Record<string, string> = { src: "from", dst: "to" }

/** Counts and bytes per state of a table's enum column, every state present. */
const perState = (sql: SqlClient.SqlClient, table: string, column: string, enumType: string, bytes: boolean) =>
  sql.unsafe<{ state: string; n: number; bytes: number }>(
    `select s.state::text as state, count(t.${column})::float8 as n,
       ${bytes ? "coalesce(sum(t.size_bytes), 0)" : "0"}::float8 as bytes
     from unnest(enum_range(null::${enumType})) as s(state)
     left join ${table} t on t.${column} = s.state
     group by s.state order by s.state`
  )

const copies = (sql: SqlClient.SqlClient) =>
  sql<{ site: string; location: string; ltype: string; tech: string; kind: string; status: string; n: number; bytes: number }>`
    select s.name as site, l.name as location, l.type::text as ltype, l.technology::text as tech,
      case when c.raw_data_file_id is not null then 'file' when c.raw_data_package_id is not null then 'package' else 'bundle' end as kind,
      c.status::text as status, count(*)::float8 as n, coalesce(sum(c.size_bytes), 0)::float8 as bytes
    from physical_copy c join data_location l on l.id = c.data_location_id join site s on s.id = l.site_id
    group by 1, 2, 3, 4, 5, 6 order by 1, 2, 5, 6`

const locations = (sql: SqlClient.SqlClient) =>
  sql<{ site: string; location: string; ltype: string; tech: string; capacity: number | null; readable: boolean; writable: boolean; deletable: boolean }>`
    select s.name as site, l.name as location, l.type::text as ltype, l.technology::text as tech,
      l.capacity_bytes::float8 as capacity, l.readable, l.writable, l.deletable
    from data_location l join site s on s.id = l.site_id order by 1, 2`

// A transfer's hop is named by the sites of its two locations: where the bytes really went.
const hop = `
  from data_transfer t
  join data_location fl on fl.id = t.from_location_id join site fs on fs.id = fl.site_id
  join data_location tl on tl.id = t.to_location_id join site ts on ts.id = tl.site_id`

const transfers = (sql: SqlClient.SqlClient) =>
  sql.unsafe<{ src: string; dst: string; adapter: string; status: string; n: number; bytes: number; ms: number; retries: number }>(
    `select fs.name as src, ts.name as dst, t.adapter::text as adapter, t.status::text as status, count(*)::float8 as n,
       coalesce(sum(t.bytes_transferred) filter (where t.status = 'completed'), 0)::float8 as bytes,
       coalesce(sum(t.duration_ms) filter (where t.status = 'completed'), 0)::float8 as ms,
       (count(*) filter (where t.attempt > 1))::float8 as retries
     ${hop} group by 1, 2, 3, 4 order by 1, 2, 3, 4`
  )

const failures = (sql: SqlClient.SqlClient) =>
  sql.unsafe<{ src: string; dst: string; adapter: string; reason: string; n: number }>(
    `select fs.name as src, ts.name as dst, t.adapter::text as adapter, coalesce(t.error_reason, 'unknown') as reason, count(*)::float8 as n
     ${hop} where t.status = 'failed' group by 1, 2, 3, 4 order by 1, 2, 3, 4`
  )

const lastThroughput = (sql: SqlClient.SqlClient) =>
  sql.unsafe<{ src: string; dst: string; adapter: string; tp: number; at: number }>(
    `select distinct on (fs.name, ts.name, t.adapter) fs.name as src, ts.name as dst, t.adapter::text as adapter,
       t.throughput_bytes_per_second::float8 as tp, extract(epoch from t.finished_at)::float8 as at
     ${hop} where t.status = 'completed' and t.throughput_bytes_per_second is not null and t.finished_at is not null
     order by fs.name, ts.name, t.adapter, t.finished_at desc`
  )

const queues = (sql: SqlClient.SqlClient) =>
  Effect.gen(function* () {
    const present = yield* sql<{ ok: boolean }>`select to_regclass('pgboss.queue') is not null and to_regclass('pgboss.job') is not null as ok`
    if (!present[0]?.ok) return []
    return yield* sql<{ queue: string; state: string; n: number }>`
      select q.name as queue, s.state::text as state, count(j.id)::float8 as n
      from pgboss.queue q cross join unnest(enum_range(null::pgboss.job_state)) as s(state)
      left join pgboss.job j on j.name = q.name and j.state = s.state
      group by 1, 2 order by 1, 2`
  })

/** Every ops-db family. */
export const collect: Effect.Effect<ReadonlyArray<Family>, SqlError.SqlError, SqlClient.SqlClient> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [files, packages, bundles, staging, copyRows, locationRows, transferRows, failureRows, lastRows, queueRows] = yield* Effect.all([
    perState(sql, "raw_data_file", "state", "raw_data_file_state", true),
    perState(sql, "raw_data_package", "status", "operation_status", true),
    perState(sql, "data_transfer_package", "status", "operation_status", true),
    perState(sql, "staging_request", "status", "operation_status", false),
    copies(sql),
    locations(sql),
    transfers(sql),
    failures(sql),
    lastThroughput(sql),
    queues(sql)
  ])
  const openAge = (table: string) =>
    `select status::text as status, extract(epoch from now() - created_at)::float8 as v from ${table} where status <> 'completed' and status <> 'failed'`
  const histograms = yield* Effect.all([
    histogram(sql, "ccat_transfer_duration_seconds", "Duration of completed transfer attempts, per hop (sending site, receiving site) and adapter.",
      ["src", "dst", "adapter"],
      `select fs.name as src, ts.name as dst, t.adapter::text as adapter, t.duration_ms / 1000.0 as v ${hop} where t.status = 'completed' and t.duration_ms is not null`,
      transferBounds),
    histogram(sql, "ccat_package_archive_duration_seconds", "Time from a RawDataPackage's creation to ARCHIVED (completed), over every archived package.",
      [], `select extract(epoch from updated_at - created_at)::float8 as v from raw_data_package where status = 'completed'`, longBounds),
    histogram(sql, "ccat_open_package_age_seconds", "Age of RawDataPackages not yet archived nor failed, per status: how long work has waited.",
      ["status"], openAge("raw_data_package"), longBounds),
    histogram(sql, "ccat_open_bundle_age_seconds", "Age of DataTransferPackages (bundles) not yet completed nor failed, per status.",
      ["status"], openAge("data_transfer_package"), longBounds)
  ])
  const hopLabels = (r: { src: string; dst: string; adapter: string }) => ({ from: r.src, to: r.dst, adapter: r.adapter })
  const routeTotals = new Map<string, { labels: Labels; bytes: number; ms: number; retries: number }>()
  for (const r of transferRows) {
    const key = `${r.src}\n${r.dst}\n${r.adapter}`
    const t = routeTotals.get(key) ?? { labels: hopLabels(r), bytes: 0, ms: 0, retries: 0 }
    t.bytes += num(r.bytes)
    t.ms += num(r.ms)
    t.retries += num(r.retries)
    routeTotals.set(key, t)
  }
  const used = new Map<string, number>()
  for (const c of copyRows) if (c.status !== "DELETED") used.set(c.location, (used.get(c.location) ?? 0) + num(c.bytes))
  const locationLabels = (l: { site: string; location: string; ltype: string; tech: string }) => ({ site: l.site, location: l.location, type: l.ltype, technology: l.tech })
  const copyLabels = (c: (typeof copyRows)[number]) => ({ ...locationLabels(c), kind: c.kind, status: c.status })
  return [
    gauge("ccat_raw_data_files", "RawDataFiles per state (filed, packaged, corrupt, missing).", files.map((r) => ({ labels: { state: r.state }, value: num(r.n) }))),
    gauge("ccat_raw_data_file_bytes", "Bytes of RawDataFiles per state.", files.map((r) => ({ labels: { state: r.state }, value: num(r.bytes) }))),
    gauge("ccat_raw_data_packages", "RawDataPackages per status (pending, scheduled: WAITING; in_progress: TRANSFERRING; completed: ARCHIVED; failed).", packages.map((r) => ({ labels: { status: r.state }, value: num(r.n) }))),
    gauge("ccat_raw_data_package_bytes", "Bytes of RawDataPackages per status (a package has a size once written).", packages.map((r) => ({ labels: { status: r.state }, value: num(r.bytes) }))),
    gauge("ccat_data_transfer_packages", "DataTransferPackages (bundles) per status.", bundles.map((r) => ({ labels: { status: r.state }, value: num(r.n) }))),
    gauge("ccat_data_transfer_package_bytes", "Bytes of DataTransferPackages (bundles) per status.", bundles.map((r) => ({ labels: { status: r.state }, value: num(r.bytes) }))),
    gauge("ccat_staging_requests", "StagingRequests per status.", staging.map((r) => ({ labels: { status: r.state }, value: num(r.n) }))),
    gauge("ccat_physical_copies", "PhysicalCopies per location, kind (file, package, bundle) and status; DELETED ones are history.", copyRows.map((c) => ({ labels: copyLabels(c), value: num(c.n) }))),
    gauge("ccat_physical_copy_bytes", "Bytes of PhysicalCopies per location, kind and status.", copyRows.map((c) => ({ labels: copyLabels(c), value: num(c.bytes) }))),
    gauge("ccat_location_used_bytes", "Bytes of the live (not DELETED) copies at a location.", locationRows.map((l) => ({ labels: locationLabels(l), value: used.get(l.location) ?? 0 }))),
    gauge("ccat_location_capacity_bytes", "A location's configured capacity (only locations that have one).", locationRows.filter((l) => l.capacity !== null).map((l) => ({ labels: locationLabels(l), value: num(l.capacity) }))),
    gauge("ccat_location_available", "1 when a location is available for an operation (read, write, delete), 0 when an operator switched it off.",
      locationRows.flatMap((l) => (["read", "write", "delete"] as const).map((op) => ({
        labels: { ...locationLabels(l), operation: op },
        value: (op === "read" ? l.readable : op === "write" ? l.writable : l.deletable) ? 1 : 0
      })))),
    gauge("ccat_transfer_attempts", "DataTransfer attempts per hop, adapter and status.", transferRows.map((r) => ({ labels: { ...hopLabels(r), status: r.status }, value: num(r.n) }))),
    counter("ccat_transfer_bytes_total", "Bytes moved by completed transfer attempts per hop; rate() of it is the throughput.", [...routeTotals.values()].map((t) => ({ labels: t.labels, value: t.bytes }))),
    counter("ccat_transfer_duration_seconds_total", "Time spent by completed transfer attempts per hop.", [...routeTotals.values()].map((t) => ({ labels: t.labels, value: t.ms / 1000 }))),
    counter("ccat_transfer_retries_total", "Transfer attempts that were retries (attempt > 1) per hop.", [...routeTotals.values()].map((t) => ({ labels: t.labels, value: t.retries }))),
    counter("ccat_transfer_failures_total", "Failed transfer attempts per hop and error reason.", failureRows.map((r) => ({ labels: { ...hopLabels(r), reason: r.reason }, value: num(r.n) }))),
    gauge("ccat_transfer_average_throughput_bytes_per_second", "Bytes over time of all completed attempts per hop.",
      [...routeTotals.values()].filter((t) => t.ms > 0).map((t) => ({ labels: t.labels, value: t.bytes / (t.ms / 1000) }))),
    gauge("ccat_transfer_last_throughput_bytes_per_second", "Throughput of the latest completed attempt per hop.", lastRows.map((r) => ({ labels: hopLabels(r), value: num(r.tp) }))),
    gauge("ccat_transfer_last_completed_timestamp_seconds", "When the latest attempt per hop completed (Unix time).", lastRows.map((r) => ({ labels: hopLabels(r), value: num(r.at) }))),
    ...(yield* IntegrityFamilies.collect),
    gauge("ccat_queue_jobs", "pg-boss jobs per queue and state (created and retry are waiting, active are running).", queueRows.map((r) => ({ labels: { queue: r.queue, state: r.state }, value: num(r.n) }))),
    ...histograms
  ]
})
