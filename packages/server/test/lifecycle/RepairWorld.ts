/**
 * What the repair tests share: a package archived at two archives of Cologne with its buffer
 * copies gone, findings recorded the way an audit records them, and the checks that a repaired
 * package is back at its target of two good copies.
 */
import type { Topology } from "@ccat/core"
import { assert } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Archiving from "../../src/lifecycle/Archiving.js"
import * as CopyFindings from "../../src/lifecycle/CopyFindings.js"
import * as Repair from "../../src/lifecycle/Repair.js"
import * as Metrics from "../../src/observability/Metrics.js"
import { addLocation, arrivedPackage, runSitesUntil, topologyFrom, type ArrivedPackage } from "./ArchiveWorld.js"
import { observatory, policyLayer, syncTopology, tempDir } from "./LifecycleWorld.js"

/** A disk LONG_TERM_ARCHIVE named `name` under `dir`, kept forever. */
export const diskArchive = (dir: string, name: string, priority: number) => ({
  name,
  type: "LONG_TERM_ARCHIVE",
  technology: "disk",
  priority,
  driver: { root: path.join(dir, "locations", name) },
  retention: { keepForever: true }
})

/** Two disk archives at cologne and a policy of two archive copies. */
export const twoArchives = (dir: string) =>
  topologyFrom(dir, (raw) => ({
    ...addLocation(raw, "cologne", diskArchive(dir, "cologne-archive-2", 1)),
    policy: { ...raw.policy, archiveCopies: 2 }
  }))

/** A package's copy at an archive, as the ops-db has it. */
export interface CopyRow {
  readonly id: string
  readonly location: string
  readonly path: string
  readonly status: string
  readonly verifiedAt: Date | null
}

/** A package's copies at the archives, by location and age. */
export const archiveCopies = (packageId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<CopyRow>`
      select c.id, l.name as location, c.path, c.status::text as status, c.verified_at
      from physical_copy c join data_location l on l.id = c.data_location_id
      where c.raw_data_package_id = ${packageId} and l.type = 'LONG_TERM_ARCHIVE' order by l.name, c.created_at`)

/** The copies not DELETED. */
export const live = (rows: ReadonlyArray<CopyRow>) => rows.filter((c) => c.status !== "DELETED")

/** A package's status. */
export const packageStatus = (packageId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ status: string }>`select status::text as status from raw_data_package where id = ${packageId}`
  ).pipe(
    Effect.map((rows) => rows[0].status)
  )

/** Where an object of a disk location lies on disk. */
export const objectAt = (dir: string, location: string, key: string) => path.join(dir, "locations", location, key)

/**
 * A package archived at both cologne archives, its buffer copy cleaned up (deleted as cleanup
 * would), so the only good copies left are the archive copies.
 */
export const archivedTwice = (dir: string, topology: Topology.Topology) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* syncTopology(topology)
    const obs = yield* observatory
    const pkg = yield* arrivedPackage(topology, obs, [{ path: "det/a.fits", bytes: 50_000 }, { path: "hk.dat", bytes: 700 }])
    yield* runSitesUntil([["cologne", [Archiving.stage]]], Effect.map(packageStatus(pkg.packageId), (s) => s === "completed")).pipe(
      Effect.provide(policyLayer(topology))
    )
    yield* sql`update physical_copy set status = 'DELETED' where raw_data_package_id = ${pkg.packageId}
      and data_location_id in (select id from data_location where type = 'BUFFER')`
    for (const b of ["chile-buffer", "cologne-buffer"]) {
      yield* Effect.promise(() => fs.rm(objectAt(dir, b, pkg.relativePath), { force: true }))
    }
    return pkg
  })

/** A fresh folder with two archives at Cologne, and a package archived at both (see `archivedTwice`). */
export const archivedAtTwoArchives = Effect.gen(function* () {
  const dir = yield* tempDir
  const topology = twoArchives(dir)
  const pkg = yield* archivedTwice(dir, topology)
  return { dir, topology, pkg }
})

/** Records a finding the way an audit would. */
export const markAs = (pkg: ArrivedPackage, location: string, finding: CopyFindings.Finding) =>
  Effect.gen(function* () {
    const copy = (yield* archiveCopies(pkg.packageId)).find((c) => c.location === location && c.status === "PRESENT")!
    assert.isTrue(
      yield* CopyFindings.mark(copy.id, finding, {
        actor: "test:audit",
        by: "audit",
        detail: `${finding} at rest`,
        expectedChecksum: pkg.checksum
      })
    )
    return copy.id
  })

/** Whether every archive copy of the package is PRESENT or DELETED: repair has nothing left to do. */
export const noBadCopies = (packageId: string) =>
  Effect.map(archiveCopies(packageId), (rows) => rows.every((c) => c.status === "PRESENT" || c.status === "DELETED"))

/** The event that retired a bad copy, with what repair recorded. */
export const repairedEvent = (copyId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ fromState: string; toState: string; details: Record<string, unknown> }>`
      select from_state, to_state, details from event_log where entity_kind = 'PhysicalCopy' and entity_id = ${copyId} and to_state = 'DELETED'`)

/** The repaired package has two live, verified copies whose bytes are the package's. */
export const assertBackToTarget = (dir: string, pkg: ArrivedPackage, badId: string, badLocation: string, source: string) =>
  Effect.gen(function* () {
    const rows = yield* archiveCopies(pkg.packageId)
    const alive = live(rows)
    assert.deepStrictEqual(alive.map((c) => c.location), ["cologne-archive", "cologne-archive-2"])
    assert.isTrue(alive.every((c) => c.status === "PRESENT" && c.verifiedAt !== null))
    assert.strictEqual(rows.find((c) => c.id === badId)!.status, "DELETED")
    const replacement = alive.find((c) => c.location === badLocation)!
    const [event] = yield* repairedEvent(badId)
    assert.deepStrictEqual(event.details, { action: "repaired", replacement: replacement.id, source })
    const a = yield* Effect.promise(() => fs.readFile(objectAt(dir, "cologne-archive", pkg.relativePath)))
    const b = yield* Effect.promise(() => fs.readFile(objectAt(dir, "cologne-archive-2", pkg.relativePath)))
    assert.isTrue(a.equals(b))
    assert.strictEqual(a.length, pkg.sizeBytes)
    assert.strictEqual(yield* packageStatus(pkg.packageId), "completed")
    assert.deepStrictEqual(yield* Repair.belowTarget(2), [])
  })

/** Cologne's repair stage, as the sites to run. */
export const cologne = [["cologne", [Repair.stage]]] as const

/** A sample's value in the collected metrics, as a scraper would read it. */
export const metric = (topology: Topology.Topology, name: string, labels: Readonly<Record<string, string>> = {}) =>
  Effect.gen(function* () {
    const collector = yield* Metrics.make({ cacheFor: 0 }).pipe(Effect.provide(policyLayer(topology)))
    const families = yield* collector.collect
    const samples = families.find((f) => f.name === name)?.samples ?? []
    return samples.find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v))?.value
  })
