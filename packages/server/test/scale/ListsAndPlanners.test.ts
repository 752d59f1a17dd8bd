/**
 * The list endpoints and the planners at a million files (the synthetic catalog, `Catalog`):
 * every statement they run is recorded and its executed plan read back (`ListsExplain`). No big
 * table is read whole, a list page touches rows bounded by the page (first and deep pages, each
 * filter), and a planner's tick touches rows bounded by the live work, which the catalog keeps
 * the same at every size. Plans and rows, never timings.
 */
import { Migrations, Topology } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { createServer } from "node:http"
import * as JobQueue from "../../src/engine/JobQueue.js"
import { LifecyclePolicy } from "../../src/lifecycle/Packaging.js"
import * as Retention from "../../src/lifecycle/Retention.js"
import * as Stages from "../../src/lifecycle/Stages.js"
import * as Storages from "../../src/lifecycle/Storages.js"
import * as HttpServerLive from "../../src/HttpServer.js"
import { ServerConfig } from "../../src/ServerConfig.js"
import * as Harness from "../ApiHarness.js"
import * as CatalogDatabase from "./CatalogDatabase.js"
import * as ListsExplain from "./ListsExplain.js"

const files = Number(process.env.CCAT_SCALE_FILES ?? 1_000_000)
const verbose = process.env.CCAT_SCALE_VERBOSE !== undefined
const recorder = new ListsExplain.Recorder()

/** Rows one list page may touch: a page of 100 and the index entries around it, with room for a filter that skips some. */
const pageBound = 5_000
/**
 * Rows a page in a narrow scope may touch: a caller who sees a share of the catalog (a scientist's
 * programs, here one in twenty) finds a page among about 100 / share rows, or reads all the rows
 * it may see when those are fewer.
 */
const scopedPageBound = 20_000
/** Rows one planner statement may touch: the live tail (about 19,000 files and their copies) and the indexes leading to it. */
const plannerBound = 60_000

/**
 * Rows one statement of an audit tick may touch: a location's first due copy is one descent of the
 * audit index, in its order, however many copies of a decade are due.
 */
const auditBound = 1_000

/** Statements a cleanup tick may send: its reads, and a few per hundred copies it schedules, never some per copy. */
const cleanupStatements = 100

/**
 * Rows one statement of any cleanup tick may touch: it judges the copies that can have become
 * deletable since the last tick (the catalog's last ten minutes, the window's overlap: about
 * 1,300-1,800 rows to find them and 3,500-5,000 to judge them at 10^6, the more the sooner after
 * the load the tick runs) and a sweep's slice of the live tail (`CleanupScope.sweepSlice`
 * copies), never the whole live tail at once (35,000 rows to judge it), and stamps a bounded
 * batch of packages.
 */
const cleanupBound = 10_000

/** A cursor `fraction` of the way into a table in page order (how a caller that paged there holds it). */
const deepCursor = (table: string, orderBy: string, fraction = 0.5) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [{ n }] = yield* sql<{ n: number }>`select count(*)::int as n from ${sql(table)}`
    const [row] = yield* sql<{ key: string; id: string }>`
      select ${sql(orderBy)}::text as key, id from ${sql(table)} order by ${sql(orderBy)}, id offset ${Math.floor(n * fraction)} limit 1`
    return Buffer.from(JSON.stringify([row.key, row.id])).toString("base64url")
  })

/** What breaks a bound: a big table read whole, or more rows touched than `maxRows`. */
const violations = (what: string, plans: ReadonlyArray<ListsExplain.PlanSummary>, maxRows: number): Array<string> =>
  plans.filter((p) => p.seqScans.length > 0 || p.rowsTouched > maxRows).map((p) => `${what}: ${ListsExplain.describe(p)}`)

const show = (what: string, plans: ReadonlyArray<ListsExplain.PlanSummary>) =>
  Effect.sync(() => {
    if (verbose) { for (const p of plans) console.log(`${what}\t${ListsExplain.describe(p)}`) }
  })

