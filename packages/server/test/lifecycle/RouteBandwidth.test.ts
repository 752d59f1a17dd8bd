/**
 * A route's bandwidth limit is for all its transfers together: each transfer's tool is capped at
 * the limit shared by the transfers the route may run at once, so transfers running side by side
 * never exceed it. The bundles move with the real rsync (its `--bwlimit` applies the cap); the
 * adapter is wrapped only to note what each transfer was asked and when it ran.
 */
import type { TransferAdapter } from "@ccat/core"
import { RsyncRouteOptions } from "@ccat/transfer-rsync"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Adapters from "../../src/lifecycle/Adapters.js"
import * as Arrival from "../../src/lifecycle/Arrival.js"
import * as Bundling from "../../src/lifecycle/Bundling.js"
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

/** Chile packages, bundles and sends; Cologne verifies and unpacks. */
const sites = [
  ["chile", [Packaging.stage, Bundling.stage, Transfer.stage]],
  ["cologne", [Arrival.stage]]
] as const

describe("a route's bandwidth limit", () => {
  it("is shared evenly by the transfers the route may run at once; unlimited stays unlimited", () => {
    assert.strictEqual(Routes.transferShare({ bandwidthLimit: 100e6, maxConcurrentTransfers: 2 }), 50e6)
    assert.strictEqual(Routes.transferShare({ bandwidthLimit: 100e6, maxConcurrentTransfers: 1 }), 100e6)
    assert.strictEqual(Routes.transferShare({ bandwidthLimit: undefined, maxConcurrentTransfers: 4 }), undefined)
  })

  it.scopedLive(
    "transfers running side by side over rsync are capped so that together they stay within the route's limit",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const limit = 8_000_000
        const topology = topologyIn(dir, {}, [{
          from: "chile",
          to: "cologne",
          adapter: "rsync",
          maxConcurrentTransfers: 2,
          bandwidthLimit: `${limit / 1e6} MB`
        }])
        yield* syncTopology(topology)
        const obs = yield* observatory
        // three files above the bundle size: three bundles ready at once, two sent at a time
        const filed = []
        for (const name of ["a", "b", "c"]) {
          filed.push(...(yield* fileObservation(topology, obs, [{ path: `scan/${name}.raw`, bytes: 6_000_000 }])).files)
        }

        const calls: Array<{ limit: number | undefined; start: number; end: number }> = []
        const noting = (options: RsyncRouteOptions.Options): TransferAdapter.Service => {
          const real = RsyncRouteOptions.adapter.make(options)
          return {
            ...real,
            transfer: (request: TransferAdapter.Request, call?: TransferAdapter.CallOptions) =>
              Effect.suspend(() => {
                const c = { limit: request.bandwidthLimit, start: Date.now(), end: Number.POSITIVE_INFINITY }
                calls.push(c)
                return real.transfer(request, call).pipe(Effect.ensuring(Effect.sync(() => (c.end = Date.now()))))
              })
          }
        }
        yield* runUntil(sites, allArrived, 120_000).pipe(
          Effect.provide(Layer.merge(policyLayer(topology), Adapters.layerWith([{ ...RsyncRouteOptions.adapter, make: noting }])))
        )
        yield* assertByteIdentical(dir, filed)

        assert.isAtLeast(calls.length, 3)
        for (const c of calls) assert.strictEqual(c.limit, limit / 2)
        // at every start, the caps of the transfers running then sum to the route's limit at most
        let overlap = 0
        for (const c of calls) {
          const running = calls.filter((o) => o.start <= c.start && c.start < o.end)
          overlap = Math.max(overlap, running.length)
          assert.isAtMost(running.reduce((n, o) => n + (o.limit ?? Number.POSITIVE_INFINITY), 0), limit)
        }
        assert.strictEqual(overlap, 2, "two transfers ran side by side")
        // rsync kept each to its share (its rate includes our verification, so it is lower still)
        const sql = yield* SqlClient.SqlClient
        const rates = yield* sql<
          { throughputBytesPerSecond: number }
        >`select throughput_bytes_per_second from data_transfer where status = 'completed'`
        for (const r of rates) assert.isAtMost(r.throughputBytesPerSecond, (limit / 2) * 1.15)
      }).pipe(Effect.provide(layer)),
    150_000
  )
})
