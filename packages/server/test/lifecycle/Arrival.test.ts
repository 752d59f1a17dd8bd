import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs/promises"
import * as path from "node:path"
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

const demoSites = [
  ["chile", [Packaging.stage, Bundling.stage, Transfer.stage]],
  ["cologne", [Arrival.stage]]
] as const

/** The bundle's delivered copy in cologne-buffer, once the transfer recorded it. */
const delivered = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string; path: string; bundleId: string }>`
    select c.id, c.path, c.data_transfer_package_id as bundle_id from physical_copy c join data_location l on l.id = c.data_location_id
    where l.name = 'cologne-buffer' and c.data_transfer_package_id is not null and c.status = 'PRESENT'`)

/** Flips one byte in the middle of a file, as a bad link or disk would. */
const flipByte = (file: string) =>
  Effect.promise(async () => {
    const bytes = await fs.readFile(file)
    bytes[Math.floor(bytes.length / 2)] ^= 0xff
    await fs.writeFile(file, bytes)
  })

/** Chile alone: the bundle is delivered but nobody at Cologne has looked at it yet. */
const chileOnly = [demoSites[0]] as const

const deliverAndCorrupt = (dir: string, topology: ReturnType<typeof topologyIn>) =>
  Effect.gen(function* () {
    yield* runUntil(chileOnly, Effect.map(delivered, (d) => d.length === 1)).pipe(Effect.provide(policyLayer(topology)))
    const [copy] = yield* delivered
    yield* flipByte(path.join(dir, "locations", "cologne-buffer", copy.path))
    return copy
  })

describe("Arrival", () => {
  it.scopedLive(
    "a byte flipped in transit is detected at the destination, the delivery deleted, sent again, and arrives correct",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyIn(dir)
        yield* syncTopology(topology)
        const obs = yield* observatory
        const { files } = yield* fileObservation(topology, obs, [
          { path: "a.fits", bytes: 300_000 },
          { path: "b.fits", bytes: 20_000, module: 1 }
        ])
        const bad = yield* deliverAndCorrupt(dir, topology)
        yield* runUntil(demoSites, allArrived).pipe(Effect.provide(policyLayer(topology)))
        yield* assertByteIdentical(dir, files)
        const sql = yield* SqlClient.SqlClient
        const attempts = yield* sql<{ id: string; attempt: number; status: string; previousAttemptId: string | null }>`
        select id, attempt, status::text as status, previous_attempt_id from data_transfer
        where data_transfer_package_id = ${bad.bundleId} order by attempt`
        assert.deepStrictEqual(attempts.map((a) => [a.attempt, a.status]), [[1, "completed"], [2, "completed"]])
        assert.strictEqual(attempts[1].previousAttemptId, attempts[0].id)
        // The corrupt delivery's copy went to DELETED, and the event log says why.
        const events = yield* sql<{ toState: string; details: { reason?: string } }>`
        select to_state, details from event_log where entity_kind = 'PhysicalCopy' and entity_id = ${bad.id} order by id`
        assert.strictEqual(events.at(-1)!.toState, "DELETED")
        assert.isTrue(events.some((e) => e.details.reason === "corrupt"))
        // No package from the corrupt delivery was ever recorded beside it.
        const copies = yield* sql<{ n: number }>`
        select count(*)::int as n from physical_copy c join data_location l on l.id = c.data_location_id
        where l.name = 'cologne-buffer' and c.raw_data_package_id is not null`
        assert.strictEqual(copies[0].n, 2)
      }).pipe(Effect.provide(layer)),
    150_000
  )

  it.scopedLive("a bundle that keeps arriving corrupt ends FAILED with its reason", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const topology = topologyIn(dir)
      yield* syncTopology(topology)
      const obs = yield* observatory
      yield* fileObservation(topology, obs, [{ path: "a.fits", bytes: 100_000 }])
      const bad = yield* deliverAndCorrupt(dir, topology)
      const sql = yield* SqlClient.SqlClient
      const status = sql<{ status: string; errorMessage: string | null }>`
        select status::text as status, error_message from data_transfer_package where id = ${bad.bundleId}`
      yield* runUntil([["cologne", [Arrival.stage]]], Effect.map(status, ([s]) => s.status === "failed")).pipe(
        Effect.provide(Layer.succeed(Routes.TransferPolicy, { maxDeliveries: 1 }))
      )
      const [s] = yield* status
      assert.include(s.errorMessage ?? "", "arrived corrupt at cologne 1 times")
      assert.include(s.errorMessage ?? "", "checksum")
      const left = yield* Effect.promise(() =>
        fs.readdir(path.join(dir, "locations", "cologne-buffer", "bundles", "chile")).catch(() => [])
      )
      assert.deepStrictEqual(left, [])
    }).pipe(Effect.provide(layer)), 150_000)
})
