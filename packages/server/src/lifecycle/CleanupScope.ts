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
 *   waits as DELETION_POSSIBLE (as many per location as the tick schedules).
 *
 * The window reaches back `overlap` before the last tick, for transactions that stamped a
 * package before that tick began but committed after it. What no stamp records (an operator
 * lowering a minimum age, an archive copy verified again, a location made deletable) is found by
 * a sweep over every live copy of the site's cleanable locations: one begins at a site's first
 * tick, when the last one began `fullPassEvery` ago or more, and after a window held more
 * packages than a tick reads at once (the sweep under way goes on; the next begins when it ends,
 * and covers what the window left). A sweep is judged `sweepSlice` copies a tick, in the order
 * of the location's live paths (bytewise), so no tick judges the whole site; every copy is judged
 * at the sweep's start or later, so a sweep that ends stands for a full pass as of its start. A
 * site's copies wait at most two sweeps for a change no stamp records (Chile's 17,000 live copies
 * in the 10^7 catalog: 35 ticks a sweep), but at a location filled to its threshold, where every
 * copy the archive holds may go whatever its age: there the oldest `fullLocationSlice` copies in
 * each status are judged every tick while it is full, and a tick they free less than it
 * schedules asks for a sweep.
 *
 * Each tick also stamps a bounded batch of completed packages without a stamp (before
 * `archived_at` existed, or by a previous release's worker during an upgrade); until stamped,
 * their copies are found by sweeps, as the rule itself decides by the archive copies, not by the
 * stamp. Neither the mark nor the sweep moves when a tick found as many deletable copies as it
 * schedules at once: the next tick reads the same again. Two processes ticking one site at once
 * may each write the mark; the one that writes last wins, which can only send a sweep back over
 * copies it judged or end one early that the next tick begins again (its reasons still hold), so
 * a copy is judged later, never skipped.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Retention from "./Retention.js"

/** How far before the last tick a window reaches back, for a stamp committed after that tick began. */
export const overlap = Duration.minutes(10)

/** How long after a sweep began the next one begins (it judges every live copy of the site again). */
export const fullPassEvery = Duration.hours(1)

/** Completed packages without a stamp that one tick stamps (one short statement, by their index). */
const stampBatch = 100

/** Packages a window reads per location and tick; a window holding more asks for a sweep. */
const windowCap = 5_000

/**
 * Copies of a location filled to its threshold judged per tick, in each status, oldest first:
 * the first to go there, and the most likely archived; the sweep judges the rest as it passes.
 */
export const fullLocationSlice = 1_000

/** Live copies a sweep judges per tick. */
export const sweepSlice = 500

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
    -- each row by its key: joined, PostgreSQL may merge the batch with the whole primary key
    stamped as (update raw_data_package p set archived_at = p.updated_at where p.id = any(array(select id from old)) returning 1)
    select count(*)::int as n from stamped`).pipe(Effect.map((rows) => rows[0]?.n ?? 0))

/** The site's mark: the last tick that judged what changed, the last full pass, its sweep, and the database's now. */
const markOf = (site: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{
    siteId: string | null
    now: Date
    tickedAt: Date | null
    fullPassAt: Date | null
    sweepLocation: string | null
    sweepPath: string | null
    sweepStartedAt: Date | null
    sweepRequestedAt: Date | null
  }>`
      select s.id as site_id, now() as now, m.ticked_at, m.full_pass_at, m.sweep_location, m.sweep_path, m.sweep_started_at,
        m.sweep_requested_at
      from (select 1) one left join site s on s.name = ${site} left join cleanup_mark m on m.site_id = s.id`).pipe(
    Effect.map((rows) => rows[0]!)
  )

/** Where a sweep goes on from: the last copy it judged (location, path), and when it began. */
interface Sweep {
  readonly location: string
  readonly path: string
  readonly startedAt: Date
}

/** A sweep's beginning: before every location's first path. */
const sweepFrom = (startedAt: Date): Sweep => ({ location: "00000000-0000-0000-0000-000000000000", path: "", startedAt })

/**
 * Records a tick that judged all it read: the mark moves to `now` (never back), the sweep to
 * `sweep` (its place, or none when it ended or none runs), and a request for a sweep to
 * `requested` (never back); a sweep that ended moves the full pass to its start (the first mark
 * of a site records no full pass yet: the epoch).
 */
const advance = (siteId: string, now: Date, sweep: Sweep | undefined, ended: Date | undefined, requested: Date | null) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`
      insert into cleanup_mark (site_id, ticked_at, full_pass_at, sweep_location, sweep_path, sweep_started_at, sweep_requested_at)
      values (${siteId}, ${now}, ${ended ?? new Date(0)}, ${sweep?.location ?? null}, ${sweep?.path ?? null}, ${
        sweep?.startedAt ?? null
      }, ${requested})
      on conflict (site_id) do update set ticked_at = greatest(cleanup_mark.ticked_at, excluded.ticked_at),
        full_pass_at = greatest(cleanup_mark.full_pass_at, excluded.full_pass_at),
        sweep_location = excluded.sweep_location, sweep_path = excluded.sweep_path, sweep_started_at = excluded.sweep_started_at,
        sweep_requested_at = greatest(cleanup_mark.sweep_requested_at, excluded.sweep_requested_at)`)

/** SQL: the site's cleanable locations (a retention row, deletable, SOURCE, BUFFER or PROCESSING), with their minimum age. */
const cleanable = (sql: SqlClient.SqlClient, site: string) => sql`
  select l.id, l.type, r.min_age_seconds as m
  from data_location l join site s on s.id = l.site_id join retention_policy r on r.data_location_id = l.id
  where s.name = ${site} and l.type in ('SOURCE', 'BUFFER', 'PROCESSING') and l.deletable`

/**
 * The next `size` live copies of the site's cleanable locations after `from`, location after
 * location (by id), each location's in the bytewise order of its live paths (the index
 * `physical_copy_path_bytes`, whose order no collation's update can change); fewer when the sweep
 * reaches its end. Each location's range starts at the cursor in the index itself, so a late
 * slice reads no more than an early one.
 */
const sliceAfter = (site: string, from: Sweep, size: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string; locationId: string; path: string }>`
      select x.id, x.location_id, x.path from (select id from (${cleanable(sql, site)}) l where l.id >= ${from.location}::uuid) loc
      cross join lateral (
        select c.id, c.data_location_id as location_id, c.path::text as path, (c.path::text collate "C") as key from physical_copy c
        where c.data_location_id = loc.id and c.status <> 'DELETED'
          and (c.path::text collate "C") > (case when loc.id = ${from.location}::uuid then ${from.path}::text else '' end collate "C")
        order by (c.path::text collate "C") limit ${size}) x
      order by x.location_id, x.key limit ${size}`)

/**
 * The live copies at the site's cleanable locations that may have become deletable between
 * `since` and `now` (see the module's list), and whether a window held more packages than it
 * reads at once. Of the copies waiting in DELETION_POSSIBLE it takes `waiting` per location: a
 * backlog of them waits for later ticks (and the sweep, which judges them too) rather than being
 * judged whole every tick.
 */
const changedSince = (site: string, since: Date, now: Date, waiting: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string | null; truncated: boolean | null }>`
      with loc as (${cleanable(sql, site)}),
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
        select c.id from loc cross join lateral (
          select c.id from physical_copy c where c.data_location_id = loc.id and c.status = 'DELETION_POSSIBLE'
          limit ${waiting}) c)
      select id, null::boolean as truncated from cand
      union all
      select null, exists (select 1 from due group by location_id having count(*) >= ${windowCap})`).pipe(Effect.map((rows) => ({
    ids: rows.flatMap((r) => (r.id === null ? [] : [r.id])),
    truncated: rows.some((r) => r.truncated === true)
  })))

/**
 * The copies at the site that may be deleted now (`Retention.eligible`, up to `limit`), judged
 * among those that can have become deletable since the site's last tick and the next slice of a
 * sweep when one is under way or due; moves the site's mark and sweep when everything read was
 * judged.
 */
export const eligible = Effect.fn("CleanupScope.eligible")(function* (site: string, selection: {
  readonly statuses: ReadonlyArray<string>
  readonly overThreshold: ReadonlyArray<string>
  readonly limit: number
  /** Live copies a sweep judges this tick (`sweepSlice` unless given). */
  readonly sweepSlice?: number
  /** Oldest copies of a full location judged this tick in each status (`fullLocationSlice` unless given). */
  readonly fullLocationSlice?: number
}) {
  const size = Math.max(1, selection.sweepSlice ?? sweepSlice)
  const mark = yield* markOf(site)
  if (mark.siteId === null) return []
  yield* stampOld
  const changed = mark.tickedAt === null
    ? { ids: [], truncated: false }
    : yield* changedSince(site, new Date(mark.tickedAt.getTime() - Duration.toMillis(overlap)), mark.now, selection.limit)
  // What a window left unread is covered by a sweep that begins now or later: the one under way
  // goes on, and the next begins when it ends (a restart could never end while windows overflow).
  const requested = changed.truncated ? mark.now : mark.sweepRequestedAt
  const lastFull = mark.fullPassAt?.getTime() ?? 0
  const due = mark.tickedAt === null || mark.now.getTime() - lastFull >= Duration.toMillis(fullPassEvery) ||
    (requested !== null && requested.getTime() > lastFull)
  const sweep: Sweep | undefined = mark.sweepStartedAt !== null && mark.sweepLocation !== null && mark.sweepPath !== null
    ? { location: mark.sweepLocation, path: mark.sweepPath, startedAt: mark.sweepStartedAt }
    : due
    ? sweepFrom(mark.now)
    : undefined
  const slice = sweep === undefined ? [] : yield* sliceAfter(site, sweep, size)
  const ids = [...new Set([...changed.ids, ...slice.map((c) => c.id)])]
  const rule = { site, statuses: selection.statuses, overThreshold: selection.overThreshold, limit: selection.limit }
  const rows = ids.length === 0 ? [] : yield* Retention.eligible({ ...rule, copyIds: ids })
  if (rows.length >= selection.limit) return rows
  // A location filled to its threshold has its oldest copies judged every tick, as it cannot
  // wait for the sweep to come round to them; the sweep's own place is not moved by it. When
  // they free less than a tick schedules (the oldest held back: a transfer, a package not yet
  // archived), a sweep is asked for, so the rest of the location is judged within one.
  const oldest = selection.fullLocationSlice ?? fullLocationSlice
  const full = selection.overThreshold.length === 0
    ? []
    : (yield* Retention.eligible({ ...rule, locationIds: selection.overThreshold, oldest })).filter((c) => !rows.some((r) => r.id === c.id))
  const pressed = selection.overThreshold.length > 0 && rows.length + full.length < selection.limit
  // a full slice leaves the sweep at its last copy; a short one reached the end
  const ended = sweep !== undefined && slice.length < size
  const last = slice.at(-1)
  const next = sweep !== undefined && !ended && last !== undefined
    ? { location: last.locationId, path: last.path, startedAt: sweep.startedAt }
    : undefined
  yield* advance(mark.siteId, mark.now, next, ended ? sweep.startedAt : undefined, pressed ? mark.now : requested)
  return [...rows, ...full].slice(0, selection.limit)
})
