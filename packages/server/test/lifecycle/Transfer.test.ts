import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Arrival from "../../src/lifecycle/Arrival.js"
import * as Bundling from "../../src/lifecycle/Bundling.js"
import * as Engine from "../../src/lifecycle/Engine.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import * as Routes from "../../src/lifecycle/Routes.js"
import * as Transfer from "../../src/lifecycle/Transfer.js"
import {
  allArrived,
  assertByteIdentical,
  fileObservation,
  layer,
  observatory,
  policyLayer,
  runUntil,
  syncTopology,
  tempDir,
  topologyIn
} from "./LifecycleWorld.js"
import * as Sshd from "../../../../scripts/sshd.js"

/** Chile packages, bundles and sends; Cologne verifies and unpacks. */
const demoSites = [
  ["chile", [Packaging.stage, Bundling.stage, Transfer.stage]],
  ["cologne", [Arrival.stage]]
] as const

describe("Transfer", () => {
  it.scopedLive(
    "the demo route chile → cologne by the local adapter: filed → packaged → bundled → transferred → arrived, byte-identical",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyIn(dir)
        yield* syncTopology(topology)
        const obs = yield* observatory
        const { files } = yield* fileObservation(topology, obs, [
          { path: "det/a.fits", bytes: 400_000 },
          { path: "det/b.fits", bytes: 700_000 },
          { path: "det/deep/c.fits", bytes: 50_000 },
          { path: "hk/h.dat", bytes: 2000, module: 1 }
        ])
        yield* runUntil(demoSites, allArrived).pipe(Effect.provide(policyLayer(topology)))
        yield* assertByteIdentical(dir, files)
        const sql = yield* SqlClient.SqlClient
        const attempts = yield* sql<
          {
            attempt: number
            status: string
            adapter: string
            bytesTransferred: number
            durationMs: number
            throughputBytesPerSecond: number
            sizeBytes: number
          }
        >`
        select t.attempt, t.status::text as status, t.adapter, t.bytes_transferred, t.duration_ms, t.throughput_bytes_per_second, d.size_bytes
        from data_transfer t join data_transfer_package d on d.id = t.data_transfer_package_id`
        assert.isAtLeast(attempts.length, 1)
        for (const a of attempts) {
          assert.strictEqual(a.attempt, 1)
          assert.strictEqual(a.status, "completed")
          assert.strictEqual(a.adapter, "local")
          assert.strictEqual(Number(a.bytesTransferred), Number(a.sizeBytes))
          assert.isAbove(a.throughputBytesPerSecond, 0)
        }
        // The delivered bundle tars were removed from cologne-buffer once unpacked; their copies say so.
        const bundleCopies = yield* sql<{ status: string }>`
        select c.status::text as status from physical_copy c join data_location l on l.id = c.data_location_id
        where l.name = 'cologne-buffer' and c.data_transfer_package_id is not null`
        assert.isTrue(bundleCopies.length >= 1 && bundleCopies.every((c) => c.status === "DELETED"))
        const left = yield* Effect.promise(() =>
          fs.readdir(path.join(dir, "locations", "cologne-buffer", "bundles", "chile")).catch(() => [])
        )
        assert.deepStrictEqual(left, [])
      }).pipe(Effect.provide(layer)),
    150_000
  )

  it.scopedLive(
    "a route whose host is unreachable opens its circuit: work waits without burning attempts, and resumes when the host returns",
    () =>
      Effect.gen(function* () {
        const sshd = yield* Effect.acquireRelease(Effect.promise(() => Sshd.start()), (s) => Effect.promise(() => s.stop()))
        const dir = yield* tempDir
        const options = {
          host: sshd.host,
          user: sshd.user,
          identityFile: sshd.identityFile,
          sshOptions: sshd.sshOptions,
          ioTimeoutSeconds: 20
        }
        // Port 1 on loopback refuses connections: rsync fails with a retryable Connection error.
        const topology = topologyIn(dir, {}, [{ from: "chile", to: "cologne", adapter: "rsync", options: { ...options, port: 1 } }])
        yield* syncTopology(topology)
        const obs = yield* observatory
        const { files } = yield* fileObservation(topology, obs, [
          { path: "a.fits", bytes: 200_000 },
          { path: "b.fits", bytes: 3000, module: 1 }
        ])
        const sql = yield* SqlClient.SqlClient
        const attempts = sql<
          {
            attempt: number
            status: string
            errorReason: string | null
            retryable: boolean | null
            previousAttemptId: string | null
            id: string
          }
        >`
        select id, attempt, status::text as status, error_reason, retryable, previous_attempt_id from data_transfer order by attempt`
        const policy = Layer.succeed(Routes.TransferPolicy, {
          breakerThreshold: 2,
          breakerCoolDownMs: 6_000,
          backoffBaseMs: 200,
          backoffCapMs: 1_000,
          maxAttempts: 3
        })
        const env = Layer.merge(policyLayer(topology), policy)
        yield* Effect.scoped(
          Effect.gen(function* () {
            for (const [site, stages] of demoSites) {
              yield* Engine.runSite(site, stages, { plannerInterval: "300 millis", pollingIntervalSeconds: 0.5 })
            }
            while ((yield* attempts).filter((x) => x.status === "failed").length < 2) yield* Effect.sleep("150 millis")
            // Open: during the cool-down no attempt is made, however often the job and the planners look.
            const before = (yield* attempts).length
            yield* Effect.sleep("3 seconds")
            assert.strictEqual((yield* attempts).length, before)
          })
        ).pipe(Effect.provide(env))
        const failed = yield* attempts
        assert.isTrue(failed.every((a) => a.status === "failed" && a.errorReason === "Connection" && a.retryable === true))
        // The host comes back: the next probe succeeds and the bundle arrives.
        yield* sql`update route set options = ${JSON.stringify({ ...options, port: sshd.port })}::jsonb`
        yield* runUntil(demoSites, allArrived, 90_000).pipe(Effect.provide(env))
        yield* assertByteIdentical(dir, files)
        const all = yield* attempts
        assert.strictEqual(all.at(-1)!.status, "completed")
        assert.isTrue(all.slice(1).every((a, i) => a.previousAttemptId === all[i].id))
        const dtp = yield* sql<{ status: string }>`select status::text as status from data_transfer_package`
        assert.isTrue(dtp.every((d) => d.status === "completed"))
      }).pipe(Effect.provide(layer)),
    180_000
  )

  it.scopedLive(
    "a destination that refuses us (a key it does not authorise) pauses the route; the bundle waits, not FAILED, and goes once fixed",
    () =>
      Effect.gen(function* () {
        const sshd = yield* Effect.acquireRelease(Effect.promise(() => Sshd.start()), (s) => Effect.promise(() => s.stop()))
        const dir = yield* tempDir
        const options = { host: sshd.host, port: sshd.port, user: sshd.user, sshOptions: sshd.sshOptions, ioTimeoutSeconds: 20 }
        const topology = topologyIn(dir, {}, [{
          from: "chile",
          to: "cologne",
          adapter: "rsync",
          options: { ...options, identityFile: `${sshd.dir}/host_ed25519` }
        }])
        yield* syncTopology(topology)
        const obs = yield* observatory
        const { files } = yield* fileObservation(topology, obs, [{ path: "a.fits", bytes: 20_000 }])
        const sql = yield* SqlClient.SqlClient
        const failedAttempts = sql<{ errorReason: string; retryable: boolean }>`
        select error_reason, retryable from data_transfer where status = 'failed'`
        const env = Layer.merge(
          policyLayer(topology),
          Layer.succeed(Routes.TransferPolicy, {
            breakerThreshold: 2,
            breakerCoolDownMs: 3_000,
            backoffBaseMs: 200,
            backoffCapMs: 500,
            maxAttempts: 3
          })
        )
        yield* runUntil(demoSites, Effect.map(failedAttempts, (a) => a.length >= 2)).pipe(Effect.provide(env))
        assert.isTrue((yield* failedAttempts).every((a) => a.errorReason === "AuthenticationFailed" && a.retryable === false))
        const [bundle] = yield* sql<{ status: string }>`select status::text as status from data_transfer_package`
        assert.strictEqual(bundle.status, "in_progress")
        yield* sql`update route set options = ${JSON.stringify({ ...options, identityFile: sshd.identityFile })}::jsonb`
        yield* runUntil(demoSites, allArrived, 90_000).pipe(Effect.provide(env))
        yield* assertByteIdentical(dir, files)
      }).pipe(Effect.provide(layer)),
    180_000
  )

  it.scopedLive(
    "a bundle whose source copy no longer matches its checksum ends FAILED at once, not retried",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyIn(dir)
        yield* syncTopology(topology)
        const obs = yield* observatory
        yield* fileObservation(topology, obs, [{ path: "a.fits", bytes: 50_000 }])
        const sql = yield* SqlClient.SqlClient
        const copy = sql<{ path: string }>`
        select c.path from physical_copy c where c.data_transfer_package_id is not null and c.status = 'PRESENT'`
        yield* runUntil([["chile", [Packaging.stage, Bundling.stage]]], Effect.map(copy, (c) => c.length === 1)).pipe(
          Effect.provide(policyLayer(topology))
        )
        const file = path.join(dir, "locations", "chile-buffer", (yield* copy)[0].path)
        const bytes = yield* Effect.promise(() => fs.readFile(file))
        bytes[bytes.length - 2000] ^= 0x01
        yield* Effect.promise(() => fs.writeFile(file, bytes))
        const dtp = sql<
          { status: string; errorMessage: string | null }
        >`select status::text as status, error_message from data_transfer_package`
        yield* runUntil(demoSites, Effect.map(dtp, (d) => d[0].status === "failed")).pipe(Effect.provide(policyLayer(topology)))
        assert.include((yield* dtp)[0].errorMessage ?? "", "SourceCorrupt")
        const rows = yield* sql<{ status: string; retryable: boolean }>`select status::text as status, retryable from data_transfer`
        assert.deepStrictEqual(rows.map((r) => [r.status, r.retryable]), [["failed", false]])
      }).pipe(Effect.provide(layer)),
    120_000
  )
})
