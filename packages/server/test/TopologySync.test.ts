import { assert, describe, it } from "@effect/vitest"
import { Topology } from "@ccat/core"
import { TestDatabase } from "@ccat/core/testing"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as TopologySync from "../src/TopologySync.js"

const relayTopology = () => {
  const base = Topology.demo("/srv/ccat")
  const decoded = Topology.decode({
    sites: [
      ...base.sites.map((s) => ({
        name: s.name,
        shortName: s.shortName,
        role: s.role,
        locations: s.locations.map((l) => ({
          name: l.name,
          type: l.type,
          technology: l.technology,
          driver: l.driver,
          priority: l.priority
        }))
      })),
      {
        name: "cornell",
        shortName: "cor",
        locations: [{ name: "cornell-buffer", type: "BUFFER", technology: "disk", driver: { root: "/srv/cornell" } }]
      }
    ],
    routes: [
      { from: "chile", to: "cologne", adapter: "local" },
      { from: "chile", to: "cornell", via: ["cologne"], adapter: "rsync", options: { host: "cornell.example.org" } }
    ]
  })
  if (Either.isLeft(decoded)) throw new Error(decoded.left.message)
  return decoded.right
}

describe("TopologySync", () => {
  it.layer(TestDatabase.layer)((it) => {
    it.effect("writes sites, locations, retention and routes, and a second run changes nothing", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const demo = Topology.demo("/srv/ccat")
        const first = yield* TopologySync.sync(demo)
        assert.deepStrictEqual({ ...first, changes: 0 }, { sites: 2, locations: 5, routes: 1, unconfiguredLocations: [], changes: 0 })
        assert.isAbove(first.changes, 8, "every site, location and route created is an event")
        const snapshot = () =>
          Effect.all([
            sql`select id, name, short_name, role from site order by name`,
            sql`select id, name, type, technology, driver_config, priority from data_location order by name`,
            sql`select id, from_site_id, to_site_id, adapter from route order by id`,
            sql`select data_location_id, min_age_seconds from retention_policy order by data_location_id`
          ])
        const before = yield* snapshot()
        const [{ n: logged }] = yield* sql<{ n: number }>`select count(*)::int as n from event_log`
        const again = yield* TopologySync.sync(demo)
        assert.deepStrictEqual(yield* snapshot(), before)
        assert.strictEqual(again.changes, 0)
        const [{ n: after }] = yield* sql<{ n: number }>`select count(*)::int as n from event_log`
        assert.strictEqual(after, logged, "a sync that changes nothing logs nothing")
        const types = yield* sql<{ name: string; type: string }>`select name, type from data_location order by name`
        assert.deepStrictEqual(
          types.map((r) => `${r.name}:${r.type}`),
          [
            "chile-buffer:BUFFER",
            "chile-source:SOURCE",
            "cologne-archive:LONG_TERM_ARCHIVE",
            "cologne-buffer:BUFFER",
            "cologne-processing:PROCESSING"
          ]
        )
        // The archive is kept forever: no retention policy row lets cleanup touch it.
        const archived = yield* sql<{ n: number }>`
          select count(*)::int as n from retention_policy r join data_location l on l.id = r.data_location_id
          where l.name = 'cologne-archive'`
        assert.strictEqual(archived[0].n, 0)
      }))

    it.effect("keeps an operator's availability change across restarts, and reports dropped locations", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* TopologySync.sync(Topology.demo("/srv/ccat"))
        yield* sql`update data_location set writable = false where name = 'chile-buffer'`
        const report = yield* TopologySync.sync(relayTopology())
        const flag = yield* sql<{ writable: boolean }>`select writable from data_location where name = 'chile-buffer'`
        assert.isFalse(flag[0].writable)
        assert.deepStrictEqual(report.unconfiguredLocations, [])
        const relay = yield* sql<{ via: string }>`
          select v.name as via from route r join site v on v.id = r.via_site_id join site t on t.id = r.to_site_id
          where t.name = 'cornell'`
        assert.deepStrictEqual(relay.map((r) => r.via), ["cologne"])
        const onlyChile = Topology.decode({
          sites: [{
            name: "chile",
            shortName: "cl",
            locations: [{ name: "chile-buffer", type: "BUFFER", technology: "disk", driver: { root: "/b" } }]
          }]
        })
        assert.isTrue(Either.isRight(onlyChile))
        if (Either.isRight(onlyChile)) {
          const dropped = yield* TopologySync.sync(onlyChile.right)
          assert.includeMembers([...dropped.unconfiguredLocations], ["chile-source", "cornell-buffer"])
        }
      }))

    it.effect("records what a sync creates and changes, a driver's options only as changed", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        // Names of its own: the sites of the tests above are in this database already.
        const topology = (driverRoot: string, capacityBytes: number | undefined, priority: number) => {
          const decoded = Topology.decode({
            sites: [
              {
                name: "audit-a",
                shortName: "aa",
                locations: [
                  { name: "audit-a-source", type: "SOURCE", technology: "disk", driver: { root: "/srv/aa/source" } },
                  {
                    name: "audit-a-buffer",
                    type: "BUFFER",
                    technology: "disk",
                    driver: { root: driverRoot },
                    ...(capacityBytes === undefined ? {} : { capacityBytes })
                  }
                ]
              },
              {
                name: "audit-b",
                shortName: "ab",
                locations: [
                  { name: "audit-b-buffer", type: "BUFFER", technology: "disk", driver: { root: "/srv/ab/buffer" } },
                  { name: "audit-b-archive", type: "LONG_TERM_ARCHIVE", technology: "disk", driver: { root: "/srv/ab/archive" } }
                ]
              }
            ],
            routes: [{
              from: "audit-a",
              to: "audit-b",
              adapter: "rsync",
              priority,
              options: { host: "audit-b.example.org", password: `route-secret-${priority}` }
            }]
          })
          if (Either.isLeft(decoded)) throw new Error(decoded.left.message)
          return decoded.right
        }
        yield* TopologySync.sync(topology("/srv/aa/buffer", undefined, 0), "config:test")
        const created = yield* sql<{ kind: string; fromState: string | null; toState: string }>`
          select entity_kind::text as kind, from_state, to_state from event_log
          where actor = 'config:test' and details->>'action' = 'created' order by id`
        assert.deepStrictEqual(created.map((e) => `${e.kind}:${e.fromState}:${e.toState}`), [
          "Site:null:configured",
          "Site:null:configured",
          "DataLocation:null:read+write+delete",
          "DataLocation:null:read+write+delete",
          "DataLocation:null:read+write+delete",
          "DataLocation:null:read+write+delete",
          "Route:null:configured"
        ])
        const report = yield* TopologySync.sync(topology("/srv/aa/elsewhere-secret", 10 ** 12, 5), "config:test2")
        const changed = yield* sql<{ kind: string; fromState: string; toState: string; details: Record<string, unknown> }>`
          select e.entity_kind::text as kind, e.from_state, e.to_state, e.details from event_log e
          where e.actor = 'config:test2' order by e.id`
        assert.strictEqual(report.changes, changed.length)
        assert.deepStrictEqual(changed.map((e) => `${e.kind}:${e.details.action}`), ["DataLocation:changed", "Route:changed"])
        assert.deepStrictEqual(changed[0].details.changed, ["driver", "capacity"])
        assert.strictEqual(changed[0].fromState, changed[0].toState, "a configuration change leaves the availability as it was")
        assert.notInclude(JSON.stringify(changed), "elsewhere-secret", "driver options are not copied into the log")
        assert.strictEqual(changed[1].details.priority, 5)
        assert.deepStrictEqual(changed[1].details.adapterOptions, ["host", "password"])
        const all = yield* sql<{ details: unknown }>`select details from event_log where actor like 'config:test%'`
        assert.notInclude(JSON.stringify(all), "route-secret", "adapter options are not copied into the log")
      }))
  })
})
