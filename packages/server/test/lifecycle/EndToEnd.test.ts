import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Stages from "../../src/lifecycle/Stages.js"
import * as Staging from "../../src/lifecycle/Staging.js"
import {
  fileObservation,
  layer,
  observatory,
  policyLayer,
  requestStaging,
  runUntil,
  syncTopology,
  tempDir,
  topologyIn
} from "./LifecycleWorld.js"
import { sha256File } from "./support.js"

const count = (query: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<{ n: number }>(query)).pipe(Effect.map((r) => r[0].n))

/** Both demo sites, every stage: what `ccat serve` runs on the embedded default. */
const everySite = [["chile", Stages.all], ["cologne", Stages.all]] as const

describe("the whole lifecycle on the demo topology", () => {
  it.scopedLive(
    "files → packaged → bundled → moved → verified → ARCHIVED → STAGED (byte-identical) → cleaned",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyIn(dir, { stagingLifetime: "3 seconds" })
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        const obs = yield* observatory
        const first = yield* fileObservation(topology, obs, [
          { path: "det/a.fits", bytes: 400_000 },
          { path: "det/b.fits", bytes: 700_000 },
          { path: "hk/house.dat", bytes: 3_000, module: 1 }
        ])
        const second = yield* fileObservation(topology, obs, [{ path: "scan/big.raw", bytes: 1_300_000 }])
        const filed = [...first.files, ...second.files]

        // Every package ARCHIVED, with a verified copy in the archive.
        yield* runUntil(
          everySite,
          Effect.map(
            count(`select count(*)::int as n from raw_data_package where status <> 'completed'`),
            (open) => open === 0
          ).pipe(Effect.zipWith(count(`select count(*)::int as n from raw_data_package`), (open, all) => open && all > 0)),
          120_000
        ).pipe(Effect.provide(policyLayer(topology)))
        const archived = yield* sql<{ path: string; checksum: string }>`
        select c.path, c.checksum from physical_copy c join data_location l on l.id = c.data_location_id
        where l.name = 'cologne-archive' and c.status = 'PRESENT' and c.verified_at is not null`
        assert.isAtLeast(archived.length, 3)
        for (const a of archived) {
          assert.strictEqual(yield* Effect.promise(() => sha256File(path.join(dir, "locations", "cologne-archive", a.path))), a.checksum)
        }

        // A scientist stages the first observation; every staged file has the instrument's checksum.
        const req = yield* requestStaging("sci-e2e", [first.eou.id])
        yield* runUntil(everySite, req.completed, 60_000).pipe(Effect.provide(policyLayer(topology)))
        const paths = yield* Staging.stagedPaths(req.id)
        assert.strictEqual(paths.length, first.files.length)
        for (const f of first.files) {
          const staged = paths.find((p) => p.endsWith(f.relativePath))
          assert.isDefined(staged, `${f.relativePath} is staged`)
          assert.strictEqual(yield* Effect.promise(() => sha256File(staged!)), f.checksum)
        }

        // Cleanup: SOURCE files, buffer packages and bundles, and the expired staged files go;
        // the archive keeps everything.
        const leftovers = count(`
        select count(*)::int as n from physical_copy c join data_location l on l.id = c.data_location_id
        where l.type in ('SOURCE', 'BUFFER', 'PROCESSING') and c.status <> 'DELETED'`)
        yield* runUntil(everySite, Effect.map(leftovers, (n) => n === 0), 90_000).pipe(Effect.provide(policyLayer(topology)))
        for (const f of filed) {
          const gone = yield* Effect.promise(() => fs.stat(f.absolutePath).then(() => false, () => true))
          assert.isTrue(gone, `${f.relativePath} was deleted from SOURCE`)
        }
        const kept = yield* count(`
        select count(*)::int as n from physical_copy c join data_location l on l.id = c.data_location_id
        where l.type = 'LONG_TERM_ARCHIVE' and c.status = 'PRESENT'`)
        assert.strictEqual(kept, archived.length)
        // Every deletion happened after the package was archived (invariant 1), as the event log shows.
        const early = yield* count(`
        select count(*)::int as n from event_log d
        join physical_copy c on c.id = d.entity_id and d.entity_kind = 'PhysicalCopy' and d.to_state = 'DELETION_IN_PROGRESS'
        join raw_data_package p on p.id = c.raw_data_package_id
        where not exists (select 1 from event_log a where a.entity_kind = 'RawDataPackage' and a.entity_id = p.id
                          and a.to_state = 'completed' and a.id < d.id)`)
        assert.strictEqual(early, 0)
      }).pipe(Effect.provide(layer)),
    300_000
  )
})
