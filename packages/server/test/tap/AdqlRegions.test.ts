/**
 * ADQL's regions without a server: every number of a POLYGON, BOX or CIRCLE reaches the SQL as
 * a bind parameter, each region function translates, and a region the service cannot test
 * exactly (crossing itself, degenerate, closed by a repeated vertex, too many vertices, larger
 * than a hemisphere, a column among its vertices, two polygons) is refused with the reason.
 * What the predicates select is checked against astropy in Regions.test.ts.
 */
import * as Either from "effect/Either"
import { describe, expect, it } from "vitest"
import { parse } from "../../src/tap/Adql.js"
import { translate } from "../../src/tap/AdqlTranslate.js"
import * as SphereGeometry from "../../src/tap/SphereGeometry.js"

const outcome = (adql: string) => {
  const parsed = parse(adql)
  if (Either.isLeft(parsed)) return { error: parsed.left.message }
  const translated = translate(parsed.right, { access: { kind: "public" }, maxrec: 10 })
  return Either.isLeft(translated) ? { error: translated.left.message } : translated.right
}
const sql = (adql: string) => {
  const o = outcome(adql)
  if ("error" in o) throw new Error(o.error)
  return o
}
const refusal = (where: string) => {
  const o = outcome(`SELECT obs_id FROM ivoa.obscore WHERE ${where}`)
  return "error" in o ? o.error : "accepted"
}
const polygon = (vertices: ReadonlyArray<readonly [number, number]>) => `POLYGON('ICRS', ${vertices.map((v) => v.join(", ")).join(", ")})`

