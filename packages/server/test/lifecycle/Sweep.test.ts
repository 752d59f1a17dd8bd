/**
 * The sweep stage (issue 6): a site's workers remove what killed writers left under temporary
 * names at the site's disk locations, once old enough, and nothing else: not a fresh temporary
 * file (a write may own it), not a committed file, not another site's, not at a location whose
 * deletions are switched off, and nothing at all at a SOURCE location, whatever its names. Files are made old with `utimes`; the hourly rhythm is checked by
 * dating the last job back, not by waiting.
 */
import { TemporaryNames, Topology } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Schema from "effect/Schema"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Sweep from "../../src/lifecycle/Sweep.js"
import { layer, policyLayer, runUntil, syncTopology, tempDir, topologyIn } from "./LifecycleWorld.js"

const hours = (n: number) => n * 3600_000

/**
 * The topology with two more locations at chile: an S3 archive, whose driver keeps no temporary
 * files (it gets no sweep job; its endpoint answers nothing, building the driver touches no
 * network), and a PROCESSING disk whose deletions the test switches off.
 */
const withExtraLocations = (t: Topology.Topology, dir: string) => {
  const decoded = Topology.decode({
    sites: t.sites.map((s) => ({
      name: s.name,
      shortName: s.shortName,
      role: s.role,
      locations: [
        ...s.locations.map((l) => ({ name: l.name, type: l.type, technology: l.technology, driver: l.driver, retention: l.retention })),
        ...(s.name === "chile"
          ? [
            {
              name: "chile-s3",
              type: "LONG_TERM_ARCHIVE",
              technology: "s3",
              driver: { bucket: "b", endpoint: "http://127.0.0.1:9", region: "us-east-1" }
            },
            {
              name: "chile-scratch",
              type: "PROCESSING",
              technology: "disk",
              driver: { root: path.join(dir, "locations", "chile-scratch") }
            }
          ]
          : [])
      ]
    })),
    routes: t.routes.map((r) => ({ from: r.from, to: r.to, adapter: r.adapter })),
    // the policy in its configuration form, as a file would give it
    policy: Schema.encodeSync(Topology.PolicyConfig)(t.policy)
  })
  if (Either.isLeft(decoded)) throw new Error(decoded.left.message)
  return decoded.right
}

/** Writes a file at a location and dates it `ageMs` back. */
const place = (root: string, rel: string, bytes: number, ageMs: number) =>
  Effect.promise(async () => {
    const file = path.join(root, rel)
    await fs.mkdir(path.dirname(file), { recursive: true })
    await fs.writeFile(file, Buffer.alloc(bytes, 1))
    const when = new Date(Date.now() - ageMs)
    await fs.utimes(file, when, when)
  })

const exists = (root: string, rel: string) => Effect.promise(() => fs.stat(path.join(root, rel)).then(() => true, () => false))

const swept = (site: string, location: string) =>
  Effect.all([
    Metric.value(Metric.taggedWithLabels(Sweep.filesSwept, [MetricLabel.make("site", site), MetricLabel.make("location", location)])),
    Metric.value(Metric.taggedWithLabels(Sweep.bytesSwept, [MetricLabel.make("site", site), MetricLabel.make("location", location)]))
  ]).pipe(Effect.map(([files, bytes]) => ({ files: files.count, bytes: bytes.count })))

