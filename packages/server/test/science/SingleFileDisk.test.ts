/**
 * One raw file read by a disk seek from the package the packaging stage just wrote (real
 * PostgreSQL, the disk driver): the packager records every file's offsets with the package, so
 * nothing is read to find them; and offsets that are wrong fail the read at the file's tar header
 * before any of its bytes are sent, are dropped once the whole copy reads good, and the next read
 * takes them from the manifest and succeeds. A package whose only copy is on tape is not read
 * here: the answer says to stage it.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import { tokenFor } from "../ApiHarness.js"
import * as Archiving from "../../src/lifecycle/Archiving.js"
import * as Sites from "../../src/lifecycle/Sites.js"
import { Storages } from "../../src/lifecycle/Storages.js"
import { arrivedPackage, editLocations, runSitesUntil, topologyFrom } from "../lifecycle/ArchiveWorld.js"
import { fileObservation, observatory, policyLayer, syncTopology } from "../lifecycle/LifecycleWorld.js"
import { BaseUrl, get, layer as scienceLayer } from "./ScienceWorld.js"

const dir = path.join(tmpdir(), `ccat-science-disk-${randomBytes(4).toString("hex")}`)
afterAll(() => fs.rm(dir, { recursive: true, force: true }))

describe("One raw file from a package on disk", () => {
  layer(scienceLayer(dir), { timeout: "2 minutes", excludeTestServices: true })((it) => {
    it.effect("packaging records the offsets; a disk copy serves the file; wrong offsets fail at the header and are read again", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const base = yield* BaseUrl
        const topology = topologyFrom(dir)
        yield* syncTopology(topology)
        const obs = yield* observatory
        const { files } = yield* fileObservation(topology, obs, [
          { path: "det/a.fits", bytes: 100_000 },
          { path: "det/b.fits", bytes: 4_096 },
          { path: "hk.dat", bytes: 77 }
        ])
        const packaged = Effect.map(
          sql<{ n: number }>`select count(*)::int as n from raw_data_file where id in ${sql.in(files.map((f) => f.id))} and state = 'packaged'`,
          ([r]) => r!.n === files.length
        )
        yield* runSitesUntil([["chile", [Packaging.stage]]], packaged, 60_000).pipe(Effect.provide(policyLayer(topology)))
        const offsets = yield* sql<{ fileId: string; dataOffset: string }>`
          select raw_data_file_id as file_id, data_offset from raw_data_package_member where raw_data_file_id in ${sql.in(files.map((f) => f.id))}`
        assert.strictEqual(offsets.length, files.length)

        const operator = yield* tokenFor({ role: "operator" })
        for (const f of files) {
          const got = yield* get(`${base}/api/v1/files/${f.id}/content`, operator)
          assert.strictEqual(got.status, 200)
          assert.strictEqual(got.headers.get("x-ccat-read-from"), "chile-buffer")
          assert.isTrue(got.body.equals(yield* Effect.promise(() => fs.readFile(f.absolutePath))), f.relativePath)
        }
        // the token as HTTP Basic's password reads the same; a wrong one is refused, not anonymous
        const basic = yield* get(`${base}/api/v1/files/${files[1]!.id}/content`, { basic: operator })
        assert.strictEqual(basic.status, 200)
        assert.isTrue(basic.body.equals(yield* Effect.promise(() => fs.readFile(files[1]!.absolutePath))))
        assert.strictEqual((yield* get(`${base}/api/v1/files/${files[1]!.id}/content`, { basic: "ccat_nope_nope" })).status, 401)

        // offsets one block off: the block before the "data" is not the file's header
        const victim = files[0]!
        yield* sql`update raw_data_package_member set header_offset = header_offset + 512, data_offset = data_offset + 512 where raw_data_file_id = ${victim.id}`
        const wrong = yield* get(`${base}/api/v1/files/${victim.id}/content`, operator)
        assert.isTrue(wrong.cut !== undefined || wrong.body.length < victim.sizeBytes, "a read at wrong offsets must not complete")
        assert.isFalse(wrong.body.equals(yield* Effect.promise(() => fs.readFile(victim.absolutePath))))
        const rows = () => Effect.map(sql<{ n: number }>`select count(*)::int as n from raw_data_package_member where raw_data_file_id = ${victim.id}`, ([r]) => r!.n)
        const deadline = Date.now() + 20_000
        while ((yield* rows()) !== 0 && Date.now() < deadline) yield* Effect.sleep("50 millis")
        assert.strictEqual(yield* rows(), 0)
        const [copy] = yield* sql<{ status: string }>`
          select c.status::text as status from physical_copy c join raw_data_file f on f.raw_data_package_id = c.raw_data_package_id where f.id = ${victim.id}`
        assert.strictEqual(copy!.status, "PRESENT")
        const again = yield* get(`${base}/api/v1/files/${victim.id}/content`, operator)
        assert.strictEqual(again.status, 200)
        assert.isTrue(again.body.equals(yield* Effect.promise(() => fs.readFile(victim.absolutePath))))
        assert.strictEqual(yield* rows(), 1)
      }), 90_000)

    it.effect("a package whose only copy is on tape answers 409 NeedsStaging, and no staging request is made for it", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const storages = yield* Storages
        const base = yield* BaseUrl
        const topology = topologyFrom(dir, (raw) =>
          editLocations(raw, (l) => (l.type === "LONG_TERM_ARCHIVE" ? { ...l, technology: "tape", driver: { ...(l.driver as object), library: "virtual" } } : l)))
        yield* syncTopology(topology)
        const obs = yield* observatory
        const pkg = yield* arrivedPackage(topology, obs, [{ path: "det/t.fits", bytes: 5_000 }])
        const archived = Effect.map(sql<{ status: string }>`select status::text as status from raw_data_package where id = ${pkg.packageId}`, ([p]) => p!.status === "completed")
        yield* runSitesUntil([["cologne", [Archiving.stage]]], archived, 60_000).pipe(Effect.provide(policyLayer(topology)))
        const others = yield* sql<{ id: string; path: string; locationId: string }>`
          select c.id, c.path, c.data_location_id as location_id from physical_copy c join data_location l on l.id = c.data_location_id
          where c.raw_data_package_id = ${pkg.packageId} and l.type <> 'LONG_TERM_ARCHIVE'`
        for (const c of others) yield* (yield* storages.of(yield* Sites.location(c.locationId))).delete(c.path)
        yield* sql`update physical_copy set status = 'DELETED' where id in ${sql.in(others.map((c) => c.id))}`
        const operator = yield* tokenFor({ role: "operator" })
        const answer = yield* get(`${base}/api/v1/files/${pkg.files[0]!.id}/content`, operator)
        assert.strictEqual(answer.status, 409)
        const body = JSON.parse(answer.body.toString())
        assert.strictEqual(body._tag, "NeedsStaging")
        assert.include(body.message, "staging")
        const [requests] = yield* sql<{ n: number }>`select count(*)::int as n from staging_request`
        assert.strictEqual(requests!.n, 0)
      }), 90_000)
  })
})
