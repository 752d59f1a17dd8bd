import { Transitions } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Archiving from "../../src/lifecycle/Archiving.js"
import * as Arrival from "../../src/lifecycle/Arrival.js"
import * as BundleRecovery from "../../src/lifecycle/BundleRecovery.js"
import * as Cleanup from "../../src/lifecycle/Cleanup.js"
import { JobQueue } from "../../src/engine/JobQueue.js"
import { arrivedPackage, editLocations, runSitesFor, runSitesUntil, topologyFrom, topologyKeeping } from "./ArchiveWorld.js"
import { layer, observatory, policyLayer, syncTopology, tempDir } from "./LifecycleWorld.js"

/** Every copy of the package and its files, by location, with its status. */
const copiesOf = (packageId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string; location: string; path: string; status: string }>`
      select c.id, l.name as location, c.path, c.status::text as status
      from physical_copy c join data_location l on l.id = c.data_location_id
      left join raw_data_file f on f.id = c.raw_data_file_id
      where c.raw_data_package_id = ${packageId} or f.raw_data_package_id = ${packageId}
        or c.data_transfer_package_id in (select data_transfer_package_id from data_transfer_package_member where raw_data_package_id = ${packageId})
      order by l.name, c.path`)

const statusesAt = (packageId: string, location: string) =>
  Effect.map(copiesOf(packageId), (rows) => rows.filter((r) => r.location === location).map((r) => r.status))

const exists = (file: string) => Effect.promise(() => fs.stat(file).then(() => true, () => false))

const bothSites = [["chile", [Cleanup.stage]], ["cologne", [Cleanup.stage]]] as const

