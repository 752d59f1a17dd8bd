/**
 * Repair of archive copies found bad: from the other archive of the site (a byte flipped at rest,
 * an object deleted behind the platform's back, no good copy left, a repair killed between its
 * write and its record or run twice at once), across archives (into a third one when the bad
 * copy's own is not writable, between disk and tape both ways), and started by an operator
 * through the API of the real HTTP server with a job engine in its process, as `ccat serve` has.
 */
import { Api, Topology } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import { TestDatabase, waitUntil } from "@ccat/core/testing"
import { assert, describe, it } from "@effect/vitest"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as JobQueue from "../../src/engine/JobQueue.js"
import * as HttpServerLive from "../../src/HttpServer.js"
import * as Repair from "../../src/lifecycle/Repair.js"
import * as Storages from "../../src/lifecycle/Storages.js"
import { ServerConfig } from "../../src/ServerConfig.js"
import { tokenFor } from "../ApiHarness.js"
import { addLocation, locationNamed, runSitesFor, runSitesUntil, topologyFrom } from "./ArchiveWorld.js"
import { flipByte } from "./AuditWorld.js"
import { layer, tempDir } from "./LifecycleWorld.js"
import {
  archiveCopies,
  archivedAtTwoArchives,
  archivedTwice,
  assertBackToTarget,
  cologne,
  diskArchive,
  live,
  markAs,
  metric,
  noBadCopies,
  objectAt,
  packageStatus,
  repairedEvent
} from "./RepairWorld.js"

