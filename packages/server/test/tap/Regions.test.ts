/**
 * ADQL's region predicates against the live `/tap`, checked against astropy (`region_truth.py`,
 * run by Debian's python): a few hundred archived observations whose Sources lie on the poles,
 * on both sides of ra = 0/360, near the edges of the regions and spread over the sky, each
 * observed by two modules (fields of view 1° and 30°: `s_region` circles of radius 0.5° and 15°).
 * Every region predicate astronomers write (a point in a POLYGON, BOX or CIRCLE;
 * `INTERSECTS(s_region, ...)`; `CONTAINS(s_region, ...)`; `CONTAINS(..., s_region)`) selects
 * exactly the rows astropy says it should, away from a 0.02° band around each boundary where
 * sampled great circles cannot decide.
 */
import { it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Fixtures } from "@ccat/core/testing"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { expect } from "vitest"
import * as Harness from "../ApiHarness.js"
import * as Tap from "./TapClient.js"

const script = fileURLToPath(new URL("./region_truth.py", import.meta.url))
const radii = [0.5, 15]

type Region = { readonly circle: readonly [number, number, number] } | { readonly polygon: ReadonlyArray<readonly [number, number]> } | {
  readonly box: readonly [number, number, number, number]
}
type Predicate = "point_in" | "region_meets" | "region_in" | "in_region"

const adqlOf = (r: Region): string =>
  "circle" in r ?
    `CIRCLE('ICRS', ${r.circle.join(", ")})`
    : "box" in r ?
    `BOX('ICRS', ${r.box.join(", ")})`
    : `POLYGON('ICRS', ${r.polygon.map((v) => v.join(", ")).join(", ")})`

const whereOf = (p: Predicate, region: string) =>
  ({
    point_in: `CONTAINS(POINT('ICRS', s_ra, s_dec), ${region}) = 1`,
    region_meets: `INTERSECTS(s_region, ${region}) = 1`,
    region_in: `CONTAINS(s_region, ${region}) = 1`,
    in_region: `1 = CONTAINS(${region}, s_region)`
  })[p]

const regions: Record<string, Region> = {
  meridianSquare: { polygon: [[350, -10], [10, -10], [10, 10], [350, 10]] },
  northPoleSquare: { polygon: [[0, 70], [90, 70], [180, 70], [270, 70]] },
  // the other way round: a polygon is the region under a hemisphere its edges enclose, either order
  southPoleSquare: { polygon: [[0, -75], [270, -75], [180, -75], [90, -75]] },
  concaveAcrossMeridian: { polygon: [[340, -30], [20, -30], [20, -60], [0, -40], [340, -60]] },
  longEdges: { polygon: [[0, 0], [120, 0], [60, 60]] },
  smallTriangle: { polygon: [[100, 20], [104, 20], [102, 23]] },
  boxOverPole: { box: [0, 89, 10, 4] },
  boxAcrossMeridian: { box: [359.9, 0, 2, 2] },
  boxSouth: { box: [180, -45, 20, 10] },
  circleAcrossMeridian: { circle: [359, 45, 3] },
  circleOnPole: { circle: [0, 90, 10] },
  circleNearSouthPole: { circle: [180, -89, 20] },
  smallCircle: { circle: [102, 21, 1] }
}

const cases: ReadonlyArray<readonly [string, Predicate]> = [
  ...Object.keys(regions).map((r) => [r, "point_in"] as const),
  ...[
    "meridianSquare",
    "northPoleSquare",
    "concaveAcrossMeridian",
    "longEdges",
    "smallTriangle",
    "boxOverPole",
    "circleAcrossMeridian",
    "circleOnPole"
  ].map((r) => [r, "region_meets"] as const),
  ...["meridianSquare", "southPoleSquare", "concaveAcrossMeridian", "boxSouth", "circleOnPole", "circleNearSouthPole"].map((r) =>
    [r, "region_in"] as const
  ),
  ...["smallTriangle", "boxAcrossMeridian", "smallCircle", "boxOverPole"].map((r) => [r, "in_region"] as const)
]

