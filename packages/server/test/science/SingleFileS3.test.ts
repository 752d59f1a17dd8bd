/**
 * One raw file straight from an S3 archive, on a real radosgw and a real PostgreSQL: an
 * observation is archived, every other copy of its package (the buffers, the SOURCE files) is
 * deleted, and a file is read byte-identical through the API and `@ccat/client` with no staging
 * request; pyvo (`fetch_raw_files.py`) finds the observation on the live TAP service, follows
 * its DataLink and downloads every raw file, with a scientist's token and, once public,
 * anonymously; the caller's access rules hold; DataLink lists the links ObsCore points at; and an
 * archive object rotted at rest fails the read (nothing complete and wrong is served) and the
 * copy is found CORRUPT.
 */
import { ObsCore, Repositories } from "@ccat/core"
import { waitUntil } from "@ccat/core/testing"
import { FileDownload, createClient } from "@ccat/client"
import { assert, describe, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll } from "vitest"
import * as Radosgw from "../../../../scripts/radosgw.js"
import { tokenFor } from "../ApiHarness.js"
import type { ArrivedPackage } from "../lifecycle/ArchiveWorld.js"
import { credentialEnv } from "../lifecycle/EndToEndRemoteWorld.js"
import { clientOf, rotInBucket } from "../lifecycle/S3World.js"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { BaseUrl, get, layer as scienceLayer, votableRows } from "./ScienceWorld.js"
import { type Fetched, pyvoFetch, s3OnlyPackage, staged } from "./SingleFileS3World.js"

let s3: Radosgw.Radosgw | undefined
beforeAll(async () => {
  if (!Radosgw.isInstalled()) throw new Error("radosgw is not installed (see .ci/run)")
  s3 = await Radosgw.start({ memoryBytes: 1024 ** 3 })
  process.env[credentialEnv.accessKeyIdEnv] = s3.accessKeyId
  process.env[credentialEnv.secretAccessKeyEnv] = s3.secretAccessKey
}, 240_000)
afterAll(async () => {
  if (s3 !== undefined) await Radosgw.stop(s3.dir)
}, 120_000)

const dir = path.join(tmpdir(), `ccat-science-${randomBytes(4).toString("hex")}`)
afterAll(() => fs.rm(dir, { recursive: true, force: true }))
const bucket = `ccat-science-${randomBytes(4).toString("hex")}`
const prefix = "raw/"

interface World {
  readonly pkg: ArrivedPackage
  readonly instrument: string
  readonly bytes: ReadonlyMap<string, Buffer>
  readonly programId: string
  readonly scientist: string
  readonly stranger: string
  readonly did: string
}
let world: World | undefined

