/**
 * Failures of the transfer stage on the remote topology (rsync over a real sshd, two radosgw
 * archives), as an operator meets them through the API: a bundle that ends FAILED takes its
 * packages' journey to FAILED with its reason, and the operator's retry of the bundle brings
 * them back to ARCHIVED; a transfer never starts from a copy cleanup is deleting.
 */
import { Ids, Transitions } from "@ccat/core"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as JobQueue from "../../src/engine/JobQueue.js"
import * as Arrival from "../../src/lifecycle/Arrival.js"
import * as Bundling from "../../src/lifecycle/Bundling.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import * as Routes from "../../src/lifecycle/Routes.js"
import * as Stages from "../../src/lifecycle/Stages.js"
import * as Storages from "../../src/lifecycle/Storages.js"
import * as Transfer from "../../src/lifecycle/Transfer.js"
import * as Harness from "../ApiHarness.js"
import { freshBuckets, remoteTopology, type Services, startServices, stopServices } from "./EndToEndRemoteWorld.js"
import { fileObservation, observatory, policyLayer, runUntil, syncTopology, tempDir } from "./LifecycleWorld.js"

/** The lifecycle world plus the real HTTP API on the same fresh ops-db, for the operator's view. */
const layer = Layer.mergeAll(JobQueue.layer, Storages.layer()).pipe(Layer.provideMerge(Harness.layer()))

const quickRetries = Layer.succeed(Routes.TransferPolicy, {
  backoffBaseMs: 300,
  backoffCapMs: 1_000,
  breakerCoolDownMs: 2_000,
  maxAttempts: 6
})

/** The bundle's copy in chile-buffer, once bundling wrote it. */
const bundleCopy = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ id: Ids.PhysicalCopyId; bundleId: Ids.DataTransferPackageId; path: string }>`
    select c.id, c.data_transfer_package_id as bundle_id, c.path from physical_copy c join data_location l on l.id = c.data_location_id
    where l.name = 'chile-buffer' and c.data_transfer_package_id is not null and c.status = 'PRESENT'`
)

/** Files two packages (two modules) and runs Chile until both are written and bundled together. */
const oneBundleOfTwoPackages = (dir: string, services: Services) =>
  Effect.gen(function* () {
    const topology = remoteTopology(dir, services, freshBuckets())
    yield* syncTopology(topology)
    const sql = yield* SqlClient.SqlClient
    const obs = yield* observatory
    const filed = yield* fileObservation(topology, obs, [
      { path: "det/a.fits", bytes: 200_000 },
      { path: "hk/h.dat", bytes: 4_000, module: 1 }
    ])
    const written = Effect.map(
      sql<{ n: number }>`select count(*)::int as n from raw_data_package where status = 'in_progress' and checksum is not null`,
      (r) => r[0].n === 2
    )
    // Packaging first, bundling after: both packages wait when the bundle is planned, so they share it.
    yield* runUntil([["chile", [Packaging.stage]]], written).pipe(Effect.provide(policyLayer(topology)))
    yield* runUntil([["chile", [Bundling.stage]]], Effect.map(bundleCopy, (c) => c.length === 1)).pipe(
      Effect.provide(policyLayer(topology))
    )
    const [copy] = yield* bundleCopy
    const members = yield* sql<{ id: Ids.RawDataPackageId }>`
      select raw_data_package_id as id from data_transfer_package_member where data_transfer_package_id = ${copy.bundleId}`
    assert.strictEqual(members.length, 2)
    return { topology, filed, copy, file: path.join(dir, "locations", "chile-buffer", copy.path), members: members.map((m) => m.id) }
  })

/**
 * Two packages bundled together whose bundle ends FAILED (its tar in chile-buffer rotted, a
 * permanent SourceCorrupt), checked through the API: both packages FAILED with the bundle's
 * reason. The transfer found the tar CORRUPT and removed it, so the retry writes it again.
 */
