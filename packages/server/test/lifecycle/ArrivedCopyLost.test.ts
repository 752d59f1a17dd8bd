/**
 * A package that reached Cologne's buffer and went bad there before Cologne archived it, on the
 * real lifecycle (the demo route between real disks): Cologne has nothing to archive it from, so
 * Chile, which still holds its good buffer copy (nothing deletes it before the package is
 * archived), sends it again, once for that finding; arrival replaces the bad copy and Cologne
 * archives the package from the new one, byte-identical to what was filed. With two archives at
 * Cologne and the buffer copy gone bad between the first archive copy and the second, the second
 * is made from the first. At a relay without an archive, a package that went bad there before the
 * relay sent it on is sent again by Chile the same way.
 */
import { Topology } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Arrival from "../../src/lifecycle/Arrival.js"
import * as Bundling from "../../src/lifecycle/Bundling.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import * as Stages from "../../src/lifecycle/Stages.js"
import * as Transfer from "../../src/lifecycle/Transfer.js"
import {
  assertByteIdentical,
  fileObservation,
  layer,
  observatory,
  policyLayer,
  relayTopology,
  runUntil,
  spoilCopy,
  syncTopology,
  tempDir,
  topologyIn
} from "./LifecycleWorld.js"

describe("a package's copy lost where it arrived, before it was archived", () => {
  for (const finding of ["CORRUPT", "MISSING"] as const) {
    it.scopedLive(
      `found ${finding} in Cologne's buffer: Chile sends the package again once, arrival replaces the bad copy, and Cologne archives it`,
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
          const sql = yield* SqlClient.SqlClient
          const atCologne = sql<{ id: string; path: string; packageId: string }>`
            select c.id, c.path, c.raw_data_package_id as package_id from physical_copy c join data_location l on l.id = c.data_location_id
            where l.name = 'cologne-buffer' and c.raw_data_package_id is not null and c.status = 'PRESENT' order by c.created_at, c.id`
          // Chile sends, Cologne unpacks; nothing archives yet.
          const sending = [["chile", [Packaging.stage, Bundling.stage, Transfer.stage]], ["cologne", [Arrival.stage]]] as const
          yield* runUntil(sending, Effect.map(atCologne, (c) => c.length === 2)).pipe(Effect.provide(policyLayer(topology)))
          const [victim] = yield* atCologne
          yield* spoilCopy(dir, "cologne-buffer", victim, finding)

          const archived = Effect.map(
            sql<{ n: number }>`select count(*)::int as n from raw_data_package where status = 'completed'`,
            (r) => r[0].n === 2
          )
          yield* runUntil([["chile", Stages.all], ["cologne", Stages.all]], archived, 120_000).pipe(Effect.provide(policyLayer(topology)))
          const bundles = yield* sql<{ status: string }>`
            select d.status::text as status from data_transfer_package d join data_transfer_package_member m on m.data_transfer_package_id = d.id
            where m.raw_data_package_id = ${victim.packageId} order by d.created_at`
          assert.deepStrictEqual(bundles.map((b) => b.status), ["completed", "completed"], "sent again once")
          const [bad] = yield* sql<{ status: string; action: string | null }>`
            select c.status::text as status,
              (select e.details->>'action' from event_log e where e.entity_kind = 'PhysicalCopy' and e.entity_id = c.id and e.to_state = 'DELETED') as action
            from physical_copy c where c.id = ${victim.id}`
          assert.deepStrictEqual([bad!.status, bad!.action], ["DELETED", "replaced"])
          // Every file comes back byte-identical out of the archive's tars, the re-sent package's included.
          const inArchive = yield* sql<{ path: string; checksum: string; packageId: string }>`
            select c.path, c.checksum, c.raw_data_package_id as package_id from physical_copy c join data_location l on l.id = c.data_location_id
            where l.name = 'cologne-archive' and c.status = 'PRESENT' and c.verified_at is not null order by c.path`
          assert.strictEqual(inArchive.length, 2)
          assert.include(inArchive.map((c) => c.packageId), victim.packageId)
          yield* assertByteIdentical(dir, files, "cologne-archive")
        }).pipe(Effect.provide(layer)),
      240_000
    )
  }

  it.scopedLive(
    "found CORRUPT at a relay without an archive before it sent the package on: Chile sends it again once, and it reaches Cornell's archive",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = relayTopology(dir)
        yield* syncTopology(topology)
        const obs = yield* observatory
        const { files } = yield* fileObservation(topology, obs, [{ path: "a.fits", bytes: 30_000 }])
        const sql = yield* SqlClient.SqlClient
        const atRelay = sql<{ id: string; path: string; packageId: string }>`
          select c.id, c.path, c.raw_data_package_id as package_id from physical_copy c join data_location l on l.id = c.data_location_id
          where l.name = 'cologne-buffer' and c.raw_data_package_id is not null and c.status = 'PRESENT'`
        // Chile sends, the relay unpacks and sends nothing on yet.
        const sending = [["chile", [Packaging.stage, Bundling.stage, Transfer.stage]], ["cologne", [Arrival.stage]]] as const
        yield* runUntil(sending, Effect.map(atRelay, (c) => c.length === 1)).pipe(Effect.provide(policyLayer(topology)))
        const [victim] = yield* atRelay
        yield* spoilCopy(dir, "cologne-buffer", victim!, "CORRUPT")

        const archived = Effect.map(
          sql<{ status: string }>`select status::text as status from raw_data_package`,
          (r) => r[0]!.status === "completed"
        )
        const everySite = [["chile", Stages.all], ["cologne", Stages.all], ["cornell", Stages.all]] as const
        yield* runUntil(everySite, archived, 180_000).pipe(Effect.provide(policyLayer(topology)))
        const fromChile = yield* sql<{ n: number }>`
          select count(distinct t.data_transfer_package_id)::int as n from data_transfer t
          join data_location fl on fl.id = t.from_location_id join site s on s.id = fl.site_id
          join data_transfer_package_member m on m.data_transfer_package_id = t.data_transfer_package_id
          where s.name = 'chile' and m.raw_data_package_id = ${victim!.packageId}`
        assert.strictEqual(fromChile[0]!.n, 2, "sent from Chile again, once")
        const [bad] = yield* sql<{ status: string; action: string | null }>`
          select c.status::text as status,
            (select e.details->>'action' from event_log e where e.entity_kind = 'PhysicalCopy' and e.entity_id = c.id and e.to_state = 'DELETED') as action
          from physical_copy c where c.id = ${victim!.id}`
        assert.deepStrictEqual([bad!.status, bad!.action], ["DELETED", "replaced"])
        yield* assertByteIdentical(dir, files, "cornell-archive")
      }).pipe(Effect.provide(layer)),
    300_000
  )

  it.scopedLive(
    "two archives at Cologne, the second out of service while the first is written, the buffer copy rotted in between: the second copy is made from the first and the package is ARCHIVED with both",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const disk = (name: string, type: string, retention?: Record<string, unknown>) => ({
          name,
          type,
          technology: "disk",
          driver: { root: `${dir}/locations/${name}` },
          ...(retention ? { retention } : {})
        })
        const decoded = Topology.decode({
          sites: [
            { name: "chile", shortName: "cl", locations: [disk("chile-source", "SOURCE"), disk("chile-buffer", "BUFFER")] },
            {
              name: "cologne",
              shortName: "col",
              locations: [
                disk("cologne-buffer", "BUFFER"),
                disk("cologne-archive", "LONG_TERM_ARCHIVE", { keepForever: true }),
                disk("cologne-tape", "LONG_TERM_ARCHIVE", { keepForever: true })
              ]
            }
          ],
          routes: [{ from: "chile", to: "cologne", adapter: "local" }],
          policy: { maxPackageBytes: "1 MB", bundleTargetBytes: "4 MB", bundleMaxWait: "1 seconds", archiveCopies: 2 }
        })
        if (decoded._tag === "Left") return yield* Effect.dieMessage(decoded.left.message)
        const topology = decoded.right
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        // The second archive is out of service (an operator's switch) while the first copy is written.
        yield* sql`update data_location set writable = false where name = 'cologne-tape'`
        const obs = yield* observatory
        const { files } = yield* fileObservation(topology, obs, [{ path: "a.fits", bytes: 40_000 }])
        const archiveCopies = sql<{ location: string; path: string; checksum: string }>`
          select l.name as location, c.path, c.checksum from physical_copy c join data_location l on l.id = c.data_location_id
          join raw_data_package p on p.id = c.raw_data_package_id
          where l.type = 'LONG_TERM_ARCHIVE' and c.status = 'PRESENT' and c.verified_at is not null and c.checksum = p.checksum
          order by l.name`
        const everySite = [["chile", Stages.all], ["cologne", Stages.all]] as const
        yield* runUntil(everySite, Effect.map(archiveCopies, (c) => c.length === 1)).pipe(Effect.provide(policyLayer(topology)))
        const [buffered] = yield* sql<{ id: string; path: string }>`
          select c.id, c.path from physical_copy c join data_location l on l.id = c.data_location_id
          where l.name = 'cologne-buffer' and c.raw_data_package_id is not null and c.status = 'PRESENT'`
        yield* spoilCopy(dir, "cologne-buffer", buffered!, "CORRUPT")
        yield* sql`update data_location set writable = true where name = 'cologne-tape'`

        const archived = Effect.map(
          sql<{ status: string }>`select status::text as status from raw_data_package`,
          (r) => r[0]!.status === "completed"
        )
        yield* runUntil(everySite, archived, 120_000).pipe(Effect.provide(policyLayer(topology)))
        const copies = yield* archiveCopies
        assert.deepStrictEqual(copies.map((c) => c.location), ["cologne-archive", "cologne-tape"])
        yield* assertByteIdentical(dir, files, "cologne-archive")
        yield* assertByteIdentical(dir, files, "cologne-tape")
        const sent = yield* sql<{ n: number }>`select count(*)::int as n from data_transfer_package`
        assert.strictEqual(sent[0]!.n, 1, "nothing was sent again: the first archive copy was at hand")
      }).pipe(Effect.provide(layer)),
    240_000
  )
})