const topology = Topology.demo("/var/tmp/ccat-scale")

/**
 * The ops-db: a fresh one the catalog is loaded into, or (`CCAT_SCALE_DATABASE_URL`) one that
 * `bench/catalog.ts` loaded and kept, migrated to the current schema, for a plan check at 10^7.
 */
const existing = process.env.CCAT_SCALE_DATABASE_URL
const database = existing === undefined
  ? CatalogDatabase.layer({ files, fileEvents: false })
  : Layer.tap(PgClient.layer(OpsDb.clientConfig(Redacted.make(existing))), (ctx) => Effect.provide(Migrations.run, ctx)).pipe(Layer.orDie)

/** The API server on that ops-db (as `ApiHarness` builds it), its statements recorded, and what the planners need. */
const world = Layer.mergeAll(JobQueue.layer, Storages.layer(), Layer.succeed(LifecyclePolicy, topology.policy)).pipe(
  Layer.provideMerge(
    Layer.provideMerge(
      Layer.effect(Harness.BaseUrl, HttpServer.addressFormattedWith((a) => Effect.succeed(a))),
      HttpServerLive.layerWith({ maxBodyBytes: HttpServerLive.maxBodyBytes }).pipe(
        Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 }))
      )
    ).pipe(
      Layer.provideMerge(Layer.succeed(ServerConfig, {
        configFile: undefined,
        host: "127.0.0.1",
        port: 0,
        dataDir: "/var/tmp/ccat-scale",
        databaseUrl: undefined,
        topology
      })),
      Layer.provideMerge(Layer.succeed(OpsDb.OpsDb, { kind: "external", target: "test" })),
      Layer.provideMerge(database),
      Layer.provideMerge(FetchHttpClient.layer),
      Layer.provide(recorder.layer)
    )
  )
)

