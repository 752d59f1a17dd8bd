/**
 * Cursor pagination shared by every list endpoint: `?limit=&cursor=` in, `{ items, nextCursor }`
 * out. The cursor is opaque to callers (the server encodes the position of the last item), so
 * rows filed while a caller pages are neither skipped nor repeated, which offsets cannot promise.
 */
import * as Schema from "effect/Schema"

/** The most items one page may hold. */
export const maxLimit = 1000

/** Items per page when the caller does not say. */
export const defaultLimit = 100

/** How many items to return: an integer from 1 to 1000, from the query string. */
export const Limit = Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, maxLimit)).annotations({
  identifier: "Limit",
  description: `items per page, 1 to ${maxLimit} (default ${defaultLimit})`
})

/** The query parameters every list endpoint takes. */
export const PageParams = {
  limit: Schema.optional(Limit),
  /** The `nextCursor` of the previous page. */
  cursor: Schema.optional(Schema.String.pipe(Schema.maxLength(512)))
}

/** A page of items and the cursor of the next one (null on the last page). */
export const Page = <A, I, R>(item: Schema.Schema<A, I, R>) =>
  Schema.Struct({ items: Schema.Array(item), nextCursor: Schema.NullOr(Schema.String) })

/** A page of items. */
export interface Page<A> {
  readonly items: ReadonlyArray<A>
  readonly nextCursor: string | null
}
