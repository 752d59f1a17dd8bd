import { type Ids, Repositories, Transitions } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Arrival from "../../src/lifecycle/Arrival.js"
import * as Bundling from "../../src/lifecycle/Bundling.js"
import { capacityWaitMs } from "../../src/lifecycle/internal/AttemptChecks.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import * as Routes from "../../src/lifecycle/Routes.js"
import * as Transfer from "../../src/lifecycle/Transfer.js"
import {
  allArrived,
  fileObservation,
  layer,
  observatory,
  policyLayer,
  relayTopology,
  runUntil,
  syncTopology,
  tempDir,
  topologyIn
} from "./LifecycleWorld.js"

describe("Transfer along routes", () => {
  it.scopedLive("a relayed route: unpacked at the relay, bundled again there, and arrives at the end", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const topology = relayTopology(dir)
      yield* syncTopology(topology)
      const obs = yield* observatory
      yield* fileObservation(topology, obs, [{ path: "a.fits", bytes: 120_000 }, { path: "b.fits", bytes: 5000, module: 1 }])
      const sql = yield* SqlClient.SqlClient
      const atCornell = sql<{ n: number }>`
        select count(*)::int as n from physical_copy c join data_location l on l.id = c.data_location_id
        where l.name = 'cornell-buffer' and c.raw_data_package_id is not null and c.status = 'PRESENT' and c.verified_at is not null`
      const sites = [
        ["chile", [Packaging.stage, Bundling.stage, Transfer.stage]],
        ["cologne", [Arrival.stage, Bundling.stage, Transfer.stage]],
        ["cornell", [Arrival.stage]]
      ] as const
      yield* runUntil(sites, Effect.map(atCornell, ([r]) => r.n === 2), 90_000).pipe(Effect.provide(policyLayer(topology)))
      const hops = yield* sql<{ fromLocation: string; toLocation: string; status: string }>`
        select fl.name as from_location, tl.name as to_location, t.status::text as status from data_transfer t
        join data_location fl on fl.id = t.from_location_id join data_location tl on tl.id = t.to_location_id order by t.created_at`
      assert.deepStrictEqual(hops.map((h) => [h.fromLocation, h.toLocation, h.status]), [
        ["chile-buffer", "cologne-buffer", "completed"],
        ["cologne-buffer", "cornell-buffer", "completed"]
      ])
      const bundles = yield* sql<{ status: string }>`select status::text as status from data_transfer_package`
      assert.deepStrictEqual(bundles.map((b) => b.status), ["completed", "completed"])
      // The relay holds verified copies too; each package was a member of one bundle per hop.
      const members = yield* sql<{ n: number }>`select count(*)::int as n from data_transfer_package_member`
      assert.strictEqual(members[0].n, 4)
    }).pipe(Effect.provide(layer)), 150_000)

  it.scopedLive(
    "two workers of one site racing move every bundle with one attempt, one transfer at a time on a limit-1 route",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyIn(dir, { bundleTargetBytes: "500 kB", bundleMaxWait: "1 seconds" }, [
          { from: "chile", to: "cologne", adapter: "local", maxConcurrentTransfers: 1 }
        ])
        yield* syncTopology(topology)
        const obs = yield* observatory
        yield* fileObservation(
          topology,
          obs,
          Array.from({ length: 8 }, (_, i) => ({ path: `f${i}.fits`, bytes: 400_000, module: (i % 2) as 0 | 1 }))
        )
        const chile = ["chile", [Packaging.stage, Bundling.stage, Transfer.stage]] as const
        const cologne = ["cologne", [Arrival.stage]] as const
        yield* runUntil([chile, chile, cologne, cologne], allArrived, 90_000).pipe(Effect.provide(policyLayer(topology)))
        const sql = yield* SqlClient.SqlClient
        const perBundle = yield* sql<{ attempts: number; copies: number }>`
        select (select count(*)::int from data_transfer t where t.data_transfer_package_id = d.id) as attempts,
          (select count(*)::int from physical_copy c where c.data_transfer_package_id = d.id) as copies
        from data_transfer_package d`
        assert.isAtLeast(perBundle.length, 4)
        // One attempt per bundle; copies: at chile, and the delivered one at cologne (now DELETED).
        assert.isTrue(perBundle.every((b) => b.attempts === 1 && b.copies === 2))
        const overlapping = yield* sql<{ n: number }>`
        select count(*)::int as n from data_transfer a join data_transfer b on a.id < b.id
        where a.started_at < b.finished_at and b.started_at < a.finished_at`
        assert.strictEqual(overlapping[0].n, 0)
        // A bundle that found the route full was woken by the attempt that freed it, not by the
        // end of its wait: a job that only its wait let go starts a whole capacity wait after it was sent.
        const waited = yield* sql<{ startedLate: boolean }>`
        select started_on >= created_on + make_interval(secs => ${capacityWaitMs / 1000}) as started_late
        from pgboss.job where name = 'chile.transfer' and data ? 'waitsFor'`
        assert.isTrue(waited.every((w) => !w.startedLate), JSON.stringify(waited))
      }).pipe(Effect.provide(layer)),
    150_000
  )

  it.scopedLive(
    "an attempt left open by a killed worker is closed as Interrupted and the bundle goes on as attempt 2",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyIn(dir)
        yield* syncTopology(topology)
        const obs = yield* observatory
        yield* fileObservation(topology, obs, [{ path: "a.fits", bytes: 30_000 }])
        const sql = yield* SqlClient.SqlClient
        const bundle = sql<{ id: Ids.DataTransferPackageId; locationId: Ids.DataLocationId }>`
        select c.data_transfer_package_id as id, c.data_location_id as location_id from physical_copy c
        where c.data_transfer_package_id is not null and c.status = 'PRESENT'`
        yield* runUntil([["chile", [Packaging.stage, Bundling.stage]]], Effect.map(bundle, (b) => b.length === 1)).pipe(
          Effect.provide(policyLayer(topology))
        )
        // What a worker killed mid-copy leaves behind: attempt 1 in_progress, nobody running it.
        const [b] = yield* bundle
        const [route] = yield* sql<{ id: Ids.RouteId }>`select id from route`
        const [to] = yield* sql<{ id: Ids.DataLocationId }>`select id from data_location where name = 'cologne-buffer'`
        const open = yield* Repositories.dataTransfers.insert({
          dataTransferPackageId: b.id,
          rawDataPackageId: null,
          routeId: route.id,
          fromLocationId: b.locationId,
          toLocationId: to.id,
          previousAttemptId: null,
          attempt: 1,
          adapter: "local"
        } as never)
        yield* Transitions.transition({ entity: "DataTransfer", id: open.id, from: "pending", to: "scheduled" })
        yield* Transitions.transition({
          entity: "DataTransfer",
          id: open.id,
          from: "scheduled",
          to: "in_progress",
          set: { startedAt: new Date() }
        })
        const sites = [["chile", [Packaging.stage, Bundling.stage, Transfer.stage]], ["cologne", [Arrival.stage]]] as const
        yield* runUntil(sites, allArrived).pipe(
          Effect.provide(Layer.merge(policyLayer(topology), Layer.succeed(Routes.TransferPolicy, { backoffBaseMs: 500 })))
        )
        const attempts = yield* sql<
          { id: string; attempt: number; status: string; errorReason: string | null; previousAttemptId: string | null }
        >`
        select id, attempt, status::text as status, error_reason, previous_attempt_id from data_transfer order by attempt`
        assert.deepStrictEqual(attempts.map((a) => [a.attempt, a.status, a.errorReason]), [
          [1, "failed", "Interrupted"],
          [2, "completed", null]
        ])
        assert.strictEqual(attempts[1].previousAttemptId, attempts[0].id)
      }).pipe(Effect.provide(layer)),
    120_000
  )
})
