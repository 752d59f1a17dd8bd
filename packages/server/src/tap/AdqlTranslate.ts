/**
 * ADQL syntax trees to parameterised PostgreSQL. The SQL text is made only from this module's
 * own words and the catalogue's column names; every literal of the query becomes a bind
 * parameter. Only the tables of `TapSchema` can be named, only their published columns, and the
 * caller's access rule is ANDed around the query's own condition (which is wrapped in
 * parentheses), so no query can reach a hidden column or a row the caller may not see.
 */
import * as Either from "effect/Either"
import { type Condition, type Expr, type Identifier, type Query, AdqlError } from "./Adql.js"
import { type Field, fieldOf, valueSql } from "./AdqlFields.js"
import { accessSql, sourceSql } from "./AdqlFrom.js"
import { type Kind, type Sql, distanceSql, functions, unsupportedFunctions } from "./AdqlFunctions.js"
import * as AdqlGeometry from "./AdqlGeometry.js"
import * as AdqlIndex from "./AdqlIndex.js"
import * as SphereGeometry from "./SphereGeometry.js"
import * as TapSchema from "./TapSchema.js"

export type { Field } from "./AdqlFields.js"

/** Which ObsCore rows the caller may see, besides public ones. */
export type Access =
  | { readonly kind: "all" }
  | { readonly kind: "public" }
  | { readonly kind: "programs"; readonly ids: ReadonlyArray<string> }
  | { readonly kind: "instruments"; readonly ids: ReadonlyArray<string> }

/** A query ready to run. */
export interface Translation {
  readonly text: string
  readonly params: ReadonlyArray<unknown>
  readonly fields: ReadonlyArray<Field>
  /** Rows asked of the database: one more than MAXREC when MAXREC, not TOP, limits the result. */
  readonly fetch: number
  /** Rows the result may hold; a fetched row past it means overflow. */
  readonly maxrec: number
}