// Sources: the poles, both sides of ra = 0/360, just inside and outside edges (a great circle
// between two vertices at one declination bulges poleward), and a seeded spread over the sky.
const points = (): Array<readonly [number, number]> => {
  const targeted: Array<readonly [number, number]> = [
    [0, 90],
    [123, 90],
    [0, -90],
    [250, -90],
    [359.99, 0],
    [0.01, 0],
    [359.5, 5],
    [0.5, -5],
    [359.9, 9.9],
    [0, 10.1],
    [0, 10.3],
    [10.1, 0],
    [9.9, 0],
    [349.9, 3],
    [45, 72],
    [45, 76],
    [0, 69.9],
    [90, 71],
    [200, 80],
    [315, 73],
    [135, -73],
    [45, -77],
    [0, -41],
    [0, -38],
    [355, -45],
    [5, -55],
    [19.9, -59],
    [340.1, -31],
    [60, 1],
    [60, -1],
    [60, 59],
    [1, 1],
    [119, 1],
    [102, 21],
    [102, 20.2],
    [103.9, 20.05],
    [101, 23],
    [358.5, 45],
    [2.5, 45],
    [180, 81],
    [0, 80.5],
    [180, -70],
    [0, -70],
    [359.95, 0.9],
    [0.85, -0.95],
    [1.1, 0],
    [0, 88],
    [180, 89],
    [90, 87],
    [270, 87.5],
    [172, -45],
    [189.9, -40.1],
    [190.5, -45]
  ]
  let seed = 20260
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed / 2147483648
  }
  const spread = Array.from({ length: 160 }, () => [random() * 360, (Math.asin(2 * random() - 1) * 180) / Math.PI] as const)
  return [...targeted, ...spread]
}

const seed = (positions: ReadonlyArray<readonly [number, number]>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const w = yield* Fixtures.world
    const name = `regions-${Fixtures.suffix()}`
    yield* sql`update observing_program set proprietary_period_days = 0 where id = ${w.program.id}`
    yield* sql`update instrument_module set fov_deg = ${2 * radii[0]!} where id = ${w.modules[0].id}`
    yield* sql`update instrument_module set fov_deg = ${2 * radii[1]!} where id = ${w.modules[1].id}`
    yield* sql.unsafe(
      `with pts as (select * from jsonb_to_recordset($1::jsonb) as x(i int, ra float8, dec float8)),
      src as (insert into source (name, ra_deg, dec_deg) select $2 || '-' || i, ra, dec from pts returning id, name),
      ou as (insert into obs_unit (observing_program_id, instrument_id, name, source_id) select $3::uuid, $4::uuid, src.name, src.id from src returning id),
      eou as (insert into executed_obs_unit (id, obs_unit_id, start_at, end_at, status)
        select gen_random_uuid(), ou.id, '2026-01-01T00:00:00Z', '2026-01-01T01:00:00Z', 'completed' from ou returning id)
      insert into raw_data_package (executed_obs_unit_id, instrument_module_id, relative_path, size_bytes, checksum, status)
      select eou.id, m.id, 'packages/' || eou.id || '/' || m.id || '.tar', 4096, 'sha256:' || encode(sha256((eou.id::text || m.id::text)::bytea), 'hex'), 'completed'
      from eou cross join unnest($5::uuid[]) as m(id)`,
      [JSON.stringify(positions.map(([ra, dec], i) => ({ i, ra, dec }))), name, w.program.id, w.instrument.id, [
        w.modules[0].id,
        w.modules[1].id
      ]]
    )
    return name
  })

interface Truth {
  readonly yes: ReadonlyArray<string>
  readonly unsure: ReadonlyArray<string>
}

const truth = (spec: unknown) =>
  Effect.async<Record<string, Truth>, Error>((resume) => {
    const child = execFile(
      "/usr/bin/python3",
      [script, JSON.stringify(spec)],
      { timeout: 150_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) =>
        resume(
          error === null
            ? Effect.sync(() => JSON.parse(stdout) as Record<string, Truth>)
            : Effect.fail(new Error(`${error.message}\n${stderr}`))
        )
    )
    return Effect.sync(() => child.kill())
  })

const centroidShapes = [
  "smallTriangle",
  "meridianSquare",
  "northPoleSquare",
  "concaveAcrossMeridian",
  "longEdges",
  "boxSouth",
  "boxAcrossMeridian"
]

/**
 * What astropy says, for the predicates over `points()` and for the centroids: two Python runs of
 * seconds of CPU each, started with the server and the ops-db rather than inside the tests.
 */
