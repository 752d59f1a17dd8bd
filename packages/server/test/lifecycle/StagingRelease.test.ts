/**
 * Releasing staged data and per-request folders, on the real API, the real staging and cleanup
 * stages and a real disk: two requests of one program stage the same package; each gets its own
 * folder `<program>/<request id>/...` of links to one store copy, with the configured modes and
 * the program's group, which a process of another user reads only with that group. Releasing one
 * request (idempotent; refused for someone else's, for one still being served, for a malformed
 * id, each changing nothing) makes cleanup remove its folder and keep the copies the other request
 * still needs; releasing the other lets cleanup delete them. Data an earlier release staged (no
 * folders, copies at `<observation>/<path>`) is handed out as before and linked by new requests.
 * A program's group the host does not know fails the request with the reason; the configuration
 * refuses modes that let other users in.
 */
import { CcatClient } from "@ccat/client"
import { Topology } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { promisify } from "node:util"
import * as JobQueue from "../../src/engine/JobQueue.js"
import * as Archiving from "../../src/lifecycle/Archiving.js"
import * as Cleanup from "../../src/lifecycle/Cleanup.js"
import * as Staging from "../../src/lifecycle/Staging.js"
import * as StagingLayout from "../../src/lifecycle/StagingLayout.js"
import * as Storages from "../../src/lifecycle/Storages.js"
import * as Harness from "../ApiHarness.js"
import { arrivedPackage, quickRetries, runSitesFor, runSitesUntil, topologyFrom } from "./ArchiveWorld.js"
import { observatory, policyLayer, syncTopology, tempDir } from "./LifecycleWorld.js"
import { sha256File } from "./support.js"

const world = Layer.mergeAll(JobQueue.layer, Storages.layer()).pipe(Layer.provideMerge(Harness.layer()))

/** The program's group on the "PROCESSING host"; the test runs as root, so any gid can own files. */
const gid = 4321

const requestRow = (id: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ status: string; releasedAt: Date | null; foldersRemovedAt: Date | null; updatedAt: Date }>`
    select status::text as status, released_at, folders_removed_at, updated_at from staging_request where id = ${id}`
  ).pipe(Effect.map((rows) => rows[0]!))

const eventsOf = (id: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ action: string | null }>`
    select details->>'action' as action from event_log where entity_kind = 'StagingRequest' and entity_id = ${id} order by id`).pipe(
    Effect.map((rows) => rows.map((r) => r.action))
  )

const stagedCopies = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ path: string; status: string }>`
  select c.path, c.status::text as status from physical_copy c join data_location l on l.id = c.data_location_id
  where l.name = 'cologne-processing' and c.status <> 'DELETED' order by c.path`)

const mode = (p: string) => Effect.promise(() => fs.stat(p)).pipe(Effect.map((s) => ({ mode: s.mode & 0o7777, gid: s.gid, ino: s.ino })))

/** Reads a file as user nobody, with or without the program's group: its bytes, or the error. */
const readAsNobody = (file: string, groups: ReadonlyArray<number>) =>
  Effect.promise(() =>
    promisify(execFile)("setpriv", [
      "--reuid=65534",
      "--regid=65534",
      groups.length === 0 ? "--clear-groups" : `--groups=${groups.join(",")}`,
      "sha256sum",
      file
    ])
      .then(({ stdout }) => `sha256:${stdout.split(" ")[0]}`, (e: { stderr?: string }) => new Error(e.stderr ?? String(e)))
  )

