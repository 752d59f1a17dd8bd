/**
 * The status snapshot: the system's state in one consistent read. Counts per entity and state,
 * copies and bytes per location, and what waits to be deleted or sits staged come from the
 * maintained counts (`ops_count`, kept exact by the ops-db's triggers in every writer's
 * transaction), so they cost the same for a thousand files as for a hundred million. The rest
 * reads only live or failed rows through partial indexes: the stages' waiting work (by the
 * planners' own conditions), failed items, the last day's transfer attempts and the latest
 * failure per location and route. Every figure is exact.
 */
import { EventLog, type Ids, Status, StatusApi, type ApiSecurity, type TransferPolicy } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Routes from "../lifecycle/Routes.js"
import * as Access from "./Access.js"

const utc = (d: Date | string): DateTime.Utc => DateTime.unsafeMake(d)

/** Every state of every counted entity, at zero, so an answer always names them all. */
const zeros = <K extends string>(states: ReadonlyArray<K>): Record<K, number> =>
  Object.fromEntries(states.map((s) => [s, 0])) as Record<K, number>

/** The maintained counts: rows and bytes per entity and state (copies over every location). */
const totals = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return yield* sql<{ entity: EventLog.EntityKind; state: string; n: number; bytes: number }>`
    select entity::text as entity, state, sum(n)::float8 as n, sum(bytes)::float8 as bytes
    from ops_count group by entity, state`
})

type Totals = Effect.Effect.Success<typeof totals>

const entityOf: Partial<Record<EventLog.EntityKind, keyof StatusApi.Counts>> = {
  RawDataFile: "files",
  RawDataPackage: "packages",
  DataTransferPackage: "bundles",
  DataTransfer: "transfers",
  StagingRequest: "stagingRequests",
  PhysicalCopy: "copies"
}

const counts = (rows: Totals): StatusApi.Counts => {
  const out = {
    files: zeros(StatusApi.Counts.fields.files.key.literals),
    packages: zeros(Status.statuses),
    packageJourneys: zeros(Status.PackageJourney.literals),
    bundles: zeros(Status.statuses),
    transfers: zeros(Status.statuses),
    stagingRequests: zeros(Status.statuses),
    copies: zeros(StatusApi.Counts.fields.copies.key.literals)
  }
  for (const r of rows) {
    const entity = entityOf[r.entity]
    if (entity === undefined || r.n === 0) continue
    ;(out[entity] as Record<string, number>)[r.state] = r.n
    if (entity === "packages") out.packageJourneys[Status.journey(r.state as Status.Status)] += r.n
  }
  return out
}

/** Copies and bytes in the given states, from the counts. */
const copiesIn = (rows: Totals, states: ReadonlyArray<string>): StatusApi.StageLoad =>
  rows
    .filter((r) => r.entity === "PhysicalCopy" && states.includes(r.state))
    .reduce((a, r) => ({ count: a.count + r.n, bytes: a.bytes + r.bytes }), { count: 0, bytes: 0 })

const stages = (rows: Totals) => Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // Each condition is the one its stage's planner picks work by (lifecycle/*.ts), over live rows
  // only (partial indexes); copies staged or on their way to deletion come from the counts.
  const load = (rows: Fragment) =>
    Effect.map(
      sql<{ n: number; b: number }>`select count(*)::int as n, coalesce(sum(w.size_bytes), 0)::float8 as b from (${rows}) w`,
      ([r]): StatusApi.StageLoad => ({ count: r.n, bytes: r.b })
    )
  return {
    waitingToPackage: yield* load(sql`select size_bytes from raw_data_file where state = 'filed' and raw_data_package_id is null`),
    waitingToBundle: yield* load(waitingAtBuffer(sql, false)),
    inTransfer: yield* load(sql`select size_bytes from data_transfer_package where status in ('pending', 'scheduled', 'in_progress')`),
    waitingToArchive: yield* load(waitingAtBuffer(sql, true)),
    staged: copiesIn(rows, ["STAGED"]),
    waitingToDelete: copiesIn(rows, deleting)
  } satisfies StatusApi.Stages
})

