/**
 * Repair of a processed product's package whose every archive copy went bad, on a real
 * PostgreSQL, the real HTTP server and the real packaging, archiving, audit and repair stages: a
 * pipeline files a product from the PROCESSING location through `@ccat/client`, it is ARCHIVED in
 * the archive of the same site and its buffer copy is cleaned up, then a byte rots in the archive
 * copy. The audit finds it, and repair writes the package again from the product's files at
 * PROCESSING (an operator's repair request says so): the archive copy is replaced in place,
 * byte-identical, with the recorded checksum, and nothing is sent anywhere. When a product file
 * at PROCESSING changed too, the package is not written again: the file's copy there is recorded
 * CORRUPT, the bad archive copy stays as it is, and nothing is deleted or sent. While the package
 * has no good archive copy, cleanup's rule holds the product's PROCESSING copies back.
 */
import { Checksum, type DataProductsApi } from "@ccat/core"
import { createClient } from "@ccat/client"
import { assert, describe, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as Archiving from "../../src/lifecycle/Archiving.js"
import * as Audit from "../../src/lifecycle/Audit.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import * as Repair from "../../src/lifecycle/Repair.js"
import * as RepairForward from "../../src/lifecycle/RepairForward.js"
import * as Retention from "../../src/lifecycle/Retention.js"
import { tokenFor } from "../ApiHarness.js"
import { runSitesUntil, topologyFrom } from "../lifecycle/ArchiveWorld.js"
import { copyAt, findingEvents, flipByte, verifiedDaysAgo } from "../lifecycle/AuditWorld.js"
import { fileObservation, observatory, policyLayer, syncTopology } from "../lifecycle/LifecycleWorld.js"
import { BaseUrl, layer as scienceLayer } from "./ScienceWorld.js"

const dir = path.join(tmpdir(), `ccat-product-repair-${randomBytes(4).toString("hex")}`)
afterAll(() => fs.rm(dir, { recursive: true, force: true }))

const at = (location: string, key: string) => path.join(dir, "locations", location, key)
const read = (file: string) => Effect.promise(() => fs.readFile(file))
const sha256 = (bytes: Buffer) => Checksum.make("sha256", createHash("sha256").update(bytes).digest("hex"))

/** A product filed and ARCHIVED at cologne, its buffer copy cleaned up: its archive copy and its files at PROCESSING are all that is left. */
const archivedProduct = (sizes: ReadonlyArray<readonly [string, number]>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const base = yield* BaseUrl
    const topology = topologyFrom(dir)
    yield* syncTopology(topology)
    const obs = yield* observatory
    const { eou } = yield* fileObservation(topology, obs, [{ path: "det/a.fits", bytes: 1_000 }])
    const folder = `products/${randomUUID().slice(0, 8)}`
    const files: Array<DataProductsApi.ProductFileSpec> = []
    for (const [name, bytes] of sizes) {
      const body = randomBytes(bytes)
      const relativePath = `${folder}/${name}`
      yield* Effect.promise(async () => {
        await fs.mkdir(path.dirname(at("cologne-processing", relativePath)), { recursive: true })
        await fs.writeFile(at("cologne-processing", relativePath), body)
      })
      files.push({ id: randomUUID(), relativePath, sizeBytes: bytes, checksum: sha256(body) })
    }
    const scientist = yield* tokenFor({ role: "scientist", programIds: [obs.program.id] })
    const ccat = yield* Effect.promise(() => createClient({ baseUrl: base, token: scientist }))
    const product: DataProductsApi.FileDataProduct = {
      id: randomUUID(),
      name: `map ${folder}`,
      pipeline: "ccat-mapmaker",
      pipelineVersion: "1.4.2",
      calibLevel: 2,
      dataproductType: "image",
      location: "cologne-processing",
      inputs: [{ observationId: eou.id }],
      files
    }
    yield* Effect.promise(() => ccat.fileDataProduct(product))
    yield* Effect.promise(() => ccat.close())
    const packageRow = sql<{ id: string; status: string; checksum: string; relativePath: string; sizeBytes: number }>`
      select id, status::text as status, checksum, relative_path, size_bytes::int as size_bytes
      from raw_data_package where data_product_id = ${product.id}`
    yield* runSitesUntil(
      [["cologne", [Packaging.stage, Archiving.stage]]],
      Effect.map(packageRow, (rows) => rows[0]?.status === "completed"),
      60_000
    ).pipe(Effect.provide(policyLayer(topology)))
    const [pkg] = yield* packageRow
    // as cleanup leaves it once archived: no buffer copy
    yield* sql`update physical_copy set status = 'DELETED' where raw_data_package_id = ${pkg!.id}
      and data_location_id in (select id from data_location where type = 'BUFFER')`
    yield* Effect.promise(() => fs.rm(at("cologne-buffer", pkg!.relativePath), { force: true }))
    const archive = (yield* copyAt("cologne-archive", pkg!.id))!
    assert.strictEqual(archive.status, "PRESENT")
    return { topology, product, pkg: pkg!, archive }
  })

