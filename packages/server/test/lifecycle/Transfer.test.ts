import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Arrival from "../../src/lifecycle/Arrival.js"
import * as Bundling from "../../src/lifecycle/Bundling.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import * as Transfer from "../../src/lifecycle/Transfer.js"
import { fileObservation, layer, observatory, policyLayer, runUntil, syncTopology, tempDir, topologyIn } from "./LifecycleWorld.js"
import { gnuTar, sha256File } from "./support.js"

/** Chile packages, bundles and sends; Cologne verifies and unpacks. */
export const demoSites = [
  ["chile", [Packaging.stage, Bundling.stage, Transfer.stage]],
  ["cologne", [Arrival.stage]]
] as const

/** Every package of the ops-db PRESENT and verified in cologne-buffer, every bundle completed. */
export const allArrived = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ packages: number; arrived: number; open: number }>`
    select (select count(*)::int from raw_data_package where size_bytes is not null) as packages,
      (select count(*)::int from physical_copy c join data_location l on l.id = c.data_location_id
       where l.name = 'cologne-buffer' and c.raw_data_package_id is not null and c.status = 'PRESENT' and c.verified_at is not null) as arrived,
      (select count(*)::int from data_transfer_package where status <> 'completed') as open`
).pipe(Effect.map(([r]) => r.packages > 0 && r.arrived === r.packages && r.open === 0))

/** Unpacks every package tar in cologne-buffer with GNU tar and checks each file against what was filed. */
export const assertByteIdentical = (dir: string, files: ReadonlyArray<{ readonly relativePath: string; readonly checksum: string }>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const copies = yield* sql<{ path: string; checksum: string }>`
      select c.path, c.checksum from physical_copy c join data_location l on l.id = c.data_location_id
      where l.name = 'cologne-buffer' and c.raw_data_package_id is not null and c.status = 'PRESENT'`
    const root = path.join(dir, "locations", "cologne-buffer")
    const out = path.join(dir, "unpacked")
    yield* Effect.promise(() => fs.mkdir(out, { recursive: true }))
    for (const c of copies) {
      assert.strictEqual(yield* Effect.promise(() => sha256File(path.join(root, c.path))), c.checksum)
      yield* Effect.promise(() => gnuTar(["-xf", path.join(root, c.path), "-C", out]))
    }
    for (const f of files) assert.strictEqual(yield* Effect.promise(() => sha256File(path.join(out, f.relativePath))), f.checksum)
  })

describe("Transfer", () => {
  it.scopedLive("the demo route chile → cologne by the local adapter: filed → packaged → bundled → transferred → arrived, byte-identical", () =>
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
      const attempts = yield* sql<{ attempt: number; status: string; adapter: string; bytesTransferred: number; durationMs: number; throughputBytesPerSecond: number; sizeBytes: number }>`
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
      const left = yield* Effect.promise(() => fs.readdir(path.join(dir, "locations", "cologne-buffer", "bundles", "chile")).catch(() => []))
      assert.deepStrictEqual(left, [])
    }).pipe(Effect.provide(layer)), 150_000)
})
