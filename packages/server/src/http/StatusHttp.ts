/**
 * The status group: the system's state in one consistent snapshot, and the event-log history
 * of one item. Only reads. The snapshot is one read-only repeatable-read transaction, so every
 * count, stage, fill and throughput is of the same instant; the circuits are the transfer
 * engine's own (`Routes.circuit`), derived from the same DataTransfer rows the workers read.
 */
import { Api, ApiErrors, ApiPage, ApiSecurity, EventLog, type Ids, Status, StatusApi } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Routes from "../lifecycle/Routes.js"
import * as Access from "./Access.js"
import { decoder } from "./Rows.js"

const utc = (d: Date | string): DateTime.Utc => DateTime.unsafeMake(d)

/** Every state of every counted entity, at zero, so an answer always names them all. */
const zeros = <K extends string>(states: ReadonlyArray<K>): Record<K, number> =>
  Object.fromEntries(states.map((s) => [s, 0])) as Record<K, number>

const counts = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ entity: string; state: string; n: number }>`
    select 'files' as entity, state::text as state, count(*)::int as n from raw_data_file group by state
    union all select 'packages', status::text, count(*)::int from raw_data_package group by status
    union all select 'bundles', status::text, count(*)::int from data_transfer_package group by status
    union all select 'transfers', status::text, count(*)::int from data_transfer group by status
    union all select 'stagingRequests', status::text, count(*)::int from staging_request group by status
    union all select 'copies', status::text, count(*)::int from physical_copy group by status`
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
    ;(out[r.entity as keyof typeof out] as Record<string, number>)[r.state] = r.n
    if (r.entity === "packages") out.packageJourneys[Status.journey(r.state as Status.Status)] += r.n
  }
  return out satisfies StatusApi.Counts
})