/** The product's file copies at the PROCESSING location it was filed at, by file id. */
const processingCopies = (productId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string; fileId: string; status: string }>`
      select c.id, f.id as file_id, c.status::text as status from physical_copy c join raw_data_file f on f.id = c.raw_data_file_id
      where f.data_product_id = ${productId} and c.data_location_id = f.source_location_id order by f.relative_path`)

/** Of the product's PROCESSING copies, those cleanup's rule lets go now (the location taken as full, so age holds nothing back). */
const deletableAtProcessing = (productId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [processing] = yield* sql<{ id: string }>`select id from data_location where name = 'cologne-processing'`
    const copies = yield* processingCopies(productId)
    const eligible = yield* Retention.eligible({
      copyIds: copies.map((c) => c.id),
      statuses: ["PRESENT"],
      overThreshold: [processing!.id]
    })
    return eligible.length
  })

/** Packages, bundles or transfers that hold the package: anything sent. */
const sent = (packageId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`
      select count(*)::int as n from data_transfer_package_member where raw_data_package_id = ${packageId}`).pipe(
    Effect.map((rows) => rows[0]!.n)
  )

/** An operator's repair request through the API. */
const requestRepair = (packageId: string) =>
  Effect.gen(function* () {
    const base = yield* BaseUrl
    const token = yield* tokenFor({ role: "operator" })
    return yield* Effect.promise(() =>
      fetch(`${base}/api/v1/packages/${packageId}/repair`, { method: "POST", headers: { authorization: `Bearer ${token}` } }).then(
        async (r) => ({ status: r.status, body: await r.json() as Record<string, unknown> })
      )
    )
  })