const deleting = ["DELETION_POSSIBLE", "DELETION_SCHEDULED", "DELETION_IN_PROGRESS", "DELETION_FAILED"]

/**
 * Written packages (in_progress) PRESENT in a BUFFER: at a site with an archive they wait to be
 * archived; at a site without one, to be bundled, unless a bundle holds them that is open, or
 * completed and sent from that site (the bundling planner's rule).
 */
const waitingAtBuffer = (sql: SqlClient.SqlClient, archiveSite: boolean): Fragment => sql`
  select distinct p.id, p.size_bytes from raw_data_package p
  join physical_copy c on c.raw_data_package_id = p.id and c.status = 'PRESENT'
  join data_location l on l.id = c.data_location_id and l.type = 'BUFFER'
  where p.status = 'in_progress'
    and ${
      sql.literal(archiveSite ? "" : "not")
    } exists (select 1 from data_location a where a.site_id = l.site_id and a.type = 'LONG_TERM_ARCHIVE')
    ${
      archiveSite ? sql.literal("") : sql`and not exists (
      select 1 from data_transfer_package_member m join data_transfer_package d on d.id = m.data_transfer_package_id
      where m.raw_data_package_id = p.id
        and (d.status <> 'completed' or exists (
          select 1 from data_transfer t join data_location fl on fl.id = t.from_location_id
          where t.data_transfer_package_id = d.id and fl.site_id = l.site_id)))`
    }`

/** Failed items newest first, and how many there are per entity. */
const failed = (limit: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // A failed transfer attempt that was followed by another is history, not something to act on.
    // Each branch reads a partial index of its failed rows (the copies' is written as the index's
    // own predicate: every status but the six that are not failures). Files and copies keep no error column: their reason is read from the event log below, for
    // the listed rows only.
    const all = sql`
      select 'RawDataFile' as entity, id, state::text as state, updated_at, null::text as error_message
      from raw_data_file where state in ('corrupt', 'missing')
      union all select 'RawDataPackage', id, status::text, updated_at, error_message from raw_data_package where status = 'failed'
      union all select 'DataTransferPackage', id, status::text, updated_at, error_message from data_transfer_package where status = 'failed'
      union all select 'DataTransfer', t.id, t.status::text, t.updated_at, t.error_message from data_transfer t
        where t.status = 'failed' and not exists (select 1 from data_transfer n where n.previous_attempt_id = t.id)
      union all select 'StagingRequest', id, status::text, updated_at, error_message from staging_request where status = 'failed'
      union all select 'PhysicalCopy', id, status::text, updated_at, null from physical_copy
        where status not in ('PRESENT', 'STAGED', 'DELETION_SCHEDULED', 'DELETION_IN_PROGRESS', 'DELETION_POSSIBLE', 'DELETED')`
    const rows = yield* sql<{ entity: string; id: string; state: string; updatedAt: Date; errorMessage: string | null }>`
      select a.entity, a.id, a.state, a.updated_at,
             coalesce(a.error_message, (
               select coalesce(e.details->>'error', e.details->>'detail', e.details->>'reason') from event_log e
               where e.entity_kind = a.entity::entity_kind and e.entity_id = a.id order by e.id desc limit 1)) as error_message
      from (select * from (${all}) u order by u.updated_at desc, u.id limit ${limit}) a
      order by a.updated_at desc, a.id`
    const totals = yield* sql<{ entity: string; n: number }>`select a.entity, count(*)::int as n from (${all}) a group by a.entity`
    const failedTotals = zeros(EventLog.EntityKind.literals)
    for (const t of totals) failedTotals[t.entity as EventLog.EntityKind] = t.n
    return {
      failed: rows.map((r): StatusApi.FailedItem => ({
        entity: r.entity as EventLog.EntityKind,
        id: r.id,
        state: r.state,
        errorMessage: r.errorMessage,
        updatedAt: utc(r.updatedAt)
      })),
      failedTotals
    }
  })

