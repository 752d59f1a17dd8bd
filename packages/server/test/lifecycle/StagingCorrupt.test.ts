/**
 * Staging from archive copies that went bad at rest (DESIGN §4 invariant 8): a byte flipped in an
 * archived package, or the archived object deleted, behind the platform's back. The copy staging
 * reads is recorded CORRUPT or MISSING (by staging), staging reads another good copy and hands
 * out the filed bytes; with no good copy left the request fails with a reason naming the finding.
 */
import { Ids, Repositories } from "@ccat/core"
import { Drivers, Tape, TapeLocation, VirtualTapeLibrary } from "@ccat/storage-drivers"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Archiving from "../../src/lifecycle/Archiving.js"
import * as CopyFindings from "../../src/lifecycle/CopyFindings.js"
import * as Retention from "../../src/lifecycle/Retention.js"
import * as Staging from "../../src/lifecycle/Staging.js"
import * as Storages from "../../src/lifecycle/Storages.js"
import {
  addLocation,
  arrivedPackage,
  editLocations,
  quickRetries,
  runSitesUntil,
  topologyFrom,
  type ArrivedPackage
} from "./ArchiveWorld.js"
import { layer, observatory, policyLayer, syncTopology, tempDir } from "./LifecycleWorld.js"
import { sha256File } from "./support.js"

/** The demo topology with a second disk archive at Cologne (read after the first) and two copies required. */
const twoArchives = (dir: string) =>
  topologyFrom(dir, (raw) => ({
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

/** A scientist's request for one package into cologne-processing, as the API would store it. */
const request = (packageId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const account = yield* Repositories.accounts.insert({
      name: `sci-${randomBytes(3).toString("hex")}` as never,
      displayName: "Scientist" as never,
      email: null,
      role: "scientist",
      active: true
    })
    const [processing] = yield* sql<{ id: string }>`select id from data_location where name = 'cologne-processing'`
    const req = yield* Repositories.stagingRequests.insert({
      accountId: account.id,
      dataLocationId: processing.id as Ids.DataLocationId,
      status: "pending",
      expiresAt: null,
      errorMessage: null
    } as never)
    yield* Repositories.stagingRequestItems.insert({
      stagingRequestId: req.id,
      rawDataPackageId: packageId as Ids.RawDataPackageId,
      executedObsUnitId: null
    })
    return req.id
  })

const requestRow = (id: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<
        { status: string; errorMessage: string | null }
      >`select status::text as status, error_message from staging_request where id = ${id}`
  ).pipe(Effect.map((rows) => rows[0]))

/** The request ended (completed or failed): a wait bounded by runSitesUntil's timeout, never a fixed sleep. */
const settled = (id: string) => Effect.map(requestRow(id), (r) => r.status === "completed" || r.status === "failed")

/** The package's archive copies, by location. */
const archiveCopies = (packageId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string; location: string; path: string; status: string }>`
      select c.id, l.name as location, c.path, c.status::text as status from physical_copy c
      join data_location l on l.id = c.data_location_id
      where c.raw_data_package_id = ${packageId} and l.type = 'LONG_TERM_ARCHIVE' order by l.priority, l.name`)

/** The events that moved a copy to `to`. */
const findings = (copyId: string, to: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ actor: string; details: { by?: string; detail?: string; expectedChecksum?: string; actualChecksum?: string } }>`
      select actor, details from event_log where entity_kind = 'PhysicalCopy' and entity_id = ${copyId} and to_state = ${to}`
  )

const packageRow = (packageId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<
        { status: string; errorMessage: string | null }
      >`select status::text as status, error_message from raw_data_package where id = ${packageId}`
  ).pipe(Effect.map((rows) => rows[0]))

/** Flips the byte in the middle of a file in place, behind the platform's back. */
const flipMiddle = (file: string) =>
  Effect.promise(async () => {
    const bytes = await fs.readFile(file)
    bytes[Math.floor(bytes.length / 2)] ^= 0xff
    await fs.writeFile(file, bytes)
  })

