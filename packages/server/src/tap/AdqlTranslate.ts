/**
 * ADQL syntax trees to parameterised PostgreSQL. The SQL text is made only from this module's
 * own words and the catalogue's column names; every literal of the query becomes a bind
 * parameter. Only the tables of `TapSchema` can be named, only their published columns, and the
 * caller's access rule is ANDed around the query's own condition (which is wrapped in
 * parentheses), so no query can reach a hidden column or a row the caller may not see.
 */
import * as Either from "effect/Either"
import { type Condition, type Expr, type Identifier, type Query, AdqlError } from "./Adql.js"
import * as AdqlGeometry from "./AdqlGeometry.js"
import { type Kind, type Sql, distanceSql, functions, unsupportedFunctions } from "./AdqlFunctions.js"
import * as TapSchema from "./TapSchema.js"

/** Which ObsCore rows the caller may see, besides public ones. */
export type Access =
  | { readonly kind: "all" }
  | { readonly kind: "public" }
  | { readonly kind: "programs"; readonly ids: ReadonlyArray<string> }
  | { readonly kind: "instruments"; readonly ids: ReadonlyArray<string> }

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
  readonly aliases = new Map<string, number>()
  constructor(readonly table: TapSchema.Table, readonly alias: Identifier | null) {}

  bind(value: unknown, cast: string): string {
    this.params.push(value)
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
        return { sql: distanceSql(a.ra, a.dec, b.ra, b.dec), kind: "num", aggregate: false, func: "distance" }
      }
      if (args.length === 4) {
        args.forEach((a) => this.need(a, "num", "DISTANCE(ra1, dec1, ra2, dec2) takes numbers"))
        return { sql: distanceSql(args[0]!.sql, args[1]!.sql, args[2]!.sql, args[3]!.sql), kind: "num", aggregate: false, func: "distance" }
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
    else args.forEach((a) => a.geometry !== undefined ? fail(`${name} does not take a geometry`) : undefined)
    return {
      sql: spec!.render(args.map((a) => a.sql), e.distinct),
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
      return { sql: `(${predicate})::integer`, kind: "num", aggregate: false, func, predicate }
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

  cond(c: Condition, allowAggregate: boolean): string {
    const scalar = (e: Expr) => {
      const s = this.expr(e, allowAggregate)
      if (s.geometry !== undefined) {
        fail(`${s.kind.toUpperCase()} is only usable inside CONTAINS, INTERSECTS, DISTANCE, AREA, COORD1 or COORD2`)
      }
      return s
    }
    const comparable = (a: Sql, b: Sql, what: string) => {
      if (a.kind !== "null" && b.kind !== "null" && a.kind !== b.kind) fail(`${what} compares ${describe(a.kind)} with ${describe(b.kind)}`)
    }
    switch (c.type) {
      case "and":
      case "or":
        return `(${this.cond(c.left, allowAggregate)} ${c.type} ${this.cond(c.right, allowAggregate)})`
      case "not":
        return `(not ${this.cond(c.cond, allowAggregate)})`
      case "cmp": {
        const isPredicate = (e: Expr) => e.type === "func" && (e.name === "CONTAINS" || e.name === "INTERSECTS")
        if (isPredicate(c.left) || isPredicate(c.right)) {
          const [geoExpr, other] = isPredicate(c.left) ? [c.left, c.right] : [c.right, c.left]
          const flag = other.type === "num" && other.integer ? Number(other.text) : NaN
          const fname = (geoExpr as Extract<Expr, { type: "func" }>).name
          if ((flag !== 0 && flag !== 1) || (c.op !== "=" && c.op !== "<>")) fail(`compare ${fname}(...) with = 1 (true) or = 0 (false)`)
          const predicate = this.expr(geoExpr, false).predicate!
          return (flag === 1) === (c.op === "=") ? predicate : `(not ${predicate})`
        }
        const [l, r] = [scalar(c.left), scalar(c.right)]
        comparable(l, r, c.op)
        return `(${l.sql} ${c.op} ${r.sql})`
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

const accessSql = (t: Translator, access: Access): string => {
  switch (access.kind) {
    case "all":
      return "true"
    case "public":
      return `t."ccat_public_from" <= now()`
    case "programs":
      return `(t."ccat_public_from" <= now() or t."ccat_program_id" = any(${t.bind([...access.ids], "uuid[]")}))`
    case "instruments":
      return `(t."ccat_public_from" <= now() or t."ccat_instrument_id" = any(${t.bind([...access.ids], "uuid[]")}))`
  }
}

const sourceSql = (t: Translator, table: TapSchema.Table): string => {
  if (table === TapSchema.obscore) return "ivoa.obscore as t"
  const cast = (c: TapSchema.Column) => (c.sqlType === "text" ? "text" : "bigint")
  const names = table.columns.map((c) => quote(c.name)).join(", ")
  const rows = TapSchema.rowsOf(table)
  if (rows.length === 0) return `(select ${table.columns.map((c) => `null::${cast(c)} as ${quote(c.name)}`).join(", ")} where false) as t`
  const values = rows.map((row) => `(${row.map((v, i) => t.bind(v, cast(table.columns[i]!))).join(", ")})`).join(", ")
  return `(values ${values}) as t(${names})`
}

const fieldOf = (expr: Expr, s: Sql & { readonly column?: TapSchema.Column; readonly func?: string }, alias: Identifier | null): Field => {
  const c = s.column
  const name = alias?.name ?? (c !== undefined && s.func === undefined ? c.name : s.func ?? "expr")
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
  if (s.kind === "str") return { name, datatype: "char", arraysize: "*" }
  if (s.func === "count") return { name, datatype: "long" }
  if (s.predicate !== undefined) return { name, datatype: "int" }
  if (expr.type === "num" && expr.integer) return { name, datatype: "long" }
  return { name, datatype: "double" }
}

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
    const source = sourceSql(t, table!)
    const items: Array<{ sql: string; field: Field }> = []
    for (const item of query.items) {
      if (item.type === "star") {
        if (item.qualifier !== undefined) t.column([item.qualifier, { name: table!.columns[0]!.name, delimited: true }])
        for (const c of table!.columns) {
          items.push({
            sql: `t.${quote(c.name)}`,
            field: fieldOf({ type: "col", parts: [] }, { sql: "", kind: "num", aggregate: false, column: c }, null)
          })
        }
        continue
      }
      const s = t.expr(item.expr, true)
      if (s.geometry !== undefined) {
        fail(`${s.kind.toUpperCase()} cannot be selected: select s_ra, s_dec and s_region, or DISTANCE(...), AREA(...), COORD1(...)`)
      }
      items.push({ sql: s.sql, field: fieldOf(item.expr, s, item.alias) })
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
    const access = table!.restricted ? accessSql(t, options.access) : "true"
    const groupBy = query.groupBy === null ? "" : ` group by ${query.groupBy.map((e) => byAlias(e) ?? t.expr(e, false).sql).join(", ")}`
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
        return `${byAlias(o.expr) ?? t.expr(o.expr, true).sql}${o.desc ? " desc" : ""}`
      }).join(", ")
    }`
    if (query.offset !== null && !Number.isSafeInteger(query.offset)) fail("OFFSET is too large")
    const maxrec = Math.min(options.maxrec, query.top ?? Number.POSITIVE_INFINITY)
    const fetch = query.top !== null && query.top <= options.maxrec ? query.top : options.maxrec + 1
    const text = `select ${query.distinct ? "distinct " : ""}${items.map((i, n) => `${i.sql} as "c${n + 1}"`).join(", ")} from ${source}` +
      ` where (${access})${where}${groupBy}${having}${orderBy} limit ${fetch}${query.offset === null ? "" : ` offset ${query.offset}`}`
    return Either.right({ text, params: t.params, fields: items.map((i) => i.field), fetch, maxrec })
  } catch (e) {
    if (e instanceof Fail) return Either.left(new AdqlError({ message: e.message }))
    throw e
  }
}
