/**
 * Loads the synthetic catalog (`packages/server/test/scale/Catalog.ts`): a decade of observations
 * on the demo topology with a live tail at every stage, through `COPY`, and prints rows per
 * second per table and in all.
 *
 *   npx tsx bench/catalog.ts                          # 10^5 files, embedded PostgreSQL (thrown away)
 *   CATALOG_FILES=1000000 npx tsx bench/catalog.ts    # 10^6
 *   CATALOG_FILES=10000000 CATALOG_KEEP=/var/tmp/ccat-1e7 npx tsx bench/catalog.ts   # keep the data dir
 *   DATABASE_URL=postgres://.../scratch npx tsx bench/catalog.ts   # an empty, migrated or new database
 *
 * Other settings: CATALOG_SEED (default 1), CATALOG_FILE_EVENTS=0 (no per-file events),
 * CATALOG_VACUUM=1 (`vacuum (analyze)` each table after the load, as years of autovacuum leave an
 * ops-db; a kept catalog probed later wants it).
 */
import { OpsDb } from "@ccat/core/node"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Catalog from "../packages/server/test/scale/Catalog.js"

const files = Number(process.env.CATALOG_FILES ?? 100_000)
const seed = Number(process.env.CATALOG_SEED ?? 1)
const fileEvents = process.env.CATALOG_FILE_EVENTS !== "0"
const keep = process.env.CATALOG_KEEP
const vacuum = process.env.CATALOG_VACUUM === "1"
const databaseUrl = process.env.DATABASE_URL ? Redacted.make(process.env.DATABASE_URL) : undefined
if (!Number.isInteger(files) || files < 1) throw new Error(`CATALOG_FILES must be a positive integer, got ${process.env.CATALOG_FILES}`)

const rate = (rows: number, seconds: number) => `${Math.round(rows / Math.max(seconds, 1e-9)).toLocaleString("en-US")} rows/s`

const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [{ n }] = yield* sql<{ n: number }>`select count(*)::int as n from raw_data_file`
  if (n > 0) return yield* Effect.dieMessage(`the database already holds ${n} files: load the catalog into an empty one`)
  console.log(`loading ${files.toLocaleString("en-US")} files (seed ${seed}, per-file events ${fileEvents ? "on" : "off"})`)
  const loaded = yield* Catalog.load({
    files,
    seed,
    fileEvents,
    vacuum,
    onTable: (table, rows, seconds) =>
      console.log(`  ${table.padEnd(30)} ${rows.toString().padStart(11)} rows  ${seconds.toFixed(1).padStart(7)} s  ${rate(rows, seconds)}`)
  })
  for (const t of loaded.tables.filter((x) => x.table.startsWith("("))) {
    console.log(`  ${t.table.padEnd(30)} ${"".padStart(11)}       ${t.seconds.toFixed(1).padStart(7)} s`)
  }
  console.log(
    `  row triggers and checks: ${
      loaded.triggers ? "fired per row" : "off (superuser load); foreign keys proved set-based, counts recounted"
    }`
  )
  const [size] = yield* sql<{ bytes: number }>`select pg_database_size(current_database())::float8 as bytes`
  console.log(
    `total: ${loaded.rows.toLocaleString("en-US")} rows in ${loaded.seconds.toFixed(1)} s (${
      rate(loaded.rows, loaded.seconds)
    }), database ${(size.bytes / 2 ** 30).toFixed(2)} GiB`
  )
  console.log(
    `plan: ${loaded.plan.eous} observations, ${loaded.plan.packages.length} packages, ${loaded.plan.groups} groups (${loaded.plan.live} live)`
  )
})

const main = Effect.gen(function* () {
  const dir = keep ?? (yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-bench-catalog-"))))
  yield* Effect.promise(() => fs.mkdir(dir, { recursive: true }))
  yield* Effect.promise(() => fs.chmod(dir, 0o755))
  if (keep === undefined) yield* Effect.addFinalizer(() => Effect.promise(() => fs.rm(dir, { recursive: true, force: true })))
  yield* program.pipe(
    Effect.provide(OpsDb.layer({ databaseUrl, dataDir: dir, database: databaseUrl ? undefined : `ccat_catalog_${files}` }))
  )
  if (keep !== undefined) console.log(`kept: ${dir} (database ccat_catalog_${files})`)
}).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))

Effect.runPromise(main).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
