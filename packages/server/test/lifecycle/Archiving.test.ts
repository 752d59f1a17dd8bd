import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Archiving from "../../src/lifecycle/Archiving.js"
import { addLocation, arrivedPackage, quickRetries, runSitesFor, runSitesUntil, topologyFrom } from "./ArchiveWorld.js"
import { layer, observatory, policyLayer, syncTopology, tempDir } from "./LifecycleWorld.js"

const archiveCopies = (packageId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ location: string; path: string; status: string; verifiedAt: Date | null; checksum: string }>`
      select l.name as location, c.path, c.status::text as status, c.verified_at, c.checksum
      from physical_copy c join data_location l on l.id = c.data_location_id
      where c.raw_data_package_id = ${packageId} and l.type = 'LONG_TERM_ARCHIVE' order by l.name`
  )

const packageStatus = (packageId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ status: string }>`select status::text as status from raw_data_package where id = ${packageId}`
  ).pipe(
    Effect.map((rows) => rows[0].status)
  )

describe("Archiving", () => {
  it.scopedLive(
    "copies a package from the cologne buffer to the archive, verifies it and marks it ARCHIVED",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyFrom(dir)
        yield* syncTopology(topology)
        const obs = yield* observatory
        const pkg = yield* arrivedPackage(topology, obs, [{ path: "det/a.fits", bytes: 40_000 }, { path: "hk/b.dat", bytes: 3_000 }])
        yield* runSitesUntil([["cologne", [Archiving.stage]]], Effect.map(packageStatus(pkg.packageId), (s) => s === "completed")).pipe(
          Effect.provide(policyLayer(topology))
        )
        const copies = yield* archiveCopies(pkg.packageId)
        assert.strictEqual(copies.length, 1)
        assert.strictEqual(copies[0].location, "cologne-archive")
        assert.strictEqual(copies[0].status, "PRESENT")
        assert.isNotNull(copies[0].verifiedAt)
        assert.strictEqual(copies[0].checksum, pkg.checksum)
        const buffered = yield* Effect.promise(() => fs.readFile(path.join(dir, "locations", "cologne-buffer", pkg.relativePath)))
        const archived = yield* Effect.promise(() => fs.readFile(path.join(dir, "locations", "cologne-archive", copies[0].path)))
        assert.isTrue(buffered.equals(archived))
        // The event log shows the package's move to completed (ARCHIVED), by the cologne worker.
        const sql = yield* SqlClient.SqlClient
        const events = yield* sql<{ toState: string; actor: string }>`
        select to_state, actor from event_log where entity_kind = 'RawDataPackage' and entity_id = ${pkg.packageId} order by id`
        assert.deepStrictEqual(events.at(-1), { toState: "completed", actor: "worker:cologne" })
        // Chile has no archive: its planner finds nothing.
        assert.strictEqual(yield* Archiving.plan("chile").pipe(Effect.provide(policyLayer(topology))), 0)
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive("with archiveCopies 2 and two archives, spreads the copies over both", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const topology = topologyFrom(dir, (raw) => ({
        ...addLocation(raw, "cologne", {
          name: "cologne-archive-2",
          type: "LONG_TERM_ARCHIVE",
          technology: "disk",
          priority: 1,
          driver: { root: path.join(dir, "locations", "cologne-archive-2") },
          retention: { keepForever: true }
        }),
        policy: { ...raw.policy, archiveCopies: 2 }
      }))
      yield* syncTopology(topology)
      const obs = yield* observatory
      const pkg = yield* arrivedPackage(topology, obs, [{ path: "a.fits", bytes: 20_000 }])
      yield* runSitesUntil([["cologne", [Archiving.stage]]], Effect.map(packageStatus(pkg.packageId), (s) => s === "completed")).pipe(
        Effect.provide(policyLayer(topology))
      )
      const copies = yield* archiveCopies(pkg.packageId)
      assert.deepStrictEqual(copies.map((c) => c.location), ["cologne-archive", "cologne-archive-2"])
      assert.isTrue(copies.every((c) => c.status === "PRESENT" && c.verifiedAt !== null))
      for (const c of copies) {
        const bytes = yield* Effect.promise(() => fs.readFile(path.join(dir, "locations", c.location, c.path)))
        assert.isTrue(
          bytes.equals(yield* Effect.promise(() => fs.readFile(path.join(dir, "locations", "cologne-buffer", pkg.relativePath))))
        )
      }
    }).pipe(Effect.provide(layer)), 120_000)

  it.scopedLive("waits while the archive is not writable or its storage fails, and resumes when it returns", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const topology = topologyFrom(dir)
      yield* syncTopology(topology)
      const sql = yield* SqlClient.SqlClient
      const obs = yield* observatory
      const first = yield* arrivedPackage(topology, obs, [{ path: "a.fits", bytes: 10_000 }])
      const stages = [["cologne", [quickRetries(Archiving.stage)]]] as const
      // Marked not writable (maintenance): no work is planned, nothing is archived.
      yield* sql`update data_location set writable = false where name = 'cologne-archive'`
      yield* runSitesFor(stages, 1500).pipe(Effect.provide(policyLayer(topology)))
      assert.strictEqual(yield* packageStatus(first.packageId), "in_progress")
      assert.strictEqual((yield* archiveCopies(first.packageId)).length, 0)
      yield* sql`update data_location set writable = true where name = 'cologne-archive'`
      yield* runSitesUntil(stages, Effect.map(packageStatus(first.packageId), (s) => s === "completed")).pipe(
        Effect.provide(policyLayer(topology))
      )
      // The storage itself fails (an immutable folder refuses every write, even root's).
      const second = yield* arrivedPackage(topology, obs, [{ path: "b.fits", bytes: 10_000 }])
      const root = path.join(dir, "locations", "cologne-archive")
      yield* Effect.acquireRelease(
        Effect.sync(() => execFileSync("chattr", ["+i", root])),
        () => Effect.ignore(Effect.try(() => execFileSync("chattr", ["-i", root])))
      )
      yield* runSitesFor(stages, 2500).pipe(Effect.provide(policyLayer(topology)))
      assert.strictEqual(yield* packageStatus(second.packageId), "in_progress")
      assert.strictEqual((yield* archiveCopies(second.packageId)).length, 0)
      yield* Effect.sync(() => execFileSync("chattr", ["-i", root]))
      yield* runSitesUntil(stages, Effect.map(packageStatus(second.packageId), (s) => s === "completed")).pipe(
        Effect.provide(policyLayer(topology))
      )
      assert.strictEqual((yield* archiveCopies(second.packageId))[0].status, "PRESENT")
    }).pipe(Effect.provide(layer)), 120_000)

  it.scopedLive("a retry after a crash between the write and its record records the stored object once", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const topology = topologyFrom(dir)
      yield* syncTopology(topology)
      const obs = yield* observatory
      const pkg = yield* arrivedPackage(topology, obs, [{ path: "a.fits", bytes: 12_000 }])
      // A worker wrote the archive object and died before its transaction.
      const archived = path.join(dir, "locations", "cologne-archive", pkg.relativePath)
      yield* Effect.promise(async () => {
        await fs.mkdir(path.dirname(archived), { recursive: true })
        await fs.copyFile(path.join(dir, "locations", "cologne-buffer", pkg.relativePath), archived)
      })
      // The job runs again, and once more (a duplicate delivery): one copy, one completion.
      yield* Archiving.work("cologne", { packageId: pkg.packageId }).pipe(Effect.provide(policyLayer(topology)))
      yield* Archiving.work("cologne", { packageId: pkg.packageId }).pipe(Effect.provide(policyLayer(topology)))
      const copies = yield* archiveCopies(pkg.packageId)
      assert.deepStrictEqual(copies.map((c) => [c.location, c.status]), [["cologne-archive", "PRESENT"]])
      assert.strictEqual(yield* packageStatus(pkg.packageId), "completed")
      const sql = yield* SqlClient.SqlClient
      const completions = yield* sql<{ n: number }>`
        select count(*)::int as n from event_log where entity_kind = 'RawDataPackage' and entity_id = ${pkg.packageId} and to_state = 'completed'`
      assert.strictEqual(completions[0].n, 1)
      const buffered = yield* Effect.promise(() => fs.readFile(path.join(dir, "locations", "cologne-buffer", pkg.relativePath)))
      assert.isTrue(buffered.equals(yield* Effect.promise(() => fs.readFile(archived))))
    }).pipe(Effect.provide(layer)), 120_000)
})
