/**
 * Concurrent cleanup: a location's scheduled copies are deleted `delete_concurrency` at a time,
 * by racing workers (two worker processes of the same site and extra jobs run by hand), and still
 * only the copies invariant 1 and the retention policy allow go, each exactly once, along the
 * documented path of states.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Cleanup from "../../src/lifecycle/Cleanup.js"
import { arrivedPackage, editLocations, runSitesUntil, topologyFrom, type ArrivedPackage } from "./ArchiveWorld.js"
import { layer, observatory, syncTopology, tempDir } from "./LifecycleWorld.js"

/** Records a verified archive copy of the package, as archiving would (cleanup never reads it). */
const archive = (pkg: ArrivedPackage) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`
    insert into physical_copy (raw_data_package_id, data_location_id, path, size_bytes, checksum, status, verified_at)
    values (${pkg.packageId}, (select id from data_location where name = 'cologne-archive'), ${pkg.relativePath},
            ${pkg.sizeBytes}, ${pkg.checksum}, 'PRESENT', now() - interval '1 minute')`)

/** Every SOURCE and BUFFER copy of a package (its files' and its own) with its location and path. */
const copiesOf = (pkg: ArrivedPackage) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string; location: string; path: string; status: string }>`
    select c.id, l.name as location, c.path, c.status::text as status
    from physical_copy c join data_location l on l.id = c.data_location_id left join raw_data_file f on f.id = c.raw_data_file_id
    where (c.raw_data_package_id = ${pkg.packageId} or f.raw_data_package_id = ${pkg.packageId}) and l.type <> 'LONG_TERM_ARCHIVE'
    order by l.name, c.path`)

/** The most deletions of these copies in progress at one instant, from their events' times. */
const mostAtOnce = (copyIds: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const events = yield* sql<{ entityId: string; toState: string; at: Date }>`
      select entity_id, to_state, at from event_log where entity_kind = 'PhysicalCopy' and entity_id in ${sql.in(copyIds)}
        and to_state in ('DELETION_IN_PROGRESS', 'DELETED') order by id`
    const spans = copyIds.map((id) => {
      const mine = events.filter((e) => e.entityId === id)
      return [
        mine.find((e) => e.toState === "DELETION_IN_PROGRESS")!.at.getTime(),
        mine.find((e) => e.toState === "DELETED")!.at.getTime()
      ] as const
    })
    return Math.max(...spans.map(([s]) => spans.filter(([a, b]) => a <= s && s < b).length))
  })

const exists = (file: string) => Effect.promise(() => fs.stat(file).then(() => true, () => false))

