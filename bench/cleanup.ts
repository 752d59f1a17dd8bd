/**
 * Benchmark: cleanup throughput. Copies deleted per second when N copies at one site are
 * eligible at once (SOURCE file copies and BUFFER package copies of archived packages, real files
 * on a local disk), run by the real cleanup stage (planner, pg-boss jobs, the worker's re-check of
 * invariant 1 inside its transaction, the deletion, the DELETED event) on a real PostgreSQL.
 *
 *   npx tsx bench/cleanup.ts                                  # 20 packages of 9 files: 200 copies
 *   BENCH_PACKAGES=50 BENCH_FILES=19 npx tsx bench/cleanup.ts # 1,000 copies
 *   BENCH_CONCURRENCY=1,4,16 npx tsx bench/cleanup.ts         # the locations' delete concurrency per run
 *
 * Side by side, on the same database in the same run, each variant on a fresh set of copies:
 *   stage(c)   the cleanup stage with `retention.deleteConcurrency` c at both locations, from the
 *              first planning round until every copy is DELETED (planner every second, workers
 *              polling every second, as `ccat worker` runs them)
 *   rm+sql     the baseline: the same files removed with `fs.rm` and the same rows set DELETED by
 *              one SQL update (what the disk and the database alone cost, with no checks)
 */
import { Topology } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
// The fixtures module alone: the test kit's index also loads vitest, which only runs under vitest.
import * as Fixtures from "../packages/core/src/testing/Fixtures.js"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as JobQueue from "../packages/server/src/engine/JobQueue.js"
import * as Cleanup from "../packages/server/src/lifecycle/Cleanup.js"
import * as Engine from "../packages/server/src/lifecycle/Engine.js"
import * as Storages from "../packages/server/src/lifecycle/Storages.js"
import * as TopologySync from "../packages/server/src/TopologySync.js"

const packages = Number(process.env.BENCH_PACKAGES ?? 20)
const filesPerPackage = Number(process.env.BENCH_FILES ?? 9)
const concurrencies = (process.env.BENCH_CONCURRENCY ?? "1,4,16").split(",").map(Number)
const fileBytes = 4096

