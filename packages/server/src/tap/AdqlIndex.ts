/**
 * Bounding tests that put the Sources' positional index (`source_position`, a GiST index on
 * `point(ra_deg, dec_deg)` under `ivoa.obscore`) in front of the exact spherical predicates.
 * When one side of a predicate is the row (its position, or `s_region`, a circle around it no
 * larger than `ivoa.obscore_max_radius()`) and the other a region written in the query, every
 * row the predicate can select has its position within a cone: around the region's bounding
 * cap, widened by the row's radius. The cone's bounding boxes in (ra, dec) are what the index
 * answers; the exact predicate is ANDed after them and stays the final word.
 *
 * A bounding test is added only where the predicate must be true for the row to be selected
 * (not under an odd number of NOTs, and compared with 1): there a row it drops is one the
 * predicate would have made false or unknown, neither of which selects it.
 */
import type { Geometry } from "./AdqlGeometry.js"
import * as SphereGeometry from "./SphereGeometry.js"

/** A cone on the sky, as SQL: the centre and radius (degrees). */
export interface Cone {
  readonly ra: string
  readonly dec: string
  /** Radii to add up; the cone is the whole sky when any of them is negative. */
  readonly radii: ReadonlyArray<string>
}

const float = "double precision"
// Wider than the rounding of any trigonometry in the exact predicates (degrees).
const margin = "1e-7"

const rowRa = `t."s_ra"`
const rowDec = `t."s_dec"`
const rowRadius = `(t."s_fov" / 2)`
/** The bound of every row's `s_region` radius (migration 0030). */
export const maxRowRadius = "(select ivoa.obscore_max_radius())"

/** SQL made only of bind parameters and this module's words: a value the same for every row. */
export const isConstant = (sql: string): boolean => !sql.includes(`t."`) && !sql.includes("random()")

/** How far from its position a row's geometry reaches (SQL), when it is the row's position or `s_region`. */
const rowReach = (g: Geometry): string | undefined => {
  if (g.shape === "polygon" || g.ra !== rowRa || g.dec !== rowDec) return undefined
  if (g.shape === "point") return "0"
  return g.radius === rowRadius ? maxRowRadius : undefined
}

/** The cap holding a region written in the query, or undefined when it depends on the row. */
const capOf = (g: Geometry, bind: (value: unknown, cast: string) => string): Cone | undefined => {
  if (g.shape === "polygon") {
    const c = g.polygon.centre
    const radius = Math.max(...g.polygon.edges.map((e) => SphereGeometry.angle(c, e.a)))
    const ra = ((Math.atan2(c[1], c[0]) * 180) / Math.PI + 360) % 360
    const dec = (Math.asin(Math.max(-1, Math.min(1, c[2]))) * 180) / Math.PI
    return { ra: bind(ra, float), dec: bind(dec, float), radii: [bind(radius, float)] }
  }
  const parts = g.shape === "point" ? [g.ra, g.dec] : [g.ra, g.dec, g.radius]
  if (!parts.every(isConstant)) return undefined
  return { ra: g.ra, dec: g.dec, radii: g.shape === "point" ? [] : [g.radius] }
}

/**
 * The row's position within the cone, as boxes the index answers: a declination band, and a
 * right-ascension range of half-width asin(sin r / cos dec) (the cone's exact extent), repeated
 * 360° either side so that a range across ra = 0/360 is whole; all of the sky when the cone
 * holds a pole.
 */
export const coneSql = (cone: Cone): string => {
  const d = `(${cone.dec})::${float}`
  const r = `(${[...cone.radii, margin].map((x) => `(${x})`).join(" + ")})::${float}`
  const sane = `(${cone.radii.length === 0 ? "true" : `least(${cone.radii.join(", ")}) >= 0`} and abs(${d}) <= 90)`
  const whole = `(not ${sane} or abs(${d}) + ${r} >= 90)`
  const half = `(case when ${whole} then 180 else degrees(asin(least(1, sin(radians(${r})) / cos(radians(${d}))))) end)`
  const [lo, hi] = [`(case when ${sane} then ${d} - ${r} else -90 end)`, `(case when ${sane} then ${d} + ${r} else 90 end)`]
  const a = `((${cone.ra})::${float} - 360 * floor((${cone.ra})::${float} / 360))`
  const box = (shift: number) =>
    `point(${rowRa}, ${rowDec}) <@ box(point(${a} - ${half} + ${shift}, ${lo}), point(${a} + ${half} + ${shift}, ${hi}))`
  return `(${[0, -360, 360].map(box).join(" or ")})`
}

/** The bounding test of CONTAINS or INTERSECTS of a and b (each implies they meet), when the index can serve it. */
export const regionBound = (a: Geometry, b: Geometry, bind: (value: unknown, cast: string) => string): string | undefined => {
  for (const [row, other] of [[a, b], [b, a]] as const) {
    const reach = rowReach(row)
    const cap = reach === undefined ? undefined : capOf(other, bind)
    if (reach !== undefined && cap !== undefined) return coneSql({ ...cap, radii: [...cap.radii, ...(reach === "0" ? [] : [reach])] })
  }
  return undefined
}

/** The point a DISTANCE is measured to from the row's position, when the other point is the row's. */
export const distanceFrom = (a: Geometry, b: Geometry): { readonly ra: string; readonly dec: string } | undefined => {
  for (const [row, other] of [[a, b], [b, a]] as const) {
    if (rowReach(row) === "0" && other.shape === "point" && isConstant(other.ra) && isConstant(other.dec)) {
      return { ra: other.ra, dec: other.dec }
    }
  }
  return undefined
}

/** The bounding test of `distance op limit` (or `limit op distance`), when it bounds the distance from above. */
export const distanceBound = (
  left: { readonly sql: string; readonly near?: { readonly ra: string; readonly dec: string } },
  op: string,
  right: { readonly sql: string; readonly near?: { readonly ra: string; readonly dec: string } }
): string | undefined => {
  if (left.near !== undefined && (op === "<" || op === "<=") && isConstant(right.sql)) {
    return coneSql({ ...left.near, radii: [right.sql] })
  }
  if (right.near !== undefined && (op === ">" || op === ">=") && isConstant(left.sql)) {
    return coneSql({ ...right.near, radii: [left.sql] })
  }
  return undefined
}
