/**
 * An operator's retry of a failed transfer attempt, through the real HTTP API, after real faults
 * on the demo route (the local adapter between real disks): the new attempt the retry answers is
 * the one the transfer worker takes up and completes, whether the bundle had ended FAILED (it
 * comes back with its packages) or was still on its way (waiting out a fault of the way).
 */
import { ApiErrors } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Arrival from "../../src/lifecycle/Arrival.js"
import * as Routes from "../../src/lifecycle/Routes.js"
import * as Transfer from "../../src/lifecycle/Transfer.js"
import * as Harness from "../ApiHarness.js"
import { archivedPackages, attempts, everySite, layer, oneBundleOfTwoPackages } from "./BundleWorld.js"
import { policyLayer, runUntil, tempDir } from "./LifecycleWorld.js"

/**
 * One bundle whose first attempt failed because the destination buffer refuses writes (made
 * immutable until the scope closes), now waiting an hour before its next try; no breaker in the
 * way, so the bundle's next try is the operator's attempt.
 */
const failedInBackoff = (dir: string) =>
  Effect.gen(function* () {
    const { bundleId, topology } = yield* oneBundleOfTwoPackages(dir)
    const env = Layer.merge(
      policyLayer(topology),
      Layer.succeed(Routes.TransferPolicy, { backoffBaseMs: 3_600_000, backoffCapMs: 3_600_000, breakerThreshold: 10, maxAttempts: 8 })
    )
    const root = path.join(dir, "locations", "cologne-buffer")
    yield* Effect.promise(() => fs.mkdir(root, { recursive: true }))
    yield* Effect.acquireRelease(
      Effect.sync(() => execFileSync("chattr", ["+i", root])),
      () => Effect.ignore(Effect.try(() => execFileSync("chattr", ["-i", root])))
    )
    yield* runUntil(everySite, Effect.map(attempts, (a) => a.some((x) => x.status === "failed"))).pipe(Effect.provide(env))
    const [first] = yield* attempts
    return { bundleId, env, root, first }
  })

