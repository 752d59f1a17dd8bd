/**
 * ADQL's regions, translated to exact spherical SQL without pgsphere. A POINT and a CIRCLE are
 * SQL expressions (the row's own `s_ra`/`s_dec`, or bound numbers); `s_region` is the row's
 * circle (centre `s_ra`/`s_dec`, radius `s_fov / 2`); a POLYGON or BOX is numbers written in the
 * query, checked and turned into unit vectors by `SphereGeometry`, whose edges are bound as a
 * VALUES list. CONTAINS and INTERSECTS become SQL predicates: distances between centres for
 * circles, the even-odd rule in the polygon's gnomonic plane for a point, and distances to the
 * great-circle edges for a circle against a polygon. Each predicate starts with a declination
 * band implied by it, which is cheap to test before any trigonometry.
 */
import type { Expr } from "./Adql.js"
import { distanceSql } from "./AdqlFunctions.js"
import * as SphereGeometry from "./SphereGeometry.js"

/** A region as the translator carries it: SQL text for points and circles, checked numbers for polygons. */
export type Geometry =
  | { readonly shape: "point"; readonly ra: string; readonly dec: string }
  | { readonly shape: "circle"; readonly ra: string; readonly dec: string; readonly radius: string }
  | { readonly shape: "polygon"; readonly polygon: SphereGeometry.Polygon }

/** What the translator lends this module. */
export interface Context {
  /** Adds a bind parameter, answering its placeholder. */
  readonly bind: (value: unknown, cast: string) => string
  /** A numeric argument's SQL, or a failure saying `what` it must be. */
  readonly number: (e: Expr, what: string) => string
  /** A geometry argument (a POINT, CIRCLE, BOX or POLYGON call, or `s_region`). */
  readonly geometry: (e: Expr) => Geometry
  /** Refuses the query with a message. */
  readonly fail: (message: string) => never
}

/** The names this module builds. */
export const shapes: ReadonlySet<string> = new Set(["POINT", "CIRCLE", "BOX", "POLYGON"])

// The value of a number written in the query (with signs and arithmetic), if it is one.
const constant = (e: Expr): number | undefined => {
  switch (e.type) {
    case "num":
      return Number(e.text)
    case "unary": {
      const v = constant(e.expr)
      return v === undefined ? undefined : e.op === "-" ? -v : v
    }
    case "binary": {
      const [l, r] = [constant(e.left), constant(e.right)]
      if (l === undefined || r === undefined) return undefined
      return e.op === "+" ? l + r : e.op === "-" ? l - r : e.op === "*" ? l * r : e.op === "/" ? l / r : undefined
    }
    default:
      return undefined
  }
}

const isPoint = (e: Expr) => e.type === "func" && e.name === "POINT"

// Takes off the optional coordinate system, which must be ICRS (or empty) when given.
const framed = (ctx: Context, name: string, args: ReadonlyArray<Expr>): ReadonlyArray<Expr> => {
  const first = args[0]
  if (first?.type !== "str") return args
  if (!/^\s*(icrs)?\s*$/i.test(first.value)) {
    ctx.fail(`${name}'s coordinate system must be 'ICRS' (or empty): the archive's positions are ICRS`)
  }
  return args.slice(1)
}

// A constant position: POINT(...) of numbers, or two numbers.
const constantPoint = (ctx: Context, e: Expr, what: string): SphereGeometry.RaDec => {
  const args = e.type === "func" ? framed(ctx, "POINT", e.args) : []
  const [ra, dec] = args.map(constant)
  if (args.length !== 2 || ra === undefined || dec === undefined) {
    ctx.fail(`${what} are numbers written in the query (degrees), not columns`)
  }
  return { ra: ra!, dec: dec! }
}

const checked = (ctx: Context, result: ReturnType<typeof SphereGeometry.polygon>): Geometry =>
  "error" in result ? ctx.fail(result.error) : { shape: "polygon", polygon: result.polygon }

