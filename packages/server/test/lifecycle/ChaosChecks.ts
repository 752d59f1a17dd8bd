/**
 * What the chaos test checks once the monkey stopped and cleanup ran: every package whole and in
 * two verified archive copies holding every filed file exactly once, no copy deleted before its
 * packages were archived, and disks holding exactly what the ops-db records, with what killed
 * writers left under temporary names swept.
 */
import type { Topology } from "@ccat/core"
import { Disk } from "@ccat/storage-drivers"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as path from "node:path"
import { filesUnder } from "./ChaosWorld.js"
import type { WrittenFile } from "./LifecycleWorld.js"
import { filedOnceIn, sha256File } from "./support.js"
import { catalogOf, checksumOnTape } from "./TapeWorld.js"

/** The `n` a counting query answers. */
export const count = (query: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<{ n: number }>(query)).pipe(Effect.map((r) => r[0]!.n))

/** The files of `eou` staged at PROCESSING, by relative path, with their absolute paths. */
export const stagedCopies = (root: string, requestId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ path: string; rawDataFileId: string }>`
      select c.path, c.raw_data_file_id from physical_copy c
      join staging_request r on r.data_location_id = c.data_location_id
      where r.id = ${requestId} and c.status = 'STAGED' and c.raw_data_file_id is not null`).pipe(
    Effect.map((rows) => rows.map((r) => ({ file: path.join(root, r.path), id: r.rawDataFileId })))
  )

/** A verified archive copy, with the root of its location. */
export interface ArchiveCopy {
  readonly packageId: string
  readonly location: string
  readonly technology: string
  readonly path: string
  readonly checksum: string
  readonly root: string
}

/**
 * Packages: all completed, none empty, each in two verified archive copies at its checksum, and
 * every filed file in exactly one, unpacked at its filed checksum. Returns the packages and copies.
 */
export const assertPackagesWhole = (dir: string, filed: ReadonlyArray<WrittenFile>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    assert.strictEqual(yield* count(`select count(*)::int as n from raw_data_package where status <> 'completed'`), 0)
    assert.strictEqual(
      yield* count(
        `select count(*)::int as n from raw_data_package p where not exists (select 1 from raw_data_file f where f.raw_data_package_id = p.id)`
      ),
      0,
      "no package without files (a duplicate or orphan of a killed packager)"
    )
    const packages = yield* sql<{ id: string; checksum: string; sizeBytes: number }>`
    select id, checksum, size_bytes from raw_data_package`
    const archiveCopies = yield* sql<ArchiveCopy>`
    select c.raw_data_package_id as package_id, l.name as location, l.technology::text as technology, c.path, c.checksum,
           l.driver_config->>'root' as root
    from physical_copy c join data_location l on l.id = c.data_location_id
    where l.type = 'LONG_TERM_ARCHIVE' and c.status = 'PRESENT' and c.verified_at is not null`
    const tars: Array<string> = []
    for (const p of packages) {
      const copies = archiveCopies.filter((c) => c.packageId === p.id)
      assert.deepStrictEqual(
        copies.map((c) => c.location).sort(),
        ["cologne-archive", "cologne-archive-2"],
        `package ${p.id}: two archive copies`
      )
      for (const c of copies) {
        assert.strictEqual(c.checksum, p.checksum)
        // on tape: the bytes of the tape file the catalog names, read from the volume itself
        const stored = c.technology === "tape" ? checksumOnTape(c.root, c.path) : sha256File(path.join(c.root, c.path))
        assert.strictEqual(yield* Effect.promise(() => stored), p.checksum, `${c.location}/${c.path} verifies`)
      }
      const onDisk = copies.find((c) => c.technology === "disk")!
      tars.push(path.join(onDisk.root, onDisk.path))
    }
    yield* Effect.promise(() => filedOnceIn(tars, filed, path.join(dir, "unpacked")))
    return { packages, archiveCopies }
  })

/**
 * Over the whole history: no copy outside the archives began its deletion before every package it
 * holds had been ARCHIVED, except a delivered bundle once every package in it had its own
 * verified copy beside it (arrival unpacks, then drops the tar); an archive copy left PRESENT only
 * when it was found bad and repair replaced it.
 */