describe("lists and planners at scale", () => {
  it.layer(world, { timeout: 900_000 })((it) => {
    it.effect("every list endpoint's first and deep pages, with each filter, touch rows bounded by the page", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const [program] = yield* sql<{ id: string }>`select id from observing_program order by name limit 1`
        const [module] = yield* sql<{ id: string }>`select id from instrument_module order by name limit 1`
        const operator = yield* Harness.tokenFor({ role: "operator" })
        const scientist = yield* Harness.tokenFor({ role: "scientist", programIds: [program.id] })
        const [obs] = yield* sql<
          { id: string }
        >`select id from executed_obs_unit order by start_at offset (select count(*) / 3 from executed_obs_unit) limit 1`
        const [pkg] = yield* sql<{ id: string }>`
          select p.id from raw_data_package p join data_transfer_package_member m on m.raw_data_package_id = p.id
          where p.status = 'completed' order by p.created_at limit 1`
        const [bundle] = yield* sql<
          { id: string }
        >`select data_transfer_package_id as id from data_transfer_package_member where raw_data_package_id = ${pkg.id}`
        const [file] = yield* sql<{ id: string }>`select id from raw_data_file where raw_data_package_id = ${pkg.id} limit 1`
        const [archive] = yield* sql<{ id: string }>`select id from data_location where name = 'cologne-archive'`
        const [source] = yield* sql<{ id: string }>`select id from data_location where name = 'chile-source'`
        const cursors = {
          observations: yield* deepCursor("executed_obs_unit", "start_at"),
          files: yield* deepCursor("raw_data_file", "filed_at"),
          packages: yield* deepCursor("raw_data_package", "created_at"),
          bundles: yield* deepCursor("data_transfer_package", "created_at"),
          transfers: yield* deepCursor("data_transfer", "created_at"),
          copies: yield* deepCursor("physical_copy", "created_at")
        }
        const pages: ReadonlyArray<readonly [string, string]> = [
          [operator, "/observations"],
          [operator, `/observations?cursor=${cursors.observations}`],
          [operator, "/observations?status=in_progress"],
          [operator, `/observations?quality=bad&cursor=${cursors.observations}`],
          [operator, `/observations?programId=${program.id}`],
          [operator, "/observations?startFrom=2020-06-01T00:00:00Z&startTo=2020-07-01T00:00:00Z"],
          [scientist, "/observations"],
          [operator, "/files"],
          [operator, `/files?cursor=${cursors.files}`],
          [operator, "/files?state=filed"],
          [operator, "/files?state=corrupt"],
          [operator, `/files?state=packaged&cursor=${cursors.files}`],
          [operator, `/files?observationId=${obs.id}`],
          [operator, `/files?packageId=${pkg.id}`],
          [operator, `/files?moduleId=${module.id}&cursor=${cursors.files}`],
          [scientist, "/files"],
          [operator, "/packages"],
          [operator, `/packages?cursor=${cursors.packages}`],
          [operator, "/packages?journey=WAITING"],
          [operator, "/packages?journey=TRANSFERRING"],
          [operator, "/packages?journey=FAILED"],
          [operator, `/packages?journey=ARCHIVED&cursor=${cursors.packages}`],
          [operator, "/packages?status=in_progress"],
          [operator, `/packages?observationId=${obs.id}`],
          [scientist, "/packages"],
          [operator, "/bundles"],
          [operator, `/bundles?cursor=${cursors.bundles}`],
          [operator, "/bundles?status=in_progress"],
          [operator, `/bundles?packageId=${pkg.id}`],
          [operator, "/transfers"],
          [operator, `/transfers?cursor=${cursors.transfers}`],
          [operator, `/transfers?bundleId=${bundle.id}`],
          [operator, "/transfers?status=failed"],
          [operator, `/transfers?locationId=${archive.id}`],
          [operator, "/copies"],
          [operator, `/copies?cursor=${cursors.copies}`],
          [operator, `/copies?locationId=${archive.id}`],
          [operator, `/copies?locationId=${source.id}&status=PRESENT`],
          [operator, "/copies?status=DELETION_FAILED"],
          [operator, "/copies?status=CORRUPT"],
          [operator, `/copies?fileId=${file.id}`],
          [operator, `/copies?packageId=${pkg.id}`],
          [operator, `/copies?bundleId=${bundle.id}`],
          [operator, `/copies?observationId=${obs.id}`],
          [operator, "/staging-requests"],
          [scientist, "/staging-requests"],
          [operator, `/events?entity=RawDataFile&id=${file.id}`],
          [operator, `/events?entity=RawDataPackage&id=${pkg.id}`],
          [operator, "/integrity"],
          [scientist, "/integrity"]
        ]
        const found: Array<string> = []
        for (const [token, path] of pages) {
          const { result, statements } = yield* recorder.during(Harness.raw("GET", `/api/v1${path}`, { token }))
          assert.strictEqual(result.status, 200, `${path}: ${JSON.stringify(result.json).slice(0, 300)}`)
          const plans = yield* ListsExplain.explain(statements)
          assert.isAbove(plans.length, 0, `${path} ran no statement`)
          yield* show(path, plans)
          found.push(...violations(path, plans, token === scientist ? scopedPageBound : pageBound))
        }
        assert.deepStrictEqual(found, [], found.join("\n"))
      }))

    it.effect("every stage's planner tick at each site touches rows bounded by the live work", () =>
      Effect.gen(function* () {
        const found: Array<string> = []
        for (const site of ["chile", "cologne"]) {
          for (const stage of Stages.all) {
            const { result, statements } = yield* recorder.during(Effect.either(stage.plan(site)))
            if (result._tag === "Left") found.push(`${site}.${stage.name} failed: ${String(result.left)}`)
            const plans = yield* ListsExplain.explain(statements)
            yield* show(`${site}.${stage.name}`, plans)
            // cleanup at the host disk's fill, which may put a location over its threshold: the
            // next test holds cleanup's ticks to their own bound, a full location's too
            found.push(...violations(`${site}.${stage.name}`, plans, stage.name === "audit" ? auditBound : plannerBound))
            if (stage.name === "audit" && !plans.some((p) => p.indexes.includes("physical_copy_audit_due"))) {
              found.push(`${site}.audit looked for no due copy by the audit index`)
            }
            if (stage.name === "cleanup" && statements.length > cleanupStatements) {
              found.push(`${site}.cleanup sent ${statements.length} statements`)
            }
          }
        }
        assert.deepStrictEqual(found, [], found.join("\n"))
      }))

    it.effect("every cleanup tick touches rows bounded by a slice of the sweep and what changed, the first ones after an upgrade too", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const cleanup = Stages.all.find((s) => s.name === "cleanup")!
        // No fill threshold but where set below: the scale topology's folders have no capacity,
        // so their fill is the host disk's, which other tenants change.
        yield* sql`update retention_policy set disk_usage_threshold = null`
        const found: Array<string> = []
        const tick = (what: string) =>
          Effect.gen(function* () {
            for (const site of ["chile", "cologne"]) {
              const { result, statements } = yield* recorder.during(Effect.either(cleanup.plan(site)))
              if (result._tag === "Left") found.push(`${site}.cleanup failed: ${String(result.left)}`)
              const plans = yield* ListsExplain.explain(statements)
              yield* show(`${site}.cleanup (${what})`, plans)
              found.push(...violations(`${site}.cleanup (${what})`, plans, cleanupBound))
            }
          })
        // As right after an upgrade that brought the stamps: no package stamped, no mark. The first
        // tick begins a sweep, the next goes on with it; each stamps a batch.
        yield* sql`update raw_data_package set archived_at = null where archived_at is not null`
        yield* sql`delete from cleanup_mark`
        yield* tick("first")
        yield* tick("sweeping")
        const [sweeping] = yield* sql<{ n: number }>`
          select count(*)::int as n from cleanup_mark m join site s on s.id = m.site_id
          where s.name = 'chile' and m.sweep_started_at is not null`
        assert.strictEqual(sweeping!.n, 1, "Chile sweeps its live tail (thousands of copies) a slice a tick")
        // Late in a sweep: a slice starts at the cursor in the index, not at its location's first path.
        yield* sql`
          update cleanup_mark m set sweep_location = x.location, sweep_path = x.path
          from (select c.data_location_id as location, c.path::text as path from physical_copy c
                join data_location l on l.id = c.data_location_id
                where l.name = 'chile-source' and c.status <> 'DELETED'
                order by (c.path::text collate "C") desc offset 10 limit 1) x
          where m.site_id = (select id from site where name = 'chile')`
        yield* tick("late in a sweep")
        // As a site whose last sweep ended just now, every package stamped: what changed since.
        yield* sql`update raw_data_package set archived_at = updated_at where status = 'completed' and archived_at is null`
        yield* sql`update cleanup_mark set ticked_at = now(), full_pass_at = now(), sweep_location = null, sweep_path = null,
                   sweep_started_at = null`
        yield* tick("changed")
        // Chile's SOURCE filled to its threshold, nothing else to judge: its oldest copies are
        // judged, not all of them.
        yield* sql`update physical_copy set status = 'DELETION_SCHEDULED' where status = 'DELETION_POSSIBLE'`
        const [source] = yield* sql<{ id: string }>`select id from data_location where name = 'chile-source'`
        yield* sql`update retention_policy set disk_usage_threshold = 0.001 where data_location_id = ${source!.id}`
        assert.include(yield* Retention.overThreshold({ site: "chile" }), source!.id, "chile-source is full")
        yield* tick("a full location")
        assert.deepStrictEqual(found, [], found.join("\n"))
      }))
  })
})
