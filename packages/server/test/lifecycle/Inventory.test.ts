/**
 * Inventory reconciliation on a real archive folder, in small pages: an object deleted behind the
 * platform's back becomes MISSING, an object planted there is recorded as dark and left in place,
 * writers' temporary names are skipped, and what happened after a pass began is judged by the
 * next pass, not this one.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { JobQueue } from "../../src/engine/JobQueue.js"
import * as Inventory from "../../src/lifecycle/Inventory.js"
import { queueName } from "../../src/lifecycle/Stage.js"
import { locationNamed, runSitesUntil, topologyFrom } from "./ArchiveWorld.js"
import { archivedPackages, archiveRoot, copyAt, findingEvents, statusOf } from "./AuditWorld.js"
import { layer, observatory, policyLayer, syncTopology, tempDir } from "./LifecycleWorld.js"

/** Writes a file under a root, its modification time an hour ago (written well before any pass). */
const plant = (root: string, key: string, bytes: string, age = 3_600_000) =>
  Effect.promise(async () => {
    const file = path.join(root, key)
    await fs.mkdir(path.dirname(file), { recursive: true })
    await fs.writeFile(file, bytes)
    const then = new Date(Date.now() - age)
    await fs.utimes(file, then, then)
  })

const exists = (file: string) => Effect.promise(() => fs.stat(file).then(() => true, () => false))

/** The unresolved dark objects of a location. */
const darkAt = (location: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ path: string; sizeBytes: number }>`
      select d.path, d.size_bytes from dark_object d join data_location l on l.id = d.data_location_id
      where l.name = ${location} and d.resolved_at is null order by d.path`)

const inventoryRow = (location: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (
      sql
    ) => sql<
      { objectsSeen: number; lastPassCompletedAt: Date | null; passStartedAt: Date | null; darkFound: number; missingFound: number }
    >`
      select i.objects_seen::int as objects_seen, i.last_pass_completed_at, i.pass_started_at, i.dark_found::int as dark_found,
             i.missing_found::int as missing_found
      from location_inventory i join data_location l on l.id = i.data_location_id where l.name = ${location}`
  ).pipe(Effect.map((rows) => rows[0]))

/** Runs cologne's inventory stage (two keys a page) until a location's pass completed after `since`. */
const passCompletes = (location: string, since: Date) =>
  runSitesUntil(
    [["cologne", [Inventory.makeStage({ pageSize: 2 })]]],
    Effect.map(
      inventoryRow(location),
      (r) => r?.lastPassCompletedAt != null && r.lastPassCompletedAt >= since && r.lastPassCompletedAt >= r.passStartedAt!
    )
  )

/** Makes a location's last pass look `hours` old, so the planner opens the next. */
const lastPassHoursAgo = (location: string, hours: number) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`update location_inventory set last_pass_completed_at = now() - make_interval(hours => ${hours}),
          pass_started_at = now() - make_interval(hours => ${hours + 1})
        where data_location_id = (select id from data_location where name = ${location})`
  )

