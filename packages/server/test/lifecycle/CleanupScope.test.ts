/**
 * The cleanup planner judges only what changed since its last tick, and loses nothing by it: a
 * package archived long ago whose retention ends now, and a buffer copy whose transfer ends long
 * after its retention did, are both cleaned by ticks that are not full passes (the site's mark
 * shows when the last full pass was). What no stamp records is found by a sweep over the live
 * copies, a slice a tick. Archiving stamps `archived_at` with the copy that completes the
 * package; packages completed without a stamp are stamped by the planner.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Archiving from "../../src/lifecycle/Archiving.js"
import * as Cleanup from "../../src/lifecycle/Cleanup.js"
import * as CleanupScope from "../../src/lifecycle/CleanupScope.js"
import * as Retention from "../../src/lifecycle/Retention.js"
import { arrivedPackage, runSitesUntil, topologyKeeping } from "./ArchiveWorld.js"
import { layer, observatory, policyLayer, syncTopology, tempDir } from "./LifecycleWorld.js"

const statusesAt = (packageId: string, location: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ status: string }>`
      select c.status::text as status
      from physical_copy c join data_location l on l.id = c.data_location_id
      left join raw_data_file f on f.id = c.raw_data_file_id
      where l.name = ${location} and (c.raw_data_package_id = ${packageId} or f.raw_data_package_id = ${packageId})
      order by c.path`).pipe(Effect.map((rows) => rows.map((r) => r.status)))

const gone = (packageId: string, location: string) =>
  Effect.map(statusesAt(packageId, location), (s) => s.length > 0 && s.every((x) => x === "DELETED"))

/** Every site's cleanup mark: when it last judged what changed, and when its last full pass (an ended sweep) began. */
const marks = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ site: string; tickedAt: Date; fullPassAt: Date }>`
    select s.name as site, m.ticked_at, m.full_pass_at from cleanup_mark m join site s on s.id = m.site_id order by s.name`)

/**
 * A package of five files archived (kept 30 days), as if five days ago: it, every copy and every
 * transfer and bundle back-dated, Chile's last tick just now and its last full pass two hours ago.
 * Only a sweep looks at these copies again.
 */
const archivedLongAgo = Effect.gen(function* () {
  const topology = topologyKeeping(yield* tempDir, "30 days")
  yield* syncTopology(topology)
  const sql = yield* SqlClient.SqlClient
  const obs = yield* observatory
  const pkg = yield* arrivedPackage(topology, obs, ["a", "b", "c", "d", "e"].map((n) => ({ path: `${n}.fits`, bytes: 1_000 })))
  yield* runSitesUntil(
    [["cologne", [Archiving.stage]]],
    Effect.map(statusesAt(pkg.packageId, "cologne-archive"), (s) => s[0] === "PRESENT")
  ).pipe(Effect.provide(policyLayer(topology)))
  yield* sql`update raw_data_package set archived_at = now() - interval '5 days' where id = ${pkg.packageId}`
  yield* sql`update physical_copy set created_at = now() - interval '5 days'`
  yield* sql`update data_transfer set updated_at = now() - interval '5 days'`
  yield* sql`update data_transfer_package set updated_at = now() - interval '5 days'`
  yield* sql`insert into cleanup_mark (site_id, ticked_at, full_pass_at)
             select id, now(), now() - interval '2 hours' from site where name = 'chile'`
})

const bothSites = [["chile", [Cleanup.stage]], ["cologne", [Cleanup.stage]]] as const

/** The statuses a cleanup tick judges. */
const liveStatuses = ["PRESENT", "STAGED", "DELETION_POSSIBLE"]

/** Chile's cleanup mark with its sweep: when it began, where it is, the last full pass, and a sweep asked for. */
const chileSweep = Effect.flatMap(
  SqlClient.SqlClient,
  (
    sql
  ) => sql<
    { tickedAt: Date; startedAt: Date | null; location: string | null; path: string | null; fullPassAt: Date; requestedAt: Date | null }
  >`
    select m.ticked_at, m.sweep_started_at as started_at, m.sweep_location as location, m.sweep_path as path, m.full_pass_at,
      m.sweep_requested_at as requested_at
    from cleanup_mark m join site s on s.id = m.site_id where s.name = 'chile'`
)