describe("One raw file straight from the S3 archive", () => {
  layer(scienceLayer(dir), { timeout: "4 minutes", excludeTestServices: true })((it) => {
    it.effect(
      "an archived package whose only copy is on S3 serves one file byte-identical, through the API and the client, with no staging",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const base = yield* BaseUrl
          const { bytes, observatory: obs, pkg } = yield* s3OnlyPackage(dir, { endpoint: s3!.endpoint, region: s3!.region, bucket, prefix })
          const live = yield* sql<{ location: string }>`
          select l.name as location from physical_copy c join data_location l on l.id = c.data_location_id
          where c.raw_data_package_id = ${pkg.packageId} and c.status <> 'DELETED'`
          assert.deepStrictEqual(live.map((r) => r.location), ["cologne-archive"])
          // written before offsets were recorded: none yet, so the first read takes them from the manifest
          const [before] = yield* sql<
            { n: number }
          >`select count(*)::int as n from raw_data_package_member where raw_data_package_id = ${pkg.packageId}`
          assert.strictEqual(before!.n, 0)

          const scientist = yield* tokenFor({ role: "scientist", programIds: [obs.program.id] })
          const stranger = yield* tokenFor({ role: "scientist", programIds: [] })
          for (const f of pkg.files) {
            const got = yield* get(`${base}/api/v1/files/${f.id}/content`, scientist)
            assert.strictEqual(got.status, 200, got.body.toString())
            assert.isUndefined(got.cut)
            assert.isTrue(got.body.equals(bytes.get(f.id)!), f.relativePath)
            assert.strictEqual(got.headers.get("x-ccat-checksum"), f.checksum)
            assert.strictEqual(got.headers.get("x-ccat-read-from"), "cologne-archive")
          }
          const [after] = yield* sql<
            { n: number }
          >`select count(*)::int as n from raw_data_package_member where raw_data_package_id = ${pkg.packageId}`
          assert.strictEqual(after!.n, pkg.files.length)

          // the client: streamed to a path, verified; the Promise client too
          const out = path.join(dir, "downloads")
          yield* Effect.promise(() => fs.mkdir(out, { recursive: true }))
          const first = pkg.files[1]!
          const done = yield* FileDownload.downloadFile({ baseUrl: base, token: scientist }, first.id, path.join(out, "long.fits")).pipe(
            Effect.provide(FetchHttpClient.layer)
          )
          assert.strictEqual(done.checksum, first.checksum)
          assert.isTrue((yield* Effect.promise(() => fs.readFile(path.join(out, "long.fits")))).equals(bytes.get(first.id)!))
          const ccat = yield* Effect.promise(() => createClient({ baseUrl: base, token: scientist }))
          const viaPromise = yield* Effect.promise(() => ccat.downloadFile(pkg.files[0]!.id, path.join(out, "a.fits")))
          yield* Effect.promise(() => ccat.close())
          assert.strictEqual(viaPromise.sizeBytes, 300_000)
          assert.isTrue((yield* Effect.promise(() => fs.readFile(path.join(out, "a.fits")))).equals(bytes.get(pkg.files[0]!.id)!))
          assert.strictEqual(yield* staged, 0)
          assert.deepStrictEqual((yield* Effect.promise(() => fs.readdir(out))).sort(), ["a.fits", "long.fits"])

          world = {
            pkg,
            instrument: obs.instrument.name,
            bytes,
            programId: obs.program.id,
            scientist,
            stranger,
            did: ObsCore.publisherDid("ivo://ccat.invalid/archive", pkg.eou.id, obs.modules[0].id)
          }
        }),
      120_000
    )

    it.effect(
      "pyvo finds the observation by a cone, a time range and an instrument, follows DataLink and downloads each raw file from the S3 copy, with no staging",
      () =>
        Effect.gen(function* () {
          const w = world!
          const sql = yield* SqlClient.SqlClient
          const base = yield* BaseUrl
          const source = yield* Repositories.sources.insert({
            name: `Orion KL ${randomBytes(3).toString("hex")}`,
            raDeg: 83.80867,
            decDeg: -5.37264,
            solarSystem: false,
            description: ""
          })
          yield* sql`update obs_unit set source_id = ${source.id} where id = (select obs_unit_id from executed_obs_unit where id = ${w.pkg.eou.id})`
          yield* sql`update observing_program set proprietary_period_days = 365 where id = ${w.programId}`
          const [row] = yield* sql<{ accessUrl: string }>`select access_url from ivoa.obscore where obs_id = ${w.pkg.eou.id}`
          const out = path.join(dir, "pyvo")
          const search = {
            ra: 83.80867,
            dec: -5.37264,
            start: "2026-05-01T00:00:00Z",
            end: "2026-05-02T00:00:00Z",
            instrument: w.instrument
          }
          const folder = (name: string) =>
            Effect.promise(() => fs.mkdir(path.join(out, name), { recursive: true }).then(() => path.join(out, name)))
          const fileUrls = w.pkg.files.map((f) => `${base}/api/v1/files/${f.id}/content`).sort()
          const identical = (got: Fetched) =>
            Effect.forEach(got.files, (f) =>
              Effect.promise(() => fs.readFile(f.path)).pipe(Effect.map((onDisk) => {
                const filed = w.pkg.files.find((file) => f.access_url === `${base}/api/v1/files/${file.id}/content`)!
                assert.isTrue(onDisk.equals(w.bytes.get(filed.id)!), filed.relativePath)
                assert.strictEqual(f.checksum, filed.checksum)
                assert.strictEqual(f.content_length, filed.sizeBytes)
              })))

          // proprietary: the scientist's token finds it and reads every file; anonymous finds
          // nothing, and a DataLink URL it got hold of asks for credentials (401)
          const [granted, anonymous] = yield* pyvoFetch(`${base}/tap`, [
            { ...search, out: yield* folder("granted"), token: w.scientist },
            { ...search, out: yield* folder("anonymous"), follow: [row!.accessUrl] }
          ])
          for (const found of [granted!.cone, granted!.time, granted!.instrument]) {
            assert.deepStrictEqual([...new Set(found)], [w.pkg.eou.id])
          }
          assert.deepStrictEqual(granted!.datalink, [row!.accessUrl])
          assert.deepStrictEqual(granted!.files.map((f) => f.access_url).sort(), fileUrls)
          assert.isTrue(granted!.files.every((f) => f.link_auth === "true" && f.read_from === "cologne-archive"))
          yield* identical(granted!)
          assert.deepStrictEqual([anonymous!.cone, anonymous!.time, anonymous!.instrument, anonymous!.files], [[], [], [], []])
          assert.strictEqual(anonymous!.errors.length, 1)
          assert.include(anonymous!.errors[0], "AuthenticationFault")

          // public once its proprietary period is over: anonymous pyvo reads it with no token
          yield* sql`update observing_program set proprietary_period_days = 30 where id = ${w.programId}`
          const [open] = yield* pyvoFetch(`${base}/tap`, [{ ...search, out: yield* folder("open") }])
          assert.deepStrictEqual(open!.files.map((f) => f.access_url).sort(), fileUrls)
          assert.isTrue(open!.files.every((f) => f.link_auth === "optional" && f.read_from === null))
          yield* identical(open!)

          // still only the S3 archive holds the package, and nothing was staged
          const live = yield* sql<{ technology: string }>`
          select l.technology::text as technology from physical_copy c join data_location l on l.id = c.data_location_id
          where c.raw_data_package_id = ${w.pkg.packageId} and c.status <> 'DELETED'`
          assert.deepStrictEqual(live.map((r) => r.technology), ["s3"])
          assert.strictEqual(yield* staged, 0)
        }),
      90_000
    )

    it.effect(
      "another program's scientist and anonymous callers are refused proprietary data; anonymous reads it once public",
      () =>
        Effect.gen(function* () {
          const w = world!
          const sql = yield* SqlClient.SqlClient
          const base = yield* BaseUrl
          const file = w.pkg.files[0]!
          const url = `${base}/api/v1/files/${file.id}/content`
          yield* sql`update observing_program set proprietary_period_days = 365 where id = ${w.programId}`
          // another program's scientist: not found; anonymous: asked for credentials
          for (const [token, status] of [[w.stranger, 404], [undefined, 401]] as const) {
            const refused = yield* get(url, token)
            assert.strictEqual(refused.status, status)
            assert.notInclude(refused.body.toString(), "fits")
          }
          assert.strictEqual((yield* get(url, "ccat_bogus_token")).status, 401)
          assert.strictEqual((yield* get(`${base}/api/v1/files/not-a-uuid/content`)).status, 400)
          const failed = yield* FileDownload.downloadFile({ baseUrl: base }, file.id, path.join(dir, "refused.fits")).pipe(
            Effect.provide(FetchHttpClient.layer),
            Effect.flip
          )
          assert.strictEqual(failed.reason, "Unauthorized")
          assert.isFalse(yield* Effect.promise(() => fs.access(path.join(dir, "refused.fits")).then(() => true, () => false)))
          // the observation ended 2026-05-01: a 30-day period is over, so anyone may read it
          yield* sql`update observing_program set proprietary_period_days = 30 where id = ${w.programId}`
          const open = yield* get(url)
          assert.strictEqual(open.status, 200)
          assert.isNull(open.headers.get("x-ccat-read-from"))
          assert.isTrue(open.body.equals(w.bytes.get(file.id)!))
          yield* sql`update observing_program set proprietary_period_days = null where id = ${w.programId}`
          assert.strictEqual((yield* get(url)).status, 401)
        }),
      60_000
    )

    it.effect(
      "DataLink lists each file's #this, the package and staging, for ObsCore's access_url and per file",
      () =>
        Effect.gen(function* () {
          const w = world!
          const sql = yield* SqlClient.SqlClient
          const base = yield* BaseUrl
          const [row] = yield* sql<{ accessUrl: string; obsPublisherDid: string }>`
          select access_url, obs_publisher_did from ivoa.obscore where obs_id = ${w.pkg.eou.id}`
          assert.strictEqual(row!.obsPublisherDid, w.did)
          const answer = yield* get(row!.accessUrl, w.scientist)
          assert.strictEqual(answer.status, 200)
          assert.include(answer.headers.get("content-type")!, "application/x-votable+xml;content=datalink")
          const rows = votableRows(answer.body.toString())
          assert.isTrue(rows.every((r) => r.ID === w.did))
          const these = rows.filter((r) => r.semantics === "#this")
          assert.deepStrictEqual(
            these.map((r) => r.access_url).sort(),
            w.pkg.files.map((f) => `${base}/api/v1/files/${f.id}/content`).sort()
          )
          assert.deepStrictEqual(these.map((r) => Number(r.content_length)).sort((a, b) => a - b), [0, 512, 70_001, 300_000])
          assert.deepStrictEqual(rows.filter((r) => r.semantics === "#package").map((r) => r.access_url), [
            `${base}/api/v1/packages/${w.pkg.packageId}/content`
          ])
          assert.deepStrictEqual(rows.filter((r) => r.semantics === "#documentation").map((r) => r.access_url), [
            `${base}/api/v1/packages/${w.pkg.packageId}`
          ])
          // following #package gives the whole tar from the S3 copy, its checksum the package's
          const tarLink = rows.find((r) => r.semantics === "#package")!
          const tar = yield* get(tarLink.access_url!, w.scientist)
          const [filed] = yield* sql<
            { checksum: string; sizeBytes: string }
          >`select checksum, size_bytes from raw_data_package where id = ${w.pkg.packageId}`
          assert.strictEqual(tar.status, 200)
          assert.strictEqual(tar.headers.get("x-ccat-read-from"), "cologne-archive")
          assert.deepStrictEqual([tar.body.length, String(tar.body.length)], [Number(filed!.sizeBytes), tarLink.content_length])
          assert.strictEqual(`sha256:${createHash("sha256").update(tar.body).digest("hex")}`, filed!.checksum)
          const staging = rows.find((r) => r.semantics === "#auxiliary")!
          assert.strictEqual(staging.access_url, `${base}/api/v1/staging-requests`)
          assert.strictEqual(staging.link_authorized, "T")
          // following #this gives the file
          const followed = yield* get(these.find((r) => r.content_length === "300000")!.access_url!, w.scientist)
          assert.isTrue(followed.body.equals(w.bytes.get(w.pkg.files[0]!.id)!))

          // per file, several IDs at once; an unknown one and one not visible get an error row each
          const file = w.pkg.files[1]!
          const other = "00000000-0000-4000-8000-000000000000"
          const perFile = votableRows(
            (yield* get(`${base}/api/v1/datalink?ID=${file.id}&ID=${other}&ID=nonsense`, w.scientist)).body.toString()
          )
          assert.deepStrictEqual(perFile.filter((r) => r.ID === file.id).map((r) => r.semantics), [
            "#this",
            "#package",
            "#documentation",
            "#auxiliary"
          ])
          assert.include(perFile.find((r) => r.ID === other)!.error_message, "NotFoundFault")
          assert.include(perFile.find((r) => r.ID === "nonsense")!.error_message, "UsageFault")
          const hidden = votableRows((yield* get(`${base}/api/v1/datalink?ID=${encodeURIComponent(w.did)}`, w.stranger)).body.toString())
          assert.strictEqual(hidden.length, 1)
          assert.include(hidden[0]!.error_message, "NotFoundFault")
          // an error row carries only ID, semantics and its message
          assert.deepStrictEqual(Object.entries(perFile.find((r) => r.ID === other)!).filter(([, v]) => v !== "").map(([k]) => k), [
            "ID",
            "error_message",
            "semantics"
          ])
          // no ID: an empty list, as DataLink requires
          const none = yield* get(`${base}/api/v1/datalink`)
          assert.strictEqual(none.status, 200)
          assert.deepStrictEqual(votableRows(none.body.toString()), [])
          // POST, as a form, as DALI allows
          const posted = yield* Effect.promise(() =>
            fetch(`${base}/api/v1/datalink`, {
              method: "POST",
              headers: { authorization: `Bearer ${w.scientist}`, "content-type": "application/x-www-form-urlencoded" },
              body: new URLSearchParams({ ID: file.id }).toString()
            }).then(async (r) => ({ status: r.status, text: await r.text() }))
          )
          assert.strictEqual(posted.status, 200)
          assert.deepStrictEqual(votableRows(posted.text).map((r) => r.semantics), ["#this", "#package", "#documentation", "#auxiliary"])
          assert.strictEqual((yield* get(`${base}/api/v1/datalink?ID=${file.id}&RESPONSEFORMAT=json`)).status, 400)
          // a RESPONSEFORMAT is read without its MIME type parameters
          const tabledata = yield* get(
            `${base}/api/v1/datalink?ID=${file.id}&RESPONSEFORMAT=${
              encodeURIComponent("application/x-votable+xml;serialization=TABLEDATA")
            }`,
            w.scientist
          )
          assert.strictEqual(tabledata.status, 200)
          assert.deepStrictEqual(votableRows(tabledata.body.toString()).map((r) => r.semantics), [
            "#this",
            "#package",
            "#documentation",
            "#auxiliary"
          ])
        }),
      60_000
    )

    it.effect("an archive object rotted inside a file fails that file's read and the copy is found CORRUPT", () =>
      Effect.gen(function* () {
        const w = world!
        const sql = yield* SqlClient.SqlClient
        const base = yield* BaseUrl
        const [copy] = yield* sql<{ id: string; path: string }>`
          select c.id, c.path from physical_copy c where c.raw_data_package_id = ${w.pkg.packageId} and c.status = 'PRESENT'`
        const client = yield* clientOf(s3!)
        // the large file takes most of the tar: its middle is in it
        yield* rotInBucket(client, bucket, `${prefix}${copy!.path}`, 0.3)
        const file = w.pkg.files[0]!
        const failed = yield* FileDownload.downloadFile({ baseUrl: base, token: w.scientist }, file.id, path.join(dir, "rotten.fits")).pipe(
          Effect.provide(FetchHttpClient.layer),
          Effect.flip
        )
        assert.strictEqual(failed.reason, "Corrupt")
        assert.isFalse(yield* Effect.promise(() => fs.access(path.join(dir, "rotten.fits")).then(() => true, () => false)))
        // the whole copy is read again, fails too, and is recorded CORRUPT (found by this read)
        const status = () =>
          Effect.map(sql<{ status: string }>`select status::text as status from physical_copy where id = ${copy!.id}`, ([r]) => r!.status)
        yield* waitUntil("the copy recorded CORRUPT by the failed read", Effect.map(status(), (s) => s === "CORRUPT"), 30_000)
        const [event] = yield* sql<{ details: { by: string } }>`
          select details from event_log where entity_kind = 'PhysicalCopy' and entity_id = ${copy!.id} and to_state = 'CORRUPT'`
        assert.strictEqual(event!.details.by, "single-file read")
        // with no good copy left, the file is not served at all
        const after = yield* get(`${base}/api/v1/files/${file.id}/content`, w.scientist)
        assert.strictEqual(after.status, 503)
        assert.strictEqual(yield* staged, 0)
      }).pipe(Effect.scoped), 60_000)
  })
})
