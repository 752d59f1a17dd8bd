/**
 * The integrity figures (definitions in `@ccat/core`'s IntegrityApi and docs/integrity.md),
 * read from the ops-db for the integrity view and the metrics. Each location's figures are a
 * few index descents or index-only ranges over its own copies (migration 0008's
 * `physical_copy_integrity`), so a location with millions of copies costs its index range, not
 * the table. The packages below target are one pass joining the archived packages with the
 * verified PRESENT copies at the archives (found through the location index), counted in one
 * hash aggregate: a count of good copies cannot be kept exact by anything cheaper while the
 * target can change with the configuration (200,000 archived packages: about a second).
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
        -- the cycle differs by technology, so it is computed per location in SQL from both ends
        select count(*)::int as copies,
               count(*) filter (where c.verified_at >= ${now}::timestamptz - make_interval(days => case when l.technology = 'tape'
                 then ${auditCycleDays(p, "tape")}::int else ${auditCycleDays(p, "disk")}::int end))::int as audited
        from physical_copy c where c.data_location_id = l.id and c.status <> 'DELETED') live
      order by s.name, l.priority, l.name`
    // Repair leaves few events: the partial index `event_log_repaired_copy` holds only them.
    // With the repairs of event log months the history retention dropped.
    const repaired = yield* sql<{ locationId: string; n: number }>`
      select t.location_id, sum(t.n)::int as n from (
        select c.data_location_id as location_id, count(*) as n
        from event_log e join physical_copy c on c.id = e.entity_id
        where e.entity_kind = 'PhysicalCopy' and e.to_state = 'DELETED' and (e.details->>'action') = 'repaired'
        group by c.data_location_id
        union all
        select data_location_id, n from event_log_retired_repaired) t
      group by t.location_id`
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
 * Archived packages with fewer good archive copies than `target`: how many in all, and the
 * first `limit` by id with their live archive copies that do not count.
 */
export const belowTarget = (target: number, limit: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const archives = (yield* sql<{ id: string }>`select id from data_location where type = 'LONG_TERM_ARCHIVE'`).map((r) => r.id)
    // One pass; the window counts every package below target before the limit cuts the list.
    const rows = yield* sql<{ id: Ids.RawDataPackageId; goodCopies: number; total: number }>`
      select b.id, b.good_copies, count(*) over ()::int as total from (
        select p.id, count(c.raw_data_package_id)::int as good_copies
        from raw_data_package p
        left join physical_copy c on c.raw_data_package_id = p.id and c.raw_data_package_id is not null
          and c.status = 'PRESENT' and c.verified_at is not null and c.checksum = p.checksum
          and c.data_location_id in ${sql.in(archives.length === 0 ? ["00000000-0000-0000-0000-000000000000"] : archives)}
        where p.status = 'completed'
        group by p.id
        having count(c.raw_data_package_id) < ${target}) b
      order by b.id limit ${Math.max(limit, 1)}`
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
