/**
 * One raw file read by a disk seek from the package the packaging stage just wrote (real
 * PostgreSQL, the disk driver): the packager records every file's offsets with the package, so
 * nothing is read to find them; and offsets that are wrong fail the read at the file's tar header
 * before any of its bytes are sent, are dropped once the whole copy reads good, and the next read
 * takes them from the manifest and succeeds. A package whose only copy is on tape is not read
 * here: the answer says to stage it.
 *
 * A whole package's tar from the same disk copy: byte-identical with the copy, by the rules of
 * the file endpoint (a scientist of the program, anyone once public; another program's
 * scientist and anonymous callers not before), linked as DataLink's `#package` (checked by
 * `stilts datalinklint`), downloaded by the client; a copy rotted at rest cuts the download and
 * is found CORRUPT.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { randomBytes, randomUUID } from "node:crypto"
import * as http from "node:http"
import * as fs from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { execFile } from "node:child_process"
import { afterAll } from "vitest"
import { createClient } from "@ccat/client"
import { waitUntil } from "@ccat/core/testing"
import * as ObsCorePublisher from "../../src/ObsCorePublisher.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import { tokenFor } from "../ApiHarness.js"
import * as Archiving from "../../src/lifecycle/Archiving.js"
import * as Sites from "../../src/lifecycle/Sites.js"
import { Storages } from "../../src/lifecycle/Storages.js"
import { arrivedPackage, editLocations, runSitesUntil, topologyFrom } from "../lifecycle/ArchiveWorld.js"
import { fileObservation, observatory, policyLayer, syncTopology } from "../lifecycle/LifecycleWorld.js"
import { BaseUrl, get, layer as scienceLayer, votableRows } from "./ScienceWorld.js"

const dir = path.join(tmpdir(), `ccat-science-disk-${randomBytes(4).toString("hex")}`)
afterAll(() => fs.rm(dir, { recursive: true, force: true }))

/** An observation filed at chile-source with `specs` and packaged by the real stage: the demo topology, its observatory, its files. */
const packagedObservation = (specs: ReadonlyArray<{ readonly path: string; readonly bytes: number }>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const topology = topologyFrom(dir)
    yield* syncTopology(topology)
    const obs = yield* observatory
    const { files } = yield* fileObservation(topology, obs, specs)
    const packaged = Effect.map(
      sql<{ n: number }>`select count(*)::int as n from raw_data_file where id in ${sql.in(files.map((f) => f.id))} and state = 'packaged'`,
      ([r]) => r!.n === files.length
    )
    yield* runSitesUntil([["chile", [Packaging.stage]]], packaged, 60_000).pipe(Effect.provide(policyLayer(topology)))
    return { topology, obs, files }
  })

