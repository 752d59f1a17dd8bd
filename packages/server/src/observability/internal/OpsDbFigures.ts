/**
 * The ops-db figures behind the metrics, read at collection time. Counts, bytes and the two
 * histograms over history (time to archive, transfer attempt durations) come from the
 * maintained counts (`ops_count`, `ops_histogram`: exact, kept by the ops-db's triggers in each
 * writer's transaction), so a scrape costs the same at a thousand files as at a hundred million;
 * the rest reads live rows through partial indexes (ages of open work, the latest completed
 * attempt per hop). Every state of an enum is reported, with zero when no row is in it, so a
 * series never vanishes when its last row moves.
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

/** Bucket bounds in seconds for durations of minutes to days (those of migration 0012 for archive times). */
const longBounds = [60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400]
/** Bucket bounds in seconds for one transfer attempt (those of migration 0012). */
const transferBounds = [1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400]

/**
 * A histogram from a subquery yielding key columns and `v` (seconds): one pass over live rows,
 * crossed with the bounds, cumulative counts per `le` as Prometheus wants them.
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
    return histogramFamily(name, help, keys, rows)
  })

/** The samples of a histogram from rows of keys, `le`, cumulative `n` and (at +Inf) `total`. */
const histogramFamily = (name: string, help: string, keys: ReadonlyArray<string>, rows: ReadonlyArray<Record<string, unknown>>): Family => {
  const samples: Array<Sample> = []
  for (const r of rows) {
    const labels = Object.fromEntries(keys.map((k) => [labelOf[k] ?? k, String(r[k] ?? "")]))
    const le = num(r.le)
    samples.push({ name: `${name}_bucket`, labels: { ...labels, le: le === Infinity ? "+Inf" : String(le) }, value: num(r.n) })
    if (le === Infinity) {
      samples.push({ name: `${name}_sum`, labels, value: num(r.total) }, { name: `${name}_count`, labels, value: num(r.n) })
    }
  }
  return { name, help, type: "histogram", samples }
}

/**
 * A histogram kept in `ops_histogram` (buckets as the migration's triggers fill them, each row
 * holding the samples of one bucket): cumulated over `bounds`, keyed by the hop's sites and the
 * adapter where the histogram has them. The bounds must be the migration's.
 */
const maintainedHistogram = (
  sql: SqlClient.SqlClient,
  name: string,
  help: string,
  stored: string,
  perHop: boolean,
  bounds: ReadonlyArray<number>
) =>
  Effect.gen(function* () {
    const keys = perHop ? ["src", "dst", "adapter"] : []
    const keySelect = perHop ? "fs.name as src, ts.name as dst, h.kind as adapter," : ""
    const keyJoin = perHop
      ? `join data_location fl on fl.id = h.location_id join site fs on fs.id = fl.site_id
         join data_location tl on tl.id = h.to_location_id join site ts on ts.id = tl.site_id`
      : ""
    const rows = yield* sql.unsafe<Record<string, unknown>>(
      `select ${keySelect} b.le as le,
         coalesce(sum(h.n) filter (where h.le <= b.le), 0)::float8 as n,
         coalesce(sum(h.total) filter (where b.le = 'Infinity'), 0)::float8 as total
       from ops_histogram h ${keyJoin}
       cross join unnest(array[${[...bounds, "'Infinity'"].join(",")}]::float8[]) b(le)
       where h.name = $1
       group by ${perHop ? "1, 2, 3, " : ""}b.le
       having sum(h.n) <> 0
       order by ${perHop ? "1, 2, 3, " : ""}b.le`,
      [stored]
    )
    // A histogram without labels is exposed at zero before its first sample, as client libraries
    // do: a rate or a difference over it then has a point to start from.
    const filled = !perHop && rows.length === 0 ? [...bounds, Infinity].map((le) => ({ le, n: 0, total: 0 })) : rows
    return histogramFamily(name, help, keys, filled)
  })

// SQL column names of histogram keys that are keywords in SQL, as their label names.
const labelOf: Record<string, string> = { src: "from", dst: "to" }

/** Counts and bytes per state of an entity, every state of its enum present, from the maintained counts. */
const perState = (sql: SqlClient.SqlClient, entity: string, enumType: string) =>
  sql.unsafe<{ state: string; n: number; bytes: number }>(
    `select s.state::text as state, coalesce(sum(c.n), 0)::float8 as n, coalesce(sum(c.bytes), 0)::float8 as bytes
     from unnest(enum_range(null::${enumType})) as s(state)
     left join ops_count c on c.entity = $1::entity_kind and c.state = s.state::text
     group by s.state order by s.state`,
    [entity]
  )

const copies = (
  sql: SqlClient.SqlClient
) => sql<{ site: string; location: string; ltype: string; tech: string; kind: string; status: string; n: number; bytes: number }>`
    select s.name as site, l.name as location, l.type::text as ltype, l.technology::text as tech,
      c.kind, c.state as status, sum(c.n)::float8 as n, sum(c.bytes)::float8 as bytes
    from ops_count c join data_location l on l.id = c.location_id join site s on s.id = l.site_id
    where c.entity = 'PhysicalCopy'
    group by 1, 2, 3, 4, 5, 6 having sum(c.n) <> 0 order by 1, 2, 5, 6`

