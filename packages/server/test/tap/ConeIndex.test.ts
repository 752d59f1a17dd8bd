/**
 * The Sources' positional index under ADQL's region predicates: on an ops-db of 10,000 Sources
 * spread over the sky, each with an archived observation, the translator's SQL for a cone (a
 * point in a CIRCLE, a DISTANCE bound, s_region meeting a CIRCLE, a point in a POLYGON or BOX)
 * is planned with an index scan of `source_position` (asserted on the plan, never on a time),
 * and selects exactly the rows of the same predicate without its bounding test, for cones
 * across ra = 0/360, over the poles, larger than a hemisphere and of radius 0.
 */
import { Fixtures, TestDatabase } from "@ccat/core/testing"
import { it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { expect } from "vitest"
import { parse } from "../../src/tap/Adql.js"
import { translate } from "../../src/tap/AdqlTranslate.js"

const sources = 10_000

const translated = (where: string) => {
  const parsed = parse(`SELECT obs_id FROM ivoa.obscore WHERE ${where}`)
  if (Either.isLeft(parsed)) throw new Error(parsed.left.message)
  const t = translate(parsed.right, { access: { kind: "public" }, maxrec: sources })
  if (Either.isLeft(t)) throw new Error(t.left.message)
  return t.right
}

const seed = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const w = yield* Fixtures.world
  yield* sql`update observing_program set proprietary_period_days = 0 where id = ${w.program.id}`
  yield* sql`update instrument_module set fov_deg = 0.5 where id = ${w.modules[0].id}`
  // a seeded spread (the same every run), and Sources on both poles and on ra = 0
  yield* sql`select setseed(0.23)`
  yield* sql.unsafe(
    `with pos as (select random() * 360 as ra, degrees(asin(2 * random() - 1)) as dec from generate_series(1, $1::int)
      union all values (0::float8, 90::float8), (0, -90), (0, 0), (359.999999, 10), (0.0000001, -10)),
    src as (insert into source (name, ra_deg, dec_deg) select 'cone-' || row_number() over (), ra, dec from pos returning id, name),
    ou as (insert into obs_unit (observing_program_id, instrument_id, name, source_id) select $2::uuid, $3::uuid, src.name, src.id from src returning id),
    eou as (insert into executed_obs_unit (id, obs_unit_id, start_at, end_at, status)
      select gen_random_uuid(), ou.id, '2026-01-01T00:00:00Z', '2026-01-01T01:00:00Z', 'completed' from ou returning id)
    insert into raw_data_package (executed_obs_unit_id, instrument_module_id, relative_path, size_bytes, checksum, status)
    select eou.id, $4::uuid, 'packages/' || eou.id || '.tar', 4096, 'sha256:' || encode(sha256(eou.id::text::bytea), 'hex'), 'completed' from eou`,
    [sources - 5, w.program.id, w.instrument.id, w.modules[0].id]
  ).raw
  yield* sql`analyze`
}).pipe(Effect.orDie)

const ids = (where: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const t = translated(where)
    return sql.unsafe(t.text, t.params as Array<any>).values
  }).pipe(Effect.map((rows) => rows.map((r) => String(r[0])).sort()), Effect.orDie)

const plan = (where: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const t = translated(where)
    return sql.unsafe(`explain ${t.text}`, t.params as Array<any>).values
  }).pipe(Effect.map((rows) => rows.map((r) => String(r[0])).join("\n")), Effect.orDie)

it.layer(TestDatabase.layer, { timeout: 120_000 })("the Sources' positional index", (it) => {
  it.effect("a cone search is planned with an index scan of source_position, a negated one without its bound", () =>
    Effect.gen(function* () {
      yield* seed
      for (
        const where of [
          "CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 150.1, 2.2, 0.1)) = 1",
          "1 = CONTAINS(POINT(s_ra, s_dec), CIRCLE(POINT(0.2, -30), 1)) AND obs_id IS NOT NULL",
          "DISTANCE(POINT('ICRS', s_ra, s_dec), POINT('ICRS', 210.8, 54.3)) < 0.5",
          "0.5 >= DISTANCE(210.8, 54.3, s_ra, s_dec)",
          "INTERSECTS(s_region, CIRCLE('ICRS', 83.8, -5.4, 0.2)) = 1",
          "CONTAINS(POINT('ICRS', s_ra, s_dec), POLYGON('ICRS', 40, 10, 41, 10, 41, 11, 40, 11)) = 1",
          "CONTAINS(s_region, BOX('ICRS', 359.9, 0, 2, 2)) = 1"
        ]
      ) {
        const planned = yield* plan(where)
        if (where.startsWith("CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE")) {
          console.log(
            planned.split("\n").filter((l) => /Scan on (source|obs_unit|executed_obs_unit)|on source_position|BitmapOr/.test(l)).join("\n")
          )
        }
        expect([where, planned]).toEqual([where, expect.stringMatching(/Index Scan (using|on) source_position/)])
      }
      // a NOT leaves the predicate exact only: a bound there could turn unknown into true
      const negated = yield* plan("NOT (CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 150.1, 2.2, 0.1)) = 1)")
      expect(negated).not.toMatch(/source_position/)
    }))

  it.effect("selects what the exact predicate alone selects: across ra = 0, over the poles, beyond a hemisphere", () =>
    Effect.gen(function* () {
      const regions = [
        "CIRCLE('ICRS', 0, 0, 3)",
        "CIRCLE('ICRS', 359.5, 10, 2)",
        "CIRCLE('ICRS', -0.5, -10, 2)",
        "CIRCLE('ICRS', 725, 89, 3)",
        "CIRCLE('ICRS', 180, -88, 5)",
        "CIRCLE('ICRS', 10, 80, 95)",
        "CIRCLE('ICRS', 0, 90, 0)",
        "CIRCLE('ICRS', 90, 45, 179.9)",
        "POLYGON('ICRS', 350, -10, 10, -10, 10, 10, 350, 10)",
        "POLYGON('ICRS', 0, 80, 90, 80, 180, 80, 270, 80)",
        "BOX('ICRS', 0, -89, 10, 4)"
      ]
      let compared = 0
      for (const region of regions) {
        for (
          const [bounded, exact] of [
            [`CONTAINS(POINT('ICRS', s_ra, s_dec), ${region}) = 1`, `NOT (CONTAINS(POINT('ICRS', s_ra, s_dec), ${region}) = 0)`],
            [`INTERSECTS(s_region, ${region}) = 1`, `NOT (INTERSECTS(s_region, ${region}) = 0)`],
            ...(region.startsWith("CIRCLE")
              ? [[
                `DISTANCE(POINT(s_ra, s_dec), CENTROID(${region})) <= ${/([-\d.]+)\)$/.exec(region)![1]}`,
                `NOT (DISTANCE(POINT(s_ra, s_dec), CENTROID(${region})) > ${/([-\d.]+)\)$/.exec(region)![1]})`
              ]]
              : [])
          ]
        ) {
          const [withBound, without] = [yield* ids(bounded!), yield* ids(exact!)]
          expect([bounded, withBound.length]).toEqual([bounded, without.length])
          expect(withBound).toEqual(without)
          compared += without.length
        }
      }
      expect(compared).toBeGreaterThan(sources)
    }))
})