const stages = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // Each condition is the one its stage's planner picks work by (lifecycle/*.ts); one pass each.
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
    staged: yield* load(sql`select size_bytes from physical_copy where status = 'STAGED'`),
    waitingToDelete: yield* load(sql`select size_bytes from physical_copy where status in ${sql.in(deleting)}`)
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
    and ${sql.literal(archiveSite ? "" : "not")} exists (select 1 from data_location a where a.site_id = l.site_id and a.type = 'LONG_TERM_ARCHIVE')
    ${archiveSite ? sql.literal("") : sql`and not exists (
      select 1 from data_transfer_package_member m join data_transfer_package d on d.id = m.data_transfer_package_id
      where m.raw_data_package_id = p.id
        and (d.status <> 'completed' or exists (
          select 1 from data_transfer t join data_location fl on fl.id = t.from_location_id
          where t.data_transfer_package_id = d.id and fl.site_id = l.site_id)))`}`

/** Failed items newest first, and how many there are per entity. */
const failed = (limit: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // A failed transfer attempt that was followed by another is history, not something to act on.
    // Files and copies keep no error column: their reason is read from the event log below, for
    // the listed rows only.
    const all = sql`
      select 'RawDataFile' as entity, id, state::text as state, updated_at, null::text as error_message
      from raw_data_file where state in ('corrupt', 'missing')
      union all select 'RawDataPackage', id, status::text, updated_at, error_message from raw_data_package where status = 'failed'
      union all select 'DataTransferPackage', id, status::text, updated_at, error_message from data_transfer_package where status = 'failed'
      union all select 'DataTransfer', t.id, t.status::text, t.updated_at, t.error_message from data_transfer t
        where t.status = 'failed' and not exists (select 1 from data_transfer n where n.previous_attempt_id = t.id)
      union all select 'StagingRequest', id, status::text, updated_at, error_message from staging_request where status = 'failed'
      union all select 'PhysicalCopy', id, status::text, updated_at, null from physical_copy where status in ('DELETION_FAILED', 'CORRUPT', 'MISSING')`
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
const showCircuit = (c: Routes.Circuit): StatusApi.Circuit =>
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
    id: Ids.DataLocationId; name: Ids.ShortName; siteId: Ids.SiteId; siteName: string; siteShortName: string
    type: StatusApi.LocationStatus["type"]; technology: StatusApi.LocationStatus["technology"]
    readable: boolean; writable: boolean; deletable: boolean; capacityBytes: string | null
    presentCopies: number; presentBytes: number; usedBytes: number
  }>`
    select l.id, l.name, l.site_id, s.name as site_name, s.short_name as site_short_name, l.type::text as type,
           l.technology::text as technology, l.readable, l.writable, l.deletable, l.capacity_bytes::text as capacity_bytes,
           count(c.id) filter (where c.status in ('PRESENT', 'STAGED'))::int as present_copies,
           coalesce(sum(c.size_bytes) filter (where c.status in ('PRESENT', 'STAGED')), 0)::float8 as present_bytes,
           coalesce(sum(c.size_bytes), 0)::float8 as used_bytes
    from data_location l join site s on s.id = l.site_id
    left join physical_copy c on c.data_location_id = l.id and c.status <> 'DELETED'
    group by l.id, s.id order by s.name, l.priority, l.name`
  const failures = yield* sql<FailureRow>`
    select distinct on (to_location_id) to_location_id::text as key, id as transfer_id, finished_at, error_message
    from data_transfer where status = 'failed' and finished_at is not null
    order by to_location_id, finished_at desc`
  return yield* Effect.forEach(rows, (l) =>
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
  // One pass over the last day's finished attempts; the hour is a filter of the same rows.
  const moved = yield* sql<{ routeId: string; window: string; transfers: number; bytes: number; seconds: number; failed: number }>`
    select t.route_id::text as route_id, w.name as window,
           count(*) filter (where t.status = 'completed')::int as transfers,
           coalesce(sum(t.bytes_transferred) filter (where t.status = 'completed'), 0)::float8 as bytes,
           coalesce(sum(t.duration_ms) filter (where t.status = 'completed'), 0)::float8 / 1000 as seconds,
           count(*) filter (where t.status = 'failed')::int as failed
    from data_transfer t
    join (values ('hour', ${hour}::int), ('day', ${24 * hour}::int)) as w(name, seconds)
      on t.finished_at >= now() - make_interval(secs => w.seconds)
    where t.route_id is not null and t.status in ('completed', 'failed')
    group by t.route_id, w.name`
  const failures = yield* sql<FailureRow>`
    select distinct on (route_id) route_id::text as key, id as transfer_id, finished_at, error_message
    from data_transfer where status = 'failed' and finished_at is not null and route_id is not null
    order by route_id, finished_at desc`
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
    }))
  )
})

const snapshot = (p: ApiSecurity.Principal, failedLimit: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(
      Effect.gen(function* () {
        // Must be the transaction's first statement; read only, so it can never change anything.
        yield* sql`set transaction isolation level repeatable read, read only`
        const [{ now }] = yield* sql<{ now: Date }>`select now() as now`
        const base = { at: utc(now), counts: yield* counts, stages: yield* stages }
        if (!Access.seesEverything(p)) {
          return { ...base, scope: "counts" as const, failed: [], failedTotals: zeros(EventLog.EntityKind.literals), locations: [], routes: [] }
        }
        return { ...base, scope: "full" as const, ...(yield* failed(failedLimit)), locations: yield* locations, routes: yield* routes }
      })
    )
  )

/**
 * Where each entity kind's rows live, and the condition under which a non-operator may see one
 * (`null`: operators and admins only, as the transfers and copies groups are).
 */
const eventScope = (sql: SqlClient.SqlClient, p: ApiSecurity.Principal, entity: EventLog.LoggedEntityKind): { table: string; visible: Fragment | null } => {
  switch (entity) {
    case "ExecutedObsUnit":
      return { table: "executed_obs_unit", visible: Access.observationScope(sql, p, sql`t.id`) }
    case "RawDataFile":
      return { table: "raw_data_file", visible: Access.observationScope(sql, p, sql`t.executed_obs_unit_id`) }
    case "RawDataPackage":
      return { table: "raw_data_package", visible: Access.observationScope(sql, p, sql`t.executed_obs_unit_id`) }
    case "StagingRequest":
      return { table: "staging_request", visible: p.role === "scientist" ? sql`t.account_id = ${p.accountId}` : null }
    case "DataTransferPackage":
      return { table: "data_transfer_package", visible: null }
    case "DataTransfer":
      return { table: "data_transfer", visible: null }
    case "PhysicalCopy":
      return { table: "physical_copy", visible: null }
  }
}

const decodeEvents = decoder(EventLog.EventLogEntry)
const EventCursor = Schema.parseJson(Schema.Tuple(Schema.Int))

/** One page of an item's events, oldest first, after the event the cursor names. */
const events = (p: ApiSecurity.Principal, q: typeof StatusApi.EventFilter.Type) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const scope = eventScope(sql, p, q.entity)
    const visible = Access.seesEverything(p) ? sql`true` : scope.visible ?? sql`false`
    const found = yield* sql`select 1 from ${sql(scope.table)} t where t.id = ${q.id} and ${visible}`.pipe(Effect.orDie)
    if (found.length === 0) return yield* Access.notFound(q.entity, q.id)
    let after = 0
    if (q.cursor !== undefined) {
      const decoded = yield* Schema.decodeUnknown(EventCursor)(Buffer.from(q.cursor, "base64url").toString("utf8")).pipe(
        Effect.mapError(() => new ApiErrors.Unprocessable({ reason: "Invalid", field: "cursor", message: "the cursor is not one this server gave out; start again without it" }))
      )
      after = decoded[0]
    }
    const limit = q.limit ?? ApiPage.defaultLimit
    const rows = yield* sql<{ id: number }>`
      select * from event_log where entity_kind = ${q.entity} and entity_id = ${q.id} and id > ${after}
      order by id limit ${limit + 1}`.pipe(Effect.orDie)
    const kept = rows.slice(0, limit)
    const items = yield* decodeEvents(kept)
    const last = kept[kept.length - 1]
    const nextCursor = rows.length > limit && last !== undefined ? Buffer.from(JSON.stringify([Number(last.id)])).toString("base64url") : null
    return { items, nextCursor }
  })

/** The status group's handlers. */
export const StatusHttpLive = HttpApiBuilder.group(Api.Api, "status", (handlers) =>
  handlers
    .handle("get", ({ urlParams: q }) =>
      Effect.flatMap(ApiSecurity.CurrentAccount, (p) => snapshot(p, q.failedLimit ?? StatusApi.defaultFailedLimit)).pipe(
        Effect.orDie,
        Effect.withSpan("StatusHttp.snapshot")
      )
    )
    .handle("events", ({ urlParams: q }) =>
      Effect.flatMap(ApiSecurity.CurrentAccount, (p) => events(p, q)).pipe(Effect.withSpan("StatusHttp.events"))
    )
)
