/**
 * The lifecycle's other readers record what they find (DESIGN §4 invariant 8): bundling reading
 * a package's buffer copy, a transfer whose source tar went bad, arrival reading a delivered tar
 * that is gone. Each finding is an event on the copy saying who found it, and the flow goes on
 * from good bytes.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { StorageDriverRegistry } from "@ccat/core"
import { TestDatabase } from "@ccat/core/testing"
import { DiskLocation, Drivers } from "@ccat/storage-drivers"
import * as JobQueue from "../../src/engine/JobQueue.js"
import * as Storages from "../../src/lifecycle/Storages.js"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Arrival from "../../src/lifecycle/Arrival.js"
import * as Bundling from "../../src/lifecycle/Bundling.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
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

const chile = ["chile", [Packaging.stage, Bundling.stage, Transfer.stage]] as const
const demoSites = [chile, ["cologne", [Arrival.stage]]] as const

/** Every copy of a kind (`raw_data_package_id` or `data_transfer_package_id` set) at a location, oldest first. */
const copiesAt = (location: string, kind: "package" | "bundle") =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string; path: string; status: string; ownerId: string }>`
      select c.id, c.path, c.status::text as status, coalesce(c.raw_data_package_id, c.data_transfer_package_id) as owner_id
      from physical_copy c join data_location l on l.id = c.data_location_id
      where l.name = ${location} and ${
        kind === "package" ? sql`c.raw_data_package_id is not null` : sql`c.data_transfer_package_id is not null`
      }
      order by c.created_at, c.id`)

/** Who recorded the copy's move to `to`, if anyone did. */
const foundBy = (copyId: string, to: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ by: string | null }>`
      select details->>'by' as by from event_log where entity_kind = 'PhysicalCopy' and entity_id = ${copyId} and to_state = ${to}`).pipe(
    Effect.map((rows) => rows.map((r) => r.by))
  )

const flipMiddle = (file: string) =>
  Effect.promise(async () => {
    const bytes = await fs.readFile(file)
    bytes[Math.floor(bytes.length / 2)] ^= 0xff
    await fs.writeFile(file, bytes)
  })

/** Keys whose next read through a disk location's storage hands out one flipped byte, once. */
const flaky = new Set<string>()

/** Disk storages whose `get` of a key in `flaky` flips a byte of the first chunk, once per key. */
const flakyDisk = StorageDriverRegistry.define({
  ...DiskLocation.driver,
  make: (options, location) => Effect.map(DiskLocation.driver.make(options, location), (storage) => ({
    ...storage,
    get: (key: string, options?: Parameters<typeof storage.get>[1]) => {
      if (!flaky.delete(key)) return storage.get(key, options)
      let first = true
      return Stream.map(storage.get(key, options), (chunk) => {
        if (!first) return chunk
        first = false
        const bad = Uint8Array.from(chunk)
        bad[Math.floor(bad.length / 2)] ^= 0xff
        return bad
      })
    }
  }))
})

const flakyLayer = Layer.mergeAll(JobQueue.layer, Storages.layer([...Drivers.builtIn, flakyDisk])).pipe(
  Layer.provideMerge(TestDatabase.layer)
)

