/**
 * How fast `ivoa.obscore` answers on a large ops-db: loads the synthetic catalog
 * (`packages/server/test/scale/Catalog.ts`), gives its ObsUnits Sources and its modules bands,
 * then times the queries a TAP service sends (a count of everything, a cone-like box around a
 * Source, a time range, one program, one observation) and prints each one's median, with
 * `count(*)` over the packages table as the baseline of a full scan of the same size.
 *
 *   npx tsx bench/obscore.ts                       # 10^5 files
 *   OBSCORE_FILES=1000000 npx tsx bench/obscore.ts  # 10^6
 *   OBSCORE_RUNS=7 ...                              # runs per query (default 5)
 */
import { OpsDb } from "@ccat/core/node"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Catalog from "../packages/server/test/scale/Catalog.js"

const files = Number(process.env.OBSCORE_FILES ?? 100_000)
const runs = Number(process.env.OBSCORE_RUNS ?? 5)

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const started = Date.now()
  const loaded = yield* Catalog.load({ files, seed: 1, fileEvents: false })
  console.log(
    `loaded ${loaded.rows.toLocaleString("en-US")} rows (${
      files.toLocaleString("en-US")
    } files, ${loaded.plan.eous} observations, ${loaded.plan.packages.length} packages) in ${((Date.now() - started) / 1000).toFixed(0)} s`
  )
  // Every ObsUnit observes one of 200 Sources spread over the sky; every module has a band.
  yield* sql`insert into source (name, ra_deg, dec_deg) select 'src-' || g, (g * 137.5) % 360, -80 + (g * 0.8) from generate_series(1, 200) g`
  yield* sql`update obs_unit u set source_id = (select id from source order by name offset (abs(hashtext(u.id::text)) % 200) limit 1)`
  yield* sql`update instrument_module set em_min = 0.0009, em_max = 0.0012, fov_deg = 1.3, dataproduct_type = 'timeseries'`
  yield* sql`analyze`
  const [{ program: someProgram }] = yield* sql<{ program: string }>`select observing_program_id as program from obs_unit limit 1`
  const [{ obs }] = yield* sql<{ obs: string }>`select obs_id as obs from ivoa.obscore limit 1`
  const [{ tmin }] = yield* sql<{ tmin: number }>`select percentile_disc(0.5) within group (order by t_min) as tmin from ivoa.obscore`
  const queries: ReadonlyArray<readonly [string, string]> = [
    ["baseline: count(*) from raw_data_package", "select count(*) from raw_data_package"],
    ["count(*) from ivoa.obscore", "select count(*) from ivoa.obscore"],
    [
      "box of 2° around a Source",
      "select obs_publisher_did from ivoa.obscore where s_ra between 136.5 and 138.5 and s_dec between -80.2 and -78.2"
    ],
    ["a week of observations", `select obs_publisher_did from ivoa.obscore where t_min between ${tmin} and ${tmin + 7}`],
    ["one program, first 100", `select obs_publisher_did from ivoa.obscore where ccat_program_id = '${someProgram}' limit 100`],
    ["one observation", `select * from ivoa.obscore where obs_id = '${obs}'`],
    [
      "anonymous: public rows, top 100",
      "select obs_publisher_did from ivoa.obscore where ccat_public_from <= now() order by t_min desc limit 100"
    ]
  ]
  for (const [name, query] of queries) {
    const times: Array<number> = []
    let rows = 0
    for (let i = 0; i < runs; i++) {
      const t = performance.now()
      rows = (yield* sql.unsafe(query)).length
      times.push(performance.now() - t)
    }
    // How the observations were read: by an index or by a scan of them all.
    const [explained] = yield* sql.unsafe<{ queryPlan: string }>(`explain (format text) ${query}`).pipe(
      Effect.map((r) => r.map((x: any) => Object.values(x)[0] as string)),
      Effect.map((lines) => [lines.join("\n")])
    )
    const access = /Seq Scan on executed_obs_unit/.test(explained!)
      ? "scans observations"
      : /executed_obs_unit/.test(explained!)
      ? "observations by index"
      : "no observations read"
    console.log(
      `  ${name.padEnd(42)} ${median(times).toFixed(1).padStart(9)} ms median (min ${
        Math.min(...times).toFixed(1)
      }), ${rows} rows, ${access}`
    )
  }
  const [{ n }] = yield* sql<{ n: number }>`select count(*)::int as n from ivoa.obscore`
  console.log(`ivoa.obscore: ${n} rows`)
})

const main = Effect.gen(function* () {
  const dir = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-bench-obscore-")))
  yield* Effect.promise(() => fs.chmod(dir, 0o755))
  yield* Effect.addFinalizer(() => Effect.promise(() => fs.rm(dir, { recursive: true, force: true })))
  yield* program.pipe(Effect.provide(OpsDb.layer({ dataDir: dir, database: `ccat_obscore_${files}` })))
}).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))

Effect.runPromise(main).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
