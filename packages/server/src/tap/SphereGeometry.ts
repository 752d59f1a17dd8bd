/**
 * Spherical geometry of the ADQL regions that are given as numbers in the query (POLYGON, BOX):
 * their vertices as unit vectors, checked once here so the SQL never meets a polygon it cannot
 * test exactly. A polygon's edges are great-circle arcs. Because every vertex lies within 90° of
 * one centre, the gnomonic projection around that centre maps the polygon to a plane polygon
 * with straight edges (a great circle projects to a line), where simplicity, orientation and
 * point-in-polygon are plane questions with exact answers.
 */

/** A unit vector (x towards ra 0 on the equator, z towards the north pole). */
export type Vec = readonly [number, number, number]

/** A position in ICRS degrees. */
export interface RaDec {
  readonly ra: number
  readonly dec: number
}

/** The most vertices a POLYGON may have. */
export const maxVertices = 100

const rad = Math.PI / 180
// Coincident vertices and collinear edges are judged within this (radians, or its plane square).
const tiny = 1e-10

/** The unit vector of an ICRS position in degrees. */
export const vec = (p: RaDec): Vec => [
  Math.cos(p.dec * rad) * Math.cos(p.ra * rad),
  Math.cos(p.dec * rad) * Math.sin(p.ra * rad),
  Math.sin(p.dec * rad)
]
/** Dot product. */
export const dot = (a: Vec, b: Vec): number => a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
/** Cross product. */
export const cross = (a: Vec, b: Vec): Vec => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
const add = (a: Vec, b: Vec, s = 1): Vec => [a[0] + s * b[0], a[1] + s * b[1], a[2] + s * b[2]]
const norm = (a: Vec): number => Math.sqrt(dot(a, a))
/** The vector scaled to length 1. */
export const unit = (a: Vec): Vec => {
  const n = norm(a)
  return [a[0] / n, a[1] / n, a[2] / n]
}
/** Angle between two unit vectors in degrees, precise at small angles (from the chord). */
export const angle = (a: Vec, b: Vec): number => 2 * Math.asin(Math.min(1, norm(add(a, b, -1)) / 2)) / rad

/** One edge of a polygon, from `a` to `b`, with what the SQL tests against it. */
export interface Edge {
  readonly a: Vec
  readonly b: Vec
  /** The unit normal of the edge's great circle, `a × b` scaled. */
  readonly n: Vec
  /** `n × a` and `b × n`: a point lies in the edge's lune (its nearest point of the circle is on the arc) when both dot products are ≥ 0. */
  readonly la: Vec
  readonly lb: Vec
  /** The edge in the gnomonic plane. */
  readonly x1: number
  readonly y1: number
  readonly x2: number
  readonly y2: number
  /** dx/dy of the plane edge (0 when horizontal, which never crosses a horizontal ray). */
  readonly slope: number
}

/** A checked polygon, ready for SQL. */
export interface Polygon {
  readonly vertices: ReadonlyArray<RaDec>
  /** The centre of the smallest cap holding the vertices: the gnomonic projection's tangent point. */
  readonly centre: Vec
  /** The tangent plane's axes. */
  readonly e1: Vec
  readonly e2: Vec
  readonly edges: ReadonlyArray<Edge>
  /** The declination range of the whole region, edges (which bulge poleward) and enclosed poles included. */
  readonly decMin: number
  readonly decMax: number
  /** Area in square degrees. */
  readonly area: number
}

// The smallest cap around the vectors (incremental, as for the smallest enclosing circle), or
// undefined when they do not lie within an open hemisphere.
const enclosingCap = (vs: ReadonlyArray<Vec>): Vec | undefined => {
  const inside = (c: Vec, cos: number, v: Vec) => dot(c, v) >= cos - 1e-12
  const two = (a: Vec, b: Vec): [Vec, number] => {
    const c = unit(add(a, b))
    return [c, dot(c, a)]
  }
  const three = (a: Vec, b: Vec, d: Vec): [Vec, number] | undefined => {
    const n = cross(add(b, a, -1), add(d, a, -1))
    if (norm(n) < tiny) return undefined
    let c = unit(n)
    if (dot(c, a) < 0) c = [-c[0], -c[1], -c[2]]
    return [c, dot(c, a)]
  }
  let [c, cos] = [vs[0]!, 1]
  for (let i = 1; i < vs.length; i++) {
    if (inside(c, cos, vs[i]!)) continue
    ;[c, cos] = [vs[i]!, 1]
    for (let j = 0; j < i; j++) {
      if (inside(c, cos, vs[j]!)) continue
      ;[c, cos] = two(vs[i]!, vs[j]!)
      for (let k = 0; k < j; k++) {
        if (inside(c, cos, vs[k]!)) continue
        const cap = three(vs[i]!, vs[j]!, vs[k]!)
        if (cap === undefined) return undefined
        ;[c, cos] = cap
      }
    }
  }
  return cos > 1e-9 && vs.every((v) => inside(c, cos, v)) ? c : undefined
}

