/**
 * The one generic repository the ops-db modules share: insert a row through the model's insert
 * variant and read rows back through the model, so every row that leaves the database is
 * decoded. Constraint violations become `ConstraintError`s; a row that does not decode is a
 * defect (the schema and the migration disagree), not an error a caller could handle.
 */
import type * as Model from "@effect/sql/Model"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as ConstraintError from "../ConstraintError.js"

/** Small typed access to one table. */
export interface Repository<S extends Model.AnyNoContext> {
  /** The table's name. */
  readonly table: string
  /** Inserts a row and returns it as stored (with the database's defaults). */
  readonly insert: (
    value: S["insert"]["Type"]
  ) => Effect.Effect<S["Type"], ConstraintError.ConstraintError | SqlError, SqlClient.SqlClient>
  /** The row with this id, if any. */
  readonly findById: (
    id: S["Type"] extends { readonly id: infer I } ? I : never
  ) => Effect.Effect<Option.Option<S["Type"]>, SqlError, SqlClient.SqlClient>
  /** The rows whose column equals the value, oldest first. */
  readonly listBy: <K extends keyof S["Type"] & string>(
    column: K,
    value: S["Type"][K]
  ) => Effect.Effect<ReadonlyArray<S["Type"]>, SqlError, SqlClient.SqlClient>
  /** Every row (for small tables: sites, locations, routes). */
  readonly list: Effect.Effect<ReadonlyArray<S["Type"]>, SqlError, SqlClient.SqlClient>
}

/** A repository for `Model` stored in `table`, its rows ordered by `orderBy` when listed. */
export const make = <S extends Model.AnyNoContext>(
  model: S,
  table: string,
  options: { readonly orderBy?: string } = {}
): Repository<S> => {
  const encodeInsert = Schema.encode(model.insert as Schema.Schema<unknown, Record<string, unknown>>)
  const decodeRow = Schema.decodeUnknown(model as unknown as Schema.Schema<S["Type"], unknown>)
  const decodeRows = Schema.decodeUnknown(Schema.Array(model as unknown as Schema.Schema<S["Type"], unknown>))
  const span = `Repository.${table}`
  const orderBy = options.orderBy ?? ("createdAt" in model.fields ? "createdAt" : undefined)

  const insert: Repository<S>["insert"] = (value) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const row = yield* Effect.orDie(encodeInsert(value))
      const rows = yield* ConstraintError.refine(sql`insert into ${sql(table)} ${sql.insert(row).returning("*")}`)
      return yield* Effect.orDie(decodeRow(rows[0]))
    }).pipe(Effect.withSpan(`${span}.insert`))

  const findById: Repository<S>["findById"] = (id) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql`select * from ${sql(table)} where id = ${id as string}`
      return rows.length === 0 ? Option.none() : Option.some(yield* Effect.orDie(decodeRow(rows[0])))
    }).pipe(Effect.withSpan(`${span}.findById`))

  const order = (sql: SqlClient.SqlClient) => (orderBy === undefined ? sql.literal("") : sql`order by ${sql(orderBy)}`)

  const listBy: Repository<S>["listBy"] = (column, value) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql`select * from ${sql(table)} where ${sql(column)} = ${value as string} ${order(sql)}`
      return yield* Effect.orDie(decodeRows(rows))
    }).pipe(Effect.withSpan(`${span}.listBy`))

  const list: Repository<S>["list"] = Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql`select * from ${sql(table)} ${order(sql)}`
    return yield* Effect.orDie(decodeRows(rows))
  }).pipe(Effect.withSpan(`${span}.list`))

  return { table, insert, findById, listBy, list }
}
