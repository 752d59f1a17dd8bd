/**
 * An operator's retry of a failed package, bundle or staging request, through the real HTTP API,
 * after real faults on the demo topology (real disks, real PostgreSQL, every stage running): the
 * retry is taken up by the planners and the item reaches its goal (ARCHIVED, STAGED), a retry
 * before the repair fails it again with what was found rather than leaving it pending, and a
 * retry that cannot help is refused with a 409 that says why and changes nothing.
 */
import { ApiErrors, Transitions } from "@ccat/core"
import { Fixtures } from "@ccat/core/testing"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as JobQueue from "../../src/engine/JobQueue.js"
import * as Bundling from "../../src/lifecycle/Bundling.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import * as Stages from "../../src/lifecycle/Stages.js"
import * as Staging from "../../src/lifecycle/Staging.js"
import * as Storages from "../../src/lifecycle/Storages.js"
import * as Harness from "../ApiHarness.js"
import { fileObservation, observatory, policyLayer, runUntil, syncTopology, tempDir, topologyIn } from "./LifecycleWorld.js"

/** The lifecycle world plus the real HTTP API on the same fresh ops-db. */
const layer = Layer.mergeAll(JobQueue.layer, Storages.layer()).pipe(Layer.provideMerge(Harness.layer()))

const statusOf = (table: "raw_data_package" | "data_transfer_package" | "staging_request", id: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<{ status: string; errorMessage: string | null }>`select status::text as status, error_message from ${sql(table)} where id = ${id}`
  ).pipe(Effect.map((rows) => rows[0]))

/** How many times the row went → failed (so a second failure is told from the first). */
const failures = (id: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ n: number }>`select count(*)::int as n from event_log where entity_id = ${id} and to_state = 'failed'`
  ).pipe(
    Effect.map((rows) => rows[0].n)
  )

/** The steps of a row's way, as `from→to`. */
const way = (id: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<{ fromState: string | null; toState: string }>`select from_state, to_state from event_log where entity_id = ${id} order by id`
  ).pipe(Effect.map((rows) => rows.map((r) => `${r.fromState}→${r.toState}`)))

/** A refused call's 409, with its message. */
const conflict = <A, E, R>(call: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.either(call), (r) => {
    assert.isTrue(Either.isLeft(r) && r.left instanceof ApiErrors.Conflict, "the retry is refused with a 409")
    return (Either.isLeft(r) ? (r.left as ApiErrors.Conflict).message : "") as string
  })

const everySite = [["chile", Stages.all], ["cologne", Stages.all]] as const