const failedBundle = Effect.gen(function* () {
  const dir = yield* tempDir
  const sql = yield* SqlClient.SqlClient
  const { copy, file, members, topology } = yield* oneBundleOfTwoPackages(dir, services!)
  const env = Layer.merge(policyLayer(topology), quickRetries)
  const original = yield* Effect.promise(() => fs.readFile(file))
  const rotten = Buffer.from(original)
  rotten[rotten.length - 3000] ^= 0x01
  yield* Effect.promise(() => fs.writeFile(file, rotten))
  const bundle = sql<{ status: string; errorMessage: string | null }>`
    select status::text as status, error_message from data_transfer_package where id = ${copy.bundleId}`
  yield* runUntil([["chile", [Transfer.stage]], ["cologne", [Arrival.stage]]], Effect.map(bundle, (b) => b[0].status === "failed")).pipe(
    Effect.provide(env)
  )
  assert.include((yield* bundle)[0].errorMessage ?? "", "SourceCorrupt")
  // Through the API: every package of the bundle is FAILED, saying it was its bundle and why.
  const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
  for (const id of members) {
    const view = yield* operator.packages.get({ path: { id } })
    assert.strictEqual(view.journey, "FAILED")
    assert.strictEqual(view.status, "failed")
    assert.include(view.errorMessage ?? "", copy.bundleId)
    assert.include(view.errorMessage ?? "", "SourceCorrupt")
  }
  assert.strictEqual((yield* operator.packages.list({ urlParams: { journey: "TRANSFERRING" } })).items.length, 0)
  // The transfer re-read the tar, found it CORRUPT and removed it: a retry writes it again from its packages.
  assert.isFalse(yield* Effect.promise(() => fs.access(file).then(() => true, () => false)))
  return { copy, members, env, operator, bundle }
})

/** After the operator's retry: both packages ARCHIVED, their way back in the event log, attempt 2 delivered. */
const backToArchived = (failed: Effect.Effect.Success<typeof failedBundle>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const { copy, members, env, operator, bundle } = failed
    yield* runUntil(
      [["chile", Stages.all], ["cologne", Stages.all]],
      Effect.map(sql<{ n: number }>`select count(*)::int as n from raw_data_package where status = 'completed'`, (r) => r[0].n === 2),
      180_000
    ).pipe(Effect.provide(env))
    for (const id of members) {
      const view = yield* operator.packages.get({ path: { id } })
      assert.strictEqual(view.journey, "ARCHIVED")
      assert.isNull(view.errorMessage)
      // Failed with the bundle, back on its way (one step an operator's own retry), then ARCHIVED.
      const steps = yield* sql<{ fromState: string | null; toState: string }>`
        select from_state, to_state from event_log where entity_kind = 'RawDataPackage' and entity_id = ${id} order by id`
      const way = steps.map((s) => `${s.fromState}→${s.toState}`)
      const failedAt = way.indexOf("in_progress→failed")
      assert.isAtLeast(failedAt, 0)
      assert.deepStrictEqual(way.slice(failedAt), [
        "in_progress→failed",
        "failed→pending",
        "pending→scheduled",
        "scheduled→in_progress",
        "in_progress→completed"
      ])
    }
    const attempts = yield* sql<{ attempt: number; status: string; errorReason: string | null }>`
      select attempt, status::text as status, error_reason from data_transfer where data_transfer_package_id = ${copy.bundleId} order by attempt`
    assert.deepStrictEqual(attempts.map((a) => [a.attempt, a.status, a.errorReason]), [
      [1, "failed", "SourceCorrupt"],
      [2, "completed", null]
    ])
    assert.strictEqual((yield* bundle)[0].status, "completed")
  })

let services: Services | undefined
beforeAll(async () => {
  services = await startServices()
}, 240_000)
afterAll(() => stopServices(services), 120_000)