class Truths extends Context.Tag("test/RegionTruths")<Truths, {
  readonly predicates: Record<string, Truth>
  readonly centroids: Record<string, readonly [number, number]>
}>() {}

const truthsLayer = Layer.effect(
  Truths,
  Effect.map(
    Effect.all([
      truth({ points: points(), radii, cases: cases.map(([r, p]) => ({ id: `${r}/${p}`, predicate: p, region: regions[r] })) }),
      truth({ centroids: centroidShapes.map((id) => ({ id, region: regions[id] })) }) as unknown as Effect.Effect<
        Record<string, readonly [number, number]>,
        Error
      >
    ], { concurrency: 2 }),
    ([predicates, centroids]) => ({ predicates, centroids })
  )
).pipe(Layer.orDie)

it.layer(Layer.merge(Harness.layer(), truthsLayer), { timeout: 240_000 })("ADQL regions", (it) => {
  it.effect("select what astropy says, on the poles, across ra = 0/360 and along great-circle edges", () =>
    Effect.gen(function* () {
      const positions = points()
      const name = yield* seed(positions)
      const expected = (yield* Truths).predicates
      const prefix = `${name}-`
      const keyOf = (target: string, fov: string) => `${target.slice(prefix.length)}:${radii.indexOf(Number(fov) / 2)}`
      const mismatches: Array<string> = []
      let compared = 0
      // the queries go a few at a time; each answer is compared in the order of the cases
      const answers = yield* Effect.forEach(
        cases,
        ([r, p]) =>
          Tap.query(
            `SELECT target_name, s_fov FROM ivoa.obscore WHERE ${whereOf(p, adqlOf(regions[r]!))} AND target_name LIKE '${prefix}%'`,
            {
              format: "csv"
            }
          ),
        { concurrency: 4 }
      )
      for (const [i, [r, p]] of cases.entries()) {
        const answer = answers[i]!
        expect([answer.status, answer.text.slice(0, 300)]).toEqual([200, expect.stringMatching(/^target_name,s_fov/)])
        const { yes, unsure } = expected[`${r}/${p}`]!
        const skip = new Set(unsure)
        const got = answer.text.trim().split("\r\n").slice(1).map((line) => keyOf(...(line.split(",") as [string, string]))).filter((k) =>
          !skip.has(k)
        ).sort()
        const want = yes.filter((k) => !skip.has(k)).sort()
        compared += positions.length * radii.length - skip.size
        if (JSON.stringify(got) !== JSON.stringify(want)) {
          mismatches.push(
            `${r} ${p}: extra ${got.filter((k) => !want.includes(k)).join(" ")}; missing ${want.filter((k) => !got.includes(k)).join(" ")}`
          )
        }
        expect(unsure.length, `${r} ${p} rows too near the boundary to compare`).toBeLessThan(12)
      }
      expect(mismatches).toEqual([])
      console.log(`regions: ${cases.length} predicates, ${compared} row decisions compared with astropy`)
    }), 240_000)

  it.effect(
    "CONTAINS(...) = 0 is the complement among rows with a position, and a null position is neither",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const region = adqlOf(regions.meridianSquare!)
        const count = (where: string) =>
          Effect.map(
            Tap.query(`SELECT COUNT(*) FROM ivoa.obscore WHERE ${where}`, { format: "csv" }),
            (a) => Number(a.text.trim().split("\r\n")[1])
          )
        const [inside, outside, all] = [
          yield* count(`CONTAINS(POINT('ICRS', s_ra, s_dec), ${region}) = 1`),
          yield* count(`CONTAINS(POINT('ICRS', s_ra, s_dec), ${region}) = 0`),
          yield* count("s_ra IS NOT NULL")
        ]
        expect(inside).toBeGreaterThan(0)
        expect(inside + outside).toBe(all)
        // A row without a position (a solar-system Source) is in no region and outside none.
        const [row] = yield* sql<{ id: string }>`select ccat_obs_unit_id as id from ivoa.obscore limit 1`
        yield* sql`update source set ra_deg = null, dec_deg = null, solar_system = true where id = (select source_id from obs_unit where id = ${
          row!.id
        })`
        const both = (predicate: string) =>
          Effect.map(Effect.all([count(`${predicate} = 1`), count(`${predicate} = 0`)]), ([yes, no]) => yes + no)
        expect(yield* both(`CONTAINS(POINT('ICRS', s_ra, s_dec), ${region})`)).toBe(all - 2)
        expect(yield* count("s_ra IS NOT NULL")).toBe(all - 2)
        expect(yield* both(`INTERSECTS(s_region, ${region})`)).toBe(all - 2)
        // selected, a predicate is 1 or 0 (a row's centre lies in its own field of view)
        const selected = yield* Tap.query(
          "SELECT TOP 1 CONTAINS(POINT('ICRS', s_ra, s_dec), s_region) AS inside FROM ivoa.obscore WHERE s_ra IS NOT NULL"
        )
        expect([Tap.rows(selected.text), /<FIELD name="inside" datatype="int"/.test(selected.text)]).toEqual([[["1"]], true])
      }),
    60_000
  )

  it.effect("a polygon of 100 vertices: every row tested, timed", () =>
    Effect.gen(function* () {
      // a 20° circle drawn as 100 vertices, both predicates over every row with a position
      const ring = Array.from({ length: 100 }, (_, i) => {
        const a = (2 * Math.PI * i) / 100
        return `POINT('ICRS', ${(200 + (20 * Math.cos(a)) / Math.cos((30 * Math.PI) / 180)).toFixed(6)}, ${
          (30 + 20 * Math.sin(a)).toFixed(6)
        })`
      }).join(", ")
      for (
        const where of ["1 = 1", `CONTAINS(POINT('ICRS', s_ra, s_dec), POLYGON(${ring})) = 1`, `INTERSECTS(s_region, POLYGON(${ring})) = 1`]
      ) {
        const started = Date.now()
        const answer = yield* Tap.query(`SELECT COUNT(*) FROM ivoa.obscore WHERE ${where}`, { format: "csv" })
        expect(answer.status).toBe(200)
        console.log(`regions: ${where.slice(0, 40)}: ${Date.now() - started} ms, ${answer.text.trim().split("\r\n")[1]} rows`)
      }
    }))

  it.effect(
    "CENTROID is the centre of area astropy's quadrature finds, for polygons and boxes; a circle's is its centre",
    () =>
      Effect.gen(function* () {
        const shapes = centroidShapes
        const expected = (yield* Truths).centroids
        const separation = ([ra1, dec1]: readonly [number, number], [ra2, dec2]: readonly [number, number]) => {
          const r = Math.PI / 180
          const c = Math.sin(dec1 * r) * Math.sin(dec2 * r) + Math.cos(dec1 * r) * Math.cos(dec2 * r) * Math.cos((ra1 - ra2) * r)
          return Math.acos(Math.min(1, c)) / r
        }
        for (const id of [...shapes, "circleAcrossMeridian"]) {
          const region = adqlOf(regions[id]!)
          const answer = yield* Tap.query(
            `SELECT CENTROID(${region}) AS c, COORD1(CENTROID(${region})) AS ra, COORD2(CENTROID(${region})) AS dec FROM TAP_SCHEMA.schemas`,
            { format: "csv", maxrec: 1 }
          )
          const [value, ra, dec] = answer.text.trim().split("\r\n")[1]!.split(",") as [string, string, string]
          expect([id, value]).toEqual([id, `${ra} ${dec}`])
          const want = id === "circleAcrossMeridian" ? [359, 45] as const : expected[id]!
          expect([id, separation([Number(ra), Number(dec)], want)]).toEqual([id, expect.closeTo(0, 3)])
        }
      }),
    120_000
  )

  it.effect("/tap/capabilities declares the region features", () =>
    Effect.gen(function* () {
      const capabilities = (yield* Tap.request("/tap/capabilities")).text
      const geometry =
        /<languageFeatures type="ivo:\/\/ivoa.net\/std\/TAPRegExt#features-adqlgeo">(.*?)<\/languageFeatures>/s.exec(capabilities)?.[1] ??
          ""
      expect([...geometry.matchAll(/<form>(\w+)<\/form>/g)].map((m) => m[1])).toEqual([
        "POINT",
        "CIRCLE",
        "BOX",
        "POLYGON",
        "CONTAINS",
        "INTERSECTS",
        "DISTANCE",
        "CENTROID",
        "AREA",
        "COORD1",
        "COORD2",
        "COORDSYS"
      ])
    }))
})