export const assertNothingDeletedEarly = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const early = yield* sql<{ location: string; kind: string; fromState: string; actor: string }>`
  select l.name as location, case when c.data_transfer_package_id is not null then 'bundle'
         when c.raw_data_package_id is not null then 'package' else 'file' end as kind,
         d.from_state, d.actor
  from event_log d
  join physical_copy c on c.id = d.entity_id and d.entity_kind = 'PhysicalCopy' and d.to_state = 'DELETION_IN_PROGRESS'
  join data_location l on l.id = c.data_location_id
  join lateral (
    select c.raw_data_package_id as pkg where c.raw_data_package_id is not null
    union all select f.raw_data_package_id from raw_data_file f where f.id = c.raw_data_file_id
    union all select m.raw_data_package_id from data_transfer_package_member m where m.data_transfer_package_id = c.data_transfer_package_id
  ) held on true
  where not exists (select 1 from event_log a where a.entity_kind = 'RawDataPackage' and a.entity_id = held.pkg
                    and a.to_state = 'completed' and a.id < d.id)
    and not (c.data_transfer_package_id is not null and exists (
      select 1 from physical_copy beside where beside.data_location_id = c.data_location_id
        and beside.raw_data_package_id = held.pkg and beside.verified_at is not null and beside.created_at <= d.at))`
  assert.deepStrictEqual(early, [], "no copy was deleted before its packages were archived")
  // An archive copy leaves PRESENT only when it was found bad and repair replaced it.
  assert.strictEqual(
    yield* count(`
    select count(*)::int as n from physical_copy c join data_location l on l.id = c.data_location_id
    where l.type = 'LONG_TERM_ARCHIVE' and c.status <> 'PRESENT' and not (c.status = 'DELETED' and exists (
      select 1 from event_log e where e.entity_kind = 'PhysicalCopy' and e.entity_id = c.id
        and e.to_state = 'DELETED' and e.details->>'action' = 'repaired'))`),
    0
  )
})

/**
 * Disks: nothing under a final name but the archive copies the ops-db records (a tape catalog
 * exactly those); what killed writers left under temporary names is returned, after a sweep with
 * no age (every writer is idle now) recognised and removed every one of those files.
 */
export const assertDisksHoldTheRecords = (topology: Topology.Topology, archiveCopies: ReadonlyArray<ArchiveCopy>) =>
  Effect.gen(function* () {
    const temporary: Array<string> = []
    for (const site of topology.sites) {
      for (const loc of site.locations) {
        const root = loc.driver.root as string
        if (loc.technology === "tape") {
          // The catalog holds exactly the recorded copies (verified on the volumes above). A write
          // killed before its catalog entry leaves dead space on a volume and possibly its cache
          // file; the tape driver has no sweep for those yet (docs/storage-drivers.md).
          const keys = Object.keys(yield* Effect.promise(() => catalogOf(root))).sort()
          const recorded = archiveCopies.filter((c) => c.location === loc.name).map((c) => c.path).sort()
          assert.deepStrictEqual(keys, recorded, `${loc.name}: the tape catalog holds exactly what the ops-db records`)
          continue
        }
        const on = yield* Effect.promise(() => filesUnder(root))
        temporary.push(...on.temporary.map((t) => `${loc.name}/${t}`))
        const recorded = archiveCopies.filter((c) => c.location === loc.name).map((c) => c.path).sort()
        assert.deepStrictEqual(
          on.files,
          loc.type === "LONG_TERM_ARCHIVE" ? recorded : [],
          `${loc.name} holds exactly what the ops-db records`
        )
        const disk = yield* Disk.makeMinimal({ root })
        const swept = yield* disk.sweepTemporary!({ before: new Date(Date.now() + 60_000) })
        assert.deepStrictEqual(
          { files: swept.files, failed: swept.failed },
          { files: on.temporary.length, failed: 0 },
          `${loc.name}: the sweep took every leftover`
        )
        const after = yield* Effect.promise(() => filesUnder(root))
        assert.deepStrictEqual(
          after,
          { files: on.files, temporary: [] },
          `${loc.name}: no leftover after the sweep, every object kept`
        )
      }
    }
    return temporary
  })
