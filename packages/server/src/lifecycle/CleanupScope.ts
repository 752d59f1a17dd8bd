/**
 * Which copies a cleanup tick judges. `Retention.eligible` is the rule; this module keeps the
 * tick from applying it to every live copy at the site's SOURCE, BUFFER and PROCESSING locations
 * (thousands, most waiting for their package to be archived) when only a few can have become
 * deletable since the last tick. A copy becomes deletable when one of the rule's inputs changes,
 * and each change is found by an index:
 *
 * - time: a package's `archived_at` plus a location's minimum age passes (the packages stamped
 *   in that window, per location);
 * - a transfer or a bundle that held a buffer copy ends (transfers and bundles updated since);
 * - a staging request is released, expires or ends (the copies it staged, at its PROCESSING location);
 * - a copy appears at a location after its package was archived (copies created since), or
 *   waits as DELETION_POSSIBLE.
 *
 * The window reaches back `overlap` before the last tick, for transactions that stamped a
 * package before that tick began but committed after it. What no stamp records (an operator
 * lowering a minimum age, an archive copy verified again, a location made deletable) is found by
 * a pass over every live copy of the site at least every `fullPassEvery`, as every tick did
 * before; so is the first tick at a site and a location filled to its threshold. A full pass
 * also stamps packages completed without a stamp (before `archived_at` existed, or by a previous
 * release's worker during an upgrade), and is repeated while a batch of them was full. The mark
 * moves only when a tick judged all it read: one that found a full batch leaves the mark where it
 * was, so the next tick reads the same window again, and a window holding more packages than it
 * reads at once is judged by a full pass.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Retention from "./Retention.js"

/** How far before the last tick a window reaches back, for a stamp committed after that tick began. */
export const overlap = Duration.minutes(10)

/** How often a tick judges every live copy of the site anyway. */
export const fullPassEvery = Duration.hours(1)

/** Packages stamped before `archived_at` existed that one tick stamps (one short statement). */
const stampBatch = 20_000

/** Packages a window reads per location and tick; a window holding more is judged by a full pass. */
const windowCap = 5_000

/**
 * Stamps completed packages that have no `archived_at` yet (those completed before the column
 * existed) with their last update, no earlier than the moment they were archived: cleanup may
 * judge them later than it could, never sooner (and the rule itself decides by the archive
 * copies). Returns how many it stamped.
 */
const stampOld = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`
    with old as (
      -- in the partial index's order: right after a batch, the statistics still count the stamped
      -- rows as unstamped, and a pass over the table would look as cheap as the index
      select id from raw_data_package where status = 'completed' and archived_at is null
      order by id limit ${stampBatch} for update skip locked),
    stamped as (update raw_data_package p set archived_at = p.updated_at from old where p.id = old.id returning 1)
    select count(*)::int as n from stamped`).pipe(Effect.map((rows) => rows[0]?.n ?? 0))

/** The site's mark: the last tick that judged what changed, the last full pass, and the database's now. */
const markOf = (site: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ siteId: string | null; now: Date; tickedAt: Date | null; fullPassAt: Date | null }>`
      select s.id as site_id, now() as now, m.ticked_at, m.full_pass_at
      from (select 1) one left join site s on s.name = ${site} left join cleanup_mark m on m.site_id = s.id`).pipe(
    Effect.map((rows) => rows[0]!)
  )

/** Moves the site's mark to `now` (and its full pass, when this was one); never back. */
const advance = (siteId: string, now: Date, full: boolean) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`
      insert into cleanup_mark (site_id, ticked_at, full_pass_at) values (${siteId}, ${now}, ${now})
      on conflict (site_id) do update set ticked_at = greatest(cleanup_mark.ticked_at, excluded.ticked_at),
        full_pass_at = case when ${full} then greatest(cleanup_mark.full_pass_at, excluded.full_pass_at) else cleanup_mark.full_pass_at end`)

/**
 * The live copies at the site's cleanable locations that may have become deletable between
 * `since` and `now` (see the module's list), and whether a window held more packages than it
 * reads at once.
 */
