/**
 * The integrity figures (definitions in `@ccat/core`'s IntegrityApi and docs/integrity.md),
 * read from the ops-db for the integrity view and the metrics, from what changes rather than
 * from the catalog. Each location's live copies are `ops_count`'s; its copies verified within
 * the audit cycle are the maintained counts per day of verification (migration 0029) after the
 * cycle's first day, plus that day's copies from the index `physical_copy_integrity`; the other
 * figures are index descents or ranges of the few copies they count. The packages below target
 * are a range of the maintained good archive copies per package (migration 0029), which keeps
 * the count per package rather than per target, since the configuration may change the target.
 */
import type { Ids, IntegrityApi, Storage, Topology } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { LifecyclePolicy } from "./Packaging.js"

/** The audit cycle when the configuration names none: every copy re-read at least once per 90 days. */
export const defaultAuditCycleDays = 90

/**
 * The audit cycle, in days, of a location: `policy.audit.cycleDays`, or `tapeCycleDays` for tape
 * (a read there costs a mount). Read structurally so the view works with or without the audit
 * settings in the policy; without them it is `defaultAuditCycleDays` for every location.
 */
export const auditCycleDays = (policy: Topology.PolicyConfig | undefined, technology?: Storage.StorageTechnology): number => {
  const audit = (policy as { readonly audit?: { readonly cycleDays?: number; readonly tapeCycleDays?: number } } | undefined)?.audit
  if (technology === "tape" && audit?.tapeCycleDays !== undefined) return audit.tapeCycleDays
  return audit?.cycleDays ?? defaultAuditCycleDays
}

/** The configured policy when this process has one (the server and workers do), else undefined. */
export const policy = Effect.map(Effect.serviceOption(LifecyclePolicy), Option.getOrUndefined)

/** Good archive copies every archived package must have: `policy.archiveCopies`, 1 by default. */
export const copyTarget = (p: Topology.PolicyConfig | undefined): number => p?.archiveCopies ?? 1

const utc = (d: Date | null): DateTime.Utc | null => (d === null ? null : DateTime.unsafeMake(d))

/** One location's figures, with the labels the metrics need. */
export type LocationFigures = IntegrityApi.LocationIntegrity

/**
 * Every location's figures at `now`. Each correlated subquery stays inside one location's range
 * of an index: min and max per status are one descent each (`max` over the statuses is taken
 * status by status for that reason), counts are index-only ranges.
 */
export const locations = (now: Date, p: Topology.PolicyConfig | undefined) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{
      id: Ids.DataLocationId
      name: Ids.ShortName
      siteName: string
      siteShortName: string
      type: Storage.LocationType
      technology: Storage.StorageTechnology
      copies: number
      audited: number
      lastAuditAt: Date | null
      oldestAuditAt: Date | null
      unverifiedCopies: number
      corrupt: number
      missing: number
      dark: number
      lastInventoryAt: Date | null
    }>`
      select l.id, l.name, s.name as site_name, s.short_name as site_short_name, l.type::text as type, l.technology::text as technology,
        live.copies, live.audited,
        (select max(m.v) from unnest(enum_range(null::physical_copy_status)) as st(status)
          cross join lateral (select max(c.verified_at) as v from physical_copy c
            where c.data_location_id = l.id and c.status = st.status and c.status <> 'DELETED') m) as last_audit_at,
        least(
          (select min(c.verified_at) from physical_copy c where c.data_location_id = l.id and c.status = 'PRESENT' and c.status <> 'DELETED'),
          (select min(c.verified_at) from physical_copy c where c.data_location_id = l.id and c.status = 'STAGED' and c.status <> 'DELETED')
        ) as oldest_audit_at,
        (select count(*) from physical_copy c where c.data_location_id = l.id and c.status in ('PRESENT', 'STAGED')
          and c.status <> 'DELETED' and c.verified_at is null)::int as unverified_copies,
        (select count(*) from physical_copy c where c.data_location_id = l.id and c.status = 'CORRUPT' and c.status <> 'DELETED')::int as corrupt,
        (select count(*) from physical_copy c where c.data_location_id = l.id and c.status = 'MISSING' and c.status <> 'DELETED')::int as missing,
        (select count(*) from dark_object d where d.data_location_id = l.id and d.resolved_at is null)::int as dark,
        i.last_pass_completed_at as last_inventory_at
      from data_location l
      join site s on s.id = l.site_id
      left join location_inventory i on i.data_location_id = l.id
      cross join lateral (
        -- the cycle differs by technology, so its start is computed per location in SQL
        select ${now}::timestamptz - make_interval(days => case when l.technology = 'tape'
          then ${auditCycleDays(p, "tape")}::int else ${auditCycleDays(p, "disk")}::int end) as since) cycle
      cross join lateral (select (cycle.since at time zone 'UTC')::date as day,
        ((cycle.since at time zone 'UTC')::date + 1)::timestamp at time zone 'UTC' as day_end) first
      cross join lateral (
        select (select coalesce(sum(o.n), 0) from ops_count o
                 where o.entity = 'PhysicalCopy' and o.state <> 'DELETED' and o.location_id = l.id)::int as copies,
          ((select coalesce(sum(v.n), 0) from ops_count_verified v where v.location_id = l.id and v.day > first.day)
           + (select count(*) from unnest(enum_range(null::physical_copy_status)) as st(status)
                join physical_copy c on c.data_location_id = l.id and c.status = st.status and c.status <> 'DELETED'
                  and c.verified_at >= cycle.since and c.verified_at < first.day_end))::int as audited) live
      order by s.name, l.priority, l.name`
    // Repair leaves few events: the partial index `event_log_repaired_copy` holds only them.
    // With the repairs of event log months the history retention dropped.
    // Without parallel workers: on a decade's event log PostgreSQL starts two for this count of a
    // few index entries, about 7 ms of starting them against 0.4 ms of reading (10^7 files).
    const repaired = yield* sql.withTransaction(Effect.zipRight(
      sql`set local max_parallel_workers_per_gather = 0`,
      sql<{ locationId: string; n: number }>`
        select t.location_id, sum(t.n)::int as n from (
          select c.data_location_id as location_id, count(*) as n
          from event_log e join physical_copy c on c.id = e.entity_id
          where e.entity_kind = 'PhysicalCopy' and e.to_state = 'DELETED' and (e.details->>'action') = 'repaired'
          group by c.data_location_id
          union all
          select data_location_id, n from event_log_retired_repaired) t
        group by t.location_id`
    ))
    const repairedAt = new Map(repaired.map((r) => [r.locationId, r.n]))
    return rows.map((r): LocationFigures => ({
      id: r.id,
      name: r.name,
      siteName: r.siteName,
      siteShortName: r.siteShortName,
      type: r.type,
      technology: r.technology,
      auditCycleDays: auditCycleDays(p, r.technology),
      copies: r.copies,
      audited: r.audited,
      lastAuditAt: utc(r.lastAuditAt),
      auditLagSeconds: r.oldestAuditAt === null ? null : Math.max(0, (now.getTime() - new Date(r.oldestAuditAt).getTime()) / 1000),
      unverifiedCopies: r.unverifiedCopies,
      corrupt: r.corrupt,
      missing: r.missing,
      dark: r.dark,
      repaired: repairedAt.get(r.id) ?? 0,
      lastInventoryAt: utc(r.lastInventoryAt)
    }))
  })

