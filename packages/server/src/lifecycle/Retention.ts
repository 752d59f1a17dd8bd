/**
 * When a copy may be deleted (DESIGN §4 invariant 1), as queries on the ops-db, so the cleanup
 * planner and the cleanup worker's re-check inside its transaction apply one and the same rule
 * (the rules that need no database, how full a location is and what a kept copy goes back to,
 * are core's `Retention`):
 *
 * - the copy is at a SOURCE, BUFFER or PROCESSING location that has a retention row and is
 *   deletable (a location without a retention row, every archive, is never cleaned up);
 * - every package it holds (a file's package, the package itself, a bundle's members) has the
 *   location's `required_archive_copies` PRESENT, checksum-verified LONG_TERM_ARCHIVE copies,
 *   at the policy's `archiveSites` distinct sites (one where no policy is given);
 * - the retention policy allows it: the package was archived at least `min_age_seconds` ago
 *   (archived = the moment its required-th verified archive copy was recorded, verified as it
 *   was written; an audit re-verifying a copy later does not move it), or the location is filled
 *   to its `disk_usage_threshold`;
 * - it is not the source of an open transfer, nor (at a BUFFER) held by an open bundle;
 * - at a PROCESSING location, no StagingRequest there still covers it: none open, none completed
 *   that is neither released nor expired.
 */
import { Retention as CoreRetention } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { LifecyclePolicy } from "./Packaging.js"
import * as Sites from "./Sites.js"
import { Storages } from "./Storages.js"

/** A copy cleanup may delete, as the eligibility query returns it. */
export interface Deletable {
  readonly id: string
  readonly status: string
  readonly path: string
  readonly locationId: string
  readonly locationType: Sites.Location["type"]
}

/** Which copies to look at: at a site, or given copies (the worker's re-check), in some statuses. */
export interface Selection {
  readonly site?: string | undefined
  readonly copyId?: string | undefined
  /** Several copies at once (a location job's round). */
  readonly copyIds?: ReadonlyArray<string> | undefined
  /** Only copies at these locations (a cleanup tick's look at the locations filled to their threshold). */
  readonly locationIds?: ReadonlyArray<string> | undefined
  /** With `locationIds`: only the oldest copies of each location in each status, this many. */
  readonly oldest?: number | undefined
  readonly statuses: ReadonlyArray<string>
  /** Locations filled to their threshold: there the minimum age does not hold copies back. */
  readonly overThreshold: ReadonlyArray<string>
  readonly limit?: number | undefined
}

/**
 * Where the rule's candidates come from: given copies are looked up one by one by key (a
 * planner left to choose may read every live copy of their locations to find a few hundred of
 * them; `offset 0` keeps the lookup from being merged into such a join); the oldest copies of
 * given locations, each location's and status's in the order of its live copies' index ($8 of
 * each); the other scopes read the copies of their locations.
 */
const candidates = {
  byId: `(select distinct id from unnest($2::uuid[]) as given(id)) wanted cross join lateral (
    select * from physical_copy c where c.id = wanted.id offset 0) c`,
  oldest: `unnest($7::uuid[]) as at_location(id) cross join unnest($3::physical_copy_status[]) as in_status(status)
    cross join lateral (
      select * from physical_copy c
      where c.data_location_id = at_location.id and c.status = in_status.status and c.status <> 'DELETED'
      order by c.created_at, c.id limit $8::int) c`,
  all: `physical_copy c`
} as const

/**
 * The one eligibility rule, parameterised by scope ($1 site, $2 copies, $3 statuses, $4 full
 * locations, $5 limit, $6 archive sites, $7 locations, and $8 for `candidates.oldest`).
 */