/** Files a package and archives it at Cologne (through the archiving stage). */
const archivedPackage = (topology: ReturnType<typeof topologyFrom>) =>
  Effect.gen(function* () {
    yield* syncTopology(topology)
    const obs = yield* observatory
    const pkg = yield* arrivedPackage(topology, obs, [{ path: "det/a.fits", bytes: 200_000 }, { path: "hk.dat", bytes: 3_000 }])
    yield* runSitesUntil([["cologne", [Archiving.stage]]], Effect.map(packageRow(pkg.packageId), (p) => p.status === "completed")).pipe(
      Effect.provide(policyLayer(topology))
    )
    return pkg
  })

/** Runs staging at Cologne until the request completed or failed (at most 60 s). */
const stage = (topology: ReturnType<typeof topologyFrom>, requestId: string) =>
  runSitesUntil([["cologne", [quickRetries(Staging.stage)]]], settled(requestId), 60_000).pipe(Effect.provide(policyLayer(topology)))

/** Every staged file is byte-identical to the filed one, in the store and in the request's own folder. */
const assertStaged = (dir: string, requestId: string, pkg: ArrivedPackage) =>
  Effect.gen(function* () {
    const paths = yield* Staging.stagedPaths(requestId)
    assert.strictEqual(paths.length, pkg.files.length)
    for (const f of pkg.files) {
      const staged = path.join(dir, "locations", "cologne-processing", Staging.stagedKey(pkg.eou.id, f.relativePath))
      assert.strictEqual(yield* Effect.promise(() => sha256File(staged)), f.checksum)
      const handedOut = paths.find((p) => p.endsWith(`/${requestId}/${pkg.eou.id}/${f.relativePath}`))
      assert.isDefined(handedOut, f.relativePath)
      assert.strictEqual(yield* Effect.promise(() => sha256File(handedOut!)), f.checksum)
    }
  })

