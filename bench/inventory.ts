/**
 * Inventory benchmark: one whole pass of the real inventory (`Inventory.inventoryLocation`: the
 * disk driver's listing in key order, page by page, each page judged against the ops-db in one
 * set-based query) over a location holding a million objects recorded as archive copies, with a
 * few objects planted (dark) and a few deleted behind the platform's back (missing). It prints
 * the pass's time, pages per second, the slowest page, the process's peak memory, and checks the
 * findings are exactly the planted and deleted ones.
 *
 *   npx tsx bench/inventory.ts                          # 1,000,000 objects, 1,000 per folder
 *   CCAT_BENCH_OBJECTS=100000 npx tsx bench/inventory.ts
 *   CCAT_BENCH_PER_FOLDER=100000 npx tsx bench/inventory.ts   # few, large folders
 *
 * The baseline beside it is `find ROOT -type f | sort` over the same tree (the listing alone,
 * nothing judged), run in the same process's turn.
 */
import { Topology } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import * as Fixtures from "../packages/core/src/testing/Fixtures.js"
import * as JobQueue from "../packages/server/src/engine/JobQueue.js"
import * as Audit from "../packages/server/src/lifecycle/Audit.js"
import * as Inventory from "../packages/server/src/lifecycle/Inventory.js"
import { LifecyclePolicy } from "../packages/server/src/lifecycle/Packaging.js"
import * as Storages from "../packages/server/src/lifecycle/Storages.js"
import * as TopologySync from "../packages/server/src/TopologySync.js"

const objects = Number(process.env.CCAT_BENCH_OBJECTS ?? 1_000_000)
const perFolder = Number(process.env.CCAT_BENCH_PER_FOLDER ?? 1_000)
const planted = 100
const deleted = 100
const pageSize = 1000

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9
const keyOf = (i: number) => `f${String(Math.floor(i / perFolder)).padStart(5, "0")}/p-${String(i).padStart(8, "0")}.tar`

/** Writes the objects (one byte each) with a bounded number of writes in flight, printing progress. */
const writeObjects = async (root: string, count: number, key: (i: number) => string) => {
  const folders = new Map<string, Promise<unknown>>()
  let next = 0
  const started = Date.now()
  const worker = async () => {
    while (next < count) {
      const i = next++
      const file = path.join(root, key(i))
      const folder = path.dirname(file)
      if (!folders.has(folder)) folders.set(folder, fs.mkdir(folder, { recursive: true }))
      await folders.get(folder)
      await fs.writeFile(file, "x")
      if (i > 0 && i % 100_000 === 0) console.log(`  ${i} objects written (${((Date.now() - started) / 1000).toFixed(0)} s)`)
    }
  }
  await Promise.all(Array.from({ length: 32 }, worker))
}

