import { Ids, Repositories } from "@ccat/core"
import { Drivers, Tape, TapeLocation, VirtualTapeLibrary } from "@ccat/storage-drivers"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Archiving from "../../src/lifecycle/Archiving.js"
import * as Cleanup from "../../src/lifecycle/Cleanup.js"
import * as Staging from "../../src/lifecycle/Staging.js"
import * as Storages from "../../src/lifecycle/Storages.js"
import {
  arrivedPackage,
  editLocations,
  locationNamed,
  quickRetries,
  runSitesFor,
  runSitesUntil,
  topologyFrom,
  type ArrivedPackage
} from "./ArchiveWorld.js"
import { layer, observatory, policyLayer, syncTopology, tempDir } from "./LifecycleWorld.js"
import { sha256File } from "./support.js"

/** A scientist's request for a package or a whole observation, as the API would store it. */
const request = (item: { readonly rawDataPackageId?: string; readonly executedObsUnitId?: string }) =>
  Effect.gen(function* () {
    const account = yield* Repositories.accounts.insert({
      name: `sci-${randomBytes(3).toString("hex")}` as never,
      displayName: "Scientist" as never,
      email: null,
      role: "scientist",
      active: true
    })
    const processing = yield* locationNamed("cologne-processing")
    const req = yield* Repositories.stagingRequests.insert({
      accountId: account.id,
      dataLocationId: processing.id as Ids.DataLocationId,
      status: "pending",
      expiresAt: null,
      errorMessage: null
    } as never)
    yield* Repositories.stagingRequestItems.insert({
      stagingRequestId: req.id,
      rawDataPackageId: (item.rawDataPackageId ?? null) as Ids.RawDataPackageId | null,
      executedObsUnitId: (item.executedObsUnitId ?? null) as Ids.ExecutedObsUnitId | null
    })
    return req.id
  })

const requestRow = (id: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<{ status: string; expiresAt: Date | null }>`select status::text as status, expires_at from staging_request where id = ${id}`
  ).pipe(Effect.map((rows) => rows[0]))

const stagedCopies = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string; status: string; verifiedAt: Date | null }>`
    select c.id, c.status::text as status, c.verified_at from physical_copy c join data_location l on l.id = c.data_location_id
    where l.name = 'cologne-processing' order by c.path`)

/**
 * Every staged file is byte-identical to the filed one (same checksum as the instrument's), in the
 * store and where the request hands it out: its own folder, `<program>/<request id>/<observation>/...`.
 */
const assertStaged = (paths: ReadonlyArray<string>, pkg: ArrivedPackage, processingRoot: string) =>
  Effect.gen(function* () {
    assert.strictEqual(paths.length, pkg.files.length)
    for (const f of pkg.files) {
      const stored = path.join(processingRoot, Staging.stagedKey(pkg.eou.id, f.relativePath))
      assert.strictEqual(yield* Effect.promise(() => sha256File(stored)), f.checksum)
      const handedOut = paths.find((p) => p.startsWith(`${processingRoot}/`) && p.endsWith(`/${pkg.eou.id}/${f.relativePath}`))
      assert.isDefined(handedOut, f.relativePath)
      assert.strictEqual(yield* Effect.promise(() => sha256File(handedOut!)), f.checksum)
    }
  })

const archived = (packageId: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ status: string }>`select status::text as status from raw_data_package where id = ${packageId}`
  ).pipe(
    Effect.map((rows) => rows[0].status === "completed")
  )

