/**
 * A start skips the topology sync's transaction when the ops-db already holds the configuration
 * exactly: anything a sync would write differently (a site's role, a location's priority or
 * driver, a retention policy, a route's options, a location or route the ops-db lacks) must send
 * it down the full sync, which then writes it.
 */
import { Topology } from "@ccat/core"
import { TestDatabase } from "@ccat/core/testing"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as TopologyCurrent from "../src/TopologyCurrent.js"
import * as TopologySync from "../src/TopologySync.js"

describe("TopologyCurrent.unchanged", () => {
  it.layer(TestDatabase.layer)((it) => {
    it.effect("holds for the topology as synced and for nothing that differs from it", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const demo = Topology.demo("/srv/ccat")
        assert.isUndefined(yield* TopologyCurrent.unchanged(demo), "an ops-db without the topology")
        yield* TopologySync.sync(demo)
        const current = yield* TopologyCurrent.unchanged(demo)
        assert.deepStrictEqual(current?.locations, [
          "chile-buffer",
          "chile-source",
          "cologne-archive",
          "cologne-buffer",
          "cologne-processing"
        ])

        const [site] = demo.sites
        const [location] = site!.locations
        const [route] = demo.routes
        const changed: ReadonlyArray<readonly [string, Topology.Topology]> = [
          ["a site's role", {
            ...demo,
            sites: demo.sites.map((s, i) => (i === 0 ? { ...s, role: s.role === "main" ? "secondary" : "main" } : s)) as never
          }],
          ["a location's priority", {
            ...demo,
            sites: [
              { ...site!, locations: [{ ...location!, priority: location!.priority + 1 }, ...site!.locations.slice(1)] },
              ...demo.sites.slice(1)
            ]
          }],
          ["a location's driver", {
            ...demo,
            sites: [
              { ...site!, locations: [{ ...location!, driver: { root: "/elsewhere" } }, ...site!.locations.slice(1)] },
              ...demo.sites.slice(1)
            ]
          }],
          ["a retention policy", {
            ...demo,
            sites: demo.sites.map((s) => ({
              ...s,
              locations: s.locations.map((l) => (l.retention.keepForever
                ? l
                : { ...l, retention: { ...l.retention, deleteConcurrency: l.retention.deleteConcurrency + 1 } })
              )
            }))
          }],
          ["a new location", {
            ...demo,
            sites: [{ ...site!, locations: [...site!.locations, { ...location!, name: "chile-extra" }] }, ...demo.sites.slice(1)]
          }],
          ["a route's limit", { ...demo, routes: [{ ...route!, maxConcurrentTransfers: route!.maxConcurrentTransfers + 1 }] }],
          ["a route's priority", { ...demo, routes: [{ ...route!, priority: route!.priority + 1 }] }]
        ]
        for (const [what, topology] of changed) {
          assert.isUndefined(yield* TopologyCurrent.unchanged(topology), what)
        }

        // a change the sync writes makes it current again; the event says so
        const [, limit] = changed.at(-2)!
        const report = yield* TopologySync.sync(limit)
        assert.strictEqual(report.changes, 1)
        assert.isDefined(yield* TopologyCurrent.unchanged(limit))
        const again = yield* TopologySync.sync(limit)
        assert.deepStrictEqual(again, { sites: 2, locations: 5, routes: 1, unconfiguredLocations: [], changes: 0 })
        // an operator's availability switch is not configuration: the topology is still current
        yield* sql`update data_location set writable = false where name = 'chile-buffer'`
        assert.isDefined(yield* TopologyCurrent.unchanged(limit))
      }))
  })
})
