/**
 * A bundle whose tar in Chile's buffer an audit or an inventory found bad before its transfer
 * began, on the demo route between real disks with the real HTTP API: the transfer reads the tar
 * again and either sends it (the finding was wrong) or removes it and fails the bundle with its
 * packages, so the failure is seen and an operator's retry writes the bundle again. Either way the
 * bundle never stays on its way with nothing to send it.
 */
import { StorageDriverRegistry, StorageError } from "@ccat/core"
import { DiskLocation, Drivers } from "@ccat/storage-drivers"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs/promises"
import * as JobQueue from "../../src/engine/JobQueue.js"
import * as CopyFindings from "../../src/lifecycle/CopyFindings.js"
import * as Storages from "../../src/lifecycle/Storages.js"
import * as Harness from "../ApiHarness.js"
import { archivedPackages, attempts, everySite, layer, oneBundleOfTwoPackages } from "./BundleWorld.js"
import { policyLayer, runUntil, tempDir } from "./LifecycleWorld.js"

/** The bundle's copies in Chile's buffer, oldest first, with who moved each one last and how. */
const chileCopies = (bundleId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string; path: string; status: string }>`
      select c.id, c.path, c.status::text as status from physical_copy c join data_location l on l.id = c.data_location_id
      where c.data_transfer_package_id = ${bundleId} and l.name = 'chile-buffer' order by c.created_at, c.id`)

/** The copy's states in the event log, oldest first, with the activity that found each finding. */
const historyOf = (copyId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ to: string; by: string | null }>`
      select to_state as to, details->>'by' as by from event_log where entity_kind = 'PhysicalCopy' and entity_id = ${copyId}
      order by at, id`)

const bundleOf = (bundleId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ status: string; why: string | null }>`
      select status::text as status, error_message as why from data_transfer_package where id = ${bundleId}`).pipe(Effect.map((r) => r[0]!))

/** Keys whose verification a disk location's storage refuses (a file the worker may not read). */
const refused = new Set<string>()

/** Disk storages that refuse to verify the keys in `refused`, as a disk does a file it may not read. */
const refusingDisk = StorageDriverRegistry.define({
  ...DiskLocation.driver,
  make: (options, location) =>
    Effect.map(DiskLocation.driver.make(options, location), (storage) => ({
      ...storage,
      verify: (key: string, expected: Parameters<typeof storage.verify>[1]) =>
        refused.has(key)
          ? Effect.fail(new StorageError.StorageError({ reason: "PermissionDenied", driver: "disk", method: "verify", key }))
          : storage.verify(key, expected)
    }))
})

const refusingLayer = Layer.mergeAll(JobQueue.layer, Storages.layer([...Drivers.builtIn, refusingDisk])).pipe(
  Layer.provideMerge(Harness.layer())
)