describe("Staging", () => {
  it.scopedLive(
    "stages archived files byte-identical into PROCESSING, reuses them for a second request, and cleans them once expired",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyFrom(dir)
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        const obs = yield* observatory
        const pkg = yield* arrivedPackage(topology, obs, [
          { path: "det/a.fits", bytes: 30_000 },
          { path: "det/deep/b.fits", bytes: 7_000 },
          { path: "hk.dat", bytes: 100 }
        ])
        // The request comes before the package is archived: it waits (its job retried) and then completes.
        const cologne = [["cologne", [Archiving.stage, quickRetries(Staging.stage)]]] as const
        const first = yield* request({ rawDataPackageId: pkg.packageId })
        yield* runSitesUntil(cologne, Effect.map(requestRow(first), (r) => r.status === "completed")).pipe(
          Effect.provide(policyLayer(topology))
        )
        const row = yield* requestRow(first)
        const lifetime = topology.policy.stagingLifetime
        assert.isTrue(Math.abs(row.expiresAt!.getTime() - (Date.now() + lifetime)) < 60_000)
        const copies = yield* stagedCopies
        assert.strictEqual(copies.length, 3)
        assert.isTrue(copies.every((c) => c.status === "STAGED" && c.verifiedAt !== null))
        // Each staged copy's creation is an event naming the request that staged it.
        const created = yield* sql<{ requestId: string }>`
        select details->>'requestId' as request_id from event_log
        where entity_kind = 'PhysicalCopy' and entity_id in ${
          sql.in(copies.map((c) => c.id))
        } and from_state is null and to_state = 'STAGED'`
        assert.deepStrictEqual(created.map((e) => e.requestId), copies.map(() => first))
        const processingRoot = path.join(dir, "locations", "cologne-processing")
        yield* assertStaged(yield* Staging.stagedPaths(first), pkg, processingRoot)
        // A second request for the whole observation reuses the staged files: same copies, nothing unpacked.
        const second = yield* request({ executedObsUnitId: pkg.eou.id })
        yield* runSitesUntil(cologne, Effect.map(requestRow(second), (r) => r.status === "completed")).pipe(
          Effect.provide(policyLayer(topology))
        )
        assert.deepStrictEqual((yield* stagedCopies).map((c) => c.id), copies.map((c) => c.id))
        const [done] = yield* sql<{ details: { reused: number } }>`
        select details from event_log where entity_kind = 'StagingRequest' and entity_id = ${second} and to_state = 'completed'`
        assert.strictEqual(done.details.reused, 3)
        yield* assertStaged(yield* Staging.stagedPaths(second), pkg, processingRoot)
        // A staged file deleted by hand and recorded MISSING (as an inventory pass records it): the
        // next request stages it again from the archive and the MISSING row is replaced, not waited on.
        const gone = path.join(processingRoot, Staging.stagedKey(pkg.eou.id, pkg.files[0]!.relativePath))
        yield* Effect.promise(() => fs.rm(gone))
        const [goneCopy] = yield* sql<{ id: string }>`
        update physical_copy set status = 'MISSING' where raw_data_file_id = ${pkg.files[0]!.id}
          and data_location_id = (select id from data_location where name = 'cologne-processing') returning id`
        const third = yield* request({ rawDataPackageId: pkg.packageId })
        yield* runSitesUntil(cologne, Effect.map(requestRow(third), (r) => r.status === "completed")).pipe(
          Effect.provide(policyLayer(topology))
        )
        yield* assertStaged(yield* Staging.stagedPaths(third), pkg, processingRoot)
        const [replaced] = yield* sql<{ status: string; details: { action: string; by: string } }>`
        select c.status::text as status, e.details from physical_copy c join event_log e on e.entity_id = c.id and e.to_state = 'DELETED'
        where c.id = ${goneCopy!.id}`
        assert.deepStrictEqual([replaced!.status, replaced!.details.action, replaced!.details.by], ["DELETED", "replaced", "staging"])
        yield* sql`update staging_request set expires_at = now() - interval '1 second' where id = ${third}`
        // The first request expires; the second still needs the files: cleanup keeps them.
        yield* sql`update staging_request set expires_at = now() - interval '1 second' where id = ${first}`
        yield* runSitesFor([["cologne", [Cleanup.stage]]], 1500)
        assert.isTrue((yield* stagedCopies).every((c) => c.status === "STAGED" || c.id === goneCopy!.id))
        // Both expired: the staged copies are deleted; the archive copy stays.
        yield* sql`update staging_request set expires_at = now() - interval '1 second' where id = ${second}`
        yield* runSitesUntil([["cologne", [Cleanup.stage]]], Effect.map(stagedCopies, (cs) => cs.every((c) => c.status === "DELETED")))
        for (const p of yield* Effect.promise(() => fs.readdir(processingRoot, { recursive: true }))) {
          assert.isFalse((yield* Effect.promise(() => fs.stat(path.join(processingRoot, p)))).isFile(), p)
        }
        assert.isTrue(yield* archived(pkg.packageId))
        assert.deepStrictEqual(yield* Staging.stagedPaths(second), [])
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive("stages from a tape archive, recalling the packages first", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const library = yield* VirtualTapeLibrary.make({ root: path.join(dir, "library"), volumes: 2, capacityBytes: 64 * 1024 * 1024 })
      const tape = yield* Tape.make({ root: path.join(dir, "locations", "cologne-archive"), library, keepOnline: false })
      const storages = yield* Storages.make([...Drivers.builtIn, { ...TapeLocation.driver, make: () => Effect.succeed(tape) }])
      yield* Effect.gen(function* () {
        const topology = topologyFrom(dir, (raw) =>
          editLocations(raw, (l) => (l.type === "LONG_TERM_ARCHIVE"
            ? { ...l, technology: "tape", driver: { ...(l.driver as object), library: "virtual" } }
            : l)))
        yield* syncTopology(topology)
        const obs = yield* observatory
        const pkg = yield* arrivedPackage(topology, obs, [{ path: "a.fits", bytes: 20_000 }, { path: "b/c.fits", bytes: 5_000 }])
        yield* runSitesUntil([["cologne", [Archiving.stage]]], archived(pkg.packageId)).pipe(Effect.provide(policyLayer(topology)))
        // The package is on tape only now; staging recalls it.
        const before = (yield* tape.catalog)[pkg.relativePath]
        assert.isDefined(before)
        const readsBefore = (yield* library.events).filter((e) => e._tag === "Read").length
        const req = yield* request({ rawDataPackageId: pkg.packageId })
        yield* runSitesUntil([["cologne", [Staging.stage]]], Effect.map(requestRow(req), (r) => r.status === "completed")).pipe(
          Effect.provide(policyLayer(topology))
        )
        yield* assertStaged(yield* Staging.stagedPaths(req), pkg, path.join(dir, "locations", "cologne-processing"))
        // The package came off tape: the library read its tape file.
        const reads = (yield* library.events).filter((e) => e._tag === "Read")
        assert.isAbove(reads.length, readsBefore)
        assert.isTrue(reads.slice(readsBefore).some((e) => e.volume === before!.volume && e.fileNumber === before!.fileNumber))
      }).pipe(Effect.provideService(Storages.Storages, storages))
    }).pipe(Effect.provide(layer)), 120_000)
})
