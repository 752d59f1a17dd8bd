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
import * as EventLog from "../EventLog.js"

/** Small typed access to one table. */
export interface Repository<S extends Model.AnyNoContext> {
  /** The table's name. */
  readonly table: string
  /**
   * Inserts a row and returns it as stored (with the database's defaults); for a logged entity,
   * with its creation event naming `event`'s actor and details, in the same statement.
   */
  readonly insert: (
    value: S["insert"]["Type"],
    event?: CreationEvent
  ) => Effect.Effect<S["Type"], ConstraintError.ConstraintError | SqlError, SqlClient.SqlClient>
  /**
   * Inserts a row whose id the caller made (an instrument filing an observation or a file), or,
   * when a row with that id already exists, returns it if it holds the same values: filing twice
   * stores once. A different row under the same id or the same other unique key is a
   * `ConstraintError` with reason UniqueViolation (DESIGN §4.6).
   */
  readonly insertIdempotent: (
    value: S["insert"]["Type"],
    event?: CreationEvent
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

/** How a repository is made. */
export interface Options {
  /** The column rows are listed by (default `createdAt` when the model has one). */
  readonly orderBy?: string
  /**
   * For a stateful entity: its kind and state column, so that creating a row also appends its
   * creation event (`from_state` null) in the same transaction, and the log covers a row's whole life.
   */
  readonly events?: { readonly kind: EventLog.LoggedEntityKind; readonly column: string }
}

/** Who created a row and why, for its creation event (`system` and no details when unsaid). */
export interface CreationEvent {
  readonly actor?: string | undefined
  readonly details?: Readonly<Record<string, unknown>> | undefined
}

/** A repository for `Model` stored in `table`. */
export const make = <S extends Model.AnyNoContext>(model: S, table: string, options: Options = {}): Repository<S> => {
  const encodeInsert = Schema.encode(model.insert as Schema.Schema<unknown, Record<string, unknown>>)
  const decodeRow = Schema.decodeUnknown(model as unknown as Schema.Schema<S["Type"], unknown>)
  const decodeRows = Schema.decodeUnknown(Schema.Array(model as unknown as Schema.Schema<S["Type"], unknown>))
  const span = `Repository.${table}`
  const orderBy = options.orderBy ?? ("createdAt" in model.fields ? "createdAt" : undefined)

  const events = options.events
  /**
   * The insert of `row`, returning the stored rows; for a stateful entity with the creation event
   * of each row in the same statement (atomic in or out of a caller's transaction, and one round
   * trip to the ops-db where a transaction or savepoint around two statements took four).
   */
  const inserting = (
    sql: SqlClient.SqlClient,
    row: Record<string, unknown>,
    onConflict: "fail" | "skip",
    event: CreationEvent | undefined
  ) => {
    const skip = onConflict === "skip" ? sql.literal("on conflict do nothing") : sql.literal("")
    if (events === undefined) return sql<Record<string, unknown>>`insert into ${sql(table)} ${sql.insert(row)} ${skip} returning *`
    return sql<Record<string, unknown>>`
      with inserted as (insert into ${sql(table)} ${sql.insert(row)} ${skip} returning *),
      logged as (${
        EventLog.appendFrom(sql, {
          kind: events.kind,
          rows: "inserted",
          from: null,
          to: { column: events.column },
          actor: event?.actor,
          details: event?.details
        })
      })
      select * from inserted`
  }

  const insert: Repository<S>["insert"] = (value, event) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const row = yield* Effect.orDie(encodeInsert(value))
      const rows = yield* ConstraintError.refine(inserting(sql, row, "fail", event))
      return yield* Effect.orDie(decodeRow(rows[0]))
    }).pipe(Effect.withSpan(`${span}.insert`))

  const insertIdempotent: Repository<S>["insertIdempotent"] = (value, event) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const row = yield* Effect.orDie(encodeInsert(value))
      const inserted = yield* ConstraintError.refine(inserting(sql, row, "skip", event))
      if (inserted.length > 0) return yield* Effect.orDie(decodeRow(inserted[0]))
      const existing = yield* sql`select * from ${sql(table)} where id = ${row.id as string}`
      if (existing.length > 0) {
        const stored = yield* Effect.orDie(decodeRow(existing[0]))
        const storedRow = yield* Effect.orDie(encodeInsert(stored))
        if (canonical(storedRow) === canonical(row)) return stored
      }
      return yield* new ConstraintError.ConstraintError({
        reason: "UniqueViolation",
        table,
        detail: existing.length > 0
          ? `a different row was already stored with id ${String(row.id)}`
          : `another row already holds a unique key of this one (id ${String(row.id)})`
      })
    }).pipe(Effect.withSpan(`${span}.insertIdempotent`))

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
      const field = model.fields[column] as Schema.Schema<unknown, unknown> | undefined
      const encoded = field === undefined ? value : yield* Effect.orDie(Schema.encodeUnknown(field)(value))
      const rows = yield* sql`select * from ${sql(table)} where ${sql(column)} = ${encoded as string} ${order(sql)}`
      return yield* Effect.orDie(decodeRows(rows))
    }).pipe(Effect.withSpan(`${span}.listBy`))

  const list: Repository<S>["list"] = Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql`select * from ${sql(table)} ${order(sql)}`
    return yield* Effect.orDie(decodeRows(rows))
  }).pipe(Effect.withSpan(`${span}.list`))

  return { table, insert, insertIdempotent, findById, listBy, list }
}

/** JSON with sorted keys, so jsonb's own key order does not make equal rows look different. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Date)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v)