const program = (dir: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* TopologySync.sync(Topology.demo(dir))
    const world = yield* Fixtures.world
    const [archive] = yield* sql<{ id: string }>`select id from data_location where name = 'cologne-archive'`
    const root = path.join(dir, "locations", "cologne-archive")
    console.log(
      `inventory benchmark: ${objects} objects, ${perFolder} per folder, pages of ${pageSize}; node ${process.version}, ` +
        `${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`
    )

    let t = process.hrtime.bigint()
    yield* Effect.promise(() => writeObjects(root, objects, keyOf))
    console.log(`wrote ${objects} objects in ${seconds(t).toFixed(1)} s`)
    // The ops-db: one observation per folder, a package and its archive copy per object, set-based.
    t = process.hrtime.bigint()
    const checksum = "sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
    yield* sql`
      insert into executed_obs_unit (id, obs_unit_id, start_at, end_at, status)
      select gen_random_uuid(), ${world.obsUnit.id}, now(), now(), 'completed' from generate_series(0, ${
        Math.ceil(objects / perFolder) - 1
      })`
    yield* sql`
      with eous as (select id, row_number() over (order by id) - 1 as n from executed_obs_unit)
      insert into raw_data_package (executed_obs_unit_id, instrument_module_id, relative_path, size_bytes, checksum, status)
      select e.id, ${
        world.modules[0].id
      }, 'f' || lpad((i / ${perFolder})::text, 5, '0') || '/p-' || lpad(i::text, 8, '0') || '.tar', 1, ${checksum}, 'completed'
      from generate_series(0, ${objects - 1}) i join eous e on e.n = i / ${perFolder}`
    yield* sql`
      insert into physical_copy (raw_data_package_id, data_location_id, path, size_bytes, checksum, status, verified_at, created_at)
      select id, ${archive!.id}, relative_path, 1, ${checksum}, 'PRESENT', now(), now() - interval '1 day' from raw_data_package`
    yield* sql`analyze`
    console.log(`recorded ${objects} packages and archive copies in ${seconds(t).toFixed(1)} s`)

    // Planted objects no copy accounts for, and recorded objects deleted behind the platform's back.
    yield* Effect.promise(() => writeObjects(root, planted, (i) => `dark/planted-${i}.tar`))
    for (let i = 0; i < deleted; i++) yield* Effect.promise(() => fs.rm(path.join(root, keyOf(Math.floor((i * objects) / deleted) + 1))))
    // Every object older than the pass, as in an archive written before it began.
    yield* Effect.promise(() => promisify(execFile)("find", [root, "-type", "f", "-exec", "touch", "-d", "2 days ago", "{}", "+"]))

    t = process.hrtime.bigint()
    const listed = yield* Effect.promise(() =>
      promisify(execFile)("sh", ["-c", `find "$1" -type f | LC_ALL=C sort | wc -l`, "sh", root], { maxBuffer: 1024 * 1024 })
    )
    const findSeconds = seconds(t)
    console.log(`baseline: find | sort listed ${listed.stdout.trim()} files in ${findSeconds.toFixed(1)} s`)

    yield* sql`insert into location_inventory (data_location_id, pass_started_at) values (${archive!.id}, date_trunc('milliseconds', now()))
      on conflict (data_location_id) do update set pass_started_at = excluded.pass_started_at, cursor = null, last_key = null, objects_seen = 0`
    let peak = process.memoryUsage().rss
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 200)
    const totals = { pages: 0, objects: 0, dark: 0, missing: 0 }
    let slowest = 0
    t = process.hrtime.bigint()
    for (;;) {
      const jobStart = process.hrtime.bigint()
      const r = yield* Inventory.inventoryLocation("cologne", archive!.id, { pageSize, pagesPerJob: 100 })
      if (r.pages > 0) slowest = Math.max(slowest, seconds(jobStart) / r.pages)
      totals.pages += r.pages
      totals.objects += r.objects
      totals.dark += r.dark
      totals.missing += r.missing
      if (r.completed || r.pages === 0) break
      if (totals.pages % 200 === 0) console.log(`  ${totals.pages} pages, ${totals.objects} objects (${seconds(t).toFixed(0)} s)`)
    }
    const passSeconds = seconds(t)
    clearInterval(sampler)
    console.log("")
    console.log("| variant | time | objects/s | notes |")
    console.log("|---|---|---|---|")
    console.log(`| find \\| sort (listing only) | ${findSeconds.toFixed(1)} s | ${(objects / findSeconds).toFixed(0)} | |`)
    console.log(
      `| inventory pass | ${passSeconds.toFixed(1)} s | ${(totals.objects / passSeconds).toFixed(0)} | ${totals.pages} pages, slowest job ${
        (slowest * 1000).toFixed(0)
      } ms per page, peak RSS ${(peak / 1024 / 1024).toFixed(0)} MiB |`
    )
    console.log(`| **inventory / find** | | **${(findSeconds / passSeconds).toFixed(3)}** | |`)
    console.log("")
    console.log(`findings: ${totals.dark} dark (planted ${planted}), ${totals.missing} missing (deleted ${deleted})`)
    if (totals.dark !== planted || totals.missing !== deleted) {
      return yield* Effect.dieMessage(`the pass found ${totals.dark} dark and ${totals.missing} missing, not ${planted} and ${deleted}`)
    }
  })

const main = Effect.gen(function* () {
  const dir = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-bench-inventory-")))
  yield* Effect.promise(() => fs.chmod(dir, 0o755))
  yield* Effect.addFinalizer(() => Effect.promise(() => fs.rm(dir, { recursive: true, force: true })))
  const layer = Layer.mergeAll(JobQueue.layer, Storages.layer()).pipe(
    Layer.provideMerge(OpsDb.layer({ databaseUrl: undefined, dataDir: dir, database: "ccat_bench" }))
  )
  yield* program(dir).pipe(
    Effect.provideService(LifecyclePolicy, Topology.demo("/unused").policy),
    Effect.provideService(Audit.LocationAudits, new Map()),
    Effect.provide(layer)
  )
}).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Fatal))

Effect.runPromise(main).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