const changedSince = (site: string, since: Date, now: Date) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string | null; truncated: boolean | null }>`
      with loc as (
        select l.id, l.type, r.min_age_seconds as m
        from data_location l join site s on s.id = l.site_id join retention_policy r on r.data_location_id = l.id
        where s.name = ${site} and l.type in ('SOURCE', 'BUFFER', 'PROCESSING') and l.deletable),
      due as (
        select loc.id as location_id, p.id as package_id
        from loc cross join lateral (
          select p.id from raw_data_package p
          where p.archived_at > ${since}::timestamptz - make_interval(secs => loc.m)
            and p.archived_at <= ${now}::timestamptz - make_interval(secs => loc.m)
          order by p.archived_at limit ${windowCap}) p),
      ended as (
        select t.raw_data_package_id as package_id, t.data_transfer_package_id as bundle_id from data_transfer t
        where t.updated_at > ${since} and t.status not in ('pending', 'scheduled', 'in_progress')
        union all
        select null, b.id from data_transfer_package b
        where b.updated_at > ${since} and b.status not in ('pending', 'scheduled', 'in_progress')),
      -- Sets as arrays, looked up with = any(...): each holds a few ids and is read by index
      -- whatever PostgreSQL guesses of a CTE's size (joined, it may pick a pass over every bundle copy).
      sets as (
        select array(select id from loc) as locations,
          array(select distinct package_id from due) as due,
          array(select bundle_id from ended where bundle_id is not null) as ended_bundles),
      sets2 as (
        select s.locations, s.due,
          array(
            select unnest(s.due)
            union select package_id from ended where package_id is not null
            union select m.raw_data_package_id from data_transfer_package_member m where m.data_transfer_package_id = any(s.ended_bundles)
          ) as packages,
          array(
            select unnest(s.ended_bundles)
            union select m.data_transfer_package_id from data_transfer_package_member m where m.raw_data_package_id = any(s.due)
          ) as bundles
        from sets s),
      -- the items of the staging requests released, expired or ended since: their staged copies
      -- (a request that changed frees only what it held, not every copy at its location)
      changed_requests as (
        select r.data_location_id as location_id, i.raw_data_package_id as package_id, i.executed_obs_unit_id as observation_id
        from loc join staging_request r on r.data_location_id = loc.id join staging_request_item i on i.staging_request_id = r.id
        where loc.type = 'PROCESSING'
          and (r.updated_at > ${since} or r.released_at > ${since} or (r.expires_at > ${since} and r.expires_at <= ${now}))),
      cand as (
        select c.id from sets2 s join physical_copy c
          on c.raw_data_file_id = any(array(select f.id from raw_data_file f where f.raw_data_package_id = any(s.due)))
        where c.data_location_id = any(s.locations) and c.status <> 'DELETED'
        union
        select c.id from sets2 s join physical_copy c on c.raw_data_package_id = any(s.packages)
        where c.data_location_id = any(s.locations) and c.status <> 'DELETED'
        union
        select c.id from sets2 s join physical_copy c on c.data_transfer_package_id = any(s.bundles)
        where c.data_location_id = any(s.locations) and c.status <> 'DELETED'
        union
        select c.id from changed_requests i join raw_data_file f on f.raw_data_package_id = i.package_id
          join physical_copy c on c.data_location_id = i.location_id and c.raw_data_file_id = f.id and c.status <> 'DELETED'
        union
        select c.id from changed_requests i join raw_data_file f on f.executed_obs_unit_id = i.observation_id
          join physical_copy c on c.data_location_id = i.location_id and c.raw_data_file_id = f.id and c.status <> 'DELETED'
        union
        select c.id from changed_requests i
          join physical_copy c on c.data_location_id = i.location_id and c.raw_data_package_id = i.package_id and c.status <> 'DELETED'
        union
        select c.id from loc join physical_copy c on c.data_location_id = loc.id and c.created_at > ${since} and c.status <> 'DELETED'
        union
        select c.id from loc join physical_copy c on c.data_location_id = loc.id and c.status = 'DELETION_POSSIBLE')
      select id, null::boolean as truncated from cand
      union all
      select null, exists (select 1 from due group by location_id having count(*) >= ${windowCap})`).pipe(Effect.map((rows) => ({
    ids: rows.flatMap((r) => (r.id === null ? [] : [r.id])),
    truncated: rows.some((r) => r.truncated === true)
  })))

/**
 * The copies at the site that may be deleted now (`Retention.eligible`, up to `limit`), judged
 * among those that can have become deletable since the site's last tick, or among all its live
 * copies when a full pass is due; moves the site's mark when everything read was judged.
 */
export const eligible = Effect.fn("CleanupScope.eligible")(function* (site: string, selection: {
  readonly statuses: ReadonlyArray<string>
  readonly overThreshold: ReadonlyArray<string>
  readonly limit: number
}) {
  const mark = yield* markOf(site)
  if (mark.siteId === null) return []
  const siteId = mark.siteId
  const fullPassDue = selection.overThreshold.length > 0 || mark.tickedAt === null || mark.fullPassAt === null ||
    mark.now.getTime() - mark.fullPassAt.getTime() >= Duration.toMillis(fullPassEvery)
  if (!fullPassDue) {
    const changed = yield* changedSince(site, new Date(mark.tickedAt!.getTime() - Duration.toMillis(overlap)), mark.now)
    if (!changed.truncated) {
      const rows = changed.ids.length === 0 ? [] : yield* Retention.eligible({ site, copyIds: changed.ids, ...selection })
      if (rows.length < selection.limit) yield* advance(siteId, mark.now, false)
      return rows
    }
  }
  // A full pass also stamps old packages; while a batch of them was full the mark stays, so the
  // next tick is a full pass again.
  const stamped = yield* stampOld
  const rows = yield* Retention.eligible({ site, ...selection })
  if (rows.length < selection.limit && stamped < stampBatch) yield* advance(siteId, mark.now, true)
  return rows
})