describe("Cleanup, concurrent", () => {
  it("retention.deleteConcurrency out of range is refused, naming the field; absent it is 4", () => {
    for (const bad of [0, 257, 1.5, "many"]) {
      assert.throws(
        () =>
          topologyFrom(
            "/tmp/ccat-config-check",
            (raw) => editLocations(raw, (l) => (l.type === "SOURCE" ? { ...l, retention: { deleteConcurrency: bad } } : l))
          ),
        /sites\[0\]\.locations\[0\]\.retention\.deleteConcurrency/
      )
    }
    const topology = topologyFrom("/tmp/ccat-config-check")
    assert.strictEqual(topology.sites[0].locations[0].retention.deleteConcurrency, 4)
  })

  it.scopedLive(
    "racing deleters delete exactly the eligible copies, each once, and never the last verified copy or a transfer source",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyFrom(dir, (raw) =>
          editLocations(raw, (l) => (l.type === "LONG_TERM_ARCHIVE"
            ? l
            : { ...l, retention: { minAgeSinceArchived: "0 seconds", usageThresholdPercent: 0, deleteConcurrency: 8 } })))
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        const [policy] = yield* sql<{ n: number }>`
        select delete_concurrency as n from retention_policy r join data_location l on l.id = r.data_location_id where l.name = 'chile-source'`
        assert.strictEqual(policy.n, 8)
        const obs = yield* observatory
        const files = Array.from({ length: 6 }, (_, i) => ({ path: `scan/det-${i}.fits`, bytes: 2_000 + i }))
        const packages: Array<ArrivedPackage> = []
        for (let i = 0; i < 6; i++) {
          packages.push(yield* arrivedPackage(topology, obs, files, ["chile-buffer"]))
        }
        // Four are archived; two are not (their copies are the only ones: invariant 1 keeps them).
        const archived = packages.slice(0, 4)
        const unarchived = packages.slice(4)
        for (const p of archived) {
          yield* archive(p)
        }
        // One archived package's buffer copy is the source of a pending transfer: it stays too.
        const source = archived[0]
        yield* sql`
        insert into data_transfer (raw_data_package_id, from_location_id, to_location_id, adapter, status)
        values (${source.packageId}, (select id from data_location where name = 'chile-buffer'),
                (select id from data_location where name = 'cologne-buffer'), 'local', 'pending')`
        const kept = (c: { location: string }, p: ArrivedPackage) =>
          unarchived.includes(p) || (p === source && c.location === "chile-buffer")
        const all = Effect.forEach(packages, (p) => Effect.map(copiesOf(p), (cs) => cs.map((c) => ({ ...c, pkg: p }))))
        const before = (yield* all).flat()
        assert.strictEqual(before.length, 6 * 7)
        const doomed = before.filter((c) => !kept(c, c.pkg))
        const settled = Effect.map(all, (cs) => cs.flat().filter((c) => !kept(c, c.pkg)).every((c) => c.status === "DELETED"))
        // Two worker processes of the site race each other, and a third deleter runs the location jobs by hand.
        const [sourceLocation] = yield* sql<{ id: string }>`select id from data_location where name = 'chile-source'`
        const byHand = Effect.repeat(Effect.ignore(Cleanup.work("chile", { locationId: sourceLocation.id })), { times: 20 })
        yield* Effect.zip(
          runSitesUntil([["chile", [Cleanup.stage]], ["chile", [Cleanup.stage]]], settled, 60_000),
          byHand,
          { concurrent: true }
        )

        const after = (yield* all).flat()
        for (const c of after) {
          const file = c.location === "chile-source"
            ? path.join(dir, "locations", "chile-source", c.path)
            : path.join(dir, "locations", c.location, c.path)
          if (kept(c, c.pkg)) {
            assert.strictEqual(c.status, "PRESENT", `${c.location} ${c.path}`)
            assert.isTrue(yield* exists(file), file)
          } else {
            assert.strictEqual(c.status, "DELETED")
            assert.isFalse(yield* exists(file), file)
          }
        }
        // Each deleted copy went the documented way exactly once: no deletion was run twice.
        const events = yield* sql<{ entityId: string; toState: string; at: Date }>`
        select entity_id, to_state, at from event_log where entity_kind = 'PhysicalCopy' and entity_id in ${
          sql.in(doomed.map((c) => c.id))
        } order by id`
        for (const c of doomed) {
          assert.deepStrictEqual(events.filter((e) => e.entityId === c.id).map((e) => e.toState), [
            "DELETION_POSSIBLE",
            "DELETION_SCHEDULED",
            "DELETION_IN_PROGRESS",
            "DELETED"
          ])
        }
        // The archive copies are untouched.
        const [archives] = yield* sql<{ n: number }>`
        select count(*)::int as n from physical_copy c join data_location l on l.id = c.data_location_id
        where l.type = 'LONG_TERM_ARCHIVE' and c.status = 'PRESENT'`
        assert.strictEqual(archives.n, archived.length)
        // And the deletions did overlap: at some instant more than one copy was being deleted.
        assert.isAbove(yield* mostAtOnce(doomed.map((c) => c.id)), 1)
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive("one location job deletes at most the location's delete_concurrency copies at once", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const topology = topologyFrom(dir, (raw) =>
        editLocations(raw, (l) => (l.type === "LONG_TERM_ARCHIVE"
          ? l
          : { ...l, retention: { minAgeSinceArchived: "0 seconds", usageThresholdPercent: 0, deleteConcurrency: 1 } })))
      yield* syncTopology(topology)
      const sql = yield* SqlClient.SqlClient
      const obs = yield* observatory
      const [source] = yield* sql<{ id: string }>`select id from data_location where name = 'chile-source'`
      const files = Array.from({ length: 16 }, (_, i) => ({ path: `det-${i}.fits`, bytes: 1_000 + i }))
      const cleanOnce = (concurrency: number) =>
        Effect.gen(function* () {
          yield* sql`update retention_policy set delete_concurrency = ${concurrency}`
          const pkg = yield* arrivedPackage(topology, obs, files, ["chile-buffer"])
          yield* archive(pkg)
          const ids = (yield* copiesOf(pkg)).filter((c) => c.location === "chile-source").map((c) => c.id)
          // The planner schedules; one location job, run here, deletes them all.
          yield* Cleanup.plan("chile")
          yield* Cleanup.work("chile", { locationId: source.id })
          const statuses = yield* sql<{ status: string }>`select status::text as status from physical_copy where id in ${sql.in(ids)}`
          assert.isTrue(statuses.every((s) => s.status === "DELETED"))
          return yield* mostAtOnce(ids)
        })
      assert.strictEqual(yield* cleanOnce(1), 1)
      const eight = yield* cleanOnce(8)
      assert.isAbove(eight, 1)
      assert.isAtMost(eight, 8)
    }).pipe(Effect.provide(layer)), 120_000)

  it.scopedLive(
    "copies allowed only by the fill threshold go one at a time: concurrency never deletes past the threshold",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        // Kept an hour after archiving everywhere; the cologne buffer may go sooner once 95% full.
        const topology = topologyFrom(dir, (raw) =>
          editLocations(raw, (l) => (l.type === "LONG_TERM_ARCHIVE" ? l : {
            ...l,
            retention: { minAgeSinceArchived: "1 hours", usageThresholdPercent: l.name === "cologne-buffer" ? 95 : 0, deleteConcurrency: 8 }
          })))
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        const obs = yield* observatory
        const packages: Array<ArrivedPackage> = []
        for (let i = 0; i < 4; i++) {
          packages.push(yield* arrivedPackage(topology, obs, [{ path: "a.fits", bytes: 3_000 }], ["cologne-buffer"]))
        }
        for (const p of packages) yield* archive(p)
        // Full: its capacity is exactly what the four packages hold; deleting one brings it to 75%.
        const used = packages.reduce((n, p) => n + p.sizeBytes, 0)
        yield* sql`update data_location set capacity_bytes = ${used} where name = 'cologne-buffer'`
        const statuses = Effect.flatMap(
          Effect.forEach(packages, copiesOf),
          (all) => Effect.succeed(all.flat().filter((c) => c.location === "cologne-buffer").map((c) => c.status))
        )
        // The planner sees the buffer full and schedules all four; the job decides them one by one.
        const [location] = yield* sql<{ id: string }>`select id from data_location where name = 'cologne-buffer'`
        yield* Cleanup.plan("cologne")
        assert.deepStrictEqual(yield* statuses, ["DELETION_SCHEDULED", "DELETION_SCHEDULED", "DELETION_SCHEDULED", "DELETION_SCHEDULED"])
        yield* Cleanup.work("cologne", { locationId: location.id })
        const after = yield* statuses
        assert.strictEqual(after.filter((s) => s === "DELETED").length, 1, JSON.stringify(after))
        assert.strictEqual(after.filter((s) => s === "PRESENT").length, 3, JSON.stringify(after))
        // Under the threshold now: the next rounds schedule nothing more.
        yield* Cleanup.plan("cologne")
        assert.strictEqual((yield* statuses).filter((s) => s === "PRESENT").length, 3)
      }).pipe(Effect.provide(layer)),
    120_000
  )
})