const locations = (
  sql: SqlClient.SqlClient
) => sql<
  {
    site: string
    location: string
    ltype: string
    tech: string
    capacity: number | null
    readable: boolean
    writable: boolean
    deletable: boolean
  }
>`
    select s.name as site, l.name as location, l.type::text as ltype, l.technology::text as tech,
      l.capacity_bytes::float8 as capacity, l.readable, l.writable, l.deletable
    from data_location l join site s on s.id = l.site_id order by 1, 2`

// A transfer's hop is named by the sites of its two locations: where the bytes really went.
const hop = `
  join data_location fl on fl.id = c.location_id join site fs on fs.id = fl.site_id
  join data_location tl on tl.id = c.to_location_id join site ts on ts.id = tl.site_id`

const transfers = (sql: SqlClient.SqlClient) =>
  sql.unsafe<{ src: string; dst: string; adapter: string; status: string; n: number; bytes: number; ms: number; retries: number }>(
    `select fs.name as src, ts.name as dst, c.kind as adapter, c.state as status, sum(c.n)::float8 as n,
       sum(c.bytes)::float8 as bytes, sum(c.ms)::float8 as ms, sum(c.retries)::float8 as retries
     from ops_count c ${hop} where c.entity = 'DataTransfer'
     group by 1, 2, 3, 4 having sum(c.n) <> 0 order by 1, 2, 3, 4`
  )

const failures = (sql: SqlClient.SqlClient) =>
  sql.unsafe<{ src: string; dst: string; adapter: string; reason: string; n: number }>(
    `select fs.name as src, ts.name as dst, c.kind as adapter, c.reason, sum(c.n)::float8 as n
     from ops_count c ${hop} where c.entity = 'DataTransfer' and c.state = 'failed'
     group by 1, 2, 3, 4 having sum(c.n) <> 0 order by 1, 2, 3, 4`
  )

// The latest completed attempt of each location pair and adapter that has completed ones (the
// counts name them), one descent of a partial index each; the latest per hop of sites wins.
const lastThroughput = (sql: SqlClient.SqlClient) =>
  sql.unsafe<{ src: string; dst: string; adapter: string; tp: number; at: number }>(
    `select distinct on (fs.name, ts.name, c.kind) fs.name as src, ts.name as dst, c.kind as adapter,
       t.throughput_bytes_per_second::float8 as tp, extract(epoch from t.finished_at)::float8 as at
     from (select location_id, to_location_id, kind from ops_count
           where entity = 'DataTransfer' and state = 'completed' group by 1, 2, 3 having sum(n) > 0) c
     ${hop}
     cross join lateral (
       select d.throughput_bytes_per_second, d.finished_at from data_transfer d
       where d.from_location_id = c.location_id and d.to_location_id = c.to_location_id and d.adapter = c.kind
         and d.status = 'completed' and d.throughput_bytes_per_second is not null and d.finished_at is not null
       order by d.finished_at desc limit 1) t
     order by fs.name, ts.name, c.kind, t.finished_at desc`
  )