/** Builds POINT, CIRCLE, BOX or POLYGON from its call, in either ADQL 2.1 form (numbers, or POINTs). */
export const shape = (ctx: Context, e: Extract<Expr, { type: "func" }>): Geometry => {
  const args = framed(ctx, e.name, e.args)
  const coordinates = `${e.name}'s coordinates are numbers (degrees)`
  switch (e.name) {
    case "POINT":
      if (args.length !== 2) ctx.fail("POINT takes ('ICRS', ra, dec) in degrees")
      return { shape: "point", ra: ctx.number(args[0]!, coordinates), dec: ctx.number(args[1]!, coordinates) }
    case "CIRCLE": {
      const centre = args.length === 2 && isPoint(args[0]!) ? ctx.geometry(args[0]!) : undefined
      if (centre === undefined && args.length !== 3) ctx.fail("CIRCLE takes ('ICRS', ra, dec, radius) or (POINT(...), radius), in degrees")
      const radius = args[args.length - 1]!
      const r = constant(radius)
      if (r !== undefined && !(r >= 0 && r <= 180)) ctx.fail(`CIRCLE's radius is ${r}: it is between 0 and 180 degrees`)
      if (centre?.shape === "point") return { shape: "circle", ra: centre.ra, dec: centre.dec, radius: ctx.number(radius, coordinates) }
      return {
        shape: "circle",
        ra: ctx.number(args[0]!, coordinates),
        dec: ctx.number(args[1]!, coordinates),
        radius: ctx.number(radius, coordinates)
      }
    }
    case "BOX": {
      const pointForm = args.length === 3 && isPoint(args[0]!)
      if (!pointForm && args.length !== 4) ctx.fail("BOX takes ('ICRS', ra, dec, width, height) or (POINT(...), width, height), in degrees")
      const centre = pointForm
        ? constantPoint(ctx, args[0]!, "BOX's centre and size")
        : constantPoint(ctx, { type: "func", name: "POINT", args: args.slice(0, 2), star: false, distinct: false }, "BOX's centre and size")
      const [width, height] = args.slice(pointForm ? 1 : 2).map(constant)
      if (width === undefined || height === undefined) {
        return ctx.fail("BOX's centre and size are numbers written in the query (degrees), not columns")
      }
      if (!(width > 0 && width < 180 && height > 0 && height < 180)) {
        ctx.fail(`BOX's width and height are more than 0 and less than 180 degrees, not ${width} and ${height}`)
      }
      return checked(ctx, SphereGeometry.polygon(SphereGeometry.boxCorners(centre, width, height), "BOX"))
    }
    default: {
      const pointForm = args.length > 0 && args.every(isPoint)
      if (!pointForm && args.length % 2 !== 0) {
        ctx.fail("POLYGON takes ('ICRS', ra1, dec1, ra2, dec2, ra3, dec3, ...) or (POINT(...), POINT(...), POINT(...), ...), in degrees")
      }
      const vertices = pointForm
        ? args.map((a) => constantPoint(ctx, a, "POLYGON's vertices"))
        : Array.from(
          { length: args.length / 2 },
          (_, i) =>
            constantPoint(
              ctx,
              { type: "func", name: "POINT", args: args.slice(2 * i, 2 * i + 2), star: false, distinct: false },
              "POLYGON's vertices"
            )
        )
      return checked(ctx, SphereGeometry.polygon(vertices))
    }
  }
}

/** `s_region` as a region: the circle of the field of view around the Source. */
export const rowRegion: Geometry = { shape: "circle", ra: `t."s_ra"`, dec: `t."s_dec"`, radius: `(t."s_fov" / 2)` }

const float = "double precision"

// The unit vector of a position, as the columns x, y, z of a FROM item named p, with a radius's
// r (degrees), sine s and cosine c when one is given.
const vectorFrom = (ra: string, dec: string, radius = "null") =>
  `(select cos(radians(q.d)) * cos(radians(q.a)) as x, cos(radians(q.d)) * sin(radians(q.a)) as y, sin(radians(q.d)) as z, q.r, sin(radians(q.r)) as s, cos(radians(q.r)) as c ` +
  `from (select (${ra})::${float} as a, (${dec})::${float} as d, (${radius})::${float} as r) as q) as p`

// A constant vector bound once, and its dot product with p's x, y, z.
const dotSql = (ctx: Context, v: SphereGeometry.Vec) => {
  const [x, y, z] = v.map((c) => ctx.bind(c, float))
  return `(p.x * ${x} + p.y * ${y} + p.z * ${z})`
}

