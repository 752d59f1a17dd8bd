/**
 * Processed results back into the archive, on a real PostgreSQL, the real HTTP server and the
 * real packaging and archiving stages: an observation's raw package is archived, a pipeline
 * writes its product at the PROCESSING location and files it through `@ccat/client` with its
 * provenance (`ProductWorld.ts`); the product is packaged and archived with a verified archive
 * copy, appears in ObsCore at its calib_level through TAP, and DataLink lists its inputs
 * (`#progenitor`) and, from the observation, the product (`#derivation`). A scientist of another
 * program and an anonymous caller see nothing of it until the program's proprietary period ends.
 * Cleanup then deletes the product's files at PROCESSING, as it deletes an instrument's at SOURCE,
 * but keeps (and marks CORRUPT) a file the pipeline wrote again after filing it.
 * Bad input and the product list: `ProductFilingAndLists.test.ts`.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as Cleanup from "../../src/lifecycle/Cleanup.js"
import { tokenFor } from "../ApiHarness.js"
import { runSitesUntil, topologyFrom } from "../lifecycle/ArchiveWorld.js"
import { policyLayer } from "../lifecycle/LifecycleWorld.js"
import { archivedProduct, type ArchivedProduct, links, tap } from "./ProductWorld.js"
import { get, layer as scienceLayer } from "./ScienceWorld.js"

const dir = path.join(tmpdir(), `ccat-products-${randomBytes(4).toString("hex")}`)
afterAll(() => fs.rm(dir, { recursive: true, force: true }))

/** What the first test leaves for the second. */
let world: ArchivedProduct | undefined

