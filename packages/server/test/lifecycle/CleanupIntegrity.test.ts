/**
 * Cleanup against copies whose state changed under it: a deletion resumed after a crash is not
 * carried out once the archive copy it relied on went bad (the bytes stay), and a SOURCE file whose
 * identity moved without its bytes changing (a remount, a touch) is deleted on the strength of its
 * checksum, read again.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Cleanup from "../../src/lifecycle/Cleanup.js"
import * as CopyFindings from "../../src/lifecycle/CopyFindings.js"
import { arrivedPackage, editLocations, runSitesUntil, topologyFrom } from "./ArchiveWorld.js"
import { layer, observatory, syncTopology, tempDir } from "./LifecycleWorld.js"

const keeping = (dir: string) =>
  topologyFrom(
    dir,
    (raw) =>
      editLocations(
        raw,
        (l) => (l.type === "LONG_TERM_ARCHIVE" ? l : { ...l, retention: { minAgeSinceArchived: "0 seconds", usageThresholdPercent: 0 } })
      )
  )

const exists = (file: string) => Effect.promise(() => fs.stat(file).then(() => true, () => false))

/** A package in chile-buffer, its files at SOURCE, archived by hand at cologne-archive (as the archive stage would). */
const archivedByHand = (dir: string) =>
  Effect.gen(function* () {
    const topology = keeping(dir)
    yield* syncTopology(topology)
    const sql = yield* SqlClient.SqlClient
    const pkg = yield* arrivedPackage(topology, yield* observatory, [{ path: "a.fits", bytes: 6_000 }], ["chile-buffer"])
    const archive = path.join(dir, "locations", "cologne-archive", pkg.relativePath)
    yield* Effect.promise(async () => {
      await fs.mkdir(path.dirname(archive), { recursive: true })
      await fs.copyFile(path.join(dir, "locations", "chile-buffer", pkg.relativePath), archive)
    })
    const [copy] = yield* sql<{ id: string }>`
      insert into physical_copy (raw_data_package_id, data_location_id, path, size_bytes, checksum, status, verified_at)
      values (${pkg.packageId}, (select id from data_location where name = 'cologne-archive'), ${pkg.relativePath},
              ${pkg.sizeBytes}, ${pkg.checksum}, 'PRESENT', now()) returning id`
    return { pkg, archiveCopy: copy.id }
  })

const statusAt = (packageId: string, location: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string; status: string }>`
      select c.id, c.status::text as status from physical_copy c join data_location l on l.id = c.data_location_id
      left join raw_data_file f on f.id = c.raw_data_file_id
      where l.name = ${location} and (c.raw_data_package_id = ${packageId} or f.raw_data_package_id = ${packageId})`).pipe(
    Effect.map((rows) => rows[0])
  )

describe("cleanup and copies that changed under it", () => {
  it.scopedLive(
    "a deletion resumed after a crash is called off when the archive copy it relied on went bad; the bytes stay",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const sql = yield* SqlClient.SqlClient
        const { archiveCopy, pkg } = yield* archivedByHand(dir)
        const buffered = path.join(dir, "locations", "chile-buffer", pkg.relativePath)
        // A worker died in the middle of deleting the buffer copy; meanwhile an audit found the only archive copy bad.
        const buffer = yield* statusAt(pkg.packageId, "chile-buffer")
        yield* sql`update physical_copy set status = 'DELETION_IN_PROGRESS' where id = ${buffer.id}`
        assert.isTrue(yield* CopyFindings.mark(archiveCopy, "CORRUPT", { actor: "test", by: "audit", detail: "a byte flipped" }))
        yield* runSitesUntil(
          [["chile", [Cleanup.stage]]],
          Effect.map(statusAt(pkg.packageId, "chile-buffer"), (c) => c.status === "DELETION_FAILED" || c.status === "PRESENT")
        )
        assert.isTrue(yield* exists(buffered), "the last good bytes are still in the buffer")
        const [failed] = yield* sql<{ details: { error: string } }>`
        select details from event_log where entity_id = ${buffer.id} and to_state = 'DELETION_FAILED'`
        assert.include(failed.details.error, "no longer eligible")
        // And it goes back to PRESENT once the planner looks again; the SOURCE file stays too.
        yield* runSitesUntil(
          [["chile", [Cleanup.stage]]],
          Effect.map(statusAt(pkg.packageId, "chile-buffer"), (c) => c.status === "PRESENT")
        )
        assert.isTrue(yield* exists(pkg.files[0].absolutePath))
        assert.strictEqual((yield* statusAt(pkg.packageId, "chile-source")).status, "PRESENT")
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive(
    "a SOURCE file whose identity moved but whose bytes did not is deleted on the strength of its checksum",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const sql = yield* SqlClient.SqlClient
        const { pkg } = yield* archivedByHand(dir)
        const source = yield* statusAt(pkg.packageId, "chile-source")
        // Recorded under another identity (the volume was remounted, the file touched): same bytes.
        yield* sql`update physical_copy set identity = 'disk:1:2:6000:3:4' where id = ${source.id}`
        yield* Effect.promise(() => fs.utimes(pkg.files[0].absolutePath, new Date(), new Date()))
        yield* runSitesUntil(
          [["chile", [Cleanup.stage]]],
          Effect.map(statusAt(pkg.packageId, "chile-source"), (c) => c.status === "DELETED")
        )
        assert.isFalse(yield* exists(pkg.files[0].absolutePath))
      }).pipe(Effect.provide(layer)),
    120_000
  )
})