describe("One raw file from a package on disk", () => {
  layer(scienceLayer(dir, { CCAT_MAX_DOWNLOADS: "2" }), { timeout: "2 minutes", excludeTestServices: true })((it) => {
    it.effect(
      "packaging records the offsets; a disk copy serves the file; wrong offsets fail at the header and are read again",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const base = yield* BaseUrl
          const { files } = yield* packagedObservation([
            { path: "det/a.fits", bytes: 100_000 },
            { path: "det/b.fits", bytes: 4_096 },
            { path: "hk.dat", bytes: 77 }
          ])
          const offsets = yield* sql<{ fileId: string; dataOffset: string }>`
          select raw_data_file_id as file_id, data_offset from raw_data_package_member where raw_data_file_id in ${
            sql.in(files.map((f) => f.id))
          }`
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
          // read in one part, the check fails before any byte is sent: an answer, not a cut connection
          assert.strictEqual(wrong.status, 503, wrong.body.toString())
          assert.isUndefined(wrong.cut)
          assert.strictEqual(wrong.headers.get("retry-after"), "5")
          const refusal = JSON.parse(wrong.body.toString()) as { _tag: string; message: string }
          assert.strictEqual(refusal._tag, "Unavailable")
          assert.include(refusal.message, "nothing was sent")
          const rows = () =>
            Effect.map(
              sql<{ n: number }>`select count(*)::int as n from raw_data_package_member where raw_data_file_id = ${victim.id}`,
              ([r]) => r!.n
            )
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
        }),
      90_000
    )

    it.effect(
      "a package whose only copy is on tape answers 409 NeedsStaging, and no staging request is made for it",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const storages = yield* Storages
          const base = yield* BaseUrl
          const topology = topologyFrom(dir, (raw) =>
            editLocations(raw, (l) => (l.type === "LONG_TERM_ARCHIVE"
              ? { ...l, technology: "tape", driver: { ...(l.driver as object), library: "virtual" } }
              : l)))
          yield* syncTopology(topology)
          const obs = yield* observatory
          const pkg = yield* arrivedPackage(topology, obs, [{ path: "det/t.fits", bytes: 5_000 }])
          const archived = Effect.map(
            sql<{ status: string }>`select status::text as status from raw_data_package where id = ${pkg.packageId}`,
            ([p]) => p!.status === "completed"
          )
          yield* runSitesUntil([["cologne", [Archiving.stage]]], archived, 60_000).pipe(Effect.provide(policyLayer(topology)))
          const others = yield* sql<{ id: string; path: string; locationId: string }>`
          select c.id, c.path, c.data_location_id as location_id from physical_copy c join data_location l on l.id = c.data_location_id
          where c.raw_data_package_id = ${pkg.packageId} and l.type <> 'LONG_TERM_ARCHIVE'`
          for (const c of others) {
            yield* (yield* storages.of(yield* Sites.location(c.locationId))).delete(c.path)
          }
          yield* sql`update physical_copy set status = 'DELETED' where id in ${sql.in(others.map((c) => c.id))}`
          const operator = yield* tokenFor({ role: "operator" })
          const answer = yield* get(`${base}/api/v1/files/${pkg.files[0]!.id}/content`, operator)
          assert.strictEqual(answer.status, 409)
          const body = JSON.parse(answer.body.toString())
          assert.strictEqual(body._tag, "NeedsStaging")
          assert.include(body.message, "staging")
          const tar = yield* get(`${base}/api/v1/packages/${pkg.packageId}/content`, operator)
          assert.strictEqual(tar.status, 409)
          assert.strictEqual(JSON.parse(tar.body.toString())._tag, "NeedsStaging")
          const [requests] = yield* sql<{ n: number }>`select count(*)::int as n from staging_request`
          assert.strictEqual(requests!.n, 0)
        }),
      90_000
    )

    it.effect(
      "a small package rotted at rest is refused 503 before any byte, for the tar and for its file, and its copy is found CORRUPT",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const base = yield* BaseUrl
          const { files } = yield* packagedObservation([{ path: "det/small.fits", bytes: 20_000 }])
          const [pkg] = yield* sql<{ id: string; copyId: string; absolute: string }>`
          select p.id, c.id as copy_id, (l.driver_config->>'root') || '/' || c.path as absolute
          from raw_data_package p join raw_data_file f on f.raw_data_package_id = p.id
          join physical_copy c on c.raw_data_package_id = p.id and c.status = 'PRESENT' join data_location l on l.id = c.data_location_id
          where f.id = ${files[0]!.id}`
          const tar = yield* Effect.promise(() => fs.readFile(pkg!.absolute))
          const rotten = Buffer.from(tar)
          rotten[Math.floor(tar.length / 2)]! ^= 0xff
          yield* Effect.promise(() => fs.writeFile(pkg!.absolute, rotten))
          const operator = yield* tokenFor({ role: "operator" })
          for (const url of [`${base}/api/v1/packages/${pkg!.id}/content`, `${base}/api/v1/files/${files[0]!.id}/content`]) {
            const got = yield* get(url, operator)
            assert.isUndefined(got.cut, url)
            assert.strictEqual(got.status, 503, got.body.toString())
            const refusal = JSON.parse(got.body.toString()) as { _tag: string; message: string }
            assert.strictEqual(refusal._tag, "Unavailable")
            // The first read finds the mismatch; the copy is recorded CORRUPT meanwhile, and once it
            // is, the file's request is refused for having no readable copy left, not for the checksum.
            if (url.includes("/packages/")) assert.include(refusal.message, "checksum")
            else assert.match(refusal.message, /checksum|no copy of its package can be read now/)
          }
          const status = Effect.map(
            sql<{ status: string }>`select status::text as status from physical_copy where id = ${pkg!.copyId}`,
            ([r]) => r!.status
          )
          yield* waitUntil("the rotted copy recorded CORRUPT", Effect.map(status, (s) => s === "CORRUPT"), 20_000)
          // nothing else can be read now: the copy is no longer offered
          assert.strictEqual((yield* get(`${base}/api/v1/files/${files[0]!.id}/content`, operator)).status, 503)
        }),
      90_000
    )

    it.effect(
      "a download beyond CCAT_MAX_DOWNLOADS is answered 503 Busy, and its slot comes back when a reader hangs up",
      () =>
        Effect.gen(function* () {
          const base = yield* BaseUrl
          // large enough that the socket's buffers cannot take it all while its reader reads nothing
          const { files } = yield* packagedObservation([{ path: "det/big.fits", bytes: 40_000_000 }, { path: "det/tiny.dat", bytes: 100 }])
          const operator = yield* tokenFor({ role: "operator" })
          const tiny = `${base}/api/v1/files/${files[1]!.id}/content`
          assert.strictEqual((yield* get(tiny, operator)).status, 200)
          // two downloads held open (the file's limit is 2): their reader reads nothing
          const hold = () =>
            Effect.promise(() =>
              new Promise<http.IncomingMessage>((resolve, reject) => {
                http.get(`${base}/api/v1/files/${files[0]!.id}/content`, { headers: { authorization: `Bearer ${operator}` } }, (res) => {
                  res.pause()
                  resolve(res)
                }).on("error", reject)
              })
            )
          const held = [yield* hold(), yield* hold()]
          for (const h of held) assert.strictEqual(h.statusCode, 200)
          const busy = yield* get(tiny, operator)
          assert.strictEqual(busy.status, 503, busy.body.toString())
          assert.strictEqual(busy.headers.get("retry-after"), "2")
          const refusal = JSON.parse(busy.body.toString()) as { _tag: string; message: string }
          assert.strictEqual(refusal._tag, "Busy")
          assert.include(refusal.message, "limit of 2 downloads")
          held[0]!.destroy()
          yield* waitUntil(
            "the slot of the download hung up on given back",
            Effect.map(get(tiny, operator), (r) => r.status === 200),
            20_000
          )
          held[1]!.destroy()
        }),
      90_000
    )

    it.effect(
      "a package's whole tar from its disk copy: access as for files, DataLink's #package, the client, and a rotted copy cut and found CORRUPT",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const base = yield* BaseUrl
          const topology = topologyFrom(dir)
          yield* syncTopology(topology)
          yield* ObsCorePublisher.write({ baseUrl: base })
          const obs = yield* observatory
          const { files } = yield* fileObservation(topology, obs, [
            { path: "det/p.fits", bytes: 5_000_000 },
            { path: "hk/p.dat", bytes: 33 }
          ])
          const written = Effect.map(
            sql<{ n: number }>`select count(*)::int as n from raw_data_package p join raw_data_file f on f.raw_data_package_id = p.id
            where f.id = ${files[0]!.id} and p.checksum is not null`,
            ([r]) => r!.n === 1
          )
          yield* runSitesUntil([["chile", [Packaging.stage]]], written, 60_000).pipe(Effect.provide(policyLayer(topology)))
          const [pkg] = yield* sql<
            { id: string; relativePath: string; sizeBytes: string; checksum: string; copyId: string; absolute: string }
          >`
          select p.id, p.relative_path, p.size_bytes, p.checksum, c.id as copy_id, (l.driver_config->>'root') || '/' || c.path as absolute
          from raw_data_package p join raw_data_file f on f.raw_data_package_id = p.id
          join physical_copy c on c.raw_data_package_id = p.id and c.status = 'PRESENT' join data_location l on l.id = c.data_location_id
          where f.id = ${files[0]!.id}`
          const tar = yield* Effect.promise(() => fs.readFile(pkg!.absolute))
          assert.strictEqual(tar.length, Number(pkg!.sizeBytes))
          const url = `${base}/api/v1/packages/${pkg!.id}/content`

          const scientist = yield* tokenFor({ role: "scientist", programIds: [obs.program.id] })
          const stranger = yield* tokenFor({ role: "scientist", programIds: [] })
          for (const token of [scientist, { basic: scientist }] as const) {
            const got = yield* get(url, token)
            assert.strictEqual(got.status, 200, got.body.toString())
            assert.isUndefined(got.cut)
            assert.isTrue(got.body.equals(tar))
            assert.strictEqual(got.headers.get("content-type"), "application/x-tar")
            assert.strictEqual(got.headers.get("content-length"), String(pkg!.sizeBytes))
            assert.strictEqual(got.headers.get("x-ccat-checksum"), pkg!.checksum)
            assert.include(got.headers.get("content-disposition")!, `filename="${path.basename(pkg!.relativePath)}"`)
            assert.strictEqual(got.headers.get("accept-ranges"), "none")
            assert.strictEqual(got.headers.get("x-ccat-read-from"), "chile-buffer")
          }
          // proprietary (no period set): another program's scientist and anonymous see nothing
          const strange = yield* get(url, stranger)
          assert.strictEqual(strange.status, 404, strange.cut)
          // anonymous: asked for credentials (as TOPCAT and STILTS need), the same for an id that names nothing
          const challenged = yield* get(url)
          assert.strictEqual(challenged.status, 401)
          assert.match(challenged.headers.get("www-authenticate")!, /^Basic realm=/)
          const nothing = yield* get(`${base}/api/v1/packages/${randomUUID()}/content`)
          assert.strictEqual(nothing.status, 401)
          assert.strictEqual(nothing.body.toString(), challenged.body.toString())
          assert.strictEqual((yield* get(url, "ccat_bogus_token")).status, 401)
          assert.strictEqual((yield* get(`${base}/api/v1/packages/not-a-uuid/content`)).status, 400)
          // DataLink for a proprietary file: anonymous is challenged; STILTS answers the challenge
          // with the token as Basic's password (the documented argument file) and reads the links
          const linksUrl = `${base}/api/v1/datalink?ID=${files[0]!.id}`
          const hidden = yield* get(linksUrl)
          assert.strictEqual(hidden.status, 401)
          assert.include(hidden.body.toString(), "AuthenticationFault")
          const argfile = path.join(dir, "ccat-stilts")
          yield* Effect.promise(() =>
            fs.writeFile(argfile, `-Dstar.basicauth.user=token\n-Dstar.basicauth.password=${scientist}\n`, { mode: 0o600 })
          )
          const stilts = (args: ReadonlyArray<string>) =>
            Effect.async<string>((resume) => {
              const child = execFile(
                "stilts",
                [...args],
                { timeout: 60_000 },
                (_error, stdout, stderr) => resume(Effect.succeed(`${stdout}${stderr}`))
              )
              return Effect.sync(() => child.kill())
            })
          const signedIn = yield* stilts([`-J@${argfile}`, "datalinklint", `votable=${linksUrl}`])
          assert.include(signedIn, "Totals:", signedIn)
          assert.notInclude(signedIn, "AuthenticationFault", signedIn)
          assert.include(signedIn, `${base}/api/v1/files/${files[0]!.id}/content`, signedIn)
          assert.include(yield* stilts(["datalinklint", `votable=${linksUrl}`]), "401")
          // public once the period is over (the observation ended 2026-05-01)
          yield* sql`update observing_program set proprietary_period_days = 30 where id = ${obs.program.id}`
          const open = yield* get(url)
          assert.strictEqual(open.status, 200)
          assert.isTrue(open.body.equals(tar))
          assert.isNull(open.headers.get("x-ccat-read-from"))

          // DataLink's #package is the tar; the package's record stays, as #documentation
          const answer = yield* get(`${base}/api/v1/datalink?ID=${files[0]!.id}`)
          const rows = votableRows(answer.body.toString())
          assert.deepStrictEqual(rows.map((r) => r.semantics), ["#this", "#package", "#documentation", "#auxiliary"])
          const link = rows.find((r) => r.semantics === "#package")!
          assert.deepStrictEqual(
            [link.access_url, link.content_type, link.content_length, link.link_auth],
            [url, "application/x-tar", String(pkg!.sizeBytes), "optional"]
          )
          assert.strictEqual(rows.find((r) => r.semantics === "#documentation")!.access_url, `${base}/api/v1/packages/${pkg!.id}`)
          // stilts' built-in copy of the vocabulary (it reads the live one only online) predates
          // #package and #documentation: those two are its only complaints
          const votable = path.join(dir, "links.xml")
          yield* Effect.promise(() => fs.writeFile(votable, answer.body))
          const lint = yield* stilts(["datalinklint", votable])
          const complaints = lint.split("\n").filter((l) => /^[EWF]-/.test(l))
          assert.include(lint, "Totals:", lint)
          assert.deepStrictEqual(
            complaints.filter((l) => !/Unknown predicate '(package|documentation)' from core DataLink vocabulary/.test(l)),
            [],
            lint
          )

          // the client writes it whole and verified
          const ccat = yield* Effect.promise(() => createClient({ baseUrl: base, token: scientist }))
          const done = yield* Effect.promise(() => ccat.downloadPackage(pkg!.id, path.join(dir, "p.tar")))
          assert.strictEqual(done.checksum, pkg!.checksum)
          assert.isTrue((yield* Effect.promise(() => fs.readFile(path.join(dir, "p.tar")))).equals(tar))

          // a byte rotted at rest: the download is cut, nothing lands, and the copy is found CORRUPT
          const rotten = Buffer.from(tar)
          rotten[Math.floor(tar.length / 2)]! ^= 0xff
          yield* Effect.promise(() => fs.writeFile(pkg!.absolute, rotten))
          // (a tar over the disk driver's one-read size, 4 MiB: the response has begun when the check fails)
          const failed = yield* Effect.promise(() =>
            ccat.downloadPackage(pkg!.id, path.join(dir, "rotten.tar")).then(() => undefined, (e: { reason: string; message: string }) => e)
          )
          yield* Effect.promise(() => ccat.close())
          assert.strictEqual(failed?.reason, "Corrupt", failed?.message)
          assert.include(failed?.message, "ended early")
          assert.isFalse(yield* Effect.promise(() => fs.access(path.join(dir, "rotten.tar")).then(() => true, () => false)))
          const status = Effect.map(
            sql<{ status: string }>`select status::text as status from physical_copy where id = ${pkg!.copyId}`,
            ([r]) => r!.status
          )
          yield* waitUntil("the copy recorded CORRUPT by the failed download", Effect.map(status, (s) => s === "CORRUPT"), 20_000)
          const [event] = yield* sql<{ details: { by: string } }>`
          select details from event_log where entity_kind = 'PhysicalCopy' and entity_id = ${pkg!.copyId} and to_state = 'CORRUPT'`
          assert.strictEqual(event!.details.by, "package download")
          assert.strictEqual((yield* get(url, scientist)).status, 503)
        }),
      90_000
    )
  })
})
