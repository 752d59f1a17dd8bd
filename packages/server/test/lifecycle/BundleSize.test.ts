/**
 * Bundle sizes that follow a route's measured bandwidth: the size target is what one transfer
 * of the first route out moves in its `bundleTransferTime`, within the policy's bounds, and
 * `bundleTargetBytes` whenever the route does not give both figures. The planner reads the
 * figures the topology sync wrote into the ops-db, as every worker does.
 */
import { Topology } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as BundlePlanner from "../../src/lifecycle/BundlePlanner.js"
import * as Bundling from "../../src/lifecycle/Bundling.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import { fileObservation, layer, observatory, policyLayer, runUntil, syncTopology, tempDir, topologyIn } from "./LifecycleWorld.js"

const policy = { bundleTargetBytes: 500e9, bundleMinBytes: 1e9, bundleMaxBytes: 2e12 }
const route = (options: Record<string, unknown>, bandwidthLimit?: number, maxConcurrentTransfers = 2) => ({
  options,
  bandwidthLimit,
  maxConcurrentTransfers
})

describe("bundle size from a route's measured bandwidth", () => {
  it("is bundleTargetBytes unless the route gives both figures; else rate × time within the bounds, no faster than the route's share", () => {
    assert.strictEqual(BundlePlanner.targetBytesFor(policy, undefined), 500e9)
    assert.strictEqual(BundlePlanner.targetBytesFor(policy, route({})), 500e9)
    assert.strictEqual(BundlePlanner.targetBytesFor(policy, route({ measuredBandwidth: 50e6 })), 500e9)
    assert.strictEqual(BundlePlanner.targetBytesFor(policy, route({ bundleTransferTime: 3_600_000 })), 500e9)
    // 50 MB/s for an hour
    assert.strictEqual(BundlePlanner.targetBytesFor(policy, route({ measuredBandwidth: 50e6, bundleTransferTime: 3_600_000 })), 180e9)
    // a route's limit of 40 MB/s shared by 2 transfers: 20 MB/s each
    assert.strictEqual(BundlePlanner.targetBytesFor(policy, route({ measuredBandwidth: 50e6, bundleTransferTime: 3_600_000 }, 40e6)), 72e9)
    // bounded
    assert.strictEqual(BundlePlanner.targetBytesFor(policy, route({ measuredBandwidth: 1e3, bundleTransferTime: 60_000 })), 1e9)
    assert.strictEqual(BundlePlanner.targetBytesFor(policy, route({ measuredBandwidth: 1e9, bundleTransferTime: 7 * 86_400_000 })), 2e12)
    // a row written by an older configuration holds the figure as text
    assert.strictEqual(BundlePlanner.targetBytesFor(policy, route({ measuredBandwidth: "50 MB", bundleTransferTime: 3_600_000 })), 180e9)
  })

  it("configuration: the fields decode as sizes and durations, bad values and misplaced ones are refused by field, old files keep their meaning", () => {
    const base = topologyIn("/tmp/x")
    const sites = base.sites.map((s) => ({
      name: s.name,
      shortName: s.shortName,
      role: s.role,
      locations: s.locations.map((l) => ({ name: l.name, type: l.type, technology: l.technology, driver: l.driver }))
    }))
    const decode = (r: Record<string, unknown>, p: Record<string, unknown> = {}) =>
      Topology.decode({ sites, routes: [{ from: "chile", to: "cologne", adapter: "local", ...r }], policy: p })
    const ok = decode({ measuredBandwidth: "48.5 MB", bundleTransferTime: "30 minutes" })
    assert.isTrue(Either.isRight(ok))
    if (Either.isRight(ok)) {
      assert.strictEqual(ok.right.routes[0]!.measuredBandwidth, 48.5e6)
      assert.strictEqual(ok.right.routes[0]!.bundleTransferTime, 1_800_000)
      assert.strictEqual(ok.right.policy.bundleMinBytes, 1e9)
      assert.strictEqual(ok.right.policy.bundleMaxBytes, 2e12)
    }
    const old = decode({})
    assert.isTrue(
      Either.isRight(old) && old.right.routes[0]!.measuredBandwidth === undefined && old.right.routes[0]!.bundleTransferTime === undefined
    )
    const problems = (e: ReturnType<typeof decode>) => (Either.isLeft(e) ? e.left.problems.join("\n") : "")
    assert.match(
      problems(decode({ measuredBandwidth: "fast", bundleTransferTime: "1 hours" })),
      /routes\.\[0\]\.measuredBandwidth|routes\[0\]\.measuredBandwidth/
    )
    assert.match(problems(decode({ measuredBandwidth: 0, bundleTransferTime: "1 hours" })), /measuredBandwidth: .*more than zero/)
    assert.match(problems(decode({ bundleTransferTime: "soon" })), /bundleTransferTime/)
    assert.match(problems(decode({ options: { measuredBandwidth: "1 MB" } })), /options: measuredBandwidth: fields of the route itself/)
    assert.match(
      problems(decode({}, { bundleMinBytes: "2 TB", bundleMaxBytes: "1 TB" })),
      /policy\.bundleMinBytes: .* more than policy\.bundleMaxBytes/
    )
  })

  it.scopedLive(
    "the planner cuts bundles to what the route moves in its transfer time, where bundleTargetBytes alone would hold them all back",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        // 125 kB/s for 12 s = 1.5 MB bundles, though bundleTargetBytes (100 MB) and an hour's wait would hold everything back
        const topology = topologyIn(
          dir,
          { bundleTargetBytes: "100 MB", bundleMinBytes: "1 MB", bundleMaxBytes: "10 MB", bundleMaxWait: "1 hours" },
          [{ from: "chile", to: "cologne", adapter: "local", measuredBandwidth: "125 kB", bundleTransferTime: "12 seconds" }]
        )
        yield* syncTopology(topology)
        const obs = yield* observatory
        yield* fileObservation(
          topology,
          obs,
          Array.from({ length: 6 }, (_, i) => ({ path: `f${i}.fits`, bytes: 700_000, module: (i % 2) as 0 | 1 }))
        )
        const sql = yield* SqlClient.SqlClient
        const members = sql<{ bundle: string; n: number; bytes: number }>`
        select m.data_transfer_package_id as bundle, count(*)::int as n, sum(p.size_bytes)::float8 as bytes
        from data_transfer_package_member m join raw_data_package p on p.id = m.raw_data_package_id group by 1`
        assert.strictEqual(yield* BundlePlanner.targetBytes("chile", topology.policy), 1_500_000)
        // pairs fill a bundle (a third package would pass 1.5 MB); the last pair is partial and waits its hour
        yield* runUntil([["chile", [Packaging.stage, Bundling.stage]]], Effect.map(members, (b) => b.reduce((n, x) => n + x.n, 0) >= 4))
          .pipe(
            Effect.provide(policyLayer(topology))
          )
        const bundles = yield* members
        assert.strictEqual(bundles.length, 2)
        for (const b of bundles) {
          assert.strictEqual(b.n, 2)
          assert.isAtMost(b.bytes, 1_500_000)
        }
      }).pipe(Effect.provide(layer)),
    120_000
  )
})