/**
 * The package of a row of `ops_package_archive_copies a` is completed: looked up by its key for
 * each package below the target (a join would let the planner read every completed package).
 */
const completed = "(select p.status from raw_data_package p where p.id = a.raw_data_package_id) = 'completed'"

/** How many archived packages have fewer good archive copies than `target`: a range of the maintained counts. */
export const belowTargetCount = (target: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<{ n: number }>`
      select count(*)::int as n from ops_package_archive_copies a
      where a.good < ${target} and ${sql.literal(completed)}`
    return row?.n ?? 0
  })

/**
 * Archived packages with fewer good archive copies than `target`: how many in all, and the
 * first `limit` by id with their live archive copies that do not count.
 */
export const belowTarget = (target: number, limit: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // The maintained good copies per package (migration 0029): a range of the packages below
    // the target, which the window counts before the limit cuts the list.
    const rows = yield* sql<{ id: Ids.RawDataPackageId; goodCopies: number; total: number }>`
      select a.raw_data_package_id as id, a.good as good_copies, count(*) over ()::int as total
      from ops_package_archive_copies a
      where a.good < ${target} and ${sql.literal(completed)}
      order by a.raw_data_package_id limit ${Math.max(limit, 1)}`
    const total = rows[0]?.total ?? 0
    const listed = rows.slice(0, limit)
    if (listed.length === 0) return { total, items: [] as Array<IntegrityApi.PackageBelowTarget> }
    const bad = yield* sql<{
      packageId: string
      copyId: Ids.PhysicalCopyId
      location: Ids.ShortName
      status: Storage.PhysicalCopyStatus
      verified: boolean
      checksumMatches: boolean
    }>`
      select c.raw_data_package_id as package_id, c.id as copy_id, l.name as location, c.status::text as status,
             c.verified_at is not null as verified, c.checksum = p.checksum as checksum_matches
      from physical_copy c
      join data_location l on l.id = c.data_location_id and l.type = 'LONG_TERM_ARCHIVE'
      join raw_data_package p on p.id = c.raw_data_package_id
      where c.raw_data_package_id in ${sql.in(listed.map((r) => r.id))} and c.status <> 'DELETED'
        and not (c.status = 'PRESENT' and c.verified_at is not null and c.checksum = p.checksum)
      order by l.priority, l.name`
    return {
      total,
      items: listed.map((r): IntegrityApi.PackageBelowTarget => ({
        id: r.id,
        goodCopies: r.goodCopies,
        target,
        badCopies: bad.filter((b) => b.packageId === r.id).map(({ packageId: _, ...b }) => b)
      }))
    }
  })