describe("Inventory", () => {
  it.scopedLive(
    "over several pages: a deleted object becomes MISSING, a planted one is dark and stays, temporary names are skipped",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyFrom(dir)
        yield* syncTopology(topology)
        yield* Effect.gen(function* () {
          const pkgs = yield* archivedPackages(topology, yield* observatory, [5000, 5000, 5000, 5000])
          const root = archiveRoot(dir)
          const gone = yield* copyAt("cologne-archive", pkgs[1].packageId)
          yield* Effect.promise(() => fs.rm(path.join(root, gone.path)))
          yield* plant(root, "planted/stray.bin", "nobody recorded me")
          yield* plant(root, ".ccat-partial/resume.tar", "rsync's resume state")
          yield* plant(root, "x/.ccat-tmp-stray.bin-0a1b", "a killed writer's leftover")
          // two keys a page, one page a job: the pass crosses page and job boundaries
          const stage = Inventory.makeStage({ pageSize: 2, pagesPerJob: 1 })
          yield* runSitesUntil([["cologne", [stage]]], Effect.map(inventoryRow("cologne-archive"), (r) => r?.lastPassCompletedAt != null))
          assert.strictEqual(yield* statusOf(gone.id), "MISSING")
          const [event] = yield* findingEvents(gone.id, "MISSING")
          assert.strictEqual(event.details.by, "inventory")
          for (const p of [pkgs[0], pkgs[2], pkgs[3]]) assert.strictEqual((yield* copyAt("cologne-archive", p.packageId)).status, "PRESENT")
          assert.deepStrictEqual(yield* darkAt("cologne-archive"), [{ path: "planted/stray.bin", sizeBytes: 18 }])
          // reported, never deleted; the temporary names are the sweep's
          assert.isTrue(yield* exists(path.join(root, "planted/stray.bin")))
          assert.isTrue(yield* exists(path.join(root, ".ccat-partial/resume.tar")))
          assert.isTrue(yield* exists(path.join(root, "x/.ccat-tmp-stray.bin-0a1b")))
          const row = yield* inventoryRow("cologne-archive")
          // three packages, the planted object and rsync's resume file: listed over three pages
          assert.strictEqual(row.objectsSeen, 5)
          assert.strictEqual(row.darkFound, 1)
          assert.strictEqual(row.missingFound, 1)
          // the buffers' packages are all there and recorded: nothing found at cologne's buffer
          assert.deepStrictEqual(yield* darkAt("cologne-buffer"), [])
        }).pipe(Effect.provide(policyLayer(topology)))
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive(
    "judges only what was there and recorded before the pass began; a later pass finds it, and resolves a dark object once gone",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyFrom(dir)
        yield* syncTopology(topology)
        yield* Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const [pkg] = yield* archivedPackages(topology, yield* observatory, [5000])
          const root = archiveRoot(dir)
          const archive = yield* locationNamed("cologne-archive")
          // the planner opens the pass; the stage's workers run it once the late copy and object exist
          yield* (yield* JobQueue).ensureQueue(queueName("cologne", Inventory.name), Inventory.stage.queue)
          assert.isAbove(yield* Inventory.plan("cologne"), 0)
          const started = (yield* inventoryRow("cologne-archive")).passStartedAt
          assert.isNotNull(started)
          // after the pass began: a copy recorded with no object yet, an object written with no record yet
          const [late] = yield* sql<{ id: string }>`
          insert into physical_copy (raw_data_file_id, data_location_id, path, size_bytes, checksum, status, verified_at)
          values (${pkg.files[0].id}, ${archive.id}, 'late/recorded.bin', ${pkg.files[0].sizeBytes}, ${
            pkg.files[0].checksum
          }, 'PRESENT', now())
          returning id`
          yield* plant(root, "late/written.bin", "written just now", 0)
          yield* passCompletes("cologne-archive", started!)
          assert.strictEqual(yield* statusOf(late.id), "PRESENT")
          assert.deepStrictEqual(yield* darkAt("cologne-archive"), [])
          // the next pass: both were there before it began
          yield* lastPassHoursAgo("cologne-archive", 48)
          yield* passCompletes("cologne-archive", new Date())
          assert.strictEqual(yield* statusOf(late.id), "MISSING")
          assert.deepStrictEqual((yield* darkAt("cologne-archive")).map((d) => d.path), ["late/written.bin"])
          assert.strictEqual((yield* copyAt("cologne-archive", pkg.packageId)).status, "PRESENT")
          // an operator moves it away: the next pass resolves the finding
          yield* Effect.promise(() => fs.rm(path.join(root, "late/written.bin")))
          yield* lastPassHoursAgo("cologne-archive", 48)
          yield* passCompletes("cologne-archive", new Date())
          assert.deepStrictEqual(yield* darkAt("cologne-archive"), [])
          const [resolved] = yield* sql<
            { n: number }
          >`select count(*)::int as n from dark_object where path = 'late/written.bin' and resolved_at is not null`
          assert.strictEqual(resolved.n, 1)
        }).pipe(Effect.provide(policyLayer(topology)))
      }).pipe(Effect.provide(layer)),
    120_000
  )
})