type EdgeColumn =
  | "x1"
  | "y1"
  | "y2"
  | "slope"
  | "ax"
  | "ay"
  | "az"
  | "bx"
  | "by"
  | "bz"
  | "nx"
  | "ny"
  | "nz"
  | "lax"
  | "lay"
  | "laz"
  | "lbx"
  | "lby"
  | "lbz"
const edgeValue = (e: SphereGeometry.Edge, c: EdgeColumn): number => {
  if (c === "x1" || c === "y1" || c === "y2" || c === "slope") return e[c]
  const v = { a: e.a, b: e.b, n: e.n, la: e.la, lb: e.lb }[c.slice(0, -1) as "a" | "b" | "n" | "la" | "lb"]
  return v[{ x: 0, y: 1, z: 2 }[c.slice(-1) as "x" | "y" | "z"]]
}
// The edges as a FROM item e, one bound array per column: a few parameters, not hundreds.
const edgesSql = (ctx: Context, polygon: SphereGeometry.Polygon, columns: ReadonlyArray<EdgeColumn>) =>
  `unnest(${columns.map((c) => ctx.bind(polygon.edges.map((e) => edgeValue(e, c)), `${float}[]`)).join(", ")}) as e(${columns.join(", ")})`

// Over a FROM item p with x, y, z: whether p lies in the polygon (null when p is null).
const insideSql = (ctx: Context, polygon: SphereGeometry.Polygon) => {
  const w = dotSql(ctx, polygon.centre)
  const [u, v] = [dotSql(ctx, polygon.e1), dotSql(ctx, polygon.e2)]
  const crossings = `(select count(*) from ${edgesSql(ctx, polygon, ["x1", "y1", "y2", "slope"])}, ` +
    `(select ${u} / nullif(${w}, 0) as u, ${v} / nullif(${w}, 0) as v) as g where (e.y1 > g.v) <> (e.y2 > g.v) and g.u < e.x1 + (g.v - e.y1) * e.slope)`
  return `case when ${w} > 0 then ${crossings} % 2 = 1 else ${w} > 0 end`
}
// Whether an edge of the polygon comes within p.r of p (strictly, with "<"): within the edge's
// lune the nearest point is on the great circle (|p·n| is the sine of the distance, and a radius
// of 90° or more reaches every such point), elsewhere it is an end, and every end is some edge's a.
const boundaryNearSql = (ctx: Context, polygon: SphereGeometry.Polygon, op: "<=" | "<") => {
  const d = (c: string) => `(p.x * e.${c}x + p.y * e.${c}y + p.z * e.${c}z)`
  const columns: ReadonlyArray<EdgeColumn> = ["ax", "ay", "az", "nx", "ny", "nz", "lax", "lay", "laz", "lbx", "lby", "lbz"]
  const reverse = op === "<=" ? ">=" : ">"
  return `exists (select from ${edgesSql(ctx, polygon, columns)} where ${d("a")} ${reverse} p.c ` +
    `or (${d("la")} >= 0 and ${d("lb")} >= 0 and (p.r ${reverse} 90 or abs(${d("n")}) ${op} p.s)))`
}

const band = (dec: string, low: string, high: string) => `(${dec}) between ${low} and ${high}`

// A circle meets (or, with `within`, lies inside) a polygon; `open` compares strictly, for the complement.
const circlePolygon = (
  ctx: Context,
  c: Extract<Geometry, { shape: "circle" }>,
  polygon: SphereGeometry.Polygon,
  how: "meets" | "within" | "meetsOpen"
) => {
  const [lo, hi] = [ctx.bind(polygon.decMin, float), ctx.bind(polygon.decMax, float)]
  const inside = insideSql(ctx, polygon)
  // unknown (null) when the circle is, not "no edge near"
  const unknown = "when p.x is null or p.r is null then null"
  const from = vectorFrom(c.ra, c.dec, c.radius)
  const test = how === "within"
    ? `(select case ${unknown} else (${inside}) and not ${boundaryNearSql(ctx, polygon, "<")} end from ${from})`
    : `(select case ${unknown} when ${inside} then true else ${
      boundaryNearSql(ctx, polygon, how === "meets" ? "<=" : "<")
    } end from ${from})`
  const prefilter = how === "within" ? band(c.dec, lo, hi) : band(c.dec, `${lo} - (${c.radius})`, `${hi} + (${c.radius})`)
  return `(${prefilter} and ${test})`
}