class Fail {
  constructor(readonly message: string) {}
}
const fail = (message: string): never => {
  throw new Fail(message)
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`
const same = (written: Identifier, actual: string) => (written.delimited ? written.name === actual : written.name === actual.toLowerCase())

class Translator {
  readonly params: Array<unknown> = []
  readonly casts: Array<string> = []
  readonly aliases = new Map<string, number>()
  constructor(readonly table: TapSchema.Table, readonly alias: Identifier | null) {}

  bind(value: unknown, cast: string): string {
    this.params.push(value)
    this.casts.push(cast)
    return `$${this.params.length}::${cast}`
  }

  column(parts: ReadonlyArray<Identifier>): TapSchema.Column {
    const name = parts[parts.length - 1]!
    const qualifier = parts.slice(0, -1)
    if (qualifier.length > 0) {
      const [schema, table] = this.table.name.split(".") as [string, string]
      const ok = qualifier.length === 1
        ? (this.alias !== null ? same(qualifier[0]!, this.alias.name) || same(qualifier[0]!, table) : same(qualifier[0]!, table))
        : qualifier.length === 2 && same(qualifier[0]!, schema) && same(qualifier[1]!, table)
      if (!ok) {
        fail(
          `${qualifier.map((q) => q.name).join(".")} is not the table of this query (${this.table.name}${
            this.alias === null ? "" : ` AS ${this.alias.name}`
          })`
        )
      }
    }
    const column = this.table.columns.find((c) => same(name, c.name))
    if (column === undefined) {
      fail(`${this.table.name} has no column ${name.delimited ? `"${name.name}"` : name.name}; its columns are listed at /tap/tables`)
    }
    return column!
  }

  expr(e: Expr, allowAggregate: boolean): Sql & { readonly column?: TapSchema.Column; readonly func?: string } {
    switch (e.type) {
      case "num": {
        if (!e.integer) return { sql: this.bind(e.text, "double precision"), kind: "num", aggregate: false }
        return { sql: this.bind(e.text, Number.isSafeInteger(Number(e.text)) ? "bigint" : "numeric"), kind: "num", aggregate: false }
      }
      case "str":
        return { sql: this.bind(e.value, "text"), kind: "str", aggregate: false }
      case "null":
        return { sql: "null", kind: "null", aggregate: false }
      case "col": {
        const column = this.column(e.parts)
        return { sql: `t.${quote(column.name)}`, kind: column.datatype === "char" ? "str" : "num", aggregate: false, column }
      }
      case "unary": {
        const inner = this.need(this.expr(e.expr, allowAggregate), "num", `${e.op} applies to numbers`)
        return { sql: `(${e.op}${inner.sql})`, kind: "num", aggregate: inner.aggregate }
      }
      case "binary": {
        const kind: Kind = e.op === "||" ? "str" : "num"
        const what = e.op === "||" ? "|| joins strings" : `${e.op} applies to numbers`
        const left = this.need(this.expr(e.left, allowAggregate), kind, what)
        const right = this.need(this.expr(e.right, allowAggregate), kind, what)
        return { sql: `(${left.sql} ${e.op} ${right.sql})`, kind, aggregate: left.aggregate || right.aggregate }
      }
      case "func":
        return this.func(e, allowAggregate)
    }
  }

  // An expression's SQL as a value: a region as its DALI text.
  value(s: Sql): string {
    return s.geometry === undefined ? s.sql : valueSql(s.geometry, this.geo.bind)
  }

  need(s: Sql, kind: Kind, what: string): Sql {
    if (s.kind !== kind && s.kind !== "null") fail(`${what}; got ${describe(s.kind)}`)
    return s
  }

  func(e: Extract<Expr, { type: "func" }>, allowAggregate: boolean): Sql & { readonly func: string; readonly column?: TapSchema.Column } {
    const name = e.name
    const aggregates = ["COUNT", "MIN", "MAX", "AVG", "SUM"]
    if (aggregates.includes(name) && !allowAggregate) {
      fail(`${name} is an aggregate: it belongs in the select list, HAVING or ORDER BY, not in WHERE or GROUP BY`)
    }
    if (e.distinct && !aggregates.includes(name)) fail(`DISTINCT applies to aggregate functions, not ${name}`)
    const inner = (x: Expr) => this.expr(x, false)
    if (name === "COUNT" && e.star) return { sql: "count(*)", kind: "num", aggregate: true, func: "count" }
    const geometry = this.geometryFunction(e)
    if (geometry !== undefined) return geometry
    if (name === "DISTANCE") {
      const args = e.args.map(inner)
      if (args.length === 2 && args.every((a) => a.geometry?.shape === "point")) {
        const [a, b] = args.map((p) => p.geometry) as [
          Extract<AdqlGeometry.Geometry, { shape: "point" }>,
          Extract<AdqlGeometry.Geometry, { shape: "point" }>
        ]
        const near = AdqlIndex.distanceFrom(a, b)
        return { sql: distanceSql(a.ra, a.dec, b.ra, b.dec), kind: "num", aggregate: false, func: "distance", ...(near && { near }) }
      }
      if (args.length === 4) {
        const [ra1, dec1, ra2, dec2] = args.map((a) => this.need(a, "num", "DISTANCE(ra1, dec1, ra2, dec2) takes numbers").sql) as [
          string,
          string,
          string,
          string
        ]
        const near = AdqlIndex.distanceFrom({ shape: "point", ra: ra1, dec: dec1 }, { shape: "point", ra: ra2, dec: dec2 })
        return { sql: distanceSql(ra1, dec1, ra2, dec2), kind: "num", aggregate: false, func: "distance", ...(near && { near }) }
      }
      fail("DISTANCE takes two POINTs or four numbers (ra1, dec1, ra2, dec2), in degrees")
    }
    if (name === "MIN" || name === "MAX") {
      if (e.args.length !== 1) fail(`${name} takes one argument`)
      const arg = inner(e.args[0]!)
      if (arg.kind !== "num" && arg.kind !== "str") fail(`${name} applies to numbers or strings`)
      return {
        sql: `${name.toLowerCase()}(${arg.sql})`,
        kind: arg.kind,
        aggregate: true,
        func: name.toLowerCase(),
        ...("column" in arg && arg.column !== undefined ? { column: arg.column } : {})
      }
    }
    if (name === "COALESCE") {
      if (e.args.length < 2) fail("COALESCE takes two or more arguments")
      const args = e.args.map((a) => this.expr(a, allowAggregate))
      const kind = args.find((a) => a.kind !== "null")?.kind ?? "null"
      args.forEach((a) => this.need(a, kind, "COALESCE's arguments must be of one type"))
      return { sql: `coalesce(${args.map((a) => a.sql).join(", ")})`, kind, aggregate: args.some((a) => a.aggregate), func: "coalesce" }
    }
    const spec = functions.get(name)
    if (spec === undefined) {
      fail(unsupportedFunctions.get(name) ?? `${name} is not a function this service knows (see the ADQL features at /tap/capabilities)`)
    }
    if (e.args.length < spec!.min || e.args.length > spec!.max) {
      fail(`${name} takes ${spec!.min === spec!.max ? spec!.min : `${spec!.min} to ${spec!.max}`} argument${spec!.max === 1 ? "" : "s"}`)
    }
    const args = e.args.map((a) => (spec!.aggregate ? inner(a) : this.expr(a, allowAggregate)))
    if (spec!.args !== "null") args.forEach((a) => this.need(a, spec!.args, `${name} takes ${describe(spec!.args)}`))
    return {
      sql: spec!.render(args.map((a) => this.value(a)), e.distinct),
      kind: spec!.result,
      aggregate: spec!.aggregate === true || args.some((a) => a.aggregate),
      func: name.toLowerCase()
    }
  }

  // What AdqlGeometry needs of the translator.
  readonly geo: AdqlGeometry.Context = {
    bind: (value, cast) => this.bind(value, cast),
    number: (e, what) => this.need(this.expr(e, false), "num", what).sql,
    geometry: (e) => {
      if (e.type === "col" && this.column(e.parts).name === "s_region") return AdqlGeometry.rowRegion
      if (e.type === "func" && AdqlGeometry.shapes.has(e.name)) return AdqlGeometry.shape(this.geo, e)
      const s = this.expr(e, false)
      return s.geometry ?? fail(`${describe(s.kind)} is not a region: give a POINT, CIRCLE, BOX, POLYGON or s_region`)
    },
    fail
  }

  // The regions, the predicates over them, and what is read off them; undefined for other names.
  geometryFunction(e: Extract<Expr, { type: "func" }>): (Sql & { readonly func: string }) | undefined {
    const name = e.name
    const func = name.toLowerCase()
    if (AdqlGeometry.shapes.has(name)) {
      const geometry = AdqlGeometry.shape(this.geo, e)
      return { sql: "", kind: geometry.shape, aggregate: false, func, geometry }
    }
    if (name === "CONTAINS" || name === "INTERSECTS") {
      if (e.args.length !== 2) fail(`${name} takes two regions: ${name}(POINT(...), CIRCLE(...)), ${name}(s_region, POLYGON(...)), ...`)
      const [a, b] = e.args.map(this.geo.geometry) as [AdqlGeometry.Geometry, AdqlGeometry.Geometry]
      const predicate = AdqlGeometry.predicate(this.geo, name, a, b)
      const bound = AdqlIndex.regionBound(a, b, this.geo.bind)
      return { sql: `(${predicate})::integer`, kind: "num", aggregate: false, func, predicate, ...(bound && { bound }) }
    }
    if (name === "CENTROID") {
      if (e.args.length !== 1) fail("CENTROID takes one region")
      const g = this.geo.geometry(e.args[0]!)
      const c = g.shape === "polygon" ? SphereGeometry.centroid(g.polygon) : undefined
      const geometry: AdqlGeometry.Geometry = g.shape !== "polygon"
        ? { shape: "point", ra: g.ra, dec: g.dec }
        : { shape: "point", ra: this.bind(c!.ra, "double precision"), dec: this.bind(c!.dec, "double precision") }
      return { sql: "", kind: "point", aggregate: false, func, geometry }
    }
    if (name === "AREA" || name === "COORD1" || name === "COORD2" || name === "COORDSYS") {
      if (e.args.length !== 1) fail(`${name} takes one ${name === "AREA" || name === "COORDSYS" ? "region" : "POINT"}`)
      const geometry = this.geo.geometry(e.args[0]!)
      if (name === "AREA") return { sql: AdqlGeometry.area(this.geo, geometry), kind: "num", aggregate: false, func }
      if (name === "COORDSYS") return { sql: this.bind("ICRS", "text"), kind: "str", aggregate: false, func }
      if (geometry.shape !== "point") fail(`${name} takes a POINT, not a ${geometry.shape.toUpperCase()}`)
      const point = geometry as Extract<AdqlGeometry.Geometry, { shape: "point" }>
      return { sql: `(${name === "COORD1" ? point.ra : point.dec})::double precision`, kind: "num", aggregate: false, func }
    }
    return undefined
  }

  // `positive`: whether the condition must be true for a row to be selected (under no NOT, or two)
  cond(c: Condition, allowAggregate: boolean, positive = true): string {
    const scalar = (e: Expr) => {
      const s = this.expr(e, allowAggregate)
      if (s.geometry !== undefined) {
        fail(`${s.kind.toUpperCase()} is only usable inside CONTAINS, INTERSECTS, DISTANCE, AREA, CENTROID, COORD1 or COORD2, or selected`)
      }
      return s
    }
    const comparable = (a: Sql, b: Sql, what: string) => {
      if (a.kind !== "null" && b.kind !== "null" && a.kind !== b.kind) fail(`${what} compares ${describe(a.kind)} with ${describe(b.kind)}`)
    }
    switch (c.type) {
      case "and":
      case "or":
        return `(${this.cond(c.left, allowAggregate, positive)} ${c.type} ${this.cond(c.right, allowAggregate, positive)})`
      case "not":
        return `(not ${this.cond(c.cond, allowAggregate, !positive)})`
      case "cmp": {
        const isPredicate = (e: Expr) => e.type === "func" && (e.name === "CONTAINS" || e.name === "INTERSECTS")
        if (isPredicate(c.left) || isPredicate(c.right)) {
          const [geoExpr, other] = isPredicate(c.left) ? [c.left, c.right] : [c.right, c.left]
          const flag = other.type === "num" && other.integer ? Number(other.text) : NaN
          const fname = (geoExpr as Extract<Expr, { type: "func" }>).name
          if ((flag !== 0 && flag !== 1) || (c.op !== "=" && c.op !== "<>")) fail(`compare ${fname}(...) with = 1 (true) or = 0 (false)`)
          const { predicate, bound } = this.expr(geoExpr, false)
          if ((flag === 1) !== (c.op === "=")) return `(not ${predicate})`
          return positive && bound !== undefined ? `(${bound} and ${predicate})` : predicate!
        }
        const [l, r] = [scalar(c.left), scalar(c.right)]
        comparable(l, r, c.op)
        const bound = positive ? AdqlIndex.distanceBound(l, c.op, r) : undefined
        return `(${bound === undefined ? "" : `${bound} and `}${l.sql} ${c.op} ${r.sql})`
      }
      case "between": {
        const [e, low, high] = [scalar(c.expr), scalar(c.low), scalar(c.high)]
        comparable(e, low, "BETWEEN")
        comparable(e, high, "BETWEEN")
        return `(${e.sql} ${c.not ? "not " : ""}between ${low.sql} and ${high.sql})`
      }
      case "like": {
        const [e, p] = [scalar(c.expr), scalar(c.pattern)]
        this.need(e, "str", "LIKE applies to strings")
        this.need(p, "str", "LIKE's pattern is a string")
        return `(${e.sql} ${c.not ? "not " : ""}${c.ci ? "ilike" : "like"} ${p.sql})`
      }
      case "in": {
        const e = scalar(c.expr)
        const list = c.list.map(scalar)
        list.forEach((x) => comparable(e, x, "IN"))
        return `(${e.sql} ${c.not ? "not " : ""}in (${list.map((x) => x.sql).join(", ")}))`
      }
      case "isnull":
        return `(${scalar(c.expr).sql} is ${c.not ? "not " : ""}null)`
    }
  }
}

const describe = (kind: Kind) =>
  ({ num: "a number", str: "a string", null: "NULL", point: "a POINT", circle: "a CIRCLE", polygon: "a POLYGON" })[kind]

/** Translates a parsed query for a caller, with MAXREC already bounded by the service's maximum. */
export const translate = (
  query: Query,
  options: { readonly access: Access; readonly maxrec: number }
): Either.Either<Translation, AdqlError> => {
  try {
    const table = TapSchema.resolve(query.from.name)
    if (table === undefined) {
      fail(
        `there is no table ${query.from.name.map((p) => p.name).join(".")}: this service has ${
          TapSchema.tables.map((x) => x.name).join(", ")
        }`
      )
    }
    const t = new Translator(table!, query.from.alias)
    const source = sourceSql(t.geo.bind, table!)
    const items: Array<{ sql: string; field: Field }> = []
    for (const item of query.items) {
      if (item.type === "star") {
        if (item.qualifier !== undefined) t.column([item.qualifier, { name: table!.columns[0]!.name, delimited: true }])
        for (const c of table!.columns) {
          items.push({
            sql: `t.${quote(c.name)}`,
            field: fieldOf({ type: "col", parts: [] }, { sql: "", kind: "num", aggregate: false, column: c }, undefined)
          })
        }
        continue
      }
      const s = t.expr(item.expr, true)
      items.push({ sql: t.value(s), field: fieldOf(item.expr, s, item.alias?.name) })
      if (item.alias !== null) t.aliases.set(item.alias.name, items.length)
    }
    const byAlias = (e: Expr): string | undefined => {
      if (e.type === "col" && e.parts.length === 1) {
        const position = t.aliases.get(e.parts[0]!.name)
        if (position !== undefined && !table!.columns.some((c) => same(e.parts[0]!, c.name))) return `"c${position}"`
      }
      return undefined
    }
    const where = query.where === null ? "" : ` and (${t.cond(query.where, false)})`
    const access = table!.restricted ? accessSql(t.geo.bind, options.access) : "true"
    const groupBy = query.groupBy === null
      ? ""
      : ` group by ${query.groupBy.map((e) => byAlias(e) ?? t.value(t.expr(e, false))).join(", ")}`
    const having = query.having === null ? "" : ` having ${t.cond(query.having, true)}`
    const orderBy = query.orderBy === null ? "" : ` order by ${
      query.orderBy.map((o) => {
        if (o.expr.type === "num" && o.expr.integer) {
          const n = Number(o.expr.text)
          if (n < 1 || n > items.length) {
            fail(`ORDER BY ${o.expr.text}: the select list has ${items.length} column${items.length === 1 ? "" : "s"}`)
          }
          return `${n}${o.desc ? " desc" : ""}`
        }
        return `${byAlias(o.expr) ?? t.value(t.expr(o.expr, true))}${o.desc ? " desc" : ""}`
      }).join(", ")
    }`
    if (query.offset !== null && !Number.isSafeInteger(query.offset)) fail("OFFSET is too large")
    const maxrec = Math.min(options.maxrec, query.top ?? Number.POSITIVE_INFINITY)
    const fetch = query.top !== null && query.top <= options.maxrec ? query.top : options.maxrec + 1
    const list = items.map((i, n) => `${i.sql} as "c${n + 1}"`).join(", ")
    const made = [list, source, access, where, groupBy, having, orderBy].join(" ")
    // a parameter the SQL left out (a CIRCLE's radius under CENTROID, a bound under a NOT) still needs its type
    const unused = t.casts.map((cast, i) => made.includes(`$${i + 1}::`) ? "" : ` and ($${i + 1}::${cast} is null or true)`).join("")
    const text = `select ${query.distinct ? "distinct " : ""}${list} from ${source}` +
      ` where (${access})${where}${unused}${groupBy}${having}${orderBy} limit ${fetch}${
        query.offset === null ? "" : ` offset ${query.offset}`
      }`
    return Either.right({ text, params: t.params, fields: items.map((i) => i.field), fetch, maxrec })
  } catch (e) {
    if (e instanceof Fail) return Either.left(new AdqlError({ message: e.message }))
    throw e
  }
}