describe("Cleanup", () => {
  it.scopedLive(
    "deletes SOURCE and BUFFER copies only once archived, verified, old enough and not a transfer source",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyKeeping(dir, "0 seconds")
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        const obs = yield* observatory
        const pkg = yield* arrivedPackage(topology, obs, [{ path: "a.fits", bytes: 8_000 }, { path: "sub/b.fits", bytes: 4_000 }])
        // The bundle that carried the package to Cologne is still in the Chile buffer (delivered, so completed).
        const bundleKey = `bundles/${pkg.packageId}-sent.tar`
        yield* Effect.promise(async () => {
          await fs.mkdir(path.join(dir, "locations", "chile-buffer", "bundles"), { recursive: true })
          await fs.copyFile(
            path.join(dir, "locations", "chile-buffer", pkg.relativePath),
            path.join(dir, "locations", "chile-buffer", bundleKey)
          )
        })
        const [sent] = yield* sql<{ id: string }>`
        insert into data_transfer_package (relative_path, size_bytes, checksum, status)
        values (${bundleKey}, ${pkg.sizeBytes}, ${pkg.checksum}, 'completed') returning id`
        yield* sql`insert into data_transfer_package_member (data_transfer_package_id, raw_data_package_id) values (${sent.id}, ${pkg.packageId})`
        yield* sql`
        insert into physical_copy (data_transfer_package_id, data_location_id, path, size_bytes, checksum, status, verified_at)
        values (${sent.id}, (select id from data_location where name = 'chile-buffer'), ${bundleKey}, ${pkg.sizeBytes}, ${pkg.checksum}, 'PRESENT', now())`
        const nothingDeleted = Effect.gen(function* () {
          yield* runSitesFor(bothSites, 1200)
          const copies = yield* copiesOf(pkg.packageId)
          assert.isTrue(copies.every((c) => c.status === "PRESENT"), JSON.stringify(copies))
          for (const f of pkg.files) assert.isTrue(yield* exists(f.absolutePath))
        })
        // Not archived yet: nothing goes.
        yield* nothingDeleted
        // Archived, but younger than the minimum age.
        yield* sql`update retention_policy set min_age_seconds = 3600`
        yield* runSitesUntil(
          [["cologne", [Archiving.stage]]],
          Effect.map(statusesAt(pkg.packageId, "cologne-archive"), (s) => s[0] === "PRESENT")
        ).pipe(
          Effect.provide(policyLayer(topology))
        )
        yield* nothingDeleted
        // Old enough, but the archive copy is not verified (its verification was withdrawn).
        yield* sql`update retention_policy set min_age_seconds = 0`
        yield* sql`update physical_copy set verified_at = null where raw_data_package_id = ${pkg.packageId}
        and data_location_id = (select id from data_location where name = 'cologne-archive')`
        yield* nothingDeleted
        // Verified again; the cologne buffer copy is the source of a pending transfer: it stays, the rest goes.
        yield* sql`update physical_copy set verified_at = now() where raw_data_package_id = ${pkg.packageId}
        and data_location_id = (select id from data_location where name = 'cologne-archive')`
        const [transfer] = yield* sql<{ id: string }>`
        insert into data_transfer (raw_data_package_id, from_location_id, to_location_id, adapter, status)
        values (${pkg.packageId}, (select id from data_location where name = 'cologne-buffer'),
                (select id from data_location where name = 'chile-buffer'), 'local', 'pending') returning id`
        const gone = (location: string) =>
          Effect.map(statusesAt(pkg.packageId, location), (s) => s.length > 0 && s.every((x) => x === "DELETED"))
        yield* runSitesUntil(bothSites, Effect.zipWith(gone("chile-source"), gone("chile-buffer"), (a, b) => a && b))
        for (const f of pkg.files) assert.isFalse(yield* exists(f.absolutePath))
        assert.isFalse(yield* exists(path.join(dir, "locations", "chile-buffer", pkg.relativePath)))
        assert.isFalse(yield* exists(path.join(dir, "locations", "chile-buffer", bundleKey)))
        assert.deepStrictEqual(yield* statusesAt(pkg.packageId, "cologne-buffer"), ["PRESENT"])
        assert.isTrue(yield* exists(path.join(dir, "locations", "cologne-buffer", pkg.relativePath)))
        // The transfer ends, but an open bundle still holds the package: the buffer copy stays.
        yield* sql`update data_transfer set status = 'failed' where id = ${transfer.id}`
        const [bundle] = yield* sql<{ id: string }>`
        insert into data_transfer_package (relative_path) values (${`bundles/${pkg.packageId}.tar`}) returning id`
        yield* sql`insert into data_transfer_package_member (data_transfer_package_id, raw_data_package_id) values (${bundle.id}, ${pkg.packageId})`
        yield* runSitesFor(bothSites, 1200)
        assert.deepStrictEqual(yield* statusesAt(pkg.packageId, "cologne-buffer"), ["PRESENT"])
        // The bundle is done with: now the cologne buffer copy goes too; the archive copy never does.
        yield* sql`update data_transfer_package set status = 'failed' where id = ${bundle.id}`
        yield* runSitesUntil(bothSites, gone("cologne-buffer"))
        assert.isFalse(yield* exists(path.join(dir, "locations", "cologne-buffer", pkg.relativePath)))
        assert.deepStrictEqual(yield* statusesAt(pkg.packageId, "cologne-archive"), ["PRESENT"])
        assert.isTrue(yield* exists(path.join(dir, "locations", "cologne-archive", pkg.relativePath)))
        // Every deletion went the documented way, through the event log.
        const [source] = (yield* copiesOf(pkg.packageId)).filter((c) => c.location === "chile-source")
        const path_ = yield* sql<{ toState: string }>`
        select to_state from event_log where entity_kind = 'PhysicalCopy' and entity_id = ${source.id} order by id`
        assert.deepStrictEqual(path_.map((e) => e.toState), ["DELETION_POSSIBLE", "DELETION_SCHEDULED", "DELETION_IN_PROGRESS", "DELETED"])
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive("retries a failed deletion until it succeeds, and counts a file already gone as deleted", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const topology = topologyKeeping(dir, "0 seconds")
      yield* syncTopology(topology)
      const sql = yield* SqlClient.SqlClient
      const obs = yield* observatory
      const pkg = yield* arrivedPackage(topology, obs, [{ path: "a.fits", bytes: 5_000 }], ["chile-buffer"])
      // Archive it by hand as the archive stage would, so that cleanup alone runs below.
      yield* sql`update retention_policy set min_age_seconds = 3600`
      const archive = path.join(dir, "locations", "cologne-archive", pkg.relativePath)
      yield* Effect.promise(async () => {
        await fs.mkdir(path.dirname(archive), { recursive: true })
        await fs.copyFile(path.join(dir, "locations", "chile-buffer", pkg.relativePath), archive)
      })
      yield* sql`
        insert into physical_copy (raw_data_package_id, data_location_id, path, size_bytes, checksum, status, verified_at)
        values (${pkg.packageId}, (select id from data_location where name = 'cologne-archive'), ${pkg.relativePath},
                ${pkg.sizeBytes}, ${pkg.checksum}, 'PRESENT', now())`
      // The buffer copy vanished behind our back; the SOURCE folder refuses deletions for a while.
      yield* Effect.promise(() => fs.rm(path.join(dir, "locations", "chile-buffer", pkg.relativePath)))
      const folder = path.dirname(pkg.files[0].absolutePath)
      yield* Effect.acquireRelease(
        Effect.sync(() => execFileSync("chattr", ["+i", folder])),
        () => Effect.ignore(Effect.try(() => execFileSync("chattr", ["-i", folder])))
      )
      yield* sql`update retention_policy set min_age_seconds = 0`
      yield* runSitesUntil(
        [["chile", [Cleanup.stage]]],
        Effect.zipWith(
          statusesAt(pkg.packageId, "chile-source"),
          statusesAt(pkg.packageId, "chile-buffer"),
          (s, b) => s[0] === "DELETION_FAILED" && b[0] === "DELETED"
        )
      )
      assert.deepStrictEqual(yield* statusesAt(pkg.packageId, "chile-buffer"), ["DELETED"])
      assert.isTrue(yield* exists(pkg.files[0].absolutePath))
      yield* Effect.sync(() => execFileSync("chattr", ["-i", folder]))
      yield* runSitesUntil([["chile", [Cleanup.stage]]], Effect.map(statusesAt(pkg.packageId, "chile-source"), (s) => s[0] === "DELETED"))
      assert.isFalse(yield* exists(pkg.files[0].absolutePath))
      const [source] = (yield* copiesOf(pkg.packageId)).filter((c) => c.location === "chile-source")
      const events = yield* sql<{ toState: string }>`
        select to_state from event_log where entity_kind = 'PhysicalCopy' and entity_id = ${source.id} order by id`
      assert.include(events.map((e) => e.toState), "DELETION_FAILED")
    }).pipe(Effect.provide(layer)), 120_000)

  it.scopedLive("a location filled to its usage threshold is cleaned before the minimum age", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const topology = topologyFrom(
        dir,
        (raw) =>
          editLocations(
            raw,
            (l) => (l.type === "LONG_TERM_ARCHIVE" ? l : { ...l, retention: { minAgeSinceArchived: "1 hours", usageThresholdPercent: 95 } })
          )
      )
      yield* syncTopology(topology)
      const sql = yield* SqlClient.SqlClient
      const obs = yield* observatory
      const pkg = yield* arrivedPackage(topology, obs, [{ path: "a.fits", bytes: 5_000 }])
      yield* runSitesUntil(
        [["cologne", [Archiving.stage]]],
        Effect.map(statusesAt(pkg.packageId, "cologne-archive"), (s) => s[0] === "PRESENT")
      ).pipe(
        Effect.provide(policyLayer(topology))
      )
      // The cologne buffer is configured with room for little more than this package.
      yield* sql`update data_location set capacity_bytes = ${pkg.sizeBytes} where name = 'cologne-buffer'`
      yield* runSitesUntil(bothSites, Effect.map(statusesAt(pkg.packageId, "cologne-buffer"), (s) => s[0] === "DELETED"))
      // Elsewhere the disk is not 95% full: the minimum age holds.
      assert.deepStrictEqual(yield* statusesAt(pkg.packageId, "chile-buffer"), ["PRESENT"])
      assert.isTrue((yield* statusesAt(pkg.packageId, "chile-source")).every((s) => s === "PRESENT"))
    }).pipe(Effect.provide(layer)), 120_000)

  it.scopedLive(
    "the worker calls a scheduled deletion off when the copy became a transfer source meanwhile",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyKeeping(dir, "0 seconds")
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        const jobs = yield* JobQueue
        const obs = yield* observatory
        const pkg = yield* arrivedPackage(topology, obs, [{ path: "a.fits", bytes: 5_000 }])
        yield* runSitesUntil(
          [["cologne", [Archiving.stage]]],
          Effect.map(statusesAt(pkg.packageId, "cologne-archive"), (s) => s[0] === "PRESENT")
        ).pipe(
          Effect.provide(policyLayer(topology))
        )
        // The planner schedules the cologne buffer copy (no worker runs yet).
        yield* jobs.ensureQueue("cologne.cleanup", Cleanup.stage.queue)
        assert.strictEqual(yield* Cleanup.plan("cologne"), 1)
        const [copy] = (yield* copiesOf(pkg.packageId)).filter((c) => c.location === "cologne-buffer")
        assert.strictEqual(copy.status, "DELETION_SCHEDULED")
        // Before the worker gets to it, a transfer picks the copy as its source.
        yield* sql`
        insert into data_transfer (raw_data_package_id, from_location_id, to_location_id, adapter, status)
        values (${pkg.packageId}, (select id from data_location where name = 'cologne-buffer'),
                (select id from data_location where name = 'chile-buffer'), 'local', 'pending')`
        yield* Cleanup.work("cologne", { copyId: copy.id })
        assert.deepStrictEqual(yield* statusesAt(pkg.packageId, "cologne-buffer"), ["PRESENT"])
        assert.isTrue(yield* exists(path.join(dir, "locations", "cologne-buffer", pkg.relativePath)))
        const [event] = yield* sql<{ toState: string; details: { reason: string } }>`
        select to_state, details from event_log where entity_kind = 'PhysicalCopy' and entity_id = ${copy.id} order by id desc limit 1`
        assert.strictEqual(event.toState, "PRESENT")
        assert.strictEqual(event.details.reason, "no longer eligible for deletion")
      }).pipe(Effect.provide(layer)),
    120_000
  )

  for (const owner of ["set aside by a retry for its bundle's job", "delivered here, being deleted by arrival"] as const) {
    it.scopedLive(`a bundle's tar ${owner} is left to its owner, whatever cleanup's planner and jobs find`, () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyKeeping(dir, "0 seconds")
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        const setAside = owner.startsWith("set aside")
        // Set aside: a bundle retried after its tar rotted, scheduled again, its job (which deletes
        // the old tar before writing anew) not run yet. Delivered: arrival unpacked the tar and
        // moved it to DELETION_IN_PROGRESS, its delete still to come.
        const [site, location] = setAside ? ["chile", "chile-buffer"] : ["cologne", "cologne-buffer"]
        const key = "bundles/chile/old.tar"
        const file = path.join(dir, "locations", location, key)
        yield* Effect.promise(() => fs.mkdir(path.dirname(file), { recursive: true }).then(() => fs.writeFile(file, "some bytes")))
        const [bundle] = yield* sql<{ id: string }>`
          insert into data_transfer_package (relative_path, status) values ('bundles/chile/new.tar', ${
            setAside ? "scheduled" : "completed"
          })
          returning id`
        const [copy] = yield* sql<{ id: string }>`
          insert into physical_copy (data_transfer_package_id, data_location_id, path, size_bytes, checksum, status)
          select ${bundle.id}, l.id, ${key}, 4096, ${`sha256:${"0".repeat(64)}`}, 'PRESENT' from data_location l where l.name = ${location}
          returning id`
        if (!setAside) {
          yield* sql`
            insert into data_transfer (data_transfer_package_id, from_location_id, to_location_id, adapter, status, started_at, finished_at)
            select ${bundle.id}, f.id, t.id, 'local', 'completed', now(), now() from data_location f, data_location t
            where f.name = 'chile-buffer' and t.name = 'cologne-buffer'`
        }
        yield* sql`update physical_copy set status = 'DELETION_IN_PROGRESS' where id = ${copy.id}`
        const jobs = yield* JobQueue
        yield* jobs.ensureQueue(`${site}.cleanup`, Cleanup.stage.queue)
        assert.strictEqual(yield* Cleanup.plan(site), 0, "no cleanup job for a deletion that is not cleanup's")
        const [at] = yield* sql<{ id: string }>`select id from data_location where name = ${location}`
        yield* Cleanup.work(site, { locationId: at.id })
        const [after] = yield* sql<{ status: string }>`select status::text as status from physical_copy where id = ${copy.id}`
        assert.strictEqual(after.status, "DELETION_IN_PROGRESS")
        assert.isTrue(yield* exists(file))
        if (setAside) {
          // The bundle's job deletes it.
          yield* BundleRecovery.deleteSetAside(site, bundle.id as never)
          const [done] = yield* sql<{ status: string }>`select status::text as status from physical_copy where id = ${copy.id}`
          assert.strictEqual(done.status, "DELETED")
          assert.isFalse(yield* exists(file))
        } else {
          // Arrival's planner gives it back to an arrival job, which finishes the deletion.
          assert.strictEqual(yield* Arrival.plan(site), 1)
        }
      }).pipe(Effect.provide(layer)), 120_000)
  }

  it.scopedLive("a worker that died mid-deletion finishes the deletion when its job runs again", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const topology = topologyKeeping(dir, "0 seconds")
      yield* syncTopology(topology)
      const obs = yield* observatory
      const pkg = yield* arrivedPackage(topology, obs, [{ path: "a.fits", bytes: 5_000 }], ["chile-buffer", "cologne-buffer"])
      yield* runSitesUntil(
        [["cologne", [Archiving.stage]]],
        Effect.map(statusesAt(pkg.packageId, "cologne-archive"), (s) => s[0] === "PRESENT")
      ).pipe(
        Effect.provide(policyLayer(topology))
      )
      const jobs = yield* JobQueue
      yield* jobs.ensureQueue("chile.cleanup", Cleanup.stage.queue)
      yield* Cleanup.plan("chile")
      const [copy] = (yield* copiesOf(pkg.packageId)).filter((c) => c.location === "chile-buffer")
      // It had moved the copy to DELETION_IN_PROGRESS when it died.
      yield* Transitions.transition({
        entity: "PhysicalCopy",
        id: copy.id as never,
        from: "DELETION_SCHEDULED",
        to: "DELETION_IN_PROGRESS"
      })
      yield* Cleanup.work("chile", { copyId: copy.id })
      assert.deepStrictEqual(yield* statusesAt(pkg.packageId, "chile-buffer"), ["DELETED"])
      assert.isFalse(yield* exists(path.join(dir, "locations", "chile-buffer", pkg.relativePath)))
      // A duplicate delivery of the job changes nothing.
      yield* Cleanup.work("chile", { copyId: copy.id })
      assert.deepStrictEqual(yield* statusesAt(pkg.packageId, "chile-buffer"), ["DELETED"])
    }).pipe(Effect.provide(layer)), 120_000)
})