/** The circuit as the API shows it. */
const showCircuit = (c: TransferPolicy.Circuit): StatusApi.Circuit =>
  c.state === "open" ? { state: "open", retryInMs: Math.max(0, c.retryInMs), reason: c.reason } : { state: c.state }

interface FailureRow {
  readonly key: string
  readonly transferId: Ids.DataTransferId
  readonly finishedAt: Date
  readonly errorMessage: string | null
}

const lastFailure = (rows: ReadonlyArray<FailureRow>, key: string) => {
  const r = rows.find((x) => x.key === key)
  return r === undefined ? null : { transferId: r.transferId, at: utc(r.finishedAt), errorMessage: r.errorMessage }
}

const locations = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const policy = yield* Routes.transferPolicy
  const rows = yield* sql<{
    id: Ids.DataLocationId
    name: Ids.ShortName
    siteId: Ids.SiteId
    siteName: string
    siteShortName: string
    type: StatusApi.LocationStatus["type"]
    technology: StatusApi.LocationStatus["technology"]
    readable: boolean
    writable: boolean
    deletable: boolean
    capacityBytes: string | null
    presentCopies: number
    presentBytes: number
    usedBytes: number
  }>`
    select l.id, l.name, l.site_id, s.name as site_name, s.short_name as site_short_name, l.type::text as type,
           l.technology::text as technology, l.readable, l.writable, l.deletable, l.capacity_bytes::text as capacity_bytes,
           coalesce(sum(c.n) filter (where c.state in ('PRESENT', 'STAGED')), 0)::float8 as present_copies,
           coalesce(sum(c.bytes) filter (where c.state in ('PRESENT', 'STAGED')), 0)::float8 as present_bytes,
           coalesce(sum(c.bytes) filter (where c.state <> 'DELETED'), 0)::float8 as used_bytes
    from data_location l join site s on s.id = l.site_id
    left join ops_count c on c.entity = 'PhysicalCopy' and c.location_id = l.id
    group by l.id, s.id order by s.name, l.priority, l.name`
  // The latest failure per location: one descent of a partial index each.
  const failures = yield* sql<FailureRow>`
    select l.id::text as key, f.id as transfer_id, f.finished_at, f.error_message
    from data_location l cross join lateral (
      select t.id, t.finished_at, t.error_message from data_transfer t
      where t.to_location_id = l.id and t.status = 'failed' and t.finished_at is not null
      order by t.finished_at desc limit 1) f`
  return yield* Effect.forEach(
    rows,
    (l) =>
      Effect.map(Routes.circuit({ toLocationId: l.id }, policy), (circuit): StatusApi.LocationStatus => {
        const capacity = l.capacityBytes === null ? null : Number(l.capacityBytes)
        return {
          ...l,
          capacityBytes: capacity,
          fillFraction: capacity === null || capacity === 0 ? null : l.usedBytes / capacity,
          circuit: showCircuit(circuit),
          lastFailure: lastFailure(failures, l.id)
        }
      })
  )
})

const hour = 3600

