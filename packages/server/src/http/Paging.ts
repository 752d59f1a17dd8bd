/**
 * Keyset pagination for the list endpoints: rows ordered by a timestamp column and the id, the
 * cursor the last row's position. The position is taken as PostgreSQL's own text of the
 * timestamp (microseconds), because a JavaScript Date would round it and repeat rows.
 */
import { ApiErrors, ApiPage } from "@ccat/core"
import type { Fragment } from "@effect/sql/Statement"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

const Position = Schema.Tuple(Schema.String, Schema.UUID)

const encodeCursor = (key: string, id: string): string => Buffer.from(JSON.stringify([key, id])).toString("base64url")

/** Reads a cursor back, or fails with a 422 that says it is not one of ours. */
const decodeCursor = (cursor: string) =>
  Effect.try(() => JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown).pipe(
    Effect.flatMap(Schema.decodeUnknown(Position)),
    Effect.mapError(() =>
      new ApiErrors.Unprocessable({
        reason: "Invalid",
        field: "cursor",
        message: "the cursor is not one this server gave out; start again without it"
      })
    )
  )

/** One page of a table's rows, filtered by `where` (and one of `anyOf`), decoded by `decode`. */
export const page = <A, R = never>(options: {
  readonly table: string
  /** A timestamptz column of the table, the first sort key. */
  readonly orderBy: string
  readonly where: ReadonlyArray<Fragment>
  /**
   * Conditions of which a row must meet at least one. Each is read as its own ordered branch
   * (rows meeting an earlier one left out of a later one) and the branches merged, so each can
   * walk an index of its own in page order: an `or` in `where` would read every matching row
   * and sort them.
   */
  readonly anyOf?: ReadonlyArray<Fragment> | undefined
  readonly limit: number | undefined
  readonly cursor: string | undefined
  readonly decode: (rows: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<A>, never, R>
}) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const limit = options.limit ?? ApiPage.defaultLimit
    const where = [...options.where]
    if (options.cursor !== undefined) {
      const [key, id] = yield* decodeCursor(options.cursor)
      where.push(sql`(t.${sql(options.orderBy)}, t.id) > (${key}::timestamptz, ${id}::uuid)`)
    }
    const order = sql`order by t.${sql(options.orderBy)}, t.id limit ${limit + 1}`
    const anyOf = options.anyOf ?? []
    const branch = (i: number) =>
      sql`(select t.* from ${sql(options.table)} t where ${
        sql.and([...where, anyOf[i], ...anyOf.slice(0, i).map((earlier) => sql`(${earlier}) is not true`)])
      } ${order})`
    const from = anyOf.length === 0
      ? sql`${sql(options.table)} t where ${sql.and(where)}`
      : sql`(${sql.join(" union all ", false)(anyOf.map((_, i) => branch(i)))}) t`
    const rows = yield* sql<Record<string, unknown> & { readonly pageKey: string; readonly id: string }>`
      select t.*, t.${sql(options.orderBy)}::text as page_key from ${from} ${order}`.pipe(Effect.orDie)
    const more = rows.length > limit
    const kept = more ? rows.slice(0, limit) : rows
    const last = kept[kept.length - 1]
    const items = yield* options.decode(kept)
    return { items, nextCursor: more && last !== undefined ? encodeCursor(last.pageKey, last.id) : null } satisfies ApiPage.Page<A>
  })
