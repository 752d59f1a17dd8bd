import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { execFileSync } from "node:child_process"
import * as Engine from "../../src/lifecycle/Engine.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import { JobQueue } from "../../src/engine/JobQueue.js"
import { fileObservation, layer, observatory, policyLayer, syncTopology, tempDir, topologyIn } from "./LifecycleWorld.js"

/** Runs the chile packaging queue until `done` holds, polling the ops-db (no fixed sleeps). */
const runUntil = <E, R>(done: Effect.Effect<boolean, E, R>, timeoutMs = 30_000) =>
  Effect.scoped(
    Effect.gen(function* () {
      yield* Engine.runSite("chile", [Packaging.stage], { plannerInterval: "200 millis", pollingIntervalSeconds: 0.5 })
      const deadline = Date.now() + timeoutMs
      while (!(yield* done)) {
        if (Date.now() > deadline) return yield* Effect.dieMessage("the lifecycle did not get there in time")
        yield* Effect.sleep("100 millis")
      }
    })
  )

describe("Packaging", () => {
  it.scopedLive("packages a closed observation's files per module into tar packages in the chile buffer", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const topology = topologyIn(dir)
      yield* syncTopology(topology)
      const obs = yield* observatory
      const { eou, files } = yield* fileObservation(topology, obs, [
        { path: "det/a.fits", bytes: 300_000 },
        { path: "det/b.fits", bytes: 300_000 },
        { path: "det/deep/c.fits", bytes: 600_000 },
        { path: "hk/housekeeping.dat", bytes: 1000, module: 1 },
        { path: "big.raw", bytes: 1_500_000 }
      ])
      const sql = yield* SqlClient.SqlClient
      const packaged = sql<
        { n: number }
      >`select count(*)::int as n from raw_data_file where executed_obs_unit_id = ${eou.id} and state = 'packaged'`
      yield* runUntil(Effect.map(packaged, (r) => r[0].n === files.length)).pipe(Effect.provide(policyLayer(topology)))
      const packages = yield* sql<
        { id: string; instrumentModuleId: string; sizeBytes: number; status: string; path: string; location: string }
      >`
          select p.id, p.instrument_module_id, p.size_bytes, p.status::text as status, c.path, l.name as location
          from raw_data_package p join physical_copy c on c.raw_data_package_id = p.id join data_location l on l.id = c.data_location_id
          where p.executed_obs_unit_id = ${eou.id} order by p.size_bytes`
      // 1 MB packages: module 0 needs three (the 1.5 MB file alone), module 1 one.
      assert.strictEqual(packages.length, 4)
      assert.isTrue(packages.every((p) => p.location === "chile-buffer" && p.status === "in_progress"))
      assert.strictEqual(new Set(packages.map((p) => p.instrumentModuleId)).size, 2)
      // Each tar is real: GNU tar lists the manifest and the files with their directories.
      const bufferRoot = path.join(dir, "locations", "chile-buffer")
      const listed = packages.flatMap((p) => execFileSync("tar", ["-tf", path.join(bufferRoot, p.path)]).toString().trim().split("\n"))
      for (const f of files) assert.include(listed, f.relativePath)
      // The SOURCE files are recorded as verified copies, so cleanup can find them later.
      const sourceCopies = yield* sql<{ n: number }>`
          select count(*)::int as n from physical_copy c join raw_data_file f on f.id = c.raw_data_file_id
          where f.executed_obs_unit_id = ${eou.id} and c.status = 'PRESENT' and c.verified_at is not null`
      assert.strictEqual(sourceCopies[0].n, files.length)
      // Each SOURCE copy's creation is an event, by the packaging worker, naming its package.
      const created = yield* sql<{ actor: string; packageId: string | null }>`
          select e.actor, e.details->>'packageId' as package_id from event_log e
          join physical_copy c on c.id = e.entity_id join raw_data_file f on f.id = c.raw_data_file_id
          where f.executed_obs_unit_id = ${eou.id} and e.entity_kind = 'PhysicalCopy' and e.from_state is null and e.to_state = 'PRESENT'`
      assert.strictEqual(created.length, files.length)
      assert.isTrue(created.every((e) => e.actor === "worker:chile" && packages.some((p) => p.id === e.packageId)))
      // A second planning round finds nothing new.
      const again = yield* Engine.planOnce("chile", [Packaging.stage]).pipe(Effect.provide(policyLayer(topology)))
      assert.strictEqual(again.package, 0)
    }).pipe(Effect.provide(layer)), 120_000)

  it.scopedLive(
    "a file whose bytes changed after filing is marked corrupt and reported; the rest is packaged",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyIn(dir)
        yield* syncTopology(topology)
        const obs = yield* observatory
        const { eou, files } = yield* fileObservation(topology, obs, [
          { path: "a.fits", bytes: 10_000 },
          { path: "b.fits", bytes: 10_000 },
          { path: "c.fits", bytes: 10_000 }
        ])
        // Flip one byte of b.fits and delete c.fits before packaging.
        const b = yield* Effect.promise(() => fs.readFile(files[1].absolutePath))
        b[5000] ^= 0xff
        yield* Effect.promise(() => fs.writeFile(files[1].absolutePath, b))
        yield* Effect.promise(() => fs.rm(files[2].absolutePath))
        const sql = yield* SqlClient.SqlClient
        const states = sql<
          { id: string; state: string }
        >`select id, state::text as state from raw_data_file where executed_obs_unit_id = ${eou.id}`
        yield* runUntil(Effect.map(states, (r) => r.every((f) => f.state !== "filed"))).pipe(Effect.provide(policyLayer(topology)))
        const byId = new Map((yield* states).map((r) => [r.id, r.state]))
        assert.strictEqual(byId.get(files[0].id), "packaged")
        assert.strictEqual(byId.get(files[1].id), "corrupt")
        assert.strictEqual(byId.get(files[2].id), "missing")
        // The corrupt file is in no package, and the event log says why.
        const events = yield* sql<{ toState: string; details: any }>`
          select to_state, details from event_log where entity_kind = 'RawDataFile' and entity_id = ${files[1].id} order by id`
        assert.strictEqual(events.at(-1)!.toState, "corrupt")
        assert.strictEqual(events.at(-1)!.details.expectedChecksum, files[1].checksum)
        const listed = yield* sql<{ path: string }>`
          select c.path from physical_copy c join raw_data_package p on p.id = c.raw_data_package_id where p.executed_obs_unit_id = ${eou.id}`
        assert.strictEqual(listed.length, 1)
        const members = execFileSync("tar", ["-tf", path.join(dir, "locations", "chile-buffer", listed[0].path)]).toString()
        assert.include(members, files[0].relativePath)
        assert.notInclude(members, files[1].relativePath)
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive(
    "a package whose names cannot go into one tar (filed before filing refused them) fails with its reason and is not re-planned",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyIn(dir)
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        const obs = yield* observatory
        const { eou, files } = yield* fileObservation(topology, obs, [{ path: "x/a", bytes: 5000 }])
        // A row filing refuses today: a path inside another file of the observation.
        yield* sql`
          insert into raw_data_file (id, executed_obs_unit_id, instrument_module_id, relative_path, size_bytes, checksum, source_location_id)
          select gen_random_uuid(), executed_obs_unit_id, instrument_module_id, relative_path || '/b', size_bytes, checksum, source_location_id
          from raw_data_file where id = ${files[0].id}`
        const packages = sql<{ id: string; status: string; errorMessage: string | null }>`
          select id, status::text as status, error_message from raw_data_package where executed_obs_unit_id = ${eou.id}`
        yield* runUntil(Effect.map(packages, (r) => r.length === 1 && r[0].status === "failed")).pipe(Effect.provide(policyLayer(topology)))
        const [failed] = yield* packages
        assert.include(failed.errorMessage ?? "", "also a directory of another member")
        // More planning rounds leave it failed, with no new package and no copy: an operator decides.
        yield* runUntil(Effect.succeed(false), 1_500).pipe(Effect.provide(policyLayer(topology)), Effect.exit)
        assert.deepStrictEqual((yield* packages).map((p) => p.status), ["failed"])
        const copies = yield* sql`select 1 from physical_copy c where c.raw_data_package_id = ${failed.id}`
        assert.strictEqual(copies.length, 0)
        const events = yield* sql<{ toState: string }>`
          select to_state from event_log where entity_kind = 'RawDataPackage' and entity_id = ${failed.id} order by id`
        assert.deepStrictEqual(events.map((e) => e.toState), ["pending", "scheduled", "in_progress", "failed"])
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive("fails over to the next buffer when the first is not writable", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const base = topologyIn(dir)
      const decoded = yield* Effect.sync(() => base)
      yield* syncTopology(decoded)
      const sql = yield* SqlClient.SqlClient
      const chile = yield* sql<{ id: string }>`select id from site where name = 'chile'`
      yield* sql`
          insert into data_location (site_id, name, type, technology, driver_config, priority)
          values (${chile[0].id}, 'chile-buffer-2', 'BUFFER', 'disk', ${
            JSON.stringify({ root: path.join(dir, "locations", "chile-buffer-2") })
          }::jsonb, 5)`
      yield* sql`update data_location set writable = false where name = 'chile-buffer'`
      const obs = yield* observatory
      const { eou } = yield* fileObservation(decoded, obs, [{ path: "x.fits", bytes: 5000 }])
      const where = sql<{ name: string }>`
          select l.name from physical_copy c join raw_data_package p on p.id = c.raw_data_package_id
          join data_location l on l.id = c.data_location_id where p.executed_obs_unit_id = ${eou.id}`
      yield* runUntil(Effect.map(where, (r) => r.length === 1)).pipe(Effect.provide(policyLayer(decoded)))
      assert.deepStrictEqual((yield* where).map((r) => r.name), ["chile-buffer-2"])
      void JobQueue
    }).pipe(Effect.provide(layer)), 120_000)
})
