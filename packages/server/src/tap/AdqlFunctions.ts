/**
 * The ADQL functions this service translates, each to PostgreSQL over already-translated
 * arguments: the math and string functions of ADQL 2.1, the aggregates, and `DISTANCE` (the
 * regions and their predicates are `AdqlGeometry`'s). Arguments arrive as SQL text the
 * translator made from the syntax tree and bind parameters, never as query text.
 */
import type { Geometry } from "./AdqlGeometry.js"

/** What a translated expression holds. */
export type Kind = "num" | "str" | "null" | "point" | "circle" | "polygon"

/** A translated argument or result. */
export interface Sql {
  readonly sql: string
  readonly kind: Kind
  /** Whether an aggregate function is inside. */
  readonly aggregate: boolean
  /** A region (kinds point, circle, polygon): usable only by the geometry functions. */
  readonly geometry?: Geometry
  /** CONTAINS or INTERSECTS as a condition, for comparisons with 1 or 0 (`sql` is it as 1, 0 or null). */
  readonly predicate?: string
  /** A bounding test the positional index serves, implied by `predicate` (`AdqlIndex`). */
  readonly bound?: string
  /** For a DISTANCE from the row's position: the point it is measured to (`AdqlIndex`). */
  readonly near?: { readonly ra: string; readonly dec: string }
}

/** How a function is translated: its arity, argument kinds and result. */
export interface FunctionSpec {
  readonly min: number
  readonly max: number
  readonly args: Kind
  readonly result: Kind
  readonly aggregate?: boolean
  /** VOTable datatype of the result, when not double or char. */
  readonly datatype?: "long"
  readonly render: (args: ReadonlyArray<string>, distinct: boolean) => string
}

const math1 = (fn: string): FunctionSpec => ({
  min: 1,
  max: 1,
  args: "num",
  result: "num",
  render: ([x]) => `${fn}((${x})::double precision)`
})
const rounding = (fn: string): FunctionSpec => ({
  min: 1,
  max: 2,
  args: "num",
  result: "num",
  render: ([x, n]) => `${fn}((${x})::numeric, (${n ?? "0"})::integer)::double precision`
})
const aggregate = (fn: string, cast: string, result: Kind = "num"): FunctionSpec => ({
  min: 1,
  max: 1,
  args: result,
  result,
  aggregate: true,
  render: ([x], distinct) => `${fn}(${distinct ? "distinct " : ""}${x})${cast}`
})

/** Great-circle distance in degrees between two ICRS positions (haversine, stable at small angles). */
export const distanceSql = (ra1: string, dec1: string, ra2: string, dec2: string): string =>
  `degrees(2 * asin(least(1::double precision, sqrt(power(sin(radians((${dec2}) - (${dec1})) / 2), 2) + cos(radians(${dec1})) * cos(radians(${dec2})) * power(sin(radians((${ra2}) - (${ra1})) / 2), 2)))))`

/** Every function the service knows, by upper-case name. */
export const functions: ReadonlyMap<string, FunctionSpec> = new Map<string, FunctionSpec>([
  ["ABS", math1("abs")],
  ["CEILING", math1("ceil")],
  ["FLOOR", math1("floor")],
  ["DEGREES", math1("degrees")],
  ["RADIANS", math1("radians")],
  ["EXP", math1("exp")],
  ["LOG", math1("ln")],
  ["LOG10", math1("log")],
  ["SQRT", math1("sqrt")],
  ["SIN", math1("sin")],
  ["COS", math1("cos")],
  ["TAN", math1("tan")],
  ["COT", math1("cot")],
  ["ASIN", math1("asin")],
  ["ACOS", math1("acos")],
  ["ATAN", math1("atan")],
  ["ATAN2", {
    min: 2,
    max: 2,
    args: "num",
    result: "num",
    render: ([y, x]) => `atan2((${y})::double precision, (${x})::double precision)`
  }],
  ["POWER", {
    min: 2,
    max: 2,
    args: "num",
    result: "num",
    render: ([x, y]) => `power((${x})::double precision, (${y})::double precision)`
  }],
  ["MOD", { min: 2, max: 2, args: "num", result: "num", render: ([x, y]) => `mod((${x})::numeric, (${y})::numeric)::double precision` }],
  ["PI", { min: 0, max: 0, args: "num", result: "num", render: () => "pi()" }],
  ["RAND", { min: 0, max: 1, args: "num", result: "num", render: () => "random()" }],
  ["ROUND", rounding("round")],
  ["TRUNCATE", rounding("trunc")],
  ["LOWER", { min: 1, max: 1, args: "str", result: "str", render: ([x]) => `lower(${x})` }],
  ["UPPER", { min: 1, max: 1, args: "str", result: "str", render: ([x]) => `upper(${x})` }],
  ["COUNT", {
    min: 1,
    max: 1,
    args: "null",
    result: "num",
    aggregate: true,
    datatype: "long",
    render: ([x], distinct) => `count(${distinct ? "distinct " : ""}${x})`
  }],
  ["AVG", aggregate("avg", "::double precision")],
  ["SUM", aggregate("sum", "::double precision")],
  ["DISTANCE", { min: 2, max: 4, args: "num", result: "num", render: ([a, b, c, d]) => distanceSql(a!, b!, c!, d!) }]
])

/** Functions of ADQL this service does not translate, with why. */
export const unsupportedFunctions: ReadonlyMap<string, string> = new Map([
  ["REGION", "REGION is not supported (ADQL 2.1 removed it): write the region as CIRCLE, BOX or POLYGON"]
])