describe("retrying failed packages, bundles and staging requests", () => {
  it.scopedLive(
    "every file of a package corrupt at the SOURCE: FAILED; a staging request for it fails and its retry is refused while the package is failed; a retry before the repair fails the package again; after the repair the retries bring it to ARCHIVED and the request to STAGED",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const sql = yield* SqlClient.SqlClient
        const topology = topologyIn(dir)
        yield* syncTopology(topology)
        const env = policyLayer(topology)
        const obs = yield* observatory
        const { eou, files } = yield* fileObservation(topology, obs, [{ path: "det/a.fits", bytes: 40_000 }])
        const [file] = files
        const original = yield* Effect.promise(() => fs.readFile(file.absolutePath))
        const rotten = Buffer.from(original)
        rotten[1000] ^= 0x04
        yield* Effect.promise(() => fs.writeFile(file.absolutePath, rotten))
        const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))

        const packageOf = sql<{ id: string }>`
          select distinct (e.details->>'packageId') as id from event_log e where e.entity_kind = 'RawDataFile' and e.entity_id = ${file.id}
            and e.details ? 'packageId'`
        yield* runUntil([["chile", [Packaging.stage]]], Effect.map(packageOf, (r) => r.length === 1)).pipe(Effect.provide(env))
        const pkgId = (yield* packageOf)[0].id
        yield* runUntil([["chile", [Packaging.stage]]], Effect.map(statusOf("raw_data_package", pkgId), (p) => p.status === "failed")).pipe(
          Effect.provide(env)
        )
        const view = yield* operator.packages.get({ path: { id: pkgId as never } })
        assert.strictEqual(view.journey, "FAILED")
        assert.include(view.errorMessage ?? "", "det/a.fits")
        assert.strictEqual((yield* operator.files.get({ path: { id: file.id } })).state, "corrupt")

        // A scientist's request for the failed package fails, saying so; retrying it is refused while the package is failed.
        const scientist = yield* Harness.client(yield* Harness.tokenFor({ role: "scientist", programIds: [obs.program.id] }))
        const request = yield* scientist.staging.create({ payload: { location: "cologne-processing", packageIds: [pkgId as never] } })
        yield* runUntil([["cologne", [Staging.stage]]], Effect.map(statusOf("staging_request", request.id), (r) => r.status === "failed"))
          .pipe(
            Effect.provide(env)
          )
        const refused = yield* conflict(operator.operations.retry({ payload: { entity: "StagingRequest", id: request.id } }))
        assert.include(refused, pkgId)
        assert.include(refused, "still failed")
        assert.strictEqual((yield* statusOf("staging_request", request.id)).status, "failed")

        // Retried before the file is repaired: the file is checked again and the package fails again with what was found.
        const early = yield* operator.operations.retry({ payload: { entity: "RawDataPackage", id: pkgId, reason: "try again" } })
        assert.deepStrictEqual([early.from, early.to], ["failed", "pending"])
        assert.strictEqual((yield* operator.files.get({ path: { id: file.id } })).state, "filed")
        yield* runUntil([["chile", [Packaging.stage]]], Effect.map(failures(pkgId), (n) => n === 2)).pipe(Effect.provide(env))
        assert.strictEqual((yield* statusOf("raw_data_package", pkgId)).status, "failed")
        assert.include((yield* statusOf("raw_data_package", pkgId)).errorMessage ?? "", "det/a.fits")
        assert.strictEqual((yield* operator.files.get({ path: { id: file.id } })).state, "corrupt")

        // The instrument team restores the file; the operator's retry now gets the package to the archive.
        yield* Effect.promise(() => fs.writeFile(file.absolutePath, original))
        yield* operator.operations.retry({ payload: { entity: "RawDataPackage", id: pkgId, reason: "file restored from the instrument" } })
        yield* runUntil(everySite, Effect.map(statusOf("raw_data_package", pkgId), (p) => p.status === "completed"), 120_000).pipe(
          Effect.provide(env)
        )
        const archived = yield* operator.packages.get({ path: { id: pkgId as never } })
        assert.strictEqual(archived.journey, "ARCHIVED")
        assert.isNull(archived.errorMessage)
        assert.strictEqual((yield* operator.files.get({ path: { id: file.id } })).state, "packaged")
        const steps = yield* way(pkgId)
        assert.deepStrictEqual(steps.slice(steps.lastIndexOf("failed→pending")), [
          "failed→pending",
          "pending→scheduled",
          "scheduled→in_progress",
          "in_progress→completed"
        ])
        const archiveCopies = yield* sql<{ path: string; checksum: string }>`
          select c.path, c.checksum from physical_copy c join data_location l on l.id = c.data_location_id
          where c.raw_data_package_id = ${pkgId} and l.type = 'LONG_TERM_ARCHIVE' and c.status = 'PRESENT' and c.verified_at is not null`
        assert.strictEqual(archiveCopies.length, 1)

        // Now the request's retry stages the file, byte for byte what was filed.
        const again = yield* operator.operations.retry({ payload: { entity: "StagingRequest", id: request.id } })
        assert.strictEqual(again.to, "pending")
        yield* runUntil(
          [["cologne", [Staging.stage]]],
          Effect.map(statusOf("staging_request", request.id), (r) => r.status === "completed")
        ).pipe(
          Effect.provide(env)
        )
        const staged = yield* scientist.staging.files({ path: { id: request.id }, urlParams: {} })
        assert.strictEqual(staged.items.length, 1)
        assert.strictEqual(staged.items[0].key, Staging.stagedKey(eou.id, file.relativePath))
        const bytes = yield* Effect.promise(() => fs.readFile(staged.items[0].localPath!))
        assert.strictEqual(`sha256:${createHash("sha256").update(bytes).digest("hex")}`, file.checksum)
      }).pipe(Effect.provide(layer)),
    240_000
  )

  it.scopedLive(
    "a package whose buffer copy went missing before bundling: FAILED, its bundle FAILED with no packages; retrying that bundle is refused and changes nothing; a retry while the copy is missing fails the package again; once the copy is back its retry brings it to ARCHIVED",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const sql = yield* SqlClient.SqlClient
        const topology = topologyIn(dir)
        yield* syncTopology(topology)
        const env = policyLayer(topology)
        const obs = yield* observatory
        yield* fileObservation(topology, obs, [{ path: "det/a.fits", bytes: 30_000 }])
        const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
        const written = sql<{ id: string; path: string }>`
          select p.id, c.path from raw_data_package p join physical_copy c on c.raw_data_package_id = p.id where p.status = 'in_progress'`
        yield* runUntil([["chile", [Packaging.stage]]], Effect.map(written, (r) => r.length === 1)).pipe(Effect.provide(env))
        const [pkg] = yield* written
        // The buffer's disk loses the tar (an unmounted volume, an operator's mistake).
        const tar = path.join(dir, "locations", "chile-buffer", pkg.path)
        yield* Effect.promise(() => fs.rename(tar, `${tar}.aside`))
        yield* runUntil([["chile", [Bundling.stage]]], Effect.map(statusOf("raw_data_package", pkg.id), (p) => p.status === "failed")).pipe(
          Effect.provide(env)
        )
        assert.include((yield* statusOf("raw_data_package", pkg.id)).errorMessage ?? "", "Missing")
        const [bundle] = yield* sql<{ id: string; status: string; members: number }>`
          select d.id, d.status::text as status,
            (select count(*)::int from data_transfer_package_member m where m.data_transfer_package_id = d.id) as members
          from data_transfer_package d`
        assert.deepStrictEqual([bundle.status, bundle.members], ["failed", 0])

        // The empty bundle: nothing could send it, so its retry is refused, says why, and changes nothing.
        const before = yield* Harness.counts(["event_log", "data_transfer_package", "data_transfer", "raw_data_package"])
        const refused = yield* conflict(operator.operations.retry({ payload: { entity: "DataTransferPackage", id: bundle.id } }))
        assert.include(refused, "no packages left")
        assert.deepStrictEqual(yield* Harness.counts(["event_log", "data_transfer_package", "data_transfer", "raw_data_package"]), before)
        assert.strictEqual((yield* statusOf("data_transfer_package", bundle.id)).status, "failed")
        // An earlier release accepted that retry (failed → pending, nothing else): the bundling planner closes such a bundle for good, saying why.
        yield* Transitions.transition({
          entity: "DataTransferPackage",
          id: bundle.id as never,
          from: "failed",
          to: "pending",
          actor: "operator-before-upgrade"
        })
        yield* runUntil(
          [["chile", [Bundling.stage]]],
          Effect.map(statusOf("data_transfer_package", bundle.id), (b) => b.status === "failed")
        ).pipe(
          Effect.provide(env)
        )
        assert.include((yield* statusOf("data_transfer_package", bundle.id)).errorMessage ?? "", "no packages left")

        // Retried while the tar is still missing: bundled again, found missing again, FAILED again.
        yield* operator.operations.retry({ payload: { entity: "RawDataPackage", id: pkg.id } })
        yield* runUntil([["chile", [Bundling.stage]]], Effect.map(failures(pkg.id), (n) => n === 2)).pipe(Effect.provide(env))
        assert.strictEqual((yield* statusOf("raw_data_package", pkg.id)).status, "failed")

        // The volume is back: the package's retry sends it on to the archive.
        yield* Effect.promise(() => fs.rename(`${tar}.aside`, tar))
        const retried = yield* operator.operations.retry({
          payload: { entity: "RawDataPackage", id: pkg.id, reason: "buffer volume remounted" }
        })
        assert.deepStrictEqual([retried.from, retried.to], ["failed", "pending"])
        yield* runUntil(everySite, Effect.map(statusOf("raw_data_package", pkg.id), (p) => p.status === "completed"), 120_000).pipe(
          Effect.provide(env)
        )
        assert.strictEqual((yield* operator.packages.get({ path: { id: pkg.id as never } })).journey, "ARCHIVED")
        const steps = yield* way(pkg.id)
        assert.deepStrictEqual(steps.slice(steps.lastIndexOf("failed→pending")), [
          "failed→pending",
          "pending→scheduled",
          "scheduled→in_progress",
          "in_progress→completed"
        ])
        // Both empty bundles stay FAILED (each says why); the package went in a third one, which arrived.
        const bundles = yield* sql<{ status: string; members: number }>`
          select d.status::text as status,
            (select count(*)::int from data_transfer_package_member m where m.data_transfer_package_id = d.id) as members
          from data_transfer_package d order by d.created_at`
        assert.deepStrictEqual(bundles.map((b) => [b.status, b.members]), [["failed", 0], ["failed", 0], ["completed", 1]])
      }).pipe(Effect.provide(layer)),
    240_000
  )

  it.scopedLive("a package with nothing to work from (no file of its own, no copy) is refused with why, and nothing changes", () =>
    Effect.gen(function* () {
      // Not reachable through the lifecycle any more (every package is claimed with its files);
      // earlier releases' rows, or a repair by hand, can leave one.
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const eou = yield* Fixtures.executedObsUnit(world).pipe(Effect.orDie)
      const pkg = yield* Fixtures.rawDataPackage(world, eou).pipe(Effect.orDie)
      yield* Transitions.transition({
        entity: "RawDataPackage",
        id: pkg.id,
        from: "pending",
        to: "failed",
        set: { errorMessage: "lost by hand" }
      })
      const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
      const before = yield* Harness.counts(["event_log", "raw_data_package", "raw_data_file"])
      const refused = yield* conflict(operator.operations.retry({ payload: { entity: "RawDataPackage", id: pkg.id } }))
      assert.include(refused, "holds no file to package again")
      assert.deepStrictEqual(yield* Harness.counts(["event_log", "raw_data_package", "raw_data_file"]), before)
      assert.strictEqual((yield* statusOf("raw_data_package", pkg.id)).status, "failed")
    }).pipe(Effect.provide(layer)))
})