// Whether plane segments p1p2 and q1q2 meet (touching counts).
const segmentsMeet = (
  p1: readonly [number, number],
  p2: readonly [number, number],
  q1: readonly [number, number],
  q2: readonly [number, number]
): boolean => {
  const side = (a: readonly [number, number], b: readonly [number, number], c: readonly [number, number]) => {
    const v = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    const scale = Math.max(Math.abs(b[0] - a[0]) + Math.abs(b[1] - a[1]), 1) * Math.max(Math.abs(c[0] - a[0]) + Math.abs(c[1] - a[1]), 1)
    return Math.abs(v) <= tiny * tiny * scale ? 0 : Math.sign(v)
  }
  const within = (a: readonly [number, number], b: readonly [number, number], c: readonly [number, number]) =>
    Math.min(a[0], b[0]) <= c[0] && c[0] <= Math.max(a[0], b[0]) && Math.min(a[1], b[1]) <= c[1] && c[1] <= Math.max(a[1], b[1])
  const [d1, d2, d3, d4] = [side(q1, q2, p1), side(q1, q2, p2), side(p1, p2, q1), side(p1, p2, q2)]
  if (d1 * d2 < 0 && d3 * d4 < 0) return true
  return (d1 === 0 && within(q1, q2, p1)) || (d2 === 0 && within(q1, q2, p2)) || (d3 === 0 && within(p1, p2, q1)) ||
    (d4 === 0 && within(p1, p2, q2))
}

/** Whether a point lies in the polygon (even-odd rule in the gnomonic plane). */
export const containsPoint = (p: Polygon, v: Vec): boolean => {
  const w = dot(v, p.centre)
  if (w <= 0) return false
  const [u, y] = [dot(v, p.e1) / w, dot(v, p.e2) / w]
  return p.edges.filter((e) => (e.y1 > y) !== (e.y2 > y) && u < e.x1 + (y - e.y1) * e.slope).length % 2 === 1
}

const degrees = (v: Vec) => Math.asin(Math.max(-1, Math.min(1, v[2]))) / rad