describe.concurrent("a bundle's tar found bad before its transfer", () => {
  it.scopedLive(
    "found CORRUPT by an audit and rotten indeed, with an attempt a killed worker left open: the transfer reads it again, removes it and fails the bundle with both packages and that attempt; the operator's retry of the bundle writes it again under a new name and both packages are archived",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const { bundleId, file, topology } = yield* oneBundleOfTwoPackages(dir)
        const env = policyLayer(topology)
        const bytes = yield* Effect.promise(() => fs.readFile(file))
        bytes[bytes.length - 3000] ^= 0x20
        yield* Effect.promise(() => fs.writeFile(file, bytes))
        const [tar] = yield* chileCopies(bundleId)
        // A worker killed during an attempt left it open (the attempt's row as the worker wrote it).
        const sql = yield* SqlClient.SqlClient
        yield* sql`
          insert into data_transfer (data_transfer_package_id, route_id, from_location_id, to_location_id, adapter, status, started_at)
          select ${bundleId}, r.id, f.id, t.id, r.adapter, 'in_progress', now() from route r
          join data_location f on f.name = 'chile-buffer' join data_location t on t.name = 'cologne-buffer' limit 1`
        assert.isTrue(yield* CopyFindings.mark(tar.id, "CORRUPT", { actor: "worker:chile", by: "audit", detail: "a flipped byte" }))

        yield* runUntil(everySite, Effect.map(bundleOf(bundleId), (b) => b.status === "failed")).pipe(Effect.provide(env))
        const failed = yield* bundleOf(bundleId)
        assert.include(failed.why, "was found CORRUPT before it was sent")
        // The open attempt is closed with the finding, so it holds no place in the route and the retry writes a new tar.
        assert.deepStrictEqual((yield* attempts).map((a) => [a.attempt, a.status, a.errorReason]), [[1, "failed", "SourceCorrupt"]])
        assert.deepStrictEqual((yield* chileCopies(bundleId)).map((c) => c.status), ["DELETED"])
        assert.deepStrictEqual((yield* historyOf(tar.id)).map((e) => e.to), ["PRESENT", "CORRUPT", "DELETED"])
        assert.isFalse(yield* Effect.promise(() => fs.access(file).then(() => true, () => false)), "the rotten tar is removed")
        const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
        assert.strictEqual((yield* operator.packages.list({ urlParams: { journey: "FAILED" } })).items.length, 2)

        yield* operator.operations.retry({ payload: { entity: "DataTransferPackage", id: bundleId, reason: "buffer disk replaced" } })
        yield* runUntil(everySite, Effect.map(archivedPackages, (n) => n === 2), 120_000).pipe(Effect.provide(env))
        assert.strictEqual((yield* bundleOf(bundleId)).status, "completed")
        assert.deepStrictEqual((yield* attempts).map((a) => [a.attempt, a.status]), [[1, "failed"], [2, "completed"]])
        const [old, written] = yield* chileCopies(bundleId)
        assert.strictEqual(old!.path, tar.path)
        assert.notStrictEqual(written!.path, tar.path, "written again under a new name")
        for (const p of (yield* operator.packages.list({ urlParams: {} })).items) assert.strictEqual(p.journey, "ARCHIVED")
      }).pipe(Effect.provide(layer)),
    240_000
  )

  it.scopedLive(
    "recorded MISSING by an inventory while its bytes are whole, its queued job lost: the transfer planner sends the job again, the transfer reads the tar again, gives it back PRESENT and sends it; nothing fails",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const { bundleId, topology } = yield* oneBundleOfTwoPackages(dir)
        const [tar] = yield* chileCopies(bundleId)
        // Its queued transfer job is lost too, so only the transfer planner can send the bundle on.
        const sql = yield* SqlClient.SqlClient
        yield* sql`delete from pgboss.job where name = 'chile.transfer' and data->>'bundleId' = ${bundleId}`
        assert.isTrue(yield* CopyFindings.mark(tar.id, "MISSING", { actor: "worker:chile", by: "inventory", detail: "not listed" }))

        yield* runUntil(everySite, Effect.map(archivedPackages, (n) => n === 2), 120_000).pipe(Effect.provide(policyLayer(topology)))
        const history = yield* historyOf(tar.id)
        assert.deepStrictEqual(history.slice(0, 3), [
          { to: "PRESENT", by: null },
          { to: "MISSING", by: "inventory" },
          { to: "PRESENT", by: "transfer" }
        ])
        assert.strictEqual((yield* bundleOf(bundleId)).status, "completed")
        assert.deepStrictEqual((yield* attempts).map((a) => [a.attempt, a.status]), [[1, "completed"]])
        const [failures] = yield* sql<{ n: number }>`select count(*)::int as n from event_log where to_state = 'failed'`
        assert.strictEqual(failures!.n, 0, "nothing failed on the way")
      }).pipe(Effect.provide(layer)),
    240_000
  )

  it.scopedLive(
    "recorded CORRUPT by an audit while the buffer refuses to read it again: the bundle fails with both packages, the tar and its finding kept; once the buffer reads again, the operator's retry reads the tar again, gives it back and sends it",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const { bundleId, file, topology } = yield* oneBundleOfTwoPackages(dir)
        const env = policyLayer(topology)
        const [tar] = yield* chileCopies(bundleId)
        refused.add(tar.path)
        assert.isTrue(yield* CopyFindings.mark(tar.id, "CORRUPT", { actor: "worker:chile", by: "audit", detail: "a read error" }))

        yield* runUntil(everySite, Effect.map(bundleOf(bundleId), (b) => b.status === "failed")).pipe(Effect.provide(env))
        assert.include((yield* bundleOf(bundleId)).why, "is recorded CORRUPT and cannot be read again")
        assert.deepStrictEqual((yield* chileCopies(bundleId)).map((c) => c.status), ["CORRUPT"])
        assert.isTrue(yield* Effect.promise(() => fs.access(file).then(() => true, () => false)), "nothing is removed on a refused read")
        const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
        assert.strictEqual((yield* operator.packages.list({ urlParams: { journey: "FAILED" } })).items.length, 2)

        refused.delete(tar.path)
        yield* operator.operations.retry({ payload: { entity: "DataTransferPackage", id: bundleId, reason: "buffer permissions fixed" } })
        yield* runUntil(everySite, Effect.map(archivedPackages, (n) => n === 2), 120_000).pipe(Effect.provide(env))
        assert.deepStrictEqual((yield* historyOf(tar.id)).slice(0, 3).map((e) => [e.to, e.by]), [
          ["PRESENT", null],
          ["CORRUPT", "audit"],
          ["PRESENT", "transfer"]
        ])
        assert.deepStrictEqual((yield* attempts).map((a) => [a.attempt, a.status]), [[1, "completed"]])
      }).pipe(Effect.provide(refusingLayer)),
    240_000
  )
})