describe("Readers record what they find", () => {
  it.scopedLive(
    "bundling: a package's buffer copy that no longer matches becomes CORRUPT (by bundling), the package FAILED",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyIn(dir)
        yield* syncTopology(topology)
        const obs = yield* observatory
        yield* fileObservation(topology, obs, [{ path: "a.fits", bytes: 30_000 }, { path: "b.fits", bytes: 30_000, module: 1 }])
        const written = Effect.map(copiesAt("chile-buffer", "package"), (cs) => cs.length === 2)
        yield* runUntil([["chile", [Packaging.stage]]], written).pipe(Effect.provide(policyLayer(topology)))
        const [victim] = yield* copiesAt("chile-buffer", "package")
        yield* flipMiddle(path.join(dir, "locations", "chile-buffer", victim.path))
        const sql = yield* SqlClient.SqlClient
        const failed = Effect.map(
          sql<{ status: string }>`select status::text as status from raw_data_package where id = ${victim.ownerId}`,
          ([p]) => p.status === "failed"
        )
        yield* runUntil([["chile", [Packaging.stage, Bundling.stage]]], failed).pipe(Effect.provide(policyLayer(topology)))
        const after = (yield* copiesAt("chile-buffer", "package")).find((c) => c.id === victim.id)!
        assert.strictEqual(after.status, "CORRUPT")
        assert.deepStrictEqual(yield* foundBy(victim.id, "CORRUPT"), ["bundling"])
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive(
    "bundling: a package read badly once whose copy re-reads good is not marked; the bundle is written again and sent whole",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyIn(dir)
        yield* syncTopology(topology)
        const obs = yield* observatory
        const { files } = yield* fileObservation(topology, obs, [
          { path: "a.fits", bytes: 30_000 },
          { path: "b.fits", bytes: 30_000, module: 1 }
        ])
        const written = Effect.map(copiesAt("chile-buffer", "package"), (cs) => cs.length === 2)
        yield* runUntil([["chile", [Packaging.stage]]], written).pipe(Effect.provide(policyLayer(topology)))
        const [victim] = yield* copiesAt("chile-buffer", "package")
        // The buffer's disk hands bundling wrong bytes on its first read of the package (a flaky
        // controller, a bad cable): the bytes at rest stay good, as every later read shows.
        flaky.add(victim.path)
        yield* runUntil(demoSites, allArrived, 90_000).pipe(Effect.provide(policyLayer(topology)))
        assert.isFalse(flaky.has(victim.path), "the flaky read happened")
        const after = (yield* copiesAt("chile-buffer", "package")).find((c) => c.id === victim.id)!
        assert.notInclude(["CORRUPT", "MISSING"], after.status)
        assert.deepStrictEqual(yield* foundBy(victim.id, "CORRUPT"), [])
        const sql = yield* SqlClient.SqlClient
        const [failures] = yield* sql<{ n: number }>`
        select count(*)::int as n from event_log where entity_kind = 'RawDataPackage' and entity_id = ${victim.ownerId} and to_state = 'failed'`
        assert.strictEqual(failures!.n, 0, "the package was never failed")
        yield* assertByteIdentical(dir, files)
      }).pipe(Effect.provide(flakyLayer)),
    120_000
  )

  it.scopedLive(
    "transfer: a bundle tar rotted at its source is re-read, found CORRUPT (by transfer) and removed; the bundle FAILED",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyIn(dir)
        yield* syncTopology(topology)
        const obs = yield* observatory
        yield* fileObservation(topology, obs, [{ path: "a.fits", bytes: 50_000 }])
        const bundled = Effect.map(copiesAt("chile-buffer", "bundle"), (cs) => cs.length === 1)
        yield* runUntil([["chile", [Packaging.stage, Bundling.stage]]], bundled).pipe(Effect.provide(policyLayer(topology)))
        const [tar] = yield* copiesAt("chile-buffer", "bundle")
        const file = path.join(dir, "locations", "chile-buffer", tar.path)
        yield* flipMiddle(file)
        const sql = yield* SqlClient.SqlClient
        const failed = Effect.map(
          sql<{ status: string }>`select status::text as status from data_transfer_package where id = ${tar.ownerId}`,
          ([d]) => d.status === "failed"
        )
        yield* runUntil(demoSites, failed).pipe(Effect.provide(policyLayer(topology)))
        assert.deepStrictEqual(yield* foundBy(tar.id, "CORRUPT"), ["transfer"])
        assert.strictEqual((yield* copiesAt("chile-buffer", "bundle"))[0].status, "DELETED")
        assert.isFalse(yield* Effect.promise(() => fs.stat(file).then(() => true, () => false)))
        // The packages' own buffer copies were not blamed: they still count.
        assert.isTrue((yield* copiesAt("chile-buffer", "package")).every((c) => c.status === "PRESENT"))
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive(
    "arrival: a delivered tar gone before it was unpacked becomes MISSING (by unpack), is sent again and arrives",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyIn(dir)
        yield* syncTopology(topology)
        const obs = yield* observatory
        const { files } = yield* fileObservation(topology, obs, [{ path: "a.fits", bytes: 60_000 }])
        const delivered = Effect.map(copiesAt("cologne-buffer", "bundle"), (cs) => cs.length === 1)
        yield* runUntil([chile], delivered).pipe(Effect.provide(policyLayer(topology)))
        const [tar] = yield* copiesAt("cologne-buffer", "bundle")
        yield* Effect.promise(() => fs.rm(path.join(dir, "locations", "cologne-buffer", tar.path)))
        yield* runUntil(demoSites, allArrived).pipe(Effect.provide(policyLayer(topology)))
        yield* assertByteIdentical(dir, files)
        assert.deepStrictEqual(yield* foundBy(tar.id, "MISSING"), ["unpack"])
        assert.strictEqual((yield* copiesAt("cologne-buffer", "bundle"))[0].status, "DELETED")
      }).pipe(Effect.provide(layer)),
    150_000
  )
})