// Each case has its own ops-db, API server, folders and buckets on the shared sshd and radosgw,
// and spends most of its time waiting on the workers, so the cases run side by side.
describe.concurrent("transfer failures over rsync into S3, as the operator sees them", () => {
  it.scopedLive(
    "a FAILED bundle shows its packages FAILED with its reason; the operator's retry of the bundle brings them to ARCHIVED",
    () =>
      Effect.gen(function* () {
        const failed = yield* failedBundle
        const retried = yield* failed.operator.operations.retry({
          payload: { entity: "DataTransferPackage", id: failed.copy.bundleId, reason: "buffer disk repaired" }
        })
        assert.strictEqual(retried.to, "pending")
        yield* backToArchived(failed)
      }).pipe(Effect.provide(layer)),
    300_000
  )

  it.scopedLive(
    "retrying one package of a FAILED bundle retries its bundle: every package it failed comes back and reaches ARCHIVED",
    () =>
      Effect.gen(function* () {
        const failed = yield* failedBundle
        yield* failed.operator.operations.retry({
          payload: { entity: "RawDataPackage", id: failed.members[0], reason: "buffer disk repaired" }
        })
        yield* backToArchived(failed)
        const sql = yield* SqlClient.SqlClient
        const [retry] = yield* sql<{ details: { retriedPackage?: string } }>`
        select details from event_log where entity_kind = 'DataTransferPackage' and entity_id = ${failed.copy.bundleId}
          and from_state = 'failed' and to_state = 'pending'`
        assert.strictEqual(retry.details.retriedPackage, failed.members[0])
      }).pipe(Effect.provide(layer)),
    300_000
  )

  it.scopedLive(
    "a transfer does not start from a copy cleanup is deleting: it waits on the copy's lock, then sees the deletion and sends nothing",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const sql = yield* SqlClient.SqlClient
        const { copy, file, topology } = yield* oneBundleOfTwoPackages(dir, services!)
        const attempts = Effect.map(sql<{ n: number }>`select count(*)::int as n from data_transfer`, (r) => r[0].n)
        const locked = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        // Cleanup's side, as its worker decides a deletion: the copy locked for update in one
        // transaction, PRESENT → DELETION_SCHEDULED → DELETION_IN_PROGRESS, the bytes removed.
        const cleanup = yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`select id from physical_copy where id = ${copy.id} for update`
            yield* Deferred.succeed(locked, undefined)
            yield* Deferred.await(release)
            const actor = "worker:chile"
            yield* Transitions.transition({ entity: "PhysicalCopy", id: copy.id, from: "PRESENT", to: "DELETION_SCHEDULED", actor })
            yield* Transitions.transition({
              entity: "PhysicalCopy",
              id: copy.id,
              from: "DELETION_SCHEDULED",
              to: "DELETION_IN_PROGRESS",
              actor
            })
            yield* Effect.promise(() => fs.rm(file))
          })
        ).pipe(Effect.fork)
        yield* Deferred.await(locked)
        // The transfer job read the copy as PRESENT before cleanup decided; it must not start an attempt meanwhile.
        const transfer = yield* Transfer.work("chile", { bundleId: copy.bundleId }).pipe(
          Effect.provide(Layer.merge(policyLayer(topology), quickRetries)),
          Effect.fork
        )
        // The transfer's session waits on the copy's row lock (PostgreSQL says so), with no attempt made.
        const waiting = Effect.map(
          sql<{ n: number }>`
          select count(*)::int as n from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock' and query like '%from physical_copy where id = % for share%'`,
          (r) => r[0].n === 1
        )
        const deadline = Date.now() + 30_000
        while (!(yield* waiting)) {
          assert.isNull(transfer.unsafePoll(), "the transfer did not finish while cleanup holds the copy")
          assert.isBelow(Date.now(), deadline, "the transfer waits on the copy's lock")
          yield* Effect.sleep("50 millis")
        }
        assert.strictEqual(yield* attempts, 0, "no attempt starts while cleanup holds the copy")
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(cleanup)
        yield* Fiber.join(transfer)
        // It saw the deletion: no attempt from a vanishing source, and the bundle is not failed for it.
        assert.strictEqual(yield* attempts, 0)
        const [bundle] = yield* sql<
          { status: string }
        >`select status::text as status from data_transfer_package where id = ${copy.bundleId}`
        assert.strictEqual(bundle.status, "in_progress")
      }).pipe(Effect.provide(layer)),
    180_000
  )

  it.scopedLive(
    "packages left TRANSFERRING in a bundle that failed before this release are failed with its reason by the bundling planner",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const sql = yield* SqlClient.SqlClient
        const { copy, members, topology } = yield* oneBundleOfTwoPackages(dir, services!)
        // What an older release left behind: the bundle failed, its packages still in_progress.
        yield* Transitions.transition({
          entity: "DataTransferPackage",
          id: copy.bundleId,
          from: "in_progress",
          to: "failed",
          actor: "worker:chile",
          set: { errorMessage: "3 attempts failed, the last: connection reset" }
        })
        yield* runUntil(
          [["chile", [Bundling.stage]]],
          Effect.map(sql<{ n: number }>`select count(*)::int as n from raw_data_package where status = 'failed'`, (r) => r[0].n === 2)
        ).pipe(Effect.provide(policyLayer(topology)))
        const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
        for (const id of members) {
          const view = yield* operator.packages.get({ path: { id } })
          assert.strictEqual(view.journey, "FAILED")
          assert.strictEqual(view.errorMessage, `its bundle ${copy.bundleId} failed: 3 attempts failed, the last: connection reset`)
        }
      }).pipe(Effect.provide(layer)),
    180_000
  )
})
