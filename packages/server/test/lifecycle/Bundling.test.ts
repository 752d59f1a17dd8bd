import { BundlePlan } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { execFileSync } from "node:child_process"
import * as path from "node:path"
import * as Bundling from "../../src/lifecycle/Bundling.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import * as fs from "node:fs/promises"
import { fileObservation, layer, observatory, policyLayer, runUntil, syncTopology, tempDir, topologyIn } from "./LifecycleWorld.js"

const stages = [Packaging.stage, Bundling.stage]

interface BundleRow {
  readonly id: string
  readonly status: string
  readonly sizeBytes: number | null
  readonly members: number
  readonly copies: number
  readonly path: string | null
}

const bundles = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<BundleRow>`
    select d.id, d.status::text as status, d.size_bytes,
      (select count(*)::int from data_transfer_package_member m where m.data_transfer_package_id = d.id) as members,
      (select count(*)::int from physical_copy c where c.data_transfer_package_id = d.id and c.status = 'PRESENT' and c.verified_at is not null) as copies,
      (select c.path from physical_copy c where c.data_transfer_package_id = d.id limit 1) as path
    from data_transfer_package d order by d.created_at`)

const packagesWritten = (n: number) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ n: number }>`select count(*)::int as n from physical_copy where raw_data_package_id is not null`
  ).pipe(Effect.map((r) => r[0].n >= n))