const pointInCircle = (p: Extract<Geometry, { shape: "point" }>, c: Extract<Geometry, { shape: "circle" }>) =>
  `(${band(p.dec, `(${c.dec}) - (${c.radius})`, `(${c.dec}) + (${c.radius})`)} and ${
    distanceSql(p.ra, p.dec, c.ra, c.dec)
  } <= (${c.radius}))`

const pointInPolygon = (ctx: Context, p: Extract<Geometry, { shape: "point" }>, polygon: SphereGeometry.Polygon) =>
  `(${band(p.dec, ctx.bind(polygon.decMin, float), ctx.bind(polygon.decMax, float))} and (select ${insideSql(ctx, polygon)} from ${
    vectorFrom(p.ra, p.dec)
  }))`

const describe = (g: Geometry) => g.shape.toUpperCase()

/**
 * `CONTAINS(a, b)` (a lies within b) or `INTERSECTS(a, b)` as an SQL predicate: null when a
 * row's position is unknown, so neither `= 1` nor `= 0` selects it.
 */
export const predicate = (ctx: Context, name: "CONTAINS" | "INTERSECTS", a: Geometry, b: Geometry): string => {
  if (name === "INTERSECTS" && b.shape === "point" && a.shape !== "point") return predicate(ctx, "CONTAINS", b, a)
  if (name === "INTERSECTS" && a.shape === "polygon" && b.shape === "circle") return predicate(ctx, name, b, a)
  if (b.shape === "point") {
    return ctx.fail(
      `${name}(${describe(a)}, POINT): ${
        name === "CONTAINS"
          ? "nothing lies inside a POINT; write CONTAINS(POINT(...), region)"
          : "compare a POINT with a region: CIRCLE, BOX, POLYGON or s_region"
      }`
    )
  }
  if (a.shape === "polygon" && b.shape === "polygon") {
    return ctx.fail(
      `${name} of two polygons (POLYGON or BOX) is not supported: the archive's regions (s_region) are circles, so compare a POLYGON or BOX with s_region, a CIRCLE or a POINT`
    )
  }
  if (a.shape === "point") return b.shape === "circle" ? pointInCircle(a, b) : pointInPolygon(ctx, a, b.polygon)
  if (a.shape === "circle" && b.shape === "circle") {
    const d = distanceSql(a.ra, a.dec, b.ra, b.dec)
    return name === "CONTAINS"
      ? `(${band(a.dec, `(${b.dec}) - (${b.radius})`, `(${b.dec}) + (${b.radius})`)} and ${d} + (${a.radius}) <= (${b.radius}))`
      : `(${
        band(a.dec, `(${b.dec}) - (${a.radius}) - (${b.radius})`, `(${b.dec}) + (${a.radius}) + (${b.radius})`)
      } and ${d} <= (${a.radius}) + (${b.radius}))`
  }
  if (a.shape === "circle" && b.shape === "polygon") return circlePolygon(ctx, a, b.polygon, name === "CONTAINS" ? "within" : "meets")
  // A polygon within a circle: it does not meet the rest of the sky, the antipodal circle's interior.
  const c = b as Extract<Geometry, { shape: "circle" }>
  const antipode = { shape: "circle" as const, ra: `(${c.ra}) + 180`, dec: `-(${c.dec})`, radius: `(180 - (${c.radius}))` }
  return `(not ${circlePolygon(ctx, antipode, (a as Extract<Geometry, { shape: "polygon" }>).polygon, "meetsOpen")})`
}

/** AREA in square degrees. */
export const area = (ctx: Context, g: Geometry): string => {
  switch (g.shape) {
    case "point":
      return "0::double precision"
    case "circle":
      return `degrees(degrees(2 * pi() * (1 - cos(radians(${g.radius})))))`
    case "polygon":
      return ctx.bind(g.polygon.area, float)
  }
}