/** Checks vertices given in order and makes the polygon, or says what is wrong with them. */
export const polygon = (vertices: ReadonlyArray<RaDec>, what = "POLYGON"): { readonly polygon: Polygon } | { readonly error: string } => {
  const n = vertices.length
  if (n < 3) return { error: `${what} needs at least 3 vertices` }
  if (n > maxVertices) return { error: `${what} has ${n} vertices; at most ${maxVertices} are accepted` }
  for (const [i, p] of vertices.entries()) {
    if (!Number.isFinite(p.ra) || !Number.isFinite(p.dec)) return { error: `${what}'s vertex ${i + 1} is not a finite position` }
    if (p.dec < -90 || p.dec > 90) return { error: `${what}'s vertex ${i + 1} has dec ${p.dec}: declinations are between -90 and 90` }
  }
  const vs = vertices.map(vec)
  for (let i = 0; i < n; i++) {
    if (angle(vs[i]!, vs[(i + 1) % n]!) < tiny / rad) {
      return {
        error: i === n - 1
          ? `${what}'s last vertex repeats its first: list each vertex once (the polygon closes itself)`
          : `${what}'s vertices ${i + 1} and ${i + 2} coincide`
      }
    }
  }
  const centre = enclosingCap(vs)
  if (centre === undefined) {
    return {
      error: `${what} is larger than a hemisphere: its vertices must lie within 90° of one point (split a larger region, or use CIRCLE)`
    }
  }
  const e1 = unit(Math.abs(centre[2]) < 0.9 ? cross([0, 0, 1], centre) : cross([1, 0, 0], centre))
  const e2 = cross(centre, e1)
  const plane = vs.map((v) => [dot(v, e1) / dot(v, centre), dot(v, e2) / dot(v, centre)] as const)
  let twiceArea = 0
  for (let i = 0; i < n; i++) twiceArea += plane[i]![0] * plane[(i + 1) % n]![1] - plane[(i + 1) % n]![0] * plane[i]![1]
  const extent = Math.max(...plane.map(([x, y]) => Math.abs(x) + Math.abs(y)), 1e-300)
  for (let i = 0; i < n; i++) {
    const [a, b, c] = [plane[i]!, plane[(i + 1) % n]!, plane[(i + 2) % n]!]
    const turn = (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0])
    const ahead = (b[0] - a[0]) * (c[0] - b[0]) + (b[1] - a[1]) * (c[1] - b[1])
    if (Math.abs(turn) <= tiny * tiny * extent * extent && ahead < 0) {
      return { error: `${what} doubles back on itself at vertex ${((i + 1) % n) + 1}` }
    }
    for (let j = i + 2; j < n; j++) {
      if (i === 0 && j === n - 1) continue
      if (segmentsMeet(a, b, plane[j]!, plane[(j + 1) % n]!)) {
        return {
          error: `${what} crosses itself: edges ${i + 1} and ${j + 1} meet (a polygon's edges may meet only at their shared vertices)`
        }
      }
    }
  }
  // after the crossing checks, so a bow tie (whose signed area cancels) is named for what it is
  if (Math.abs(twiceArea) <= tiny * extent * extent) return { error: `${what} is degenerate: its vertices lie on one great circle` }
  const edges = vs.map((a, i): Edge => {
    const b = vs[(i + 1) % n]!
    const nrm = unit(cross(a, b))
    const [p1, p2] = [plane[i]!, plane[(i + 1) % n]!]
    return {
      a,
      b,
      n: nrm,
      la: cross(nrm, a),
      lb: cross(b, nrm),
      x1: p1[0],
      y1: p1[1],
      x2: p2[0],
      y2: p2[1],
      slope: p1[1] === p2[1] ? 0 : (p2[0] - p1[0]) / (p2[1] - p1[1])
    }
  })
  let [decMin, decMax] = [Math.min(...vertices.map((v) => v.dec)), Math.max(...vertices.map((v) => v.dec))]
  for (const e of edges) {
    // the edge's great circle is farthest north at the pole's direction with the normal's part removed
    const q = add([0, 0, 1], e.n, -e.n[2])
    if (norm(q) < tiny) continue
    for (const top of [unit(q), unit([-q[0], -q[1], -q[2]])]) {
      if (dot(top, e.la) >= 0 && dot(top, e.lb) >= 0) [decMin, decMax] = [Math.min(decMin, degrees(top)), Math.max(decMax, degrees(top))]
    }
  }
  const partial: Polygon = { vertices, centre, e1, e2, edges, decMin, decMax, area: 0 }
  if (containsPoint(partial, [0, 0, 1])) decMax = 90
  if (containsPoint(partial, [0, 0, -1])) decMin = -90
  // area: the fan of triangles from the centre, each by Van Oosterom and Strackee's formula, signed
  let steradians = 0
  for (const e of edges) steradians += 2 * Math.atan2(dot(centre, cross(e.a, e.b)), 1 + dot(centre, e.a) + dot(e.a, e.b) + dot(e.b, centre))
  const margin = 1e-9
  return {
    polygon: {
      ...partial,
      decMin: Math.max(-90, decMin - margin),
      decMax: Math.min(90, decMax + margin),
      area: Math.abs(steradians) / rad / rad
    }
  }
}

/**
 * BOX's corners as STC defines the box: arms from the centre along the coordinate axes for half
 * the width and height, sides the great circles meeting the arms' ends at right angles. Those are
 * the corners of a rectangle in the gnomonic plane at the centre, half-sides tan(w/2), tan(h/2).
 */
export const boxCorners = (centre: RaDec, width: number, height: number): ReadonlyArray<RaDec> => {
  const c = vec(centre)
  const east: Vec = [-Math.sin(centre.ra * rad), Math.cos(centre.ra * rad), 0]
  const north = cross(c, east)
  const [tx, ty] = [Math.tan((width / 2) * rad), Math.tan((height / 2) * rad)]
  return [[1, 1], [-1, 1], [-1, -1], [1, -1]].map(([sx, sy]) => {
    const v = unit(add(add(c, east, sx! * tx), north, sy! * ty))
    return { ra: ((Math.atan2(v[1], v[0]) / rad) + 360) % 360, dec: degrees(v) }
  })
}

/** Whether the vertices run counter-clockwise with east to the right and north up (DALI's order, with ra then dec rising). */
export const counterClockwise = (p: Polygon): boolean => p.edges.reduce((s, e) => s + e.x1 * e.y2 - e.x2 * e.y1, 0) > 0

/**
 * The centroid: the direction of the mean of the unit vectors over the polygon's area. That
 * integral of a region bounded by great-circle arcs is half the sum of each edge's length
 * (radians) times its unit normal, oriented so it points into the polygon's hemisphere.
 */
export const centroid = (p: Polygon): RaDec => {
  let m: Vec = [0, 0, 0]
  for (const e of p.edges) m = add(m, e.n, (angle(e.a, e.b) * rad) / 2)
  const v = unit(dot(m, p.centre) < 0 ? [-m[0], -m[1], -m[2]] : m)
  return { ra: ((Math.atan2(v[1], v[0]) / rad) + 360) % 360, dec: degrees(v) }
}