describe("ADQL regions", () => {
  it("binds every number of a region and writes none into the SQL", () => {
    const t = sql(
      `SELECT obs_id FROM ivoa.obscore WHERE INTERSECTS(s_region, POLYGON('ICRS', 350.125, -10.5, 10.25, -10.5, 10.25, 10.75, 350.125, 10.75)) = 1
      AND 1 = CONTAINS(POINT('ICRS', s_ra, s_dec), BOX('ICRS', 359.875, 0.375, 2.5, 3.5)) AND CONTAINS(s_region, CIRCLE(POINT('ICRS', 12.625, 45.875), 3.125)) = 0`
    )
    for (const n of ["350", "10.5", "10.25", "10.75", "359", "0.375", "2.5", "3.5", "12.625", "45.875", "3.125"]) {
      expect(t.text).not.toContain(n)
    }
    // s_region is the row's circle: its centre and half the field of view
    expect(t.text).toContain(`(t."s_fov" / 2)`)
    // a polygon's edges go as one array per column
    expect(t.params.some((p) => Array.isArray(p) && p.length === 4)).toBe(true)
  })

  it("translates each region function, in both ADQL 2.1 forms", () => {
    for (const where of [
      "CONTAINS(POINT(s_ra, s_dec), POLYGON(POINT(10, 10), POINT(20, 10), POINT(15, 20))) = 1",
      "INTERSECTS(CIRCLE('', 10, 10, 1), s_region) = 1",
      "INTERSECTS(POINT('ICRS', 10, 10), s_region) = 1",
      "CONTAINS(BOX(POINT('ICRS', 10, 10), 2, 2), s_region) = 1",
      "CONTAINS(CIRCLE('ICRS', 10, 10, 1), s_region) <> 0",
      "AREA(s_region) > 1 AND COORD1(POINT(s_ra, s_dec)) < 10 AND COORD2(POINT(s_ra, s_dec)) > -5 AND COORDSYS(s_region) = 'ICRS'"
    ]) expect(refusal(where)).toBe("accepted")
    const selected = sql(
      "SELECT CONTAINS(POINT(s_ra, s_dec), s_region) AS inside, AREA(CIRCLE(0, 0, 1)) AS a, AREA(POLYGON(0, 0, 90, 0, 0, 90)) AS octant FROM ivoa.obscore"
    )
    expect(selected.fields.map((f) => [f.name, f.datatype])).toEqual([["inside", "int"], ["a", "double"], ["octant", "double"]])
    expect(selected.params).toContainEqual(expect.closeTo(41252.96 / 8, 1))
  })

  it("refuses a region it cannot test exactly, saying why", () => {
    expect(refusal(`CONTAINS(POINT(s_ra, s_dec), ${polygon([[0, 0], [10, 10], [10, 0], [0, 10]])}) = 1`)).toMatch(
      /crosses itself: edges 1 and 3 meet/
    )
    expect(refusal(`CONTAINS(POINT(s_ra, s_dec), ${polygon([[0, 0], [10, 0], [20, 0]])}) = 1`)).toMatch(/doubles back|one great circle/)
    expect(refusal(`CONTAINS(POINT(s_ra, s_dec), ${polygon([[0, 0], [10, 0], [5, 5], [0, 0]])}) = 1`)).toMatch(
      /last vertex repeats its first/
    )
    expect(refusal(`CONTAINS(POINT(s_ra, s_dec), ${polygon([[0, 0], [0, 0], [5, 5]])}) = 1`)).toMatch(/vertices 1 and 2 coincide/)
    expect(refusal(`CONTAINS(POINT(s_ra, s_dec), ${polygon([[0, 0], [120, 0], [240, 0]])}) = 1`)).toMatch(/larger than a hemisphere/)
    // a band around the equator: no hemisphere holds it, and either side of it is larger than one
    expect(refusal(`CONTAINS(POINT(s_ra, s_dec), ${polygon([[0, 5], [90, -5], [180, 5], [270, -5]])}) = 1`)).toMatch(
      /larger than a hemisphere/
    )
    const many = Array.from(
      { length: SphereGeometry.maxVertices + 1 },
      (_, i) => [Math.cos((2 * Math.PI * i) / 101) * 5, Math.sin((2 * Math.PI * i) / 101) * 5] as const
    )
    expect(refusal(`CONTAINS(POINT(s_ra, s_dec), ${polygon(many)}) = 1`)).toMatch(/101 vertices; at most 100/)
    expect(refusal(`CONTAINS(POINT(s_ra, s_dec), ${polygon([[0, 0], [10, 95], [5, 5]])}) = 1`)).toMatch(/vertex 2 has dec 95/)
    expect(refusal("CONTAINS(POINT(s_ra, s_dec), POLYGON(0, 0, s_ra, 1, 5, 5)) = 1")).toMatch(/numbers written in the query/)
    expect(refusal("CONTAINS(POINT(s_ra, s_dec), POLYGON(0, 0, 1, 1, 5)) = 1")).toMatch(/POLYGON takes/)
    expect(refusal("CONTAINS(POINT(s_ra, s_dec), BOX(0, 0, 180, 1)) = 1")).toMatch(/less than 180/)
    expect(refusal("CONTAINS(POINT(s_ra, s_dec), CIRCLE(0, 0, -1)) = 1")).toMatch(/radius is -1/)
    expect(refusal("CONTAINS(POINT(s_ra, s_dec), CIRCLE('GALACTIC', 0, 0, 1)) = 1")).toMatch(/must be 'ICRS'/)
    expect(refusal("INTERSECTS(BOX(0, 0, 1, 1), POLYGON(0, 0, 1, 0, 0, 1)) = 1")).toMatch(/two polygons/)
    expect(refusal("CONTAINS(s_region, POINT(1, 2)) = 1")).toMatch(/nothing lies inside a POINT/)
    expect(refusal("CONTAINS(obs_id, s_region) = 1")).toMatch(/a string is not a region/)
    expect(refusal("INTERSECTS(s_region, CIRCLE(0, 0, 1)) = 2")).toMatch(/compare INTERSECTS\(\.\.\.\) with = 1 \(true\) or = 0/)
    expect(refusal("REGION('Circle ICRS 1 2 3') IS NULL")).toMatch(/ADQL 2.1 removed it/)
    expect(refusal("COORD1(s_region) > 1")).toMatch(/COORD1 takes a POINT, not a CIRCLE/)
    expect(refusal("CIRCLE(s_ra, s_dec, 1) = 1")).toMatch(/CIRCLE is only usable inside/)
    expect(refusal("CENTROID(s_region, s_region) = 1")).toMatch(/CENTROID takes one region/)
  })

  it("knows a polygon's extent: edges bulge poleward, an enclosed pole is in it, either vertex order", () => {
    const square = SphereGeometry.polygon([{ ra: 0, dec: 70 }, { ra: 90, dec: 70 }, { ra: 180, dec: 70 }, { ra: 270, dec: 70 }])
    const reversed = SphereGeometry.polygon([{ ra: 270, dec: 70 }, { ra: 180, dec: 70 }, { ra: 90, dec: 70 }, { ra: 0, dec: 70 }])
    if (!("polygon" in square) || !("polygon" in reversed)) throw new Error("refused")
    expect([square.polygon.decMin, square.polygon.decMax]).toEqual([expect.closeTo(70, 6), 90])
    expect(reversed.polygon.area).toBeCloseTo(square.polygon.area, 9)
    // between two vertices at dec 70 the great circle runs above 75°: dec 72 there is outside
    expect(
      [{ ra: 45, dec: 72 }, { ra: 45, dec: 76 }, { ra: 0, dec: 90 }].map((p) =>
        SphereGeometry.containsPoint(square.polygon, SphereGeometry.vec(p))
      )
    ).toEqual([false, true, true])
    const band = SphereGeometry.polygon([{ ra: 350, dec: -10 }, { ra: 10, dec: -10 }, { ra: 10, dec: 10 }, { ra: 350, dec: 10 }])
    if (!("polygon" in band)) throw new Error("refused")
    expect(band.polygon.decMax).toBeCloseTo(10.1511, 3)
  })
})