const eligibleSql = (from: string) => `
with cand as (
  select c.id, c.status::text as status, c.path, c.data_location_id, l.type::text as location_type,
         c.raw_data_file_id, c.raw_data_package_id, c.data_transfer_package_id,
         r.min_age_seconds, r.required_archive_copies
  from ${from}
  join data_location l on l.id = c.data_location_id
  join site s on s.id = l.site_id
  join retention_policy r on r.data_location_id = l.id
  where l.type in ('SOURCE', 'BUFFER', 'PROCESSING') and l.deletable
    and c.status = any($3::physical_copy_status[])
    and ($1::text is null or s.name = $1::text)
    and ($2::uuid[] is null or c.id = any($2::uuid[]))
    and ($7::uuid[] is null or c.data_location_id = any($7::uuid[]))
),
-- Each candidate's packages are looked up per candidate (by key), never joined as sets: the
-- candidates are the live copies, a few thousand, while files and members are the whole history.
held as (
  select cand.id as copy_id, (select f.raw_data_package_id from raw_data_file f where f.id = cand.raw_data_file_id) as package_id
  from cand where cand.raw_data_file_id is not null
  union all
  select cand.id, cand.raw_data_package_id from cand where cand.raw_data_package_id is not null
  union all
  select cand.id, unnest(array(
    select m.raw_data_package_id from data_transfer_package_member m where m.data_transfer_package_id = cand.data_transfer_package_id))
  from cand where cand.data_transfer_package_id is not null
),
-- The archive copies are looked up once per package (and required count), not once per copy: a
-- package's files share them, and a sweep's slice holds the files of a few dozen packages.
packages as (
  select distinct h.package_id, cand.required_archive_copies as required
  from held h join cand on cand.id = h.copy_id where h.package_id is not null
),
package_archived as materialized (
  select pk.package_id, pk.required, (
    select ac.created_at from physical_copy ac
    join data_location al on al.id = ac.data_location_id
    join raw_data_package p on p.id = ac.raw_data_package_id
    where ac.raw_data_package_id = pk.package_id and al.type = 'LONG_TERM_ARCHIVE' and ac.status = 'PRESENT'
      and ac.verified_at is not null and ac.checksum = p.checksum
    order by ac.created_at offset (pk.required - 1) limit 1
  ) as archived_at, (
    select count(distinct al.site_id) from physical_copy ac
    join data_location al on al.id = ac.data_location_id
    join raw_data_package p on p.id = ac.raw_data_package_id
    where ac.raw_data_package_id = pk.package_id and al.type = 'LONG_TERM_ARCHIVE' and ac.status = 'PRESENT'
      and ac.verified_at is not null and ac.checksum = p.checksum
  ) as archive_sites
  from packages pk
),
archived as (
  select h.copy_id, pa.archived_at, pa.archive_sites
  from held h join cand on cand.id = h.copy_id
  left join package_archived pa on pa.package_id = h.package_id and pa.required = cand.required_archive_copies
),
per_copy as (
  select copy_id, max(archived_at) as archived_at, bool_and(archived_at is not null and archive_sites >= $6) as all_archived
  from archived group by copy_id
)
select cand.id, cand.status, cand.path, cand.data_location_id as location_id, cand.location_type
from cand join per_copy a on a.copy_id = cand.id
where a.all_archived
  and (a.archived_at <= now() - make_interval(secs => cand.min_age_seconds) or cand.data_location_id = any($4::uuid[]))
  and not exists (
    select 1 from data_transfer t
    where t.status in ('pending', 'scheduled', 'in_progress') and t.from_location_id = cand.data_location_id
      and (t.raw_data_package_id = cand.raw_data_package_id
        or t.data_transfer_package_id = cand.data_transfer_package_id
        or t.data_transfer_package_id in (
          select m.data_transfer_package_id from data_transfer_package_member m where m.raw_data_package_id = cand.raw_data_package_id)))
  and not (cand.location_type = 'BUFFER' and exists (
    select 1 from data_transfer_package b
    where b.status in ('pending', 'scheduled', 'in_progress')
      and (b.id = cand.data_transfer_package_id or exists (
        select 1 from data_transfer_package_member m where m.data_transfer_package_id = b.id and m.raw_data_package_id = cand.raw_data_package_id))))
  and not (cand.location_type = 'PROCESSING' and exists (
    select 1 from raw_data_file f
    join staging_request_item i on i.raw_data_package_id = f.raw_data_package_id
      or (i.executed_obs_unit_id = f.executed_obs_unit_id and f.data_product_id is null)
    join staging_request sr on sr.id = i.staging_request_id
    where f.id = cand.raw_data_file_id and sr.data_location_id = cand.data_location_id
      and (sr.status in ('pending', 'scheduled', 'in_progress')
        or (sr.status = 'completed' and sr.released_at is null and (sr.expires_at is null or sr.expires_at > now())))))
order by a.archived_at, cand.id
limit $5`