describe("cleanup judges what changed since its last tick", () => {
  it.scopedLive(
    "a package archived long ago whose retention just ended, and a copy freed long after its retention ended, are cleaned without a full pass",
    () =>
      Effect.gen(function* () {
        const topology = topologyKeeping(yield* tempDir, "1 hours")
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        const obs = yield* observatory
        const pkg = yield* arrivedPackage(topology, obs, [{ path: "a.fits", bytes: 6_000 }, { path: "b.fits", bytes: 3_000 }])
        // The cologne buffer copy is the source of a transfer still open: it stays after the rest goes.
        const [transfer] = yield* sql<{ id: string }>`
        insert into data_transfer (raw_data_package_id, from_location_id, to_location_id, adapter, status)
        values (${pkg.packageId}, (select id from data_location where name = 'cologne-buffer'),
                (select id from data_location where name = 'chile-buffer'), 'local', 'pending') returning id`
        yield* runSitesUntil(
          [["cologne", [Archiving.stage]]],
          Effect.map(statusesAt(pkg.packageId, "cologne-archive"), (s) => s[0] === "PRESENT")
        ).pipe(
          Effect.provide(policyLayer(topology))
        )
        const [stamp] = yield* sql<
          { archivedAt: Date | null; status: string }
        >`select archived_at, status::text as status from raw_data_package where id = ${pkg.packageId}`
        assert.strictEqual(stamp!.status, "completed")
        assert.isNotNull(stamp!.archivedAt, "archiving stamps the package with the copy that completes it")

        // Archived two days ago (its stamp, and every copy made then), kept for two days and 4
        // seconds: its retention ends a few seconds from now, long after the last tick's window began.
        const back = (interval: string) =>
          Effect.all([
            sql`update raw_data_package set archived_at = now() - ${interval}::interval where id = ${pkg.packageId}`,
            sql`update physical_copy set created_at = now() - ${interval}::interval
            where raw_data_package_id = ${pkg.packageId}
               or raw_data_file_id in (select id from raw_data_file where raw_data_package_id = ${pkg.packageId})`
          ], { discard: true })
        yield* back("2 days")
        yield* sql`update retention_policy set min_age_seconds = ${2 * 86_400 + 4}`
        // The first tick at each site sweeps every live copy (no mark yet: here one slice holds
        // them all); the next ones judge only what changed.
        assert.strictEqual(yield* Cleanup.plan("chile"), 0)
        assert.strictEqual(yield* Cleanup.plan("cologne"), 0)
        assert.strictEqual(yield* Cleanup.plan("chile"), 0)
        const before = yield* marks
        assert.deepStrictEqual(before.map((m) => m.site), ["chile", "cologne"])
        assert.isTrue((yield* statusesAt(pkg.packageId, "chile-source")).every((s) => s === "PRESENT"))

        yield* runSitesUntil(
          bothSites,
          Effect.zipWith(gone(pkg.packageId, "chile-source"), gone(pkg.packageId, "chile-buffer"), (a, b) => a && b)
        )
        assert.deepStrictEqual(yield* statusesAt(pkg.packageId, "cologne-buffer"), ["PRESENT"], "the transfer's source stays")
        const after = yield* marks
        for (const [i, m] of after.entries()) {
          assert.strictEqual(m.fullPassAt.getTime(), before[i]!.fullPassAt.getTime(), `${m.site}: no full pass found it`)
          assert.isAbove(m.tickedAt.getTime(), before[i]!.tickedAt.getTime(), `${m.site}: the mark moved on`)
        }

        // A day later than its retention ended, the transfer ends: its source is freed, and found by that.
        yield* back("3 days")
        yield* Cleanup.plan("cologne")
        // ended after the mark that tick left, whatever the clock's resolution
        yield* sql`update data_transfer set status = 'failed',
          updated_at = greatest(now(), (select max(ticked_at) from cleanup_mark) + interval '1 millisecond') where id = ${transfer!.id}`
        yield* runSitesUntil(bothSites, gone(pkg.packageId, "cologne-buffer"))
        assert.deepStrictEqual(yield* statusesAt(pkg.packageId, "cologne-archive"), ["PRESENT"])
        const last = yield* marks
        for (const [i, m] of last.entries()) {
          assert.strictEqual(m.fullPassAt.getTime(), before[i]!.fullPassAt.getTime(), `${m.site}: no full pass found it`)
        }
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive(
    "a change no stamp records is found by the hourly sweep, a slice of the live copies a tick, none skipped, none judged twice",
    () =>
      Effect.gen(function* () {
        yield* archivedLongAgo
        const sql = yield* SqlClient.SqlClient
        // An operator shortens the minimum age: nothing records it but the policy.
        yield* sql`update retention_policy set min_age_seconds = 0`
        const selection = { statuses: liveStatuses, overThreshold: [], limit: 100 }
        const everything = (yield* Retention.eligible({ site: "chile", ...selection })).map((c) => c.id).sort()
        assert.strictEqual(everything.length, 6, "five SOURCE file copies and the BUFFER package copy")

        const found: Array<string> = []
        const places: Array<string> = []
        let startedAt: Date | null = null
        for (let tick = 0; tick < 10; tick++) {
          const rows = yield* CleanupScope.eligible("chile", { ...selection, sweepSlice: 2 })
          assert.isAtMost(rows.length, 2, `tick ${tick} judged only its slice`)
          found.push(...rows.map((r) => r.id))
          const [sweep] = yield* chileSweep
          if (sweep!.startedAt === null) break
          startedAt ??= sweep!.startedAt
          assert.strictEqual(sweep!.startedAt.getTime(), startedAt.getTime(), "the sweep keeps its start")
          places.push(`${sweep!.location} ${sweep!.path}`)
        }
        assert.deepStrictEqual([...found].sort(), everything, "every copy found once")
        assert.strictEqual(places.length, 3, "three slices of two, the fourth tick found the end")
        assert.strictEqual(new Set(places).size, 3, "the sweep moved on each tick")
        const [ended] = yield* chileSweep
        assert.isNotNull(startedAt)
        assert.strictEqual(ended!.fullPassAt.getTime(), startedAt!.getTime(), "an ended sweep is a full pass as of its start")
        assert.isNull(ended!.location)
        // No sweep is due for another hour: the next tick judges what changed, which is nothing.
        assert.deepStrictEqual(yield* CleanupScope.eligible("chile", { ...selection, sweepSlice: 2 }), [])
        assert.isNull((yield* chileSweep)[0]!.startedAt)
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive(
    "a tick that finds as many deletable copies as it schedules leaves the sweep where it was; a sweep asked for meanwhile begins when the one under way ends",
    () =>
      Effect.gen(function* () {
        yield* archivedLongAgo
        const sql = yield* SqlClient.SqlClient
        yield* sql`update retention_policy set min_age_seconds = 0`
        const statuses = liveStatuses
        const [before] = yield* chileSweep

        // One deletable copy found, one scheduled at once: nothing of the mark moves.
        const full = yield* CleanupScope.eligible("chile", { statuses, overThreshold: [], limit: 1, sweepSlice: 3 })
        assert.strictEqual(full.length, 1)
        const [held] = yield* chileSweep
        assert.deepStrictEqual(held, before, "the next tick reads the same again")

        // A slice of one a tick: the sweep stops on every location's last path and goes on.
        const found: Array<string> = []
        let startedAt: Date | null = null
        let ticks = 0
        for (; ticks < 20; ticks++) {
          found.push(
            ...(yield* CleanupScope.eligible("chile", { statuses, overThreshold: [], limit: 100, sweepSlice: 1 })).map((r) => r.id)
          )
          const [m] = yield* chileSweep
          if (m!.startedAt === null) break
          startedAt ??= m!.startedAt
          // Half way, a tick that read only part of a window asks for a sweep from now on.
          if (ticks === 2) yield* sql`update cleanup_mark set sweep_requested_at = now()`
        }
        assert.strictEqual(ticks, 6, "six slices of one, the seventh found the end")
        assert.strictEqual(new Set(found).size, 6)
        assert.strictEqual(found.length, 6, "every copy found once")
        const [ended] = yield* chileSweep
        assert.strictEqual(ended!.fullPassAt.getTime(), startedAt!.getTime(), "the sweep asked for did not restart the one under way")
        // The request came after that sweep began: the next tick begins another.
        yield* CleanupScope.eligible("chile", { statuses, overThreshold: [], limit: 100, sweepSlice: 1 })
        const [again] = yield* chileSweep
        assert.isNotNull(again!.startedAt, "a sweep begins after the one that ended")
        assert.isAbove(again!.startedAt!.getTime(), startedAt!.getTime())

        // The minimum age back at 30 days, the sweep past every location: only the fill of
        // chile-source can free its copies now, and a location at its threshold does not wait
        // for the sweep to come round to it.
        yield* sql`update retention_policy set min_age_seconds = ${30 * 86_400}`
        yield* sql`update cleanup_mark set sweep_location = 'ffffffff-ffff-ffff-ffff-ffffffffffff', sweep_path = ''`
        const [source] = yield* sql<{ id: string }>`select id from data_location where name = 'chile-source'`
        assert.deepStrictEqual(yield* CleanupScope.eligible("chile", { statuses, overThreshold: [], limit: 100, sweepSlice: 1 }), [])
        const pressed = yield* CleanupScope.eligible("chile", { statuses, overThreshold: [source!.id], limit: 100, sweepSlice: 1 })
        assert.strictEqual(pressed.length, 5, "the five SOURCE file copies, in one tick")
        assert.isTrue(pressed.every((c) => c.locationId === source!.id))
        // Only its oldest copies each tick: two of them free less than a tick schedules, so the
        // tick asks for a sweep to judge the rest.
        yield* sql`update cleanup_mark set sweep_requested_at = null`
        const oldest = yield* CleanupScope.eligible("chile", {
          statuses,
          overThreshold: [source!.id],
          limit: 100,
          sweepSlice: 1,
          fullLocationSlice: 2
        })
        const firstTwo = yield* sql<{ id: string }>`
          select c.id from physical_copy c where c.data_location_id = ${source!.id} order by c.created_at, c.id limit 2`
        assert.deepStrictEqual(oldest.map((c) => c.id).sort(), firstTwo.map((c) => c.id).sort())
        assert.isNotNull((yield* chileSweep)[0]!.requestedAt, "a full location whose oldest copies free too little asks for a sweep")
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive(
    "copies waiting in DELETION_POSSIBLE, more than a tick schedules, are all scheduled over the next ticks, none left behind",
    () =>
      Effect.gen(function* () {
        yield* archivedLongAgo
        const sql = yield* SqlClient.SqlClient
        yield* sql`update retention_policy set min_age_seconds = 0`
        // No sweep due: only the copies waiting are judged. Five wait at chile-source.
        yield* sql`update cleanup_mark set full_pass_at = now()`
        const waiting = yield* sql<{ id: string }>`
          update physical_copy c set status = 'DELETION_POSSIBLE' from data_location l
          where l.id = c.data_location_id and l.name = 'chile-source' returning c.id`
        assert.strictEqual(waiting.length, 5)
        const found: Array<Array<string>> = []
        for (let tick = 0; tick < 5 && found.flat().length < 5; tick++) {
          const rows = yield* CleanupScope.eligible("chile", { statuses: liveStatuses, overThreshold: [], limit: 2 })
          found.push(rows.map((r) => r.id))
          // as the planner does with them: scheduled, no longer waiting
          yield* sql`update physical_copy set status = 'DELETION_SCHEDULED' where id = any(${rows.map((r) => r.id)}::uuid[])`
        }
        assert.deepStrictEqual(found.map((ids) => ids.length), [2, 2, 1], "two a tick, the tick's limit")
        assert.deepStrictEqual(found.flat().sort(), waiting.map((c) => c.id).sort(), "every waiting copy, once")
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive(
    "packages completed before they were stamped are stamped by the planner and their copies cleaned",
    () =>
      Effect.gen(function* () {
        const topology = topologyKeeping(yield* tempDir, "0 seconds")
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        const obs = yield* observatory
        const pkg = yield* arrivedPackage(topology, obs, [{ path: "c.fits", bytes: 2_000 }])
        yield* runSitesUntil(
          [["cologne", [Archiving.stage]]],
          Effect.map(statusesAt(pkg.packageId, "cologne-archive"), (s) => s[0] === "PRESENT")
        ).pipe(
          Effect.provide(policyLayer(topology))
        )
        // As an ops-db upgraded from before the stamp: completed long ago, no stamp, no mark yet.
        yield* sql`update raw_data_package set archived_at = null, updated_at = now() - interval '5 days' where id = ${pkg.packageId}`
        yield* sql`update physical_copy set created_at = now() - interval '5 days'
                 where raw_data_package_id = ${pkg.packageId}
                    or raw_data_file_id in (select id from raw_data_file where raw_data_package_id = ${pkg.packageId})`
        yield* sql`delete from cleanup_mark`
        yield* runSitesUntil(
          bothSites,
          Effect.zipWith(gone(pkg.packageId, "chile-source"), gone(pkg.packageId, "cologne-buffer"), (a, b) => a && b)
        )
        const [stamp] = yield* sql<
          { stamped: boolean }
        >`select archived_at is not null as stamped from raw_data_package where id = ${pkg.packageId}`
        assert.isTrue(stamp!.stamped)
      }).pipe(Effect.provide(layer)),
    120_000
  )
})
