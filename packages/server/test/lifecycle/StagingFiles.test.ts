/**
 * Staged files through the API and `@ccat/client`: a scientist asks for an observation, the real
 * archive and staging stages serve it, and `waitForStaging` (Effect and Promise) follows the
 * request and answers every file's absolute local path, size and checksum, page by page; a failed
 * request is a typed error with the server's reason, a wait that runs out is `TimedOut`.
 */
import { CcatClient, createClient, Staging as ClientStaging } from "@ccat/client"
import { assert, describe, it } from "@effect/vitest"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as path from "node:path"
import * as JobQueue from "../../src/engine/JobQueue.js"
import * as Archiving from "../../src/lifecycle/Archiving.js"
import * as Staging from "../../src/lifecycle/Staging.js"
import * as Storages from "../../src/lifecycle/Storages.js"
import * as Harness from "../ApiHarness.js"
import { arrivedPackage, quickRetries, runSitesUntil, topologyFrom } from "./ArchiveWorld.js"
import { observatory, policyLayer, syncTopology, tempDir } from "./LifecycleWorld.js"
import { sha256File } from "./support.js"

/** The API on a real server and the lifecycle's job engine and storages, on one fresh ops-db. */
const world = Layer.mergeAll(JobQueue.layer, Storages.layer()).pipe(Layer.provideMerge(Harness.layer()))

const statusOf = (id: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ status: string }>`select status::text as status from staging_request where id = ${id}`)
    .pipe(
      Effect.map((rows) => rows[0]?.status)
    )

/** A topology in a fresh folder, an observatory, an archived-to-be package, and a scientist's client. */
const setup = (files: ReadonlyArray<{ readonly path: string; readonly bytes: number }>) =>
  Effect.gen(function* () {
    const dir = yield* tempDir
    const topology = topologyFrom(dir)
    yield* syncTopology(topology)
    const obs = yield* observatory
    const pkg = yield* arrivedPackage(topology, obs, files)
    const token = yield* Harness.tokenFor({ role: "scientist", programIds: [obs.program.id] })
    const baseUrl = yield* Harness.BaseUrl
    return { dir, topology, obs, pkg, token, baseUrl }
  })