/** Copies in scope that may be deleted now. */
export const eligible = Effect.fn("Retention.eligible")(function* (scope: Selection) {
  const sql = yield* SqlClient.SqlClient
  const copies = scope.copyId !== undefined ? [scope.copyId] : scope.copyIds !== undefined ? [...scope.copyIds] : null
  const byAge = copies === null && scope.locationIds !== undefined && scope.oldest !== undefined
  const from = copies !== null ? candidates.byId : byAge ? candidates.oldest : candidates.all
  return yield* sql.unsafe<Deletable>(eligibleSql(from), [
    scope.site ?? null,
    copies,
    scope.statuses as Array<string>,
    scope.overThreshold as Array<string>,
    scope.limit ?? 1000,
    (yield* Effect.serviceOption(LifecyclePolicy)).pipe(Option.map((p) => p.archiveSites), Option.getOrElse(() => 1)),
    scope.locationIds !== undefined ? [...scope.locationIds] : null,
    ...(byAge ? [Math.max(1, scope.oldest!)] : [])
  ])
})

/**
 * How full a location is, as a fraction (`Retention.hasCapacity` in core says by which figures:
 * its configured capacity and the bytes its live copies hold, else its driver's `space()`);
 * undefined when neither tells.
 */
export const usage = Effect.fn("Retention.usage")(function* (location: Sites.Location) {
  if (CoreRetention.hasCapacity(location.capacityBytes)) {
    return CoreRetention.fractionOfCapacity(Number(yield* Sites.usedBytes(location.id)), location.capacityBytes)
  }
  const storages = yield* Storages
  const space = yield* Effect.flatMap(storages.of(location), (s) => s.space()).pipe(Effect.option)
  return CoreRetention.fractionOfSpace(Option.getOrUndefined(space))
})

/** The locations (of a site, or one location) filled to their retention policy's threshold. */
export const overThreshold = Effect.fn("Retention.overThreshold")(
  function* (where: { readonly site?: string; readonly locationId?: string }) {
    const sql = yield* SqlClient.SqlClient
    // each location read with its threshold, in the one statement
    const rows = yield* sql<{ location: Sites.Location; threshold: number }>`
    select ${Sites.locationJson(sql)} as location, r.disk_usage_threshold as threshold
    from data_location l join site s on s.id = l.site_id join retention_policy r on r.data_location_id = l.id
    where r.disk_usage_threshold is not null
      and (${where.site ?? null}::text is null or s.name = ${where.site ?? null})
      and (${where.locationId ?? null}::uuid is null or l.id = ${where.locationId ?? null})`
    const out: Array<string> = []
    for (const row of rows) {
      if (CoreRetention.isFull(yield* usage(row.location), row.threshold)) out.push(row.location.id)
    }
    return out
  }
)

/**
 * PRESENT, checksum-verified LONG_TERM_ARCHIVE copies of a package: what archiving counts up to
 * `archiveCopies` and what invariant 1 counts before anything is deleted.
 */
export const verifiedArchiveCopies = Effect.fn("Retention.verifiedArchiveCopies")(function* (packageId: string) {
  const sql = yield* SqlClient.SqlClient
  return yield* sql<{ id: string; locationId: string; path: string; siteId: string; siteName: string }>`
    select c.id, c.data_location_id as location_id, c.path, l.site_id, s.name as site_name
    from physical_copy c
    join data_location l on l.id = c.data_location_id
    join site s on s.id = l.site_id
    join raw_data_package p on p.id = c.raw_data_package_id
    where c.raw_data_package_id = ${packageId} and l.type = 'LONG_TERM_ARCHIVE' and c.status = 'PRESENT'
      and c.verified_at is not null and c.checksum = p.checksum
    order by l.priority, l.name`
})