const queues = (sql: SqlClient.SqlClient) =>
  Effect.gen(function* () {
    const present = yield* sql<
      { ok: boolean }
    >`select to_regclass('pgboss.queue') is not null and to_regclass('pgboss.job') is not null as ok`
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
    perState(sql, "RawDataFile", "raw_data_file_state"),
    perState(sql, "RawDataPackage", "operation_status"),
    perState(sql, "DataTransferPackage", "operation_status"),
    perState(sql, "StagingRequest", "operation_status"),
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
    maintainedHistogram(
      sql,
      "ccat_transfer_duration_seconds",
      "Duration of completed transfer attempts, per hop (sending site, receiving site) and adapter.",
      "transfer_duration",
      true,
      transferBounds
    ),
    maintainedHistogram(
      sql,
      "ccat_package_archive_duration_seconds",
      "Time from a RawDataPackage's creation to ARCHIVED (completed), over every archived package.",
      "package_archive",
      false,
      longBounds
    ),
    histogram(
      sql,
      "ccat_open_package_age_seconds",
      "Age of RawDataPackages not yet archived nor failed, per status: how long work has waited.",
      ["status"],
      openAge("raw_data_package"),
      longBounds
    ),
    histogram(
      sql,
      "ccat_open_bundle_age_seconds",
      "Age of DataTransferPackages (bundles) not yet completed nor failed, per status.",
      ["status"],
      openAge("data_transfer_package"),
      longBounds
    )
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
  const locationLabels = (l: { site: string; location: string; ltype: string; tech: string }) => ({
    site: l.site,
    location: l.location,
    type: l.ltype,
    technology: l.tech
  })
  const copyLabels = (c: (typeof copyRows)[number]) => ({ ...locationLabels(c), kind: c.kind, status: c.status })
  return [
    gauge(
      "ccat_raw_data_files",
      "RawDataFiles per state (filed, packaged, corrupt, missing).",
      files.map((r) => ({ labels: { state: r.state }, value: num(r.n) }))
    ),
    gauge(
      "ccat_raw_data_file_bytes",
      "Bytes of RawDataFiles per state.",
      files.map((r) => ({ labels: { state: r.state }, value: num(r.bytes) }))
    ),
    gauge(
      "ccat_raw_data_packages",
      "RawDataPackages per status (pending, scheduled: WAITING; in_progress: TRANSFERRING; completed: ARCHIVED; failed).",
      packages.map((r) => ({ labels: { status: r.state }, value: num(r.n) }))
    ),
    gauge(
      "ccat_raw_data_package_bytes",
      "Bytes of RawDataPackages per status (a package has a size once written).",
      packages.map((r) => ({ labels: { status: r.state }, value: num(r.bytes) }))
    ),
    gauge(
      "ccat_data_transfer_packages",
      "DataTransferPackages (bundles) per status.",
      bundles.map((r) => ({ labels: { status: r.state }, value: num(r.n) }))
    ),
    gauge(
      "ccat_data_transfer_package_bytes",
      "Bytes of DataTransferPackages (bundles) per status.",
      bundles.map((r) => ({ labels: { status: r.state }, value: num(r.bytes) }))
    ),
    gauge("ccat_staging_requests", "StagingRequests per status.", staging.map((r) => ({ labels: { status: r.state }, value: num(r.n) }))),
    gauge(
      "ccat_physical_copies",
      "PhysicalCopies per location, kind (file, package, bundle) and status; DELETED ones are history.",
      copyRows.map((c) => ({ labels: copyLabels(c), value: num(c.n) }))
    ),
    gauge(
      "ccat_physical_copy_bytes",
      "Bytes of PhysicalCopies per location, kind and status.",
      copyRows.map((c) => ({ labels: copyLabels(c), value: num(c.bytes) }))
    ),
    gauge(
      "ccat_location_used_bytes",
      "Bytes of the live (not DELETED) copies at a location.",
      locationRows.map((l) => ({ labels: locationLabels(l), value: used.get(l.location) ?? 0 }))
    ),
    gauge(
      "ccat_location_capacity_bytes",
      "A location's configured capacity (only locations that have one).",
      locationRows.filter((l) => l.capacity !== null).map((l) => ({ labels: locationLabels(l), value: num(l.capacity) }))
    ),
    gauge(
      "ccat_location_available",
      "1 when a location is available for an operation (read, write, delete), 0 when an operator switched it off.",
      locationRows.flatMap((l) => (["read", "write", "delete"] as const).map((op) => ({
        labels: { ...locationLabels(l), operation: op },
        value: (op === "read" ? l.readable : op === "write" ? l.writable : l.deletable) ? 1 : 0
      })))
    ),
    gauge(
      "ccat_transfer_attempts",
      "DataTransfer attempts per hop, adapter and status.",
      transferRows.map((r) => ({ labels: { ...hopLabels(r), status: r.status }, value: num(r.n) }))
    ),
    counter(
      "ccat_transfer_bytes_total",
      "Bytes moved by completed transfer attempts per hop; rate() of it is the throughput.",
      [...routeTotals.values()].map((t) => ({ labels: t.labels, value: t.bytes }))
    ),
    counter(
      "ccat_transfer_duration_seconds_total",
      "Time spent by completed transfer attempts per hop.",
      [...routeTotals.values()].map((t) => ({ labels: t.labels, value: t.ms / 1000 }))
    ),
    counter(
      "ccat_transfer_retries_total",
      "Transfer attempts that were retries (attempt > 1) per hop.",
      [...routeTotals.values()].map((t) => ({ labels: t.labels, value: t.retries }))
    ),
    counter(
      "ccat_transfer_failures_total",
      "Failed transfer attempts per hop and error reason.",
      failureRows.map((r) => ({ labels: { ...hopLabels(r), reason: r.reason }, value: num(r.n) }))
    ),
    gauge(
      "ccat_transfer_average_throughput_bytes_per_second",
      "Bytes over time of all completed attempts per hop.",
      [...routeTotals.values()].filter((t) => t.ms > 0).map((t) => ({ labels: t.labels, value: t.bytes / (t.ms / 1000) }))
    ),
    gauge(
      "ccat_transfer_last_throughput_bytes_per_second",
      "Throughput of the latest completed attempt per hop.",
      lastRows.map((r) => ({ labels: hopLabels(r), value: num(r.tp) }))
    ),
    gauge(
      "ccat_transfer_last_completed_timestamp_seconds",
      "When the latest attempt per hop completed (Unix time).",
      lastRows.map((r) => ({ labels: hopLabels(r), value: num(r.at) }))
    ),
    ...(yield* IntegrityFamilies.collect),
    gauge(
      "ccat_queue_jobs",
      "pg-boss jobs per queue and state (created and retry are waiting, active are running).",
      queueRows.map((r) => ({ labels: { queue: r.queue, state: r.state }, value: num(r.n) }))
    ),
    ...histograms
  ]
})