describe("Repair from the other archive", () => {
  it.scopedLive(
    "rewrites a copy found CORRUPT after a byte flipped at rest from the other archive, and records it",
    () =>
      Effect.gen(function* () {
        const { dir, pkg, topology } = yield* archivedAtTwoArchives
        yield* flipByte(objectAt(dir, "cologne-archive", pkg.relativePath))
        const badId = yield* markAs(pkg, "cologne-archive", "CORRUPT")
        // Still ARCHIVED, but shown below its target of two good copies.
        assert.strictEqual(yield* packageStatus(pkg.packageId), "completed")
        assert.deepStrictEqual(yield* Repair.belowTarget(2), [{ id: pkg.packageId, status: "completed", goodCopies: 1, badCopies: 1 }])
        assert.strictEqual(yield* Repair.belowTargetCount(2), 1)
        assert.strictEqual(yield* metric(topology, "ccat_packages_below_copy_target"), 1)
        assert.strictEqual(yield* metric(topology, "ccat_copies_repaired_total", { location: "cologne-archive" }), 0)
        yield* runSitesUntil(cologne, noBadCopies(pkg.packageId))
        yield* assertBackToTarget(dir, pkg, badId, "cologne-archive", "cologne-archive-2")
        assert.strictEqual(yield* metric(topology, "ccat_packages_below_copy_target"), 0)
        assert.strictEqual(yield* metric(topology, "ccat_copies_repaired_total", { location: "cologne-archive" }), 1)
        assert.strictEqual(yield* metric(topology, "ccat_copies_repaired_total", { location: "cologne-archive-2" }), 0)
        // Nothing left to plan.
        assert.strictEqual(yield* Repair.plan("cologne"), 0)
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive("rewrites an object deleted behind the platform's back (MISSING)", () =>
    Effect.gen(function* () {
      const { dir, pkg } = yield* archivedAtTwoArchives
      yield* Effect.promise(() => fs.rm(objectAt(dir, "cologne-archive-2", pkg.relativePath)))
      const badId = yield* markAs(pkg, "cologne-archive-2", "MISSING")
      yield* runSitesUntil(cologne, noBadCopies(pkg.packageId))
      yield* assertBackToTarget(dir, pkg, badId, "cologne-archive-2", "cologne-archive")
    }).pipe(Effect.provide(layer)), 120_000)

  it.scopedLive("with no good copy left, does nothing harmful and the package shows below its target", () =>
    Effect.gen(function* () {
      const { dir, pkg } = yield* archivedAtTwoArchives
      for (const location of ["cologne-archive", "cologne-archive-2"]) {
        yield* flipByte(objectAt(dir, location, pkg.relativePath))
        yield* markAs(pkg, location, "CORRUPT")
      }
      const before = yield* archiveCopies(pkg.packageId)
      const bytesBefore = yield* Effect.promise(() => fs.readFile(objectAt(dir, "cologne-archive", pkg.relativePath)))
      assert.strictEqual(yield* Repair.plan("cologne"), 0)
      // A job sent anyway (an operator's, a stale one) finds no source and changes nothing.
      yield* Repair.work("cologne", { packageId: pkg.packageId })
      yield* runSitesFor(cologne, 1500)
      assert.deepStrictEqual(yield* archiveCopies(pkg.packageId), before)
      assert.isTrue((yield* Effect.promise(() => fs.readFile(objectAt(dir, "cologne-archive", pkg.relativePath)))).equals(bytesBefore))
      assert.strictEqual(yield* packageStatus(pkg.packageId), "completed")
      assert.deepStrictEqual(yield* Repair.belowTarget(2), [{ id: pkg.packageId, status: "completed", goodCopies: 0, badCopies: 2 }])
    }).pipe(Effect.provide(layer)), 120_000)

  it.scopedLive("converges after a kill between the write and the record, and a job run twice repairs once", () =>
    Effect.gen(function* () {
      const { dir, pkg } = yield* archivedAtTwoArchives
      const bad = objectAt(dir, "cologne-archive", pkg.relativePath)
      yield* flipByte(bad)
      const badId = yield* markAs(pkg, "cologne-archive", "CORRUPT")
      // What a repair killed after its put leaves: the good bytes in place, the row still CORRUPT.
      yield* Effect.promise(() => fs.copyFile(objectAt(dir, "cologne-archive-2", pkg.relativePath), bad))
      assert.strictEqual((yield* archiveCopies(pkg.packageId)).find((c) => c.id === badId)!.status, "CORRUPT")
      yield* Repair.work("cologne", { packageId: pkg.packageId })
      yield* Repair.work("cologne", { packageId: pkg.packageId })
      yield* assertBackToTarget(dir, pkg, badId, "cologne-archive", "cologne-archive-2")
      assert.strictEqual((yield* archiveCopies(pkg.packageId)).length, 3)
      // Two repairs of the same package racing: one records, the other finds nothing left to do.
      yield* flipByte(objectAt(dir, "cologne-archive-2", pkg.relativePath))
      const second = yield* markAs(pkg, "cologne-archive-2", "CORRUPT")
      yield* Effect.all([Repair.work("cologne", { packageId: pkg.packageId }), Repair.work("cologne", { packageId: pkg.packageId })], {
        concurrency: 2
      }).pipe(
        Effect.either
      )
      yield* Repair.work("cologne", { packageId: pkg.packageId })
      yield* assertBackToTarget(dir, pkg, second, "cologne-archive-2", "cologne-archive")
      assert.strictEqual((yield* archiveCopies(pkg.packageId)).length, 4)
    }).pipe(Effect.provide(layer)), 120_000)
})

describe("Repair across archives", () => {
  it.scopedLive("repairs into another archive of the site when the bad copy's archive is not writable", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const topology = topologyFrom(dir, (raw) => ({
        ...addLocation(
          addLocation(raw, "cologne", diskArchive(dir, "cologne-archive-2", 1)),
          "cologne",
          diskArchive(dir, "cologne-archive-3", 2)
        ),
        policy: { ...raw.policy, archiveCopies: 2 }
      }))
      const pkg = yield* archivedTwice(dir, topology)
      const sql = yield* SqlClient.SqlClient
      yield* flipByte(objectAt(dir, "cologne-archive", pkg.relativePath))
      const badId = yield* markAs(pkg, "cologne-archive", "CORRUPT")
      // No archive can take the copy: the job fails (and is retried), counted, nothing changes.
      yield* sql`update data_location set writable = false where name in ('cologne-archive', 'cologne-archive-3')`
      const failedBefore = (yield* metric(topology, "ccat_repair_failures_total", { site: "cologne" })) ?? 0
      const refused = yield* Repair.work("cologne", { packageId: pkg.packageId }).pipe(Effect.flip)
      assert.match(String(refused), /no LONG_TERM_ARCHIVE at cologne is writable with room/)
      assert.strictEqual(yield* metric(topology, "ccat_repair_failures_total", { site: "cologne" }), failedBefore + 1)
      assert.strictEqual((yield* archiveCopies(pkg.packageId)).find((c) => c.id === badId)!.status, "CORRUPT")
      yield* sql`update data_location set writable = true where name = 'cologne-archive-3'`
      yield* runSitesUntil(cologne, noBadCopies(pkg.packageId))
      const alive = live(yield* archiveCopies(pkg.packageId))
      assert.deepStrictEqual(alive.map((c) => c.location), ["cologne-archive-2", "cologne-archive-3"])
      const [event] = yield* repairedEvent(badId)
      assert.deepStrictEqual(event.details, {
        action: "repaired",
        replacement: alive[1].id,
        source: "cologne-archive-2",
        repairedAt: "cologne-archive-3",
        badObjectRemoved: true
      })
      // cologne-archive is still deletable: the bad object is gone from it.
      assert.isFalse(
        yield* Effect.promise(() => fs.access(objectAt(dir, "cologne-archive", pkg.relativePath)).then(() => true, () => false))
      )
      const good = yield* Effect.promise(() => fs.readFile(objectAt(dir, "cologne-archive-2", pkg.relativePath)))
      assert.isTrue(good.equals(yield* Effect.promise(() => fs.readFile(objectAt(dir, "cologne-archive-3", pkg.relativePath)))))
    }).pipe(Effect.provide(layer)), 120_000)

  it.scopedLive(
    "repairs a disk archive copy from a tape archive (recalled), and a tape copy on tape (a new tape file, never trusting the catalog)",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyFrom(dir, (raw) => ({
          ...addLocation(raw, "cologne", {
            name: "cologne-tape",
            type: "LONG_TERM_ARCHIVE",
            technology: "tape",
            priority: 1,
            driver: {
              root: path.join(dir, "locations", "cologne-tape"),
              library: "virtual",
              volumes: 2,
              volumeBytes: "2 MB",
              drives: 1,
              mountLatency: "20 millis",
              seekLatency: "5 millis",
              keepOnline: false
            },
            retention: { keepForever: true }
          }),
          policy: { ...raw.policy, archiveCopies: 2 }
        }))
        const pkg = yield* archivedTwice(dir, topology)
        assert.deepStrictEqual(live(yield* archiveCopies(pkg.packageId)).map((c) => c.location), ["cologne-archive", "cologne-tape"])
        const onDisk = objectAt(dir, "cologne-archive", pkg.relativePath)
        const original = yield* Effect.promise(() => fs.readFile(onDisk))
        yield* flipByte(onDisk)
        const diskBad = yield* markAs(pkg, "cologne-archive", "CORRUPT")
        yield* runSitesUntil(cologne, noBadCopies(pkg.packageId))
        assert.isTrue((yield* Effect.promise(() => fs.readFile(onDisk))).equals(original))
        assert.strictEqual((yield* repairedEvent(diskBad))[0].details.source, "cologne-tape")
        // The tape copy found bad: written again on tape (its catalog's checksum is not taken for the bytes).
        const onTape = Effect.promise(async () => {
          const library = path.join(dir, "locations", "cologne-tape", "library")
          const vols = (await fs.readdir(library)).filter((f) => f.endsWith(".vol"))
          let total = 0
          for (const v of vols) total += (await fs.stat(path.join(library, v))).size
          return total
        })
        const tapeBefore = yield* onTape
        const tapeBad = yield* markAs(pkg, "cologne-tape", "CORRUPT")
        yield* runSitesUntil(cologne, noBadCopies(pkg.packageId))
        assert.isAtLeast(yield* onTape, tapeBefore + pkg.sizeBytes)
        assert.strictEqual((yield* repairedEvent(tapeBad))[0].details.source, "cologne-archive")
        const alive = live(yield* archiveCopies(pkg.packageId))
        assert.deepStrictEqual(alive.map((c) => [c.location, c.status]), [["cologne-archive", "PRESENT"], ["cologne-tape", "PRESENT"]])
        const storages = yield* Storages.Storages
        const tape = yield* storages.of(yield* locationNamed("cologne-tape"))
        yield* tape.recall([pkg.relativePath])
        assert.strictEqual((yield* tape.verify(pkg.relativePath, pkg.checksum)).size, pkg.sizeBytes)
        assert.deepStrictEqual(yield* Repair.belowTarget(2), [])
      }).pipe(Effect.provide(layer)),
    120_000
  )
})