describe("retrying failed transfer attempts", () => {
  it.scopedLive(
    "an attempt that failed for good (the bundle's tar rotted in the buffer) ended the bundle and its packages FAILED; retrying the attempt brings them back, the bundle is written again from its packages (the rotten tar deleted), the new attempt delivers it, both packages ARCHIVED",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const sql = yield* SqlClient.SqlClient
        const { bundleId, file, topology } = yield* oneBundleOfTwoPackages(dir)
        const env = policyLayer(topology)
        const original = yield* Effect.promise(() => fs.readFile(file))
        const rotten = Buffer.from(original)
        rotten[rotten.length - 2000] ^= 0x01
        yield* Effect.promise(() => fs.writeFile(file, rotten))
        const bundle = sql<{ status: string }>`select status::text as status from data_transfer_package where id = ${bundleId}`
        yield* runUntil(everySite, Effect.map(bundle, (b) => b[0].status === "failed")).pipe(Effect.provide(env))
        const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
        const listed = yield* operator.transfers.listAttempts({ urlParams: { bundleId: bundleId as never } })
        assert.deepStrictEqual(listed.items.map((a) => [a.attempt, a.status, a.errorReason]), [[1, "failed", "SourceCorrupt"]])
        const failedPackages = yield* operator.packages.list({ urlParams: { journey: "FAILED" } })
        assert.strictEqual(failedPackages.items.length, 2)

        // Nobody repairs the tar: sending it again could not help, so the retry writes the bundle again.
        const retried = yield* operator.operations.retry({
          payload: { entity: "DataTransfer", id: listed.items[0].id, reason: "buffer repaired" }
        })
        assert.isString(retried.newAttemptId)
        // The bundle came back with the attempt, so its bundling planner brings its packages back.
        assert.strictEqual((yield* bundle)[0].status, "pending")
        yield* runUntil(everySite, Effect.map(archivedPackages, (n) => n === 2), 120_000).pipe(Effect.provide(env))
        const all = yield* attempts
        assert.deepStrictEqual(all.map((a) => [a.attempt, a.status, a.errorReason]), [
          [1, "failed", "SourceCorrupt"],
          [2, "completed", null]
        ])
        // The attempt the retry answered is the one that delivered, linked to the one it retried.
        assert.strictEqual(all[1].id, retried.newAttemptId)
        assert.strictEqual(all[1].previousAttemptId, listed.items[0].id)
        assert.strictEqual((yield* bundle)[0].status, "completed")
        // The rotten tar is gone, its copy found CORRUPT by the transfer and DELETED; the bundle went under a new name.
        assert.isFalse(yield* Effect.promise(() => fs.access(file).then(() => true, () => false)))
        const copies = yield* sql<{ path: string; status: string; why: string | null }>`
          select c.path, c.status::text as status,
            (select e.details->>'by' from event_log e where e.entity_id = c.id and e.to_state = 'CORRUPT' limit 1) as why
          from physical_copy c join data_location l on l.id = c.data_location_id
          where c.data_transfer_package_id = ${bundleId} and l.name = 'chile-buffer' order by c.created_at`
        assert.strictEqual(copies[0].path, path.relative(path.join(dir, "locations", "chile-buffer"), file))
        assert.deepStrictEqual([copies[0].status, copies[0].why], ["DELETED", "transfer"])
        assert.notStrictEqual(copies[1].path, copies[0].path)
        for (const p of (yield* operator.packages.list({ urlParams: {} })).items) assert.strictEqual(p.journey, "ARCHIVED")

        // Retried once is enough: the same attempt again, or the delivered one, is refused and changes nothing.
        // (Counted for this bundle's rows: a job the workers were finishing as they stopped, a
        // deletion or an audit elsewhere, may still log its own events meanwhile.)
        const ours = sql<{ events: number; attempts: number; bundles: number }>`
          select (select count(*)::int from event_log where entity_id = ${bundleId}
                    or entity_id in (select id from data_transfer where data_transfer_package_id = ${bundleId})) as events,
                 (select count(*)::int from data_transfer) as attempts,
                 (select count(*)::int from data_transfer_package) as bundles`
        const before = yield* ours
        for (const id of [listed.items[0].id, all[1].id]) {
          const again = yield* Effect.either(operator.operations.retry({ payload: { entity: "DataTransfer", id } }))
          assert.isTrue(Either.isLeft(again) && again.left instanceof ApiErrors.Conflict)
        }
        assert.deepStrictEqual(yield* ours, before)
      }).pipe(Effect.provide(layer)),
    240_000
  )

  it.scopedLive(
    "an attempt that failed while the bundle waits out a fault of the way (the destination buffer refuses writes): retrying it once the buffer is fixed makes that new attempt the one that delivers, at once, not when the hour of backoff ends",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const sql = yield* SqlClient.SqlClient
        const { bundleId, env, root, first } = yield* failedInBackoff(dir)
        assert.strictEqual(first.status, "failed")
        const bundle = sql<{ status: string }>`select status::text as status from data_transfer_package where id = ${bundleId}`
        assert.strictEqual((yield* bundle)[0].status, "in_progress", "a fault of the way leaves the bundle on its way")

        yield* Effect.sync(() => execFileSync("chattr", ["-i", root]))
        const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
        const retried = yield* operator.operations.retry({ payload: { entity: "DataTransfer", id: first.id, reason: "buffer fixed" } })
        // The bundle's next try, queued for when the hour ends, starts now and takes up the
        // operator's attempt: not closed as a dead worker's, not doubled.
        // (the hour of backoff is the proof: without the move, the run below would time out)
        const waiting = yield* sql<{ n: number }>`
          select count(*)::int as n from pgboss.job where name = 'chile.transfer' and singleton_key = ${bundleId}
            and state in ('created', 'retry') and start_after > now()`
        assert.strictEqual(waiting[0].n, 0, "no try of the bundle waits for the backoff any more")
        yield* runUntil(everySite, Effect.map(archivedPackages, (n) => n === 2), 90_000).pipe(Effect.provide(env))
        const all = yield* attempts
        assert.deepStrictEqual(all.map((a) => [a.attempt, a.status]), [[1, "failed"], [2, "completed"]])
        assert.strictEqual(all[1].id, retried.newAttemptId)
        assert.strictEqual(all[1].previousAttemptId, first.id)
      }).pipe(Effect.provide(layer)),
    240_000
  )

  it.scopedLive(
    "a retry whose moving forward of the bundle's next try fails still answers its new attempt: the try runs when its backoff ends",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const sql = yield* SqlClient.SqlClient
        const { bundleId, first } = yield* failedInBackoff(dir)
        // the job table refuses every update of the bundle's job (a stand-in for a lock timeout or
        // a missing grant); other jobs' updates (the job engine's own housekeeping) go through
        yield* sql`create function pgboss.ccat_test_refuse() returns trigger language plpgsql as $$ begin raise exception 'refused by the test'; end $$`
        yield* sql.unsafe(`create trigger ccat_test_refuse before update on pgboss.job for each row
          when (old.singleton_key = '${bundleId}') execute function pgboss.ccat_test_refuse()`)
        const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
        const retried = yield* operator.operations.retry({ payload: { entity: "DataTransfer", id: first.id, reason: "buffer fixed" } })
        yield* sql`drop trigger ccat_test_refuse on pgboss.job`
        assert.isString(retried.newAttemptId)
        const all = yield* attempts
        assert.deepStrictEqual(all.map((a) => [a.attempt, a.status]), [[1, "failed"], [2, "pending"]])
        assert.strictEqual(all[1].id, retried.newAttemptId)
        const waiting = yield* sql<{ n: number }>`
          select count(*)::int as n from pgboss.job where name = 'chile.transfer' and singleton_key = ${bundleId}
            and state in ('created', 'retry') and start_after > now()`
        assert.strictEqual(waiting[0].n, 1, "the bundle's next try still waits for its backoff")
      }).pipe(Effect.provide(layer)),
    240_000
  )

  it.scopedLive(
    "a bundle that arrived corrupt once too often ended FAILED at arrival with its packages; the operator's retry of the bundle sends it again and both packages reach ARCHIVED",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const sql = yield* SqlClient.SqlClient
        const { bundleId, topology } = yield* oneBundleOfTwoPackages(dir)
        // One corrupt arrival is one too many.
        const env = Layer.merge(policyLayer(topology), Layer.succeed(Routes.TransferPolicy, { maxDeliveries: 1 }))
        const delivered = sql<{ path: string }>`
          select c.path from physical_copy c join data_location l on l.id = c.data_location_id
          where l.name = 'cologne-buffer' and c.data_transfer_package_id = ${bundleId} and c.status = 'PRESENT'`
        yield* runUntil([["chile", [Transfer.stage]]], Effect.map(delivered, (d) => d.length === 1)).pipe(Effect.provide(env))
        // A bad disk at Cologne flips a byte of the delivered tar before it is unpacked.
        const file = path.join(dir, "locations", "cologne-buffer", (yield* delivered)[0].path)
        const bytes = yield* Effect.promise(() => fs.readFile(file))
        bytes[Math.floor(bytes.length / 2)] ^= 0xff
        yield* Effect.promise(() => fs.writeFile(file, bytes))
        const bundle = sql<{ status: string; errorMessage: string | null }>`
          select status::text as status, error_message from data_transfer_package where id = ${bundleId}`
        yield* runUntil([["cologne", [Arrival.stage]]], Effect.map(bundle, (b) => b[0].status === "failed")).pipe(Effect.provide(env))
        assert.include((yield* bundle)[0].errorMessage ?? "", "arrived corrupt at cologne 1 times")
        const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
        assert.strictEqual((yield* operator.packages.list({ urlParams: { journey: "FAILED" } })).items.length, 2)

        const retried = yield* operator.operations.retry({
          payload: { entity: "DataTransferPackage", id: bundleId, reason: "cologne disk replaced" }
        })
        assert.deepStrictEqual([retried.from, retried.to], ["failed", "pending"])
        yield* runUntil(everySite, Effect.map(archivedPackages, (n) => n === 2), 120_000).pipe(Effect.provide(env))
        assert.deepStrictEqual((yield* attempts).map((a) => [a.attempt, a.status]), [[1, "completed"], [2, "completed"]])
        assert.strictEqual((yield* bundle)[0].status, "completed")
        for (const p of (yield* operator.packages.list({ urlParams: {} })).items) assert.strictEqual(p.journey, "ARCHIVED")
      }).pipe(Effect.provide(layer)),
    240_000
  )
})