describe("Bundling", () => {
  it("fills bundles per buffer up to the target and keeps a young partial bundle back", () => {
    const p = (id: string, sizeBytes: number, waitedMs = 0) => ({ id: id as never, sizeBytes, locationId: "b1", waitedMs })
    const planned = BundlePlan.planBundles([p("a", 600), p("b", 600), p("c", 2000), p("d", 100, 10)], 1000, 1000)
    assert.deepStrictEqual(planned.map((b) => b.packages as ReadonlyArray<string>), [["a"], ["b"], ["c"]])
    const flushed = BundlePlan.planBundles([p("a", 600), p("d", 100, 5000)], 1000, 1000)
    assert.deepStrictEqual(flushed.map((b) => b.packages as ReadonlyArray<string>), [["a", "d"]])
  })

  it.scopedLive(
    "flushes a partial bundle once its oldest package waited bundleMaxWait, written as a tar of package tars",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyIn(dir, { bundleMaxWait: "3 seconds" })
        yield* syncTopology(topology)
        const obs = yield* observatory
        yield* fileObservation(topology, obs, [
          { path: "det/a.fits", bytes: 200_000 },
          { path: "hk/h.dat", bytes: 3000, module: 1 }
        ])
        const started = Date.now()
        // Packaged, but far below the 4 MB target: nothing is bundled before the wait is over.
        yield* runUntil([["chile", stages]], packagesWritten(2)).pipe(Effect.provide(policyLayer(topology)))
        assert.strictEqual((yield* bundles).length, 0)
        yield* runUntil([["chile", stages]], Effect.map(bundles, (b) => b.length === 1 && b[0].copies === 1)).pipe(
          Effect.provide(policyLayer(topology))
        )
        assert.isAtLeast(Date.now() - started, 3000)
        const [bundle] = yield* bundles
        assert.strictEqual(bundle.members, 2)
        assert.strictEqual(bundle.status, "in_progress")
        const listed = execFileSync("tar", ["-tf", path.join(dir, "locations", "chile-buffer", bundle.path!)]).toString().trim().split("\n")
        assert.strictEqual(listed[0], "MANIFEST.ccat.json")
        assert.strictEqual(listed.filter((n) => n.endsWith(".tar")).length, 2)
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive("two workers of one site racing bundle every package exactly once", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      // 1 MB packages, 1.5 MB bundles: ten 700 kB files make ten packages and several full bundles.
      const topology = topologyIn(dir, { bundleTargetBytes: "1.5 MB", bundleMaxWait: "1 seconds" })
      yield* syncTopology(topology)
      const obs = yield* observatory
      const files = Array.from({ length: 10 }, (_, i) => ({ path: `f${i}.fits`, bytes: 700_000, module: (i % 2) as 0 | 1 }))
      yield* fileObservation(topology, obs, files)
      const sql = yield* SqlClient.SqlClient
      const unbundled = sql<{ n: number }>`
        select count(*)::int as n from raw_data_package p
        where not exists (select 1 from data_transfer_package_member m where m.raw_data_package_id = p.id)`
      const done = Effect.gen(function* () {
        const b = yield* bundles
        const left = (yield* unbundled)[0].n
        return (yield* packagesWritten(10)) && left === 0 && b.every((x) => x.copies === 1)
      })
      yield* runUntil([["chile", stages], ["chile", stages]], done).pipe(Effect.provide(policyLayer(topology)))
      const twice = yield* sql<{ n: number }>`
        select count(*)::int as n from (select raw_data_package_id from data_transfer_package_member
        group by raw_data_package_id having count(*) > 1) x`
      assert.strictEqual(twice[0].n, 0)
      const all = yield* bundles
      assert.isAtLeast(all.length, 4)
      assert.isTrue(all.every((b) => b.copies === 1 && b.members >= 1 && b.members <= 2))
      const members = yield* sql<{ n: number }>`select count(*)::int as n from data_transfer_package_member`
      assert.strictEqual(members[0].n, 10)
    }).pipe(Effect.provide(layer)), 120_000)

  it.scopedLive(
    "a package whose buffer copy no longer matches is marked failed and left out; the rest is bundled",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyIn(dir)
        yield* syncTopology(topology)
        const obs = yield* observatory
        yield* fileObservation(topology, obs, [{ path: "a.fits", bytes: 30_000 }, { path: "b.fits", bytes: 30_000, module: 1 }])
        yield* runUntil([["chile", [Packaging.stage]]], packagesWritten(2)).pipe(Effect.provide(policyLayer(topology)))
        const sql = yield* SqlClient.SqlClient
        const [victim] = yield* sql<{ id: string; path: string }>`
        select p.id, c.path from raw_data_package p join physical_copy c on c.raw_data_package_id = p.id order by p.id limit 1`
        const file = path.join(dir, "locations", "chile-buffer", victim.path)
        const bytes = yield* Effect.promise(() => fs.readFile(file))
        bytes[bytes.length - 1500] ^= 0x20
        yield* Effect.promise(() => fs.writeFile(file, bytes))
        const settled = Effect.map(bundles, (b) => b.length === 1 && b[0].copies === 1)
        yield* runUntil([["chile", stages]], settled).pipe(Effect.provide(policyLayer(topology)))
        const [bundle] = yield* bundles
        assert.strictEqual(bundle.members, 1)
        const [pkg] = yield* sql<{ status: string; errorMessage: string }>`
        select status::text as status, error_message from raw_data_package where id = ${victim.id}`
        assert.strictEqual(pkg.status, "failed")
        assert.include(pkg.errorMessage, "Corrupt")
      }).pipe(Effect.provide(layer)),
    120_000
  )
  it.scopedLive(
    "a bundle claimed here whose job the queue lost gets its job again; one that has a copy does not",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyIn(dir, { bundleMaxWait: "0 seconds" })
        yield* syncTopology(topology)
        const obs = yield* observatory
        yield* fileObservation(topology, obs, [{ path: "det/a.fits", bytes: 50_000 }])
        yield* runUntil([["chile", [Packaging.stage]]], packagesWritten(1)).pipe(Effect.provide(policyLayer(topology)))
        const sql = yield* SqlClient.SqlClient
        const plan = Bundling.stage.plan("chile").pipe(Effect.provide(policyLayer(topology)))
        const jobs = Effect.map(
          sql<{ key: string }>`select singleton_key as key from pgboss.job where name = 'chile.bundle' and state < 'active'`,
          (rows) => rows.map((r) => r.key)
        )
        assert.strictEqual(yield* plan, 1)
        const [bundle] = yield* bundles
        assert.strictEqual(bundle.status, "scheduled")
        assert.deepStrictEqual(yield* jobs, [bundle.id])
        // the queue loses the job (a restored ops-db, a wiped queue): the next round derives it again
        yield* sql`delete from pgboss.job where name = 'chile.bundle'`
        assert.strictEqual(yield* plan, 1)
        assert.deepStrictEqual(yield* jobs, [bundle.id])
        // a bundle with a copy is being written or was: its job is not derived again
        const [buffer] = yield* sql<{ id: string }>`select id from data_location where name = 'chile-buffer'`
        yield* sql`insert into physical_copy (data_transfer_package_id, data_location_id, path, size_bytes, checksum, status)
        values (${bundle.id}, ${buffer.id}, ${`bundles/chile/${bundle.id}.tar`}, 1, ${`sha256:${"0".repeat(64)}`}, 'PRESENT')`
        yield* sql`delete from pgboss.job where name = 'chile.bundle'`
        assert.strictEqual(yield* plan, 0)
        assert.deepStrictEqual(yield* jobs, [])
      }).pipe(Effect.provide(layer)),
    120_000
  )
})