describe("staged files through the API and the client", () => {
  it.scopedLive(
    "waitForStaging follows a request to completed and answers every file's local path, size and checksum",
    () =>
      Effect.gen(function* () {
        const files = [
          { path: "det/a.fits", bytes: 30_000 },
          { path: "det/deep/b.fits", bytes: 7_000 },
          { path: "hk.dat", bytes: 100 },
          { path: "det/c.fits", bytes: 1_000 },
          { path: "log.txt", bytes: 10 }
        ]
        const { baseUrl, dir, obs, pkg, token, topology } = yield* setup(files)
        const client = yield* CcatClient.make({ baseUrl, token }).pipe(Effect.provide(FetchHttpClient.layer))
        const created = yield* client.staging.create({ payload: { location: "cologne-processing", observationIds: [pkg.eou.id] } })
        // Before it is completed the list is empty and says why.
        const early = yield* client.staging.files({ path: { id: created.id }, urlParams: {} })
        assert.deepStrictEqual(early.items, [])
        assert.strictEqual(early.status, "pending")
        const progress: Array<string> = []
        const [staged] = yield* Effect.all([
          ClientStaging.waitForStaging(created.id, { onProgress: (p) => progress.push(p.status), pollBase: "100 millis", pageSize: 2 })
            .pipe(
              Effect.provideService(CcatClient.CcatClient, client)
            ),
          runSitesUntil(
            [["cologne", [Archiving.stage, quickRetries(Staging.stage)]]],
            Effect.map(statusOf(created.id), (s) => s === "completed")
          ).pipe(
            Effect.provide(policyLayer(topology))
          )
        ], { concurrency: "unbounded" })
        assert.isAbove(progress.length, 1)
        assert.notStrictEqual(progress[0], "completed")
        assert.strictEqual(progress[progress.length - 1], "completed")
        assert.strictEqual(staged.location, "cologne-processing")
        assert.isTrue(Math.abs(staged.expiresAt!.getTime() - (Date.now() + topology.policy.stagingLifetime)) < 120_000)
        // Every file, across three pages of two, in key order, where it really is, byte-identical.
        const root = path.join(dir, "locations", "cologne-processing")
        assert.strictEqual(staged.files.length, files.length)
        assert.deepStrictEqual(staged.files.map((f) => f.key), [...staged.files.map((f) => f.key)].sort())
        // Each file in the request's own folder, `<program>/<request id>/<observation>/<relative path>`.
        const folder = path.join(root, obs.program.name, created.id)
        assert.deepStrictEqual([...staged.paths].sort(), pkg.files.map((f) => path.join(folder, pkg.eou.id, f.relativePath)).sort())
        for (const f of staged.files) {
          const filed = pkg.files.find((w) => w.id === f.rawDataFileId)!
          assert.strictEqual(f.localPath, path.join(folder, f.executedObsUnitId, f.relativePath))
          assert.strictEqual(f.executedObsUnitId, pkg.eou.id)
          assert.strictEqual(f.relativePath, filed.relativePath)
          assert.strictEqual(f.key, Staging.stagedKey(pkg.eou.id, filed.relativePath))
          assert.strictEqual(f.sizeBytes, filed.sizeBytes)
          assert.strictEqual(f.checksum, filed.checksum)
          assert.strictEqual(yield* Effect.promise(() => sha256File(f.localPath!)), filed.checksum)
        }
        // What the lifecycle hands out and what the API lists agree.
        assert.deepStrictEqual([...staged.paths].sort(), [...(yield* Staging.stagedPaths(created.id))].sort())
        // A cursor that is not the server's is refused; another scientist cannot see the request.
        const bad = yield* Effect.either(client.staging.files({ path: { id: created.id }, urlParams: { cursor: "bm9wZQ" } }))
        assert.isTrue(Either.isLeft(bad) && bad.left._tag === "Unprocessable")
        const stranger = yield* Harness.tokenFor({ role: "scientist" })
        const hidden = yield* Effect.either(
          ClientStaging.waitForStaging(created.id).pipe(Effect.provide(CcatClient.layer({ baseUrl, token: stranger })))
        )
        assert.isTrue(Either.isLeft(hidden) && (hidden.left as { _tag: string })._tag === "NotFound")
      }).pipe(Effect.provide(world)),
    120_000
  )

  it.scopedLive(
    "the Promise client resolves with the paths, rejects a failed request with the server's reason, and times out",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const { baseUrl, dir, obs, pkg, token, topology } = yield* setup([
          { path: "a.fits", bytes: 4_000 },
          { path: "b/c.fits", bytes: 2_000 }
        ])
        const ccat = yield* Effect.acquireRelease(
          Effect.promise(() => createClient({ baseUrl, token })),
          (c) => Effect.promise(() => c.close())
        )
        const cologne = [["cologne", [Archiving.stage, quickRetries(Staging.stage)]]] as const
        const ok = yield* Effect.promise(() =>
          ccat.api.staging.create({ payload: { location: "cologne-processing", packageIds: [pkg.packageId] } })
        )
        const [staged] = yield* Effect.all([
          Effect.promise(() => ccat.waitForStaging(ok.id, { pollBaseMs: 100 })),
          runSitesUntil(cologne, Effect.map(statusOf(ok.id), (s) => s === "completed")).pipe(Effect.provide(policyLayer(topology)))
        ], { concurrency: "unbounded" })
        const root = path.join(dir, "locations", "cologne-processing")
        assert.deepStrictEqual(
          [...staged.paths].sort(),
          pkg.files.map((f) => path.join(root, obs.program.name, ok.id, pkg.eou.id, f.relativePath)).sort()
        )

        // A package that failed cannot be staged: the request fails and the wait rejects with why.
        const broken = yield* arrivedPackage(topology, obs, [{ path: "broken.fits", bytes: 1_000 }])
        yield* sql`update raw_data_package set status = 'failed' where id = ${broken.packageId}`
        const doomed = yield* Effect.promise(() =>
          ccat.api.staging.create({ payload: { location: "cologne-processing", packageIds: [broken.packageId] } })
        )
        const [failed] = yield* Effect.all([
          Effect.promise(() => ccat.waitForStaging(doomed.id, { pollBaseMs: 100 }).then(() => undefined, (e: unknown) => e)),
          runSitesUntil(cologne, Effect.map(statusOf(doomed.id), (s) => s === "failed")).pipe(Effect.provide(policyLayer(topology)))
        ], { concurrency: "unbounded" })
        assert.instanceOf(failed, ClientStaging.StagingError)
        const error = failed as ClientStaging.StagingError
        assert.strictEqual(error.reason, "Failed")
        assert.strictEqual(error.status, "failed")
        assert.include(error.message, broken.packageId)
        assert.include(error.message, "cannot be staged")
        const page = yield* Effect.promise(() => ccat.api.staging.files({ path: { id: doomed.id }, urlParams: {} }))
        assert.deepStrictEqual(page.items, [])
        assert.include(page.errorMessage ?? "", "cannot be staged")

        // No worker serves this one: the wait gives up when told, and the request is untouched.
        const waiting = yield* Effect.promise(() =>
          ccat.api.staging.create({ payload: { location: "cologne-processing", packageIds: [pkg.packageId] } })
        )
        const timedOut = yield* Effect.promise(() =>
          ccat.waitForStaging(waiting.id, { timeoutMs: 1_000, pollBaseMs: 100 }).then(() => undefined, (e: unknown) => e)
        )
        assert.instanceOf(timedOut, ClientStaging.StagingError)
        assert.strictEqual((timedOut as ClientStaging.StagingError).reason, "TimedOut")
        assert.strictEqual((timedOut as ClientStaging.StagingError).status, "pending")
        assert.strictEqual(yield* statusOf(waiting.id), "pending")
      }).pipe(Effect.provide(world)),
    120_000
  )
})