describe("releasing staged data", () => {
  it.scopedLive(
    "per-request folders with the program's modes and group; release is idempotent, refused for bad input, and cleanup keeps what another request needs",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const dir = yield* tempDir
        const obs = yield* observatory
        const topology = topologyFrom(dir, (raw) => ({
          ...raw,
          policy: { ...raw.policy, staging: { groups: { [obs.program.name]: gid } } }
        }))
        yield* syncTopology(topology)
        const pkg = yield* arrivedPackage(topology, obs, [{ path: "det/a.fits", bytes: 20_000 }, { path: "hk.dat", bytes: 300 }])
        const baseUrl = yield* Harness.BaseUrl
        const client = (role: "scientist" | "operator") =>
          Effect.flatMap(
            Harness.tokenFor({ role, programIds: role === "scientist" ? [obs.program.id] : [] }),
            (token) => Effect.map(CcatClient.make({ baseUrl, token }).pipe(Effect.provide(FetchHttpClient.layer)), (c) => ({ c, token }))
          )
        const [alice, bob, carol, operator] = yield* Effect.all([
          client("scientist"),
          client("scientist"),
          client("scientist"),
          client("operator")
        ])
        const cologne = (done: Effect.Effect<boolean, unknown, SqlClient.SqlClient>) =>
          runSitesUntil([["cologne", [Archiving.stage, quickRetries(Staging.stage), Cleanup.stage]]], done).pipe(
            Effect.provide(policyLayer(topology))
          )

        // Two requests of one program for the same package, both served.
        const first = yield* alice.c.staging.create({ payload: { location: "cologne-processing", packageIds: [pkg.packageId] } })
        const second = yield* bob.c.staging.create({ payload: { location: "cologne-processing", observationIds: [pkg.eou.id] } })
        yield* cologne(
          Effect.map(Effect.all([requestRow(first.id), requestRow(second.id)]), (rs) => rs.every((r) => r.status === "completed"))
        )

        // Each request has its own folder of links to one store copy; modes and group as configured.
        const root = path.join(dir, "locations", "cologne-processing")
        const program = obs.program.name
        const page = yield* alice.c.staging.files({ path: { id: first.id }, urlParams: {} })
        assert.deepStrictEqual(
          page.items.map((f) => f.localPath).sort(),
          pkg.files.map((f) => path.join(root, program, first.id, pkg.eou.id, f.relativePath)).sort()
        )
        assert.strictEqual((yield* mode(path.join(root, ".store"))).mode, 0o700)
        const nested = page.items.find((f) => f.relativePath.endsWith("det/a.fits"))!
        for (const d of [
          program,
          `${program}/${first.id}`,
          `${program}/${first.id}/${pkg.eou.id}`,
          path.relative(root, path.dirname(nested.localPath!))
        ]) {
          assert.deepInclude(yield* mode(path.join(root, d)), { mode: 0o750, gid }, d)
        }
        for (const f of page.items) {
          const linked = yield* mode(f.localPath!)
          assert.deepStrictEqual(
            linked,
            { ...(yield* mode(path.join(root, f.key))), mode: 0o640, gid },
            "a link to the store's copy, not a second copy"
          )
          assert.strictEqual(linked.ino, (yield* mode(path.join(root, program, second.id, pkg.eou.id, f.relativePath))).ino)
          assert.strictEqual(yield* Effect.promise(() => sha256File(f.localPath!)), f.checksum)
        }
        // Another user reads a staged file only with the program's group, and never the store directly.
        yield* Effect.forEach([dir, path.join(dir, "locations"), root], (d) => Effect.promise(() => fs.chmod(d, 0o711)))
        const sample = page.items[0]!
        assert.strictEqual(yield* readAsNobody(sample.localPath!, [gid]), sample.checksum)
        assert.include(String(yield* readAsNobody(sample.localPath!, [])), "Permission denied")
        assert.include(String(yield* readAsNobody(path.join(root, sample.key), [gid])), "Permission denied")

        // Refusals change nothing: someone else's request, one still being served, a malformed or unknown id.
        const before = yield* requestRow(first.id)
        const others = yield* Effect.either(carol.c.staging.release({ path: { id: first.id } }))
        assert.isTrue(Either.isLeft(others) && (others.left as { _tag: string })._tag === "NotFound")
        const pending = yield* alice.c.staging.create({ payload: { location: "cologne-processing", packageIds: [pkg.packageId] } })
        const open = yield* Effect.either(alice.c.staging.release({ path: { id: pending.id } }))
        assert.isTrue(Either.isLeft(open) && (open.left as { _tag: string; message: string })._tag === "Conflict")
        assert.include((open as Either.Left<{ message: string }, unknown>).left.message, "pending")
        const raw = (id: string) =>
          Effect.promise(() =>
            fetch(`${baseUrl}/api/v1/staging-requests/${id}/release`, {
              method: "POST",
              headers: { authorization: `Bearer ${alice.token}` }
            }).then((r) => r.status)
          )
        assert.strictEqual(yield* raw("not-a-uuid"), 400)
        assert.strictEqual(yield* raw("00000000-0000-4000-8000-000000000000"), 404)
        assert.deepStrictEqual(yield* requestRow(first.id), before)
        assert.isNull((yield* requestRow(pending.id)).releasedAt)
        assert.notInclude(yield* eventsOf(first.id), "released")
        yield* sql`update staging_request set status = 'failed', error_message = 'called off by the test' where id = ${pending.id}`
        // A failed request can be released (it holds nothing); a released one is not retried.
        assert.isNotNull((yield* alice.c.staging.release({ path: { id: pending.id } })).releasedAt)
        const retried = yield* Effect.either(operator.c.operations.retry({ payload: { entity: "StagingRequest", id: pending.id } }))
        assert.isTrue(Either.isLeft(retried) && (retried.left as { _tag: string; message: string })._tag === "Conflict")
        assert.include((retried as Either.Left<{ message: string }, unknown>).left.message, "was released")
        assert.strictEqual((yield* requestRow(pending.id)).status, "failed")

        // Alice releases hers, twice: one release, one event; her folder goes, Bob's stays with the copies.
        const released = yield* alice.c.staging.release({ path: { id: first.id } })
        assert.isNotNull(released.releasedAt)
        assert.deepStrictEqual((yield* alice.c.staging.release({ path: { id: first.id } })).releasedAt, released.releasedAt)
        assert.deepStrictEqual((yield* eventsOf(first.id)).filter((a) => a === "released"), ["released"])
        assert.deepStrictEqual((yield* alice.c.staging.files({ path: { id: first.id }, urlParams: {} })).items, [])
        yield* cologne(Effect.map(requestRow(first.id), (r) => r.foldersRemovedAt !== null))
        assert.isFalse(yield* Effect.promise(() => fs.access(path.join(root, program, first.id)).then(() => true, () => false)))
        assert.deepStrictEqual((yield* stagedCopies).map((c) => c.status), ["STAGED", "STAGED"])
        for (const f of (yield* bob.c.staging.files({ path: { id: second.id }, urlParams: {} })).items) {
          assert.strictEqual(yield* Effect.promise(() => sha256File(f.localPath!)), f.checksum)
        }

        // An operator releases Bob's: cleanup removes his folder and deletes the store's copies.
        yield* operator.c.staging.release({ path: { id: second.id } })
        yield* cologne(Effect.map(stagedCopies, (cs) => cs.length === 0))
        assert.deepStrictEqual(yield* Effect.promise(() => fs.readdir(path.join(root, program))), [], "both request folders are gone")
        for (const p of yield* Effect.promise(() => fs.readdir(root, { recursive: true }))) {
          assert.isFalse((yield* Effect.promise(() => fs.stat(path.join(root, p)))).isFile(), `${p} is left`)
        }
        assert.deepStrictEqual(yield* eventsOf(second.id), [null, null, null, null, "released", "folders-removed"])
      }).pipe(Effect.provide(world)),
    120_000
  )

  it.scopedLive(
    "data staged by an earlier release (no folders, copies at `<observation>/<path>`) is handed out as before, linked by a new request, and released",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const dir = yield* tempDir
        const obs = yield* observatory
        const topology = topologyFrom(dir)
        yield* syncTopology(topology)
        const pkg = yield* arrivedPackage(topology, obs, [{ path: "scan/a.fits", bytes: 5_000 }, { path: "b.dat", bytes: 200 }])
        const baseUrl = yield* Harness.BaseUrl
        const token = yield* Harness.tokenFor({ role: "scientist", programIds: [obs.program.id] })
        const c = yield* CcatClient.make({ baseUrl, token }).pipe(Effect.provide(FetchHttpClient.layer))
        const cologne = (done: Effect.Effect<boolean, unknown, SqlClient.SqlClient>) =>
          runSitesUntil([["cologne", [Archiving.stage, quickRetries(Staging.stage), Cleanup.stage]]], done).pipe(
            Effect.provide(policyLayer(topology))
          )
        yield* cologne(
          Effect.map(
            sql<{ status: string }>`select status::text as status from raw_data_package where id = ${pkg.packageId}`,
            ([r]) => r!.status === "completed"
          )
        )
        // What an earlier release left: the files at `<observation>/<path>`, STAGED, and its completed request.
        const root = path.join(dir, "locations", "cologne-processing")
        const [location] = yield* sql<{ id: string }>`select id from data_location where name = 'cologne-processing'`
        for (const f of pkg.files) {
          const old = path.join(root, pkg.eou.id, f.relativePath)
          yield* Effect.promise(() => fs.mkdir(path.dirname(old), { recursive: true }).then(() => fs.copyFile(f.absolutePath, old)))
          yield* sql`insert into physical_copy ${
            sql.insert({
              rawDataFileId: f.id,
              dataLocationId: location!.id,
              path: `${pkg.eou.id}/${f.relativePath}`,
              sizeBytes: f.sizeBytes,
              checksum: f.checksum,
              status: "STAGED",
              verifiedAt: new Date()
            })
          }`
        }
        const earlier = yield* c.staging.create({ payload: { location: "cologne-processing", packageIds: [pkg.packageId] } })
        yield* sql`update staging_request set status = 'completed', expires_at = now() + interval '1 day' where id = ${earlier.id}`
        const handedOut = yield* c.staging.files({ path: { id: earlier.id }, urlParams: {} })
        assert.deepStrictEqual(
          handedOut.items.map((f) => f.localPath).sort(),
          pkg.files.map((f) => path.join(root, pkg.eou.id, f.relativePath)).sort()
        )

        // A new request links the old copies into its folder (nothing unpacked) and closes their top
        // folder; one old file deleted by hand is found MISSING on the way and staged again into the store.
        yield* Effect.promise(() => fs.rm(path.join(root, pkg.eou.id, pkg.files[0]!.relativePath)))
        const fresh = yield* c.staging.create({ payload: { location: "cologne-processing", observationIds: [pkg.eou.id] } })
        yield* cologne(Effect.map(requestRow(fresh.id), (r) => r.status === "completed"))
        const [done] = yield* sql<{ details: { reused: number } }>`
        select details from event_log where entity_kind = 'StagingRequest' and entity_id = ${fresh.id} and to_state = 'completed'`
        assert.strictEqual(done!.details.reused, pkg.files.length - 1)
        const live = new Map((yield* sql<{ rawDataFileId: string; path: string }>`
        select raw_data_file_id, path from physical_copy where data_location_id = ${location!.id} and status = 'STAGED'`).map((
          r
        ) => [r.rawDataFileId, r.path]))
        assert.deepStrictEqual([...live.keys()].sort(), pkg.files.map((f) => f.id).sort())
        assert.strictEqual(live.get(pkg.files[0]!.id), Staging.stagedKey(pkg.eou.id, pkg.files[0]!.relativePath))
        for (const f of pkg.files) {
          const linked = path.join(root, obs.program.name, fresh.id, pkg.eou.id, f.relativePath)
          assert.strictEqual((yield* mode(linked)).ino, (yield* mode(path.join(root, live.get(f.id)!))).ino)
          assert.strictEqual(yield* Effect.promise(() => sha256File(linked)), f.checksum)
        }
        assert.strictEqual((yield* mode(path.join(root, pkg.eou.id))).mode, 0o700)

        // The earlier request released: nothing of it to remove, the copies stay for the new one.
        yield* c.staging.release({ path: { id: earlier.id } })
        yield* runSitesFor([["cologne", [Cleanup.stage]]], 1500).pipe(Effect.provide(policyLayer(topology)))
        assert.deepStrictEqual((yield* stagedCopies).map((r) => r.status), pkg.files.map(() => "STAGED"))
        // The new one released too: the copies, the old files and the new folder go.
        yield* c.staging.release({ path: { id: fresh.id } })
        yield* cologne(Effect.map(stagedCopies, (cs) => cs.length === 0))
        for (const p of yield* Effect.promise(() => fs.readdir(root, { recursive: true }))) {
          assert.isFalse((yield* Effect.promise(() => fs.stat(path.join(root, p)))).isFile(), `${p} is left`)
        }
        assert.isNull((yield* requestRow(earlier.id)).foldersRemovedAt)
        assert.isNotNull((yield* requestRow(fresh.id)).foldersRemovedAt)
      }).pipe(Effect.provide(world)),
    120_000
  )

  it.scopedLive(
    "a program's group the host does not know fails the request with the reason and makes no folder; a known name resolves",
    () =>
      Effect.gen(function* () {
        assert.strictEqual(yield* StagingLayout.resolveGroup("p", "root"), 0)
        const dir = yield* tempDir
        const obs = yield* observatory
        const topology = topologyFrom(dir, (raw) => ({
          ...raw,
          policy: { ...raw.policy, staging: { groups: { [obs.program.name]: "ccat-no-such-group" } } }
        }))
        yield* syncTopology(topology)
        const pkg = yield* arrivedPackage(topology, obs, [{ path: "a.fits", bytes: 1_000 }])
        const baseUrl = yield* Harness.BaseUrl
        const token = yield* Harness.tokenFor({ role: "scientist", programIds: [obs.program.id] })
        const c = yield* CcatClient.make({ baseUrl, token }).pipe(Effect.provide(FetchHttpClient.layer))
        const r = yield* c.staging.create({ payload: { location: "cologne-processing", packageIds: [pkg.packageId] } })
        yield* runSitesUntil(
          [["cologne", [Archiving.stage, quickRetries(Staging.stage)]]],
          Effect.map(requestRow(r.id), (row) => row.status === "failed")
        ).pipe(
          Effect.provide(policyLayer(topology))
        )
        const failed = yield* c.staging.get({ path: { id: r.id } })
        assert.include(failed.errorMessage ?? "", `group ccat-no-such-group of program ${obs.program.name} is not known on this host`)
        const root = path.join(dir, "locations", "cologne-processing")
        assert.isFalse(yield* Effect.promise(() => fs.access(path.join(root, obs.program.name)).then(() => true, () => false)))
      }).pipe(Effect.provide(world)),
    120_000
  )

  it("a mode that lets other users in, or a group that is not one, is refused when the configuration is read", () => {
    for (const staging of [
      { folderMode: "0755" },
      { fileMode: "0644" },
      { folderMode: "0770" },
      { fileMode: "0660" },
      { folderMode: "rwx" },
      { groups: { p: "no/such group" } }
    ]) {
      const decoded = Topology.decode({ sites: [], policy: { staging } })
      assert.isTrue(decoded._tag === "Left", JSON.stringify(staging))
    }
    const ok = Topology.decode({
      sites: [],
      policy: { staging: { folderMode: "0700", fileMode: "0600", groups: { p: "ccat-p", q: 1234 } } }
    })
    assert.isTrue(ok._tag === "Right" && ok.right.policy.staging.folderMode === 0o700)
  })
})