describe("Sweep", () => {
  it.scopedLive("a site's workers remove old temporary files at its locations, and only those", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const topology = withExtraLocations(topologyIn(dir), dir)
      yield* syncTopology(topology)
      const sql = yield* SqlClient.SqlClient
      const root = (name: string) => path.join(dir, "locations", name)
      const oldDisk = `obs-1/${TemporaryNames.disk("a.fits", "0123456789ab")}`
      const oldPart = `bundles/${TemporaryNames.part("b.tar", "abcdef012345")}`
      const fresh = `obs-1/${TemporaryNames.disk("a.fits", "ba9876543210")}`
      // chile-buffer: two old leftovers (to go), a fresh one and an old committed file (to stay)
      yield* place(root("chile-buffer"), oldDisk, 3000, hours(30))
      yield* place(root("chile-buffer"), oldPart, 5000, hours(48))
      yield* place(root("chile-buffer"), fresh, 10, hours(1))
      yield* place(root("chile-buffer"), "obs-1/a.tar", 700, hours(500))
      // chile-source: the instruments' raw data; names like leftovers, however old, stay
      yield* place(root("chile-source"), oldDisk, 17, hours(300))
      yield* place(root("chile-source"), oldPart, 19, hours(300))
      // chile-scratch: an old leftover where an operator switched deletions off (stays)
      yield* place(root("chile-scratch"), oldDisk, 11, hours(30))
      yield* sql`update data_location set deletable = false where name = 'chile-scratch'`
      // another site's leftover: only cologne's workers sweep there
      yield* place(root("cologne-buffer"), oldDisk, 13, hours(30))

      yield* runUntil(
        [["chile", [Sweep.stage]]],
        Effect.map(Effect.all([exists(root("chile-buffer"), oldDisk), exists(root("chile-buffer"), oldPart)]), ([a, b]) => !a && !b),
        30_000
      ).pipe(Effect.provide(policyLayer(topology)))

      assert.isTrue(yield* exists(root("chile-buffer"), fresh), "a fresh temporary file stays")
      assert.isTrue(yield* exists(root("chile-buffer"), "obs-1/a.tar"), "a committed file stays")
      assert.isTrue(yield* exists(root("chile-source"), oldDisk), "SOURCE is never swept")
      assert.isTrue(yield* exists(root("chile-source"), oldPart), "SOURCE is never swept")
      assert.isTrue(yield* exists(root("chile-scratch"), oldDisk), "deletions switched off: nothing swept")
      assert.isTrue(yield* exists(root("cologne-buffer"), oldDisk), "another site's location is not swept")
      assert.deepStrictEqual(yield* swept("chile", "chile-buffer"), { files: 2, bytes: 8000 })
      assert.deepStrictEqual(yield* swept("chile", "chile-source"), { files: 0, bytes: 0 })
      assert.deepStrictEqual(yield* swept("chile", "chile-scratch"), { files: 0, bytes: 0 })
      // a sweep job for SOURCE (sent by an older planner, or by hand) sweeps nothing either
      const [source] = yield* sql<{ id: string }>`select id from data_location where name = 'chile-source'`
      yield* Sweep.work("chile", { locationId: source!.id }).pipe(Effect.provide(policyLayer(topology)))
      assert.isTrue(yield* exists(root("chile-source"), oldDisk), "SOURCE is never swept")
      // nothing about the files reaches the ops-db but the job itself (the configuration's sync,
      // which made the sites, locations and routes, is the only history)
      assert.deepStrictEqual(
        (yield* sql<{ kind: string }>`select distinct entity_kind::text as kind from event_log order by 1`).map((r) => r.kind),
        ["DataLocation", "Route", "Site"]
      )

      // one sweep per location per hour: none is due now; once the last is an hour old, it is again
      const queue = "chile.sweep"
      const jobsOf = Effect.map(
        sql<{ n: number }>`select count(*)::int as n from pgboss.job where name = ${queue}`,
        (rows) => rows[0]!.n
      )
      const before = yield* jobsOf
      assert.strictEqual(yield* Sweep.plan("chile"), 0)
      assert.strictEqual(yield* jobsOf, before)
      yield* sql`update pgboss.job set created_on = created_on - interval '61 minutes' where name = ${queue}`
      assert.strictEqual(
        yield* Sweep.plan("chile"),
        1,
        "chile-buffer is due again (never SOURCE; chile-scratch's deletions are off; chile-s3 keeps no temporary files)"
      )
      const keys = yield* sql<{ key: string }>`select distinct singleton_key as key from pgboss.job where name = ${queue}`
      const [buffer] = yield* sql<{ id: string }>`select id from data_location where name = 'chile-buffer'`
      assert.deepStrictEqual(keys.map((k) => k.key), [`location:${buffer!.id}`])
    }).pipe(Effect.provide(layer)), 120_000)

  it.effect("policy.sweepTemporaryAfter defaults to 24 hours and refuses less than an hour", () =>
    Effect.sync(() => {
      assert.strictEqual(topologyIn("/tmp/x").policy.sweepTemporaryAfter, hours(24))
      const demo = Topology.demo("/tmp/x")
      const decode = (sweepTemporaryAfter: string) =>
        Topology.decode({
          sites: demo.sites.map((s) => ({
            name: s.name,
            shortName: s.shortName,
            locations: s.locations.map((l) => ({ name: l.name, type: l.type, technology: l.technology, driver: l.driver }))
          })),
          routes: demo.routes.map((r) => ({ from: r.from, to: r.to, adapter: r.adapter })),
          policy: { sweepTemporaryAfter }
        })
      const short = decode("30 minutes")
      assert.isTrue(Either.isLeft(short))
      if (Either.isLeft(short)) {
        assert.deepStrictEqual(short.left.problems, [
          "policy.sweepTemporaryAfter: must be at least 1 hour, so a write still running keeps its temporary file"
        ])
      }
      const long = decode("3 days")
      assert.isTrue(Either.isRight(long))
      if (Either.isRight(long)) assert.strictEqual(long.right.policy.sweepTemporaryAfter, hours(72))
    }))
})