const routes = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const policy = yield* Routes.transferPolicy
  const rows = yield* sql<{ id: Ids.RouteId; fromSite: string; toSite: string; viaSite: string | null; adapter: string; priority: number }>`
    select r.id, f.name as from_site, t.name as to_site, v.name as via_site, r.adapter, r.priority
    from route r join site f on f.id = r.from_site_id join site t on t.id = r.to_site_id
    left join site v on v.id = r.via_site_id order by f.name, r.priority, t.name, r.id`
  // The last day's finished attempts (a partial index on finished_at); the hour is a filter of the same rows.
  const recent = yield* sql<
    {
      routeId: string
      hTransfers: number
      hBytes: number
      hSeconds: number
      hFailed: number
      dTransfers: number
      dBytes: number
      dSeconds: number
      dFailed: number
    }
  >`
    select t.route_id::text as route_id,
           count(*) filter (where t.status = 'completed' and t.finished_at >= now() - interval '1 hour')::int as h_transfers,
           coalesce(sum(t.bytes_transferred) filter (where t.status = 'completed' and t.finished_at >= now() - interval '1 hour'), 0)::float8 as h_bytes,
           coalesce(sum(t.duration_ms) filter (where t.status = 'completed' and t.finished_at >= now() - interval '1 hour'), 0)::float8 / 1000 as h_seconds,
           count(*) filter (where t.status = 'failed' and t.finished_at >= now() - interval '1 hour')::int as h_failed,
           count(*) filter (where t.status = 'completed')::int as d_transfers,
           coalesce(sum(t.bytes_transferred) filter (where t.status = 'completed'), 0)::float8 as d_bytes,
           coalesce(sum(t.duration_ms) filter (where t.status = 'completed'), 0)::float8 / 1000 as d_seconds,
           count(*) filter (where t.status = 'failed')::int as d_failed
    from data_transfer t
    where t.status in ('completed', 'failed') and t.route_id is not null and t.finished_at >= now() - interval '1 day'
    group by t.route_id`
  const moved = recent.flatMap((r) => [
    { routeId: r.routeId, window: "hour", transfers: r.hTransfers, bytes: r.hBytes, seconds: r.hSeconds, failed: r.hFailed },
    { routeId: r.routeId, window: "day", transfers: r.dTransfers, bytes: r.dBytes, seconds: r.dSeconds, failed: r.dFailed }
  ])
  const failures = yield* sql<FailureRow>`
    select r.id::text as key, f.id as transfer_id, f.finished_at, f.error_message
    from route r cross join lateral (
      select t.id, t.finished_at, t.error_message from data_transfer t
      where t.route_id = r.id and t.status = 'failed' and t.finished_at is not null
      order by t.finished_at desc limit 1) f`
  const throughput = (routeId: string, window: "hour" | "day"): StatusApi.Throughput => {
    const m = moved.find((x) => x.routeId === routeId && x.window === window)
    const span = window === "hour" ? hour : 24 * hour
    if (m === undefined) return { transfers: 0, bytes: 0, bytesPerSecond: null, averageBytesPerSecond: 0, failedAttempts: 0 }
    return {
      transfers: m.transfers,
      bytes: m.bytes,
      bytesPerSecond: m.bytes > 0 && m.seconds > 0 ? m.bytes / m.seconds : null,
      averageBytesPerSecond: m.bytes / span,
      failedAttempts: m.failed
    }
  }
  return yield* Effect.forEach(rows, (r) =>
    Effect.map(Routes.circuit({ routeId: r.id }, policy), (circuit): StatusApi.RouteStatus => ({
      ...r,
      circuit: showCircuit(circuit),
      lastHour: throughput(r.id, "hour"),
      last24Hours: throughput(r.id, "day"),
      lastFailure: lastFailure(failures, r.id)
    })))
})

/** The whole snapshot, as the principal may see it, in one read-only repeatable-read transaction. */
export const snapshot = (p: ApiSecurity.Principal, failedLimit: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(
      Effect.gen(function* () {
        // Must be the transaction's first statement; read only, so it can never change anything.
        yield* sql`set transaction isolation level repeatable read, read only`
        const [{ now }] = yield* sql<{ now: Date }>`select now() as now`
        const rows = yield* totals
        const base = { at: utc(now), counts: counts(rows), stages: yield* stages(rows) }
        if (!Access.seesEverything(p)) {
          return {
            ...base,
            scope: "counts" as const,
            failed: [],
            failedTotals: zeros(EventLog.EntityKind.literals),
            locations: [],
            routes: []
          }
        }
        return { ...base, scope: "full" as const, ...(yield* failed(failedLimit)), locations: yield* locations, routes: yield* routes }
      })
    ))