// Each case has its own ops-db, folders and workers and spends most of its time waiting on them,
// so the cases run side by side.
describe.concurrent("Staging from a bad archive copy", () => {
  it.scopedLive(
    "a byte flipped in the first archive copy: the copy becomes CORRUPT and staging reads the second",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = twoArchives(dir)
        const pkg = yield* archivedPackage(topology)
        const [first, second] = yield* archiveCopies(pkg.packageId)
        assert.deepStrictEqual([first.location, second.location], ["cologne-archive", "cologne-archive-2"])
        yield* flipMiddle(path.join(dir, "locations", first.location, first.path))
        const req = yield* request(pkg.packageId)
        yield* stage(topology, req)
        assert.deepStrictEqual(yield* requestRow(req), { status: "completed", errorMessage: null })
        yield* assertStaged(dir, req, pkg)
        assert.deepStrictEqual((yield* archiveCopies(pkg.packageId)).map((c) => c.status), ["CORRUPT", "PRESENT"])
        const [event] = yield* findings(first.id, "CORRUPT")
        assert.strictEqual(event.details.by, "staging")
        assert.strictEqual(event.actor, "worker:cologne")
        assert.strictEqual(event.details.expectedChecksum, pkg.checksum)
        assert.include(event.details.detail, "checksum mismatch")
        assert.notStrictEqual(event.details.actualChecksum, pkg.checksum)
        assert.isNull((yield* packageRow(pkg.packageId)).errorMessage)
      }).pipe(Effect.provide(layer)),
    150_000
  )

  it.scopedLive(
    "the only archive copy flipped: the request fails with a reason naming the corruption, and so does the next one",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyFrom(dir)
        const pkg = yield* archivedPackage(topology)
        const [copy] = yield* archiveCopies(pkg.packageId)
        yield* flipMiddle(path.join(dir, "locations", copy.location, copy.path))
        const req = yield* request(pkg.packageId)
        yield* stage(topology, req)
        const row = yield* requestRow(req)
        assert.strictEqual(row.status, "failed")
        assert.include(row.errorMessage, `package ${pkg.packageId} has no good archive copy left`)
        assert.include(row.errorMessage, "copy at cologne-archive CORRUPT (checksum mismatch: expected")
        assert.strictEqual((yield* archiveCopies(pkg.packageId))[0].status, "CORRUPT")
        assert.strictEqual((yield* findings(copy.id, "CORRUPT"))[0].details.by, "staging")
        // The package says why it cannot be staged; its journey stays ARCHIVED (its bytes were).
        const p = yield* packageRow(pkg.packageId)
        assert.strictEqual(p.status, "completed")
        assert.strictEqual(p.errorMessage, row.errorMessage)
        // Nothing was left at PROCESSING under the package's names.
        for (const f of pkg.files) {
          const staged = path.join(dir, "locations", "cologne-processing", Staging.stagedKey(pkg.eou.id, f.relativePath))
          assert.isFalse(yield* Effect.promise(() => fs.stat(staged).then(() => true, () => false)))
        }
        // A later request finds no good copy and fails at once, with the same reason, reading nothing.
        const again = yield* request(pkg.packageId)
        yield* stage(topology, again)
        assert.deepStrictEqual(yield* requestRow(again), { status: "failed", errorMessage: row.errorMessage })
        // Repaired (the archived bytes put back from the buffer, the copy found good again): staging
        // serves the package and its note goes.
        yield* Effect.promise(() =>
          fs.copyFile(
            path.join(dir, "locations", "cologne-buffer", pkg.relativePath),
            path.join(dir, "locations", copy.location, copy.path)
          )
        )
        assert.isTrue(yield* CopyFindings.restore(copy.id, "PRESENT", { actor: "test", by: "repair", detail: "written again" }))
        const repaired = yield* request(pkg.packageId)
        yield* stage(topology, repaired)
        assert.strictEqual((yield* requestRow(repaired)).status, "completed")
        yield* assertStaged(dir, repaired, pkg)
        assert.isNull((yield* packageRow(pkg.packageId)).errorMessage)
      }).pipe(Effect.provide(layer)),
    150_000
  )

  it.scopedLive(
    "an archived object deleted behind the platform's back becomes MISSING; staging reads the other copy, then fails once both are gone",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = twoArchives(dir)
        const pkg = yield* archivedPackage(topology)
        const [first, second] = yield* archiveCopies(pkg.packageId)
        yield* Effect.promise(() => fs.rm(path.join(dir, "locations", first.location, first.path)))
        const req = yield* request(pkg.packageId)
        yield* stage(topology, req)
        assert.strictEqual((yield* requestRow(req)).status, "completed")
        yield* assertStaged(dir, req, pkg)
        assert.deepStrictEqual((yield* archiveCopies(pkg.packageId)).map((c) => c.status), ["MISSING", "PRESENT"])
        assert.strictEqual((yield* findings(first.id, "MISSING"))[0].details.by, "staging")
        // The second goes too; the staged files counted as gone (as cleanup leaves them): a new request fails naming both.
        yield* Effect.promise(() => fs.rm(path.join(dir, "locations", second.location, second.path)))
        const sql = yield* SqlClient.SqlClient
        yield* sql`update physical_copy set status = 'DELETED' where status = 'STAGED'`
        const again = yield* request(pkg.packageId)
        yield* stage(topology, again)
        const row = yield* requestRow(again)
        assert.strictEqual(row.status, "failed")
        assert.include(row.errorMessage, "copy at cologne-archive MISSING")
        assert.include(row.errorMessage, "copy at cologne-archive-2 MISSING")
      }).pipe(Effect.provide(layer)),
    150_000
  )

  it.scopedLive(
    "a byte flipped on the tape volume: the tape copy becomes CORRUPT and the request fails with the reason",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const libraryRoot = path.join(dir, "library")
        const library = yield* VirtualTapeLibrary.make({ root: libraryRoot, volumes: 2, capacityBytes: 64 * 1024 * 1024 })
        const tape = yield* Tape.make({ root: path.join(dir, "locations", "cologne-archive"), library, keepOnline: false })
        const storages = yield* Storages.make([...Drivers.builtIn, { ...TapeLocation.driver, make: () => Effect.succeed(tape) }])
        yield* Effect.gen(function* () {
          const topology = topologyFrom(dir, (raw) =>
            editLocations(raw, (l) => (l.type === "LONG_TERM_ARCHIVE"
              ? { ...l, technology: "tape", driver: { ...(l.driver as object), library: "virtual" } }
              : l)))
          const pkg = yield* archivedPackage(topology)
          const [copy] = yield* archiveCopies(pkg.packageId)
          // Find the package's bytes on a volume (its buffer copy is what was archived) and flip one.
          const archived = yield* Effect.promise(() => fs.readFile(path.join(dir, "locations", "cologne-buffer", pkg.relativePath)))
          const probe = archived.subarray(Math.floor(archived.length / 2), Math.floor(archived.length / 2) + 64)
          let flipped = false
          for (const name of (yield* Effect.promise(() => fs.readdir(libraryRoot))).filter((n) => n.endsWith(".vol"))) {
            const volume = yield* Effect.promise(() => fs.readFile(path.join(libraryRoot, name)))
            const at = volume.indexOf(probe)
            if (at < 0) {
              continue
            }
            volume[at] ^= 0xff
            yield* Effect.promise(() => fs.writeFile(path.join(libraryRoot, name), volume))
            flipped = true
          }
          assert.isTrue(flipped, "the package's bytes are on a volume")
          const req = yield* request(pkg.packageId)
          yield* stage(topology, req)
          const row = yield* requestRow(req)
          assert.strictEqual(row.status, "failed")
          assert.include(row.errorMessage, "copy at cologne-archive CORRUPT")
          assert.strictEqual((yield* archiveCopies(pkg.packageId))[0].status, "CORRUPT")
          assert.strictEqual((yield* findings(copy.id, "CORRUPT"))[0].details.by, "staging")
        }).pipe(Effect.provideService(Storages.Storages, storages))
      }).pipe(Effect.provide(layer)),
    150_000
  )

  it.scopedLive(
    "retention does not count a CORRUPT archive copy: the buffer copy stays until the archive copy is good again",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyFrom(
          dir,
          (raw) =>
            editLocations(
              raw,
              (
                l
              ) => (l.type === "LONG_TERM_ARCHIVE"
                ? l
                : { ...l, retention: { minAgeSinceArchived: "0 seconds", usageThresholdPercent: 0 } })
            )
        )
        const pkg = yield* archivedPackage(topology)
        const [copy] = yield* archiveCopies(pkg.packageId)
        const sql = yield* SqlClient.SqlClient
        const [buffer] = yield* sql<{ id: string }>`
        select c.id from physical_copy c join data_location l on l.id = c.data_location_id
        where l.name = 'cologne-buffer' and c.raw_data_package_id = ${pkg.packageId}`
        const deletable = Effect.map(
          Retention.eligible({ copyId: buffer.id, statuses: ["PRESENT"], overThreshold: [] }),
          (rows) => rows.map((r) => r.id)
        )
        assert.deepStrictEqual(yield* deletable, [buffer.id])
        const found = { actor: "test", by: "audit", detail: "checksum mismatch" }
        assert.isTrue(yield* CopyFindings.mark(copy.id, "CORRUPT", found))
        assert.deepStrictEqual(yield* deletable, [])
        assert.isTrue(yield* CopyFindings.restore(copy.id, "PRESENT", found))
        assert.deepStrictEqual(yield* deletable, [buffer.id])
      }).pipe(Effect.provide(layer)),
    120_000
  )
})