/** The real HTTP server on the lifecycle world's database, with a job engine in its process as `ccat serve` has. */
const apiLayer = (dir: string) =>
  Layer.provideMerge(
    Layer.effect(BaseUrl, HttpServer.addressFormattedWith((a) => Effect.succeed(a))),
    HttpServerLive.layer.pipe(Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 })))
  ).pipe(
    Layer.provideMerge(Layer.succeed(ServerConfig, {
      configFile: undefined,
      host: "127.0.0.1",
      port: 0,
      dataDir: dir,
      databaseUrl: undefined,
      topology: Topology.demo(dir)
    })),
    Layer.provideMerge(Layer.succeed(OpsDb.OpsDb, { kind: "external", target: "test" })),
    Layer.provideMerge(Layer.mergeAll(JobQueue.layer, Storages.layer())),
    Layer.provideMerge(TestDatabase.layer),
    Layer.provideMerge(FetchHttpClient.layer)
  )

class BaseUrl extends Context.Tag("test/RepairBaseUrl")<BaseUrl, string>() {}

const clientWith = (token: string) =>
  Effect.flatMap(
    BaseUrl,
    (baseUrl) => HttpApiClient.make(Api.Api, { baseUrl, transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(token)) })
  )

describe("Repair through the API", () => {
  it.scopedLive(
    "an operator starts a repair now; 409 with nothing to repair, 422 with no good source, 403 for a scientist",
    () =>
      Effect.gen(function* () {
        const { dir, pkg } = yield* archivedAtTwoArchives
        const operator = yield* clientWith(yield* tokenFor({ role: "operator" }))
        const scientist = yield* clientWith(yield* tokenFor({ role: "scientist" }))
        const nothing = yield* operator.packages.repair({ path: { id: pkg.packageId } }).pipe(Effect.flip)
        assert.strictEqual(nothing._tag, "Conflict")
        assert.match(nothing.message, /nothing to repair/)
        const unknown = yield* operator.packages.repair({ path: { id: "00000000-0000-4000-8000-000000000000" as never } }).pipe(Effect.flip)
        assert.strictEqual(unknown._tag, "NotFound")

        yield* flipByte(objectAt(dir, "cologne-archive", pkg.relativePath))
        const badId = yield* markAs(pkg, "cologne-archive", "CORRUPT")
        const forbidden = yield* scientist.packages.repair({ path: { id: pkg.packageId } }).pipe(Effect.flip)
        assert.strictEqual(forbidden._tag, "Forbidden")
        const requested = yield* operator.packages.repair({ path: { id: pkg.packageId } })
        assert.deepStrictEqual(requested.badCopies.map((b) => [b.id, b.status, b.location]), [[badId, "CORRUPT", "cologne-archive"]])
        assert.deepStrictEqual(requested.sites, [{ site: "cologne", sources: ["cologne-archive-2"], startedNow: true }])
        // The job sent by the API is there; a worker (no planner) takes it up.
        const sql = yield* SqlClient.SqlClient
        const [job] = yield* sql<
          { n: number }
        >`select count(*)::int as n from pgboss.job where name = 'cologne.repair' and singleton_key = ${pkg.packageId}`
        assert.strictEqual(job.n, 1)
        const jobs = yield* JobQueue.JobQueue
        yield* Effect.scoped(Effect.gen(function* () {
          yield* jobs.work("cologne.repair", (j) => Repair.work("cologne", j.data), { pollingIntervalSeconds: 0.5 })
          yield* waitUntil("the repair job to run", noBadCopies(pkg.packageId), 30_000)
        }))
        yield* assertBackToTarget(dir, pkg, badId, "cologne-archive", "cologne-archive-2")

        // Both copies bad: nothing to repair from at Cologne, but Chile still has the files at SOURCE
        // and writes the package again from them (RepairForward.test.ts follows that through).
        for (const location of ["cologne-archive", "cologne-archive-2"]) {
          yield* flipByte(objectAt(dir, location, pkg.relativePath))
          yield* markAs(pkg, location, "CORRUPT")
        }
        const fromSource = yield* operator.packages.repair({ path: { id: pkg.packageId } })
        assert.deepStrictEqual(fromSource.withoutSource, ["cologne"])
        assert.deepStrictEqual(fromSource.sites.map((s) => [s.site, s.sources]), [["chile", ["sent on from its files at SOURCE"]]])
        const [repack] = yield* sql<{ n: number }>`
        select count(*)::int as n from pgboss.job where name = 'chile.repair' and singleton_key = ${`${pkg.packageId}:repack`}`
        assert.strictEqual(repack.n, 1)
        // The files gone at SOURCE too: nothing anywhere to repair from.
        yield* sql`
        update physical_copy set status = 'MISSING' where raw_data_file_id in (select id from raw_data_file where raw_data_package_id = ${pkg.packageId})`
        const noSource = yield* operator.packages.repair({ path: { id: pkg.packageId } }).pipe(Effect.flip)
        assert.strictEqual(noSource._tag, "Unprocessable")
        assert.match(noSource.message, /no good copy/)
      }).pipe(Effect.provide(apiLayer("/tmp/ccat-repair-api-test"))),
    120_000
  )
})
