/**
 * ADQL cone searches over `ivoa.obscore` with many Sources, with and without the Sources'
 * positional index (migration 0030): N Sources spread evenly over the sky, each with one
 * archived observation, then the translator's own SQL for the region predicates astronomers
 * send (a point in a CIRCLE, a DISTANCE bound, s_region meeting a CIRCLE, a point in a POLYGON),
 * timed first without the index (dropped: every row is read) and then with it. Both runs must
 * return the same rows; the plan of each is printed in one line.
 *
 *   npx tsx bench/cone.ts                   # 10^5 Sources
 *   CONE_SOURCES=1000000 npx tsx bench/cone.ts
 *   CONE_RUNS=7 ...                         # runs per query (default 5)
 */
import { OpsDb } from "@ccat/core/node"
import * as Fixtures from "../packages/core/src/testing/Fixtures.js"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import sourcePosition from "../packages/core/src/internal/migrations/0030_source_position.js"
import { parse } from "../packages/server/src/tap/Adql.js"
import { translate } from "../packages/server/src/tap/AdqlTranslate.js"

const sources = Number(process.env.CONE_SOURCES ?? 100_000)
const runs = Number(process.env.CONE_RUNS ?? 5)

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const queries: ReadonlyArray<readonly [string, string]> = [
  ["point in a 0.1° CIRCLE", "CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 150.1, 2.2, 0.1)) = 1"],
  ["point in a 1° CIRCLE", "CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 150.1, 2.2, 1)) = 1"],
  ["1° CIRCLE across ra = 0", "1 = CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 0.2, -30, 1))"],
  ["DISTANCE < 0.5°", "DISTANCE(POINT('ICRS', s_ra, s_dec), POINT('ICRS', 210.8, 54.3)) < 0.5"],
  ["s_region meets a 0.2° CIRCLE", "INTERSECTS(s_region, CIRCLE('ICRS', 83.8, -5.4, 0.2)) = 1"],
  ["point in a 1° POLYGON", "CONTAINS(POINT('ICRS', s_ra, s_dec), POLYGON('ICRS', 40, 10, 41, 10, 41, 11, 40, 11)) = 1"]
]

const sqlOf = (where: string) => {
  const parsed = parse(`SELECT obs_id, s_ra, s_dec FROM ivoa.obscore WHERE ${where}`)
  if (Either.isLeft(parsed)) throw new Error(parsed.left.message)
  const translated = translate(parsed.right, { access: { kind: "public" }, maxrec: 100_000 })
  if (Either.isLeft(translated)) throw new Error(translated.left.message)
  return translated.right
}

const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const started = Date.now()
  const w = yield* Fixtures.world
  yield* sql`update observing_program set proprietary_period_days = 0 where id = ${w.program.id}`
  yield* sql`update instrument_module set fov_deg = 0.5 where id = ${w.modules[0].id}`
  const batch = 100_000
  for (let first = 0; first < sources; first += batch) {
    // evenly over the sphere: ra uniform, sin(dec) uniform
    yield* sql.unsafe(
      `with src as (insert into source (name, ra_deg, dec_deg)
        select 'cone-' || g, random() * 360, degrees(asin(2 * random() - 1)) from generate_series($1::int, $2::int) g returning id, name),
      ou as (insert into obs_unit (observing_program_id, instrument_id, name, source_id) select $3::uuid, $4::uuid, src.name, src.id from src returning id),
      eou as (insert into executed_obs_unit (id, obs_unit_id, start_at, end_at, status)
        select gen_random_uuid(), ou.id, '2026-01-01T00:00:00Z', '2026-01-01T01:00:00Z', 'completed' from ou returning id)
      insert into raw_data_package (executed_obs_unit_id, instrument_module_id, relative_path, size_bytes, checksum, status)
      select eou.id, $5::uuid, 'packages/' || eou.id || '.tar', 4096, 'sha256:' || encode(sha256(eou.id::text::bytea), 'hex'), 'completed' from eou`,
      [first, Math.min(first + batch, sources) - 1, w.program.id, w.instrument.id, w.modules[0].id]
    )
  }
  yield* sourcePosition
  yield* sql`analyze`
  console.log(
    `loaded ${sources.toLocaleString("en-US")} Sources with an observation each in ${((Date.now() - started) / 1000).toFixed(0)} s`
  )
  const results = new Map<string, string>()
  for (const indexed of [false, true]) {
    if (indexed) yield* sourcePosition
    else yield* sql`drop index if exists source_position`
    yield* sql`analyze source`
    console.log(indexed ? "with the index source_position:" : "without the index (every row read):")
    for (const [name, where] of queries) {
      const t = sqlOf(where)
      const times: Array<number> = []
      let rows: ReadonlyArray<ReadonlyArray<unknown>> = []
      for (let i = 0; i < runs; i++) {
        const s = performance.now()
        rows = yield* sql.unsafe(t.text, t.params as Array<any>).values
        times.push(performance.now() - s)
      }
      const plan = (yield* sql.unsafe(`explain ${t.text}`, t.params as Array<any>).values).map((r) => String(r[0])).join("\n")
      const access = /Index Scan using source_position|Bitmap Index Scan on source_position/.test(plan)
        ? "source_position"
        : /Seq Scan on source/.test(plan)
        ? "every Source"
        : "other"
      const ids = rows.map((r) => String(r[0])).sort().join(",")
      if (indexed && results.get(name) !== ids) throw new Error(`${name}: the index changed the result`)
      results.set(name, ids)
      console.log(
        `  ${name.padEnd(32)} ${median(times).toFixed(1).padStart(9)} ms median (min ${
          Math.min(...times).toFixed(1)
        }), ${rows.length} rows, reads ${access}`
      )
    }
  }
})

const main = Effect.gen(function* () {
  const dir = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-bench-cone-")))
  yield* Effect.promise(() => fs.chmod(dir, 0o755))
  yield* Effect.addFinalizer(() => Effect.promise(() => fs.rm(dir, { recursive: true, force: true })))
  yield* program.pipe(Effect.provide(OpsDb.layer({ dataDir: dir, database: `ccat_cone_${sources}` })))
}).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))

Effect.runPromise(main).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