describe("A product's package repaired from its files at PROCESSING", () => {
  layer(scienceLayer(dir), { timeout: "3 minutes", excludeTestServices: true })((it) => {
    it.effect(
      "every archive copy rotted: the package is written again from PROCESSING and the archive copy replaced byte-identical; nothing is sent",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const { archive, pkg, product, topology } = yield* archivedProduct([["map.fits", 60_000], ["weights.fits", 3_000]])
          const original = yield* read(at("cologne-archive", archive.path))
          assert.strictEqual(sha256(original), pkg.checksum)

          yield* flipByte(at("cologne-archive", archive.path))
          yield* verifiedDaysAgo(archive.id, 91)
          const found = Effect.map(findingEvents(archive.id, "CORRUPT"), (events) => events.length > 0)
          yield* runSitesUntil([["cologne", [Audit.stage]]], found, 60_000).pipe(Effect.provide(policyLayer(topology)))
          assert.strictEqual((yield* findingEvents(archive.id, "CORRUPT"))[0]!.details.by, "audit")
          // no good archive copy left: cleanup's rule holds the files at PROCESSING back
          assert.strictEqual(yield* deletableAtProcessing(product.id), 0)
          assert.deepStrictEqual((yield* RepairForward.toRepackHere("cologne", pkg.id)).map((p) => p.filedAt), ["cologne-processing"])

          const requested = yield* requestRepair(pkg.id)
          assert.strictEqual(requested.status, 202, JSON.stringify(requested.body))
          assert.deepStrictEqual(requested.body.withoutSource, [])
          assert.deepStrictEqual(
            (requested.body.sites as Array<{ site: string; sources: Array<string> }>).map((s) => [s.site, s.sources]),
            [
              ["cologne", ["written again from its files at cologne-processing"]]
            ]
          )

          const repaired = Effect.map(findingEvents(archive.id, "DELETED"), (events) => events.length > 0)
          yield* runSitesUntil([["cologne", [Repair.stage]]], repaired, 60_000).pipe(Effect.provide(policyLayer(topology)))
          const [event] = yield* sql<{ details: Record<string, unknown> }>`
            select details from event_log where entity_kind = 'PhysicalCopy' and entity_id = ${archive.id} and to_state = 'DELETED'`
          assert.strictEqual(event!.details.action, "repaired")
          assert.strictEqual(event!.details.source, "cologne-buffer")
          const now = (yield* copyAt("cologne-archive", pkg.id))!
          assert.deepStrictEqual([now.id, now.status, now.path], [event!.details.replacement, "PRESENT", archive.path])
          assert.isNotNull(now.verifiedAt)
          const bytes = yield* read(at("cologne-archive", now.path))
          assert.isTrue(bytes.equals(original), "the archive copy is the package as it was first written")
          assert.strictEqual(sha256(bytes), pkg.checksum)
          // the copy it was repaired from: written again from PROCESSING into the buffer, verified
          const [rewritten] = yield* sql<{ action: string }>`
            select e.details->>'action' as action from physical_copy c join data_location l on l.id = c.data_location_id
            join event_log e on e.entity_kind = 'PhysicalCopy' and e.entity_id = c.id and e.from_state is null
            where c.raw_data_package_id = ${pkg.id} and l.name = 'cologne-buffer' and c.status = 'PRESENT' and c.verified_at is not null`
          assert.strictEqual(rewritten?.action, "written again from PROCESSING to repair from here")
          // the package stayed ARCHIVED, its files at PROCESSING untouched, nothing was sent
          const [status] = yield* sql<{ n: number }>`
            select count(*)::int as n from event_log where entity_kind = 'RawDataPackage' and entity_id = ${pkg.id} and from_state = 'completed'`
          assert.strictEqual(status!.n, 0)
          assert.deepStrictEqual((yield* processingCopies(product.id)).map((c) => c.status), ["PRESENT", "PRESENT"])
          for (const f of product.files) assert.strictEqual(sha256(yield* read(at("cologne-processing", f.relativePath))), f.checksum)
          assert.strictEqual(yield* sent(pkg.id), 0)
          // with a good archive copy again, cleanup's rule lets the files at PROCESSING go
          assert.strictEqual(yield* deletableAtProcessing(product.id), 2)
          assert.deepStrictEqual(yield* RepairForward.toRepackHere("cologne", pkg.id), [])
        }),
      120_000
    )

    it.effect(
      "a product file changed at PROCESSING too: the package is not written again, the file's copy is recorded CORRUPT, nothing is deleted or sent",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const { archive, pkg, product, topology } = yield* archivedProduct([["cube.fits", 40_000], ["mask.fits", 2_000]])
          const [changed, kept] = product.files
          yield* flipByte(at("cologne-archive", archive.path))
          yield* flipByte(at("cologne-processing", changed!.relativePath))
          const rotten = yield* read(at("cologne-archive", archive.path))
          const changedBytes = yield* read(at("cologne-processing", changed!.relativePath))
          yield* verifiedDaysAgo(archive.id, 91)
          const copyOf = (fileId: string) => Effect.map(processingCopies(product.id), (rows) => rows.find((c) => c.fileId === fileId)!)
          const changedCopy = yield* copyOf(changed!.id)
          const recorded = Effect.map(copyOf(changed!.id), (c) => c.status === "CORRUPT")
          yield* runSitesUntil([["cologne", [Audit.stage, Repair.stage]]], recorded, 60_000).pipe(Effect.provide(policyLayer(topology)))

          const [finding] = yield* findingEvents(changedCopy.id, "CORRUPT")
          assert.strictEqual(finding!.details.by, "repair")
          assert.include(finding!.details.detail, `package ${pkg.id}`)
          // the bad archive copy stays as it was found, nothing was written into the buffer or sent
          assert.strictEqual((yield* copyAt("cologne-archive", pkg.id))!.status, "CORRUPT")
          assert.isTrue((yield* read(at("cologne-archive", archive.path))).equals(rotten))
          const [buffered] = yield* sql<{ n: number }>`
            select count(*)::int as n from physical_copy c join data_location l on l.id = c.data_location_id
            where c.raw_data_package_id = ${pkg.id} and l.type = 'BUFFER' and c.status <> 'DELETED'`
          assert.strictEqual(buffered!.n, 0)
          const leftInBuffer = yield* Effect.promise(() => fs.access(at("cologne-buffer", pkg.relativePath)).then(() => true, () => false))
          assert.isFalse(leftInBuffer)
          assert.strictEqual(yield* sent(pkg.id), 0)
          // both files are still at PROCESSING as they are now; the other's copy still counts
          assert.isTrue((yield* read(at("cologne-processing", changed!.relativePath))).equals(changedBytes))
          assert.strictEqual(sha256(yield* read(at("cologne-processing", kept!.relativePath))), kept!.checksum)
          assert.strictEqual((yield* copyOf(kept!.id)).status, "PRESENT")
          assert.strictEqual(yield* deletableAtProcessing(product.id), 0)
          // not tried again, and an operator is told no site can help
          assert.deepStrictEqual(yield* RepairForward.toRepackHere("cologne", pkg.id), [])
          const refused = yield* requestRepair(pkg.id)
          assert.strictEqual(refused.status, 422, JSON.stringify(refused.body))
          assert.deepStrictEqual(
            (yield* sql<{ status: string }>`select status::text as status from raw_data_package where id = ${pkg.id}`)[0]!.status,
            "completed"
          )
        }),
      120_000
    )
  })
})
