/**
 * Repair through the API: an operator starts a repair of a package now against the real HTTP
 * server with a job engine in its process, as `ccat serve` has; 409 with nothing to repair, 422
 * with no good source anywhere, 403 for a scientist, and Chile asked to send the package again
 * from its files at SOURCE when both of Cologne's copies are bad.
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
import * as JobQueue from "../../src/engine/JobQueue.js"
import * as HttpServerLive from "../../src/HttpServer.js"
import * as Repair from "../../src/lifecycle/Repair.js"
import * as Storages from "../../src/lifecycle/Storages.js"
import { ServerConfig } from "../../src/ServerConfig.js"
import { tokenFor } from "../ApiHarness.js"
import { flipByte } from "./AuditWorld.js"
import { archivedAtTwoArchives, assertBackToTarget, markAs, noBadCopies, objectAt } from "./RepairWorld.js"

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