describe("Processed results back into the archive", () => {
  layer(scienceLayer(dir), { timeout: "3 minutes", excludeTestServices: true })((it) => {
    it.effect(
      "a product filed through the client with its provenance is archived, in ObsCore at its calib_level, with its provenance in DataLink; access rules hold",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const w = yield* archivedProduct(dir, ({ ccat, filed, observationId, product }) =>
            Effect.gen(function* () {
              assert.strictEqual(filed.journey, "WAITING")
              assert.deepStrictEqual(filed.observationIds, [observationId])
              // the same filing again (a retry, the pipeline run twice) stores nothing new
              const again = yield* Effect.promise(() => ccat.fileDataProduct(product))
              assert.strictEqual(again.id, filed.id)
              assert.strictEqual(
                (yield* sql<{ n: number }>`select count(*)::int as n from raw_data_file where data_product_id = ${product.id}`)[0]!.n,
                2
              )
            }))
          const { base, product, scientist, stored } = w
          const files = product.files
          const obs = w.observatory
          const stranger = yield* tokenFor({ role: "scientist", programIds: [] })
          assert.strictEqual(stored.packages.length, 1)
          const [copy] = yield* sql<{ location: string; verified: boolean }>`
          select l.name as location, (c.verified_at is not null and c.checksum = p.checksum) as verified
          from physical_copy c join data_location l on l.id = c.data_location_id join raw_data_package p on p.id = c.raw_data_package_id
          where p.data_product_id = ${product.id} and l.type = 'LONG_TERM_ARCHIVE' and c.status = 'PRESENT'`
          assert.deepStrictEqual(copy, { location: "cologne-archive", verified: true })
          // the product's files are read from the archive like raw files, byte-identical
          const map = yield* get(`${base}/api/v1/files/${files[0]!.id}/content`, scientist)
          assert.strictEqual(map.status, 200)
          assert.isTrue(map.body.equals(yield* Effect.promise(() => fs.readFile(path.join(w.processingRoot, files[0]!.relativePath)))))

          // ObsCore through TAP: at calib_level 2, for the program's scientist only
          const query = `SELECT obs_publisher_did, calib_level, dataproduct_type, obs_id FROM ivoa.obscore WHERE calib_level >= 2`
          const rows = yield* tap(base, query, scientist)
          assert.deepStrictEqual(rows.slice(1), [`${stored.publisherDid},2,image,${w.observationId}`])
          assert.deepStrictEqual((yield* tap(base, query, stranger)).slice(1), [])
          assert.deepStrictEqual((yield* tap(base, query)).slice(1), [])
          // raw data stays one row per module, at its own level
          assert.strictEqual(
            (yield* tap(base, `SELECT obs_id FROM ivoa.obscore WHERE obs_id = '${w.observationId}' AND calib_level = 0`, scientist)).length,
            2
          )

          // DataLink: the product's files, package and inputs; the observation's derived product
          const own = yield* links(base, stored.publisherDid, scientist)
          const bySemantics = (rows: ReadonlyArray<Record<string, string>>, s: string) => rows.filter((r) => r.semantics === s)
          assert.deepStrictEqual(
            bySemantics(own, "#this").map((r) => r.access_url).sort(),
            files.map((f) => `${base}/api/v1/files/${f.id}/content`).sort()
          )
          assert.strictEqual(bySemantics(own, "#package").length, 1)
          const progenitors = bySemantics(own, "#progenitor")
          assert.strictEqual(progenitors.length, 1)
          assert.include(decodeURIComponent(progenitors[0]!.access_url!), `?${w.observationId}/${obs.modules[0].id}`)
          const rawDid = decodeURIComponent(progenitors[0]!.access_url!.split("ID=")[1]!)
          const derived = bySemantics(yield* links(base, rawDid, scientist), "#derivation")
          assert.deepStrictEqual(derived.map((r) => decodeURIComponent(r.access_url!.split("ID=")[1]!)), [stored.publisherDid])
          assert.include((yield* links(base, stored.publisherDid, stranger))[0]!.error_message, "NotFoundFault")
          // anonymous: asked for credentials, with no word on whether the product exists
          const challenged = yield* get(`${base}/api/v1/datalink?ID=${encodeURIComponent(stored.publisherDid)}`)
          assert.strictEqual(challenged.status, 401)
          assert.match(challenged.headers.get("www-authenticate")!, /^Basic realm=/)
          assert.include(challenged.body.toString(), "AuthenticationFault")
          const unknown = yield* get(
            `${base}/api/v1/datalink?ID=${encodeURIComponent(`${stored.publisherDid.split("?")[0]}?product/${randomUUID()}`)}`
          )
          assert.strictEqual(unknown.status, 401)
          assert.strictEqual(unknown.body.toString(), challenged.body.toString())

          // once the program's proprietary period is over, anonymous callers see it too
          yield* sql`update observing_program set proprietary_period_days = 0 where id = ${obs.program.id}`
          assert.deepStrictEqual((yield* tap(base, query)).slice(1), [`${stored.publisherDid},2,image,${w.observationId}`])
          assert.strictEqual(bySemantics(yield* links(base, stored.publisherDid), "#this").length, 2)
          yield* sql`update observing_program set proprietary_period_days = null where id = ${obs.program.id}`
          world = w
        }),
      150_000
    )

    it.effect(
      "cleanup deletes an archived product's files at PROCESSING, as it deletes an instrument's at SOURCE, but never a file written again since it was filed; the archive keeps it",
      () =>
        Effect.gen(function* () {
          const w = world!
          const sql = yield* SqlClient.SqlClient
          // The pipeline writes one of its files again after filing it: same size, new bytes.
          const [kept, ...deleted] = [...w.product.files].sort((a, b) => a.sizeBytes - b.sizeBytes)
          const rewritten = randomBytes(kept!.sizeBytes)
          yield* Effect.promise(() => fs.writeFile(path.join(w.processingRoot, kept!.relativePath), rewritten))
          const copies = sql<{ relativePath: string; status: string }>`
          select f.relative_path, c.status::text as status from physical_copy c join raw_data_file f on f.id = c.raw_data_file_id
          where f.data_product_id = ${w.product.id} and c.data_location_id = f.source_location_id`
          const settled = (rows: ReadonlyArray<{ relativePath: string; status: string }>) =>
            rows.length === 2 && rows.every((r) => r.status === (r.relativePath === kept!.relativePath ? "CORRUPT" : "DELETED"))
          yield* runSitesUntil([["cologne", [Cleanup.stage]]], Effect.map(copies, settled), 60_000)
            .pipe(Effect.provide(policyLayer(topologyFrom(dir))))
          for (const f of deleted) {
            const gone = yield* Effect.promise(() => fs.access(path.join(w.processingRoot, f.relativePath)).then(() => false, () => true))
            assert.isTrue(gone, f.relativePath)
          }
          const now = yield* Effect.promise(() => fs.readFile(path.join(w.processingRoot, kept!.relativePath)))
          assert.isTrue(now.equals(rewritten), "the bytes written after filing are kept")
          const [archive] = yield* sql<{ n: number }>`
          select count(*)::int as n from physical_copy c join raw_data_package p on p.id = c.raw_data_package_id join data_location l on l.id = c.data_location_id
          where p.data_product_id = ${w.product.id} and l.type = 'LONG_TERM_ARCHIVE' and c.status = 'PRESENT'`
          assert.strictEqual(archive!.n, 1)
        }),
      60_000
    )
  })
})
