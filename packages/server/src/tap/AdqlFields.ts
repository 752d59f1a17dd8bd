/**
 * What the columns of a result are, and how a selected region is written: as DALI 1.1 values
 * (`xtype` point, circle or polygon; doubles in ICRS degrees separated by spaces, ra in
 * [0, 360)), the form VOTable readers (TOPCAT, astropy, pyvo) turn back into shapes. A POINT or
 * CIRCLE is made by the SQL from its parts (a row's `s_ra`, `s_dec` and `s_fov`, or bound
 * numbers); a POLYGON or BOX is numbers written in the query, written out here and bound.
 */
import type { Expr } from "./Adql.js"
import type { Geometry } from "./AdqlGeometry.js"
import type { Sql } from "./AdqlFunctions.js"
import * as SphereGeometry from "./SphereGeometry.js"
import type * as TapSchema from "./TapSchema.js"

/** One column of the result, as VOTable FIELD and CSV header describe it. */
export interface Field {
  readonly name: string
  readonly datatype: "char" | "short" | "int" | "long" | "double"
  readonly arraysize?: string
  readonly xtype?: string
  readonly unit?: string
  readonly ucd?: string
  readonly utype?: string
  readonly description?: string
}

const float = "double precision"
const text = (sql: string) => `(${sql})::${float}::text`
// ra into [0, 360): a row's is there already, and stays exactly itself
const ra = (sql: string) => text(`(${sql})::${float} - 360 * floor((${sql})::${float} / 360)`)

/** The DALI value of a region, as SQL of type text (null when a part of it is). */
export const valueSql = (g: Geometry, bind: (value: unknown, cast: string) => string): string => {
  switch (g.shape) {
    case "point":
      return `(${ra(g.ra)} || ' ' || ${text(g.dec)})`
    case "circle":
      return `(${ra(g.ra)} || ' ' || ${text(g.dec)} || ' ' || ${text(g.radius)})`
    case "polygon": {
      const vertices = SphereGeometry.counterClockwise(g.polygon) ? g.polygon.vertices : [...g.polygon.vertices].reverse()
      return bind(vertices.map((v) => `${((v.ra % 360) + 360) % 360} ${v.dec}`).join(" "), "text")
    }
  }
}

/** The FIELD of a selected region. */
export const regionField = (name: string, g: Geometry): Field => ({
  name,
  datatype: "double",
  arraysize: g.shape === "point" ? "2" : g.shape === "circle" ? "3" : "*",
  xtype: g.shape,
  unit: "deg"
})

/** The FIELD of a selected expression: a column's own metadata where it is one, else its kind's. */
export const fieldOf = (
  expr: Expr,
  s: Sql & { readonly column?: TapSchema.Column; readonly func?: string },
  alias: string | undefined
): Field => {
  const c = s.column
  const name = alias ?? (c !== undefined && s.func === undefined ? c.name : s.func ?? "expr")
  if (c !== undefined && (s.func === undefined || s.func === "min" || s.func === "max")) {
    const plain = s.func === undefined
    return {
      name,
      datatype: c.datatype,
      ...(c.arraysize === undefined ? {} : { arraysize: c.arraysize }),
      ...(c.xtype === undefined ? {} : { xtype: c.xtype }),
      ...(c.unit === undefined ? {} : { unit: c.unit }),
      ...(plain && c.ucd !== undefined ? { ucd: c.ucd } : {}),
      ...(plain && c.utype !== undefined ? { utype: c.utype } : {}),
      ...(plain ? { description: c.description } : {})
    }
  }
  if (s.geometry !== undefined) return regionField(name, s.geometry)
  if (s.kind === "str") return { name, datatype: "char", arraysize: "*" }
  if (s.func === "count") return { name, datatype: "long" }
  if (s.predicate !== undefined) return { name, datatype: "int" }
  if (expr.type === "num" && expr.integer) return { name, datatype: "long" }
  return { name, datatype: "double" }
}