const command = [
  ...["BENCH_PACKAGES", "BENCH_FILES", "BENCH_CONCURRENCY"].filter((k) => process.env[k] !== undefined).map((k) =>
    `${k}=${process.env[k]}`
  ),
  "npx tsx bench/cleanup.ts"
].join(" ")

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9
const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`

/**
 * Archived packages, each with its files at chile-source and its tar in chile-buffer (real files),
 * and a verified archive copy at cologne-archive: every SOURCE and BUFFER copy is eligible.
 * Returns the ids of the copies cleanup may delete and their absolute paths.
 */
const eligibleCopies = (dir: string, world: Fixtures.World, round: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const ids = new Map((yield* sql<{ name: string; id: string }>`select name, id from data_location`).map((r) => [r.name, r.id]))
    const copies: Array<{ id: string; file: string }> = []
    for (let p = 0; p < packages; p++) {
      const eou = randomUUID()
      yield* sql`insert into executed_obs_unit (id, obs_unit_id, start_at, end_at, status) values (${eou}, ${world.obsUnit.id}, now(), now(), 'completed')`
      const tar = randomBytes(fileBytes)
      const key = `${eou}/${world.modules[0].id}/bench-${round}-${p}.tar`
      const [pkg] = yield* sql<{ id: string }>`
        insert into raw_data_package (executed_obs_unit_id, instrument_module_id, relative_path, size_bytes, checksum, status)
        values (${eou}, ${world.modules[0].id}, ${key}, ${fileBytes}, ${sha(tar)}, 'completed') returning id`
      const bufferFile = path.join(dir, "locations", "chile-buffer", key)
      yield* Effect.promise(async () => {
        await fs.mkdir(path.dirname(bufferFile), { recursive: true })
        await fs.writeFile(bufferFile, tar)
      })
      const [buffer] = yield* sql<{ id: string }>`
        insert into physical_copy (raw_data_package_id, data_location_id, path, size_bytes, checksum, status, verified_at)
        values (${pkg.id}, ${ids.get("chile-buffer")!}, ${key}, ${fileBytes}, ${sha(tar)}, 'PRESENT', now()) returning id`
      copies.push({ id: buffer.id, file: bufferFile })
      yield* sql`
        insert into physical_copy (raw_data_package_id, data_location_id, path, size_bytes, checksum, status, verified_at)
        values (${pkg.id}, ${ids.get("cologne-archive")!}, ${key}, ${fileBytes}, ${sha(tar)}, 'PRESENT', now() - interval '1 minute')`
      for (let f = 0; f < filesPerPackage; f++) {
        const bytes = randomBytes(fileBytes)
        const relativePath = `${eou}/det-${f}.fits`
        const file = path.join(dir, "locations", "chile-source", relativePath)
        yield* Effect.promise(async () => {
          await fs.mkdir(path.dirname(file), { recursive: true })
          await fs.writeFile(file, bytes)
        })
        const [row] = yield* sql<{ id: string }>`
          insert into raw_data_file (id, executed_obs_unit_id, instrument_module_id, relative_path, size_bytes, checksum, source_location_id, state, raw_data_package_id)
          values (${randomUUID()}, ${eou}, ${world.modules[0].id}, ${relativePath}, ${fileBytes}, ${sha(bytes)}, ${ids.get(
            "chile-source"
          )!}, 'packaged', ${pkg.id}) returning id`
        const [copy] = yield* sql<{ id: string }>`
          insert into physical_copy (raw_data_file_id, data_location_id, path, size_bytes, checksum, status, verified_at)
          values (${row.id}, ${ids.get("chile-source")!}, ${relativePath}, ${fileBytes}, ${sha(bytes)}, 'PRESENT', now()) returning id`
        copies.push({ id: copy.id, file })
      }
    }
    return copies
  })

const program = (dir: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const info = yield* OpsDb.OpsDb
    yield* TopologySync.sync(Topology.demo(dir))
    yield* sql`update retention_policy set min_age_seconds = 0, disk_usage_threshold = null`
    const world = yield* Fixtures.world
    const [{ version }] = yield* sql<{ version: string }>`select current_setting('server_version') as version`
    const n = packages * (filesPerPackage + 1)
    console.log(
      `cleanup benchmark: ${n} copies (${packages} packages: ${filesPerPackage} SOURCE files and 1 BUFFER tar each, ${fileBytes} bytes), PostgreSQL ${version} (${info.kind}), node ${process.version}, ${os.cpus().length} CPUs, load ${
        os.loadavg().map((l) => l.toFixed(1)).join(" ")
      }`
    )
    const results: Array<{ variant: string; time: number }> = []
    for (const c of concurrencies) {
      const copies = yield* eligibleCopies(dir, world, `c${c}`)
      const hasColumn =
        (yield* sql`select 1 from information_schema.columns where table_name = 'retention_policy' and column_name = 'delete_concurrency'`)
          .length > 0
      if (hasColumn) yield* sql`update retention_policy set delete_concurrency = ${c}`
      const ids = copies.map((x) => x.id)
      const start = process.hrtime.bigint()
      yield* Effect.scoped(Effect.gen(function* () {
        yield* Engine.runSite("chile", [Cleanup.stage], { plannerInterval: "1 second", pollingIntervalSeconds: 1 })
        while (true) {
          const [{ left }] = yield* sql<{ left: number }>`select count(*)::int as left from physical_copy where id in ${
            sql.in(ids)
          } and status <> 'DELETED'`
          if (left === 0) break
          yield* Effect.sleep("50 millis")
        }
      }))
      const time = seconds(start)
      for (const x of copies) {
        if (yield* Effect.promise(() => fs.stat(x.file).then(() => true, () => false))) throw new Error(`${x.file} is still there`)
      }
      results.push({ variant: `stage(${hasColumn ? c : "per-copy jobs"})`, time })
      console.log(`stage, delete concurrency ${hasColumn ? c : "n/a (before: one job per copy)"}: ${time.toFixed(2)} s`)
    }
    // The baseline: the same kind of copies, removed and marked without any check.
    const copies = yield* eligibleCopies(dir, world, "baseline")
    const start = process.hrtime.bigint()
    yield* Effect.promise(() => Promise.all(copies.map((x) => fs.rm(x.file, { force: true }))))
    yield* sql`update physical_copy set status = 'DELETED', updated_at = now() where id in ${sql.in(copies.map((x) => x.id))}`
    const baseline = seconds(start)
    results.push({ variant: "rm+sql (baseline)", time: baseline })

    console.log("")
    console.log("| variant | time | copies/s |")
    console.log("|---|---|---|")
    for (const r of results) console.log(`| ${r.variant} | ${r.time.toFixed(2)} s | ${(n / r.time).toFixed(1)} |`)
    console.log("")
    console.log(`command: ${command}`)
  })

const main = Effect.gen(function* () {
  const dir = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-bench-cleanup-")))
  yield* Effect.promise(() => fs.chmod(dir, 0o755))
  yield* Effect.addFinalizer(() => Effect.promise(() => fs.rm(dir, { recursive: true, force: true })))
  const layer = Layer.mergeAll(JobQueue.layer, Storages.layer()).pipe(
    Layer.provideMerge(OpsDb.layer({ databaseUrl: undefined, dataDir: dir, database: "ccat_bench" }))
  )
  yield* program(dir).pipe(Effect.provide(layer))
}).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))

Effect.runPromise(main).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
