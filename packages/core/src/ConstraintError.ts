/**
 * The ops-db refused a row. The database keeps the data consistent (DESIGN §4), so a bad or
 * duplicate row fails there; this error carries which rule it broke, so the API can answer a
 * conflicting re-file with 409 and bad input with 400 instead of a bare SQL error.
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

/** Which kind of rule the row broke. */
export const Reason = Schema.Literal(
  "UniqueViolation",
  "ForeignKeyViolation",
  "CheckViolation",
  "NotNullViolation",
  "InvalidValue"
)
/** Which kind of rule the row broke. */
export type Reason = typeof Reason.Type

/** A row refused by a constraint of the ops-db. */
export class ConstraintError extends Schema.TaggedError<ConstraintError>()("ConstraintError", {
  reason: Reason,
  table: Schema.optional(Schema.String),
  constraint: Schema.optional(Schema.String),
  detail: Schema.String
}) {
  /** A readable account of what was refused. */
  override get message(): string {
    const where = [this.table, this.constraint].filter((s) => s !== undefined).join(".")
    return `${this.reason}${where === "" ? "" : ` (${where})`}: ${this.detail}`
  }
}

const reasons: Record<string, Reason> = {
  "23505": "UniqueViolation",
  "23503": "ForeignKeyViolation",
  "23514": "CheckViolation",
  "23502": "NotNullViolation",
  "22P02": "InvalidValue",
  "22001": "InvalidValue",
  "22003": "InvalidValue",
  "22007": "InvalidValue",
  "22008": "InvalidValue",
  "22021": "InvalidValue"
}

interface PgErrorLike {
  readonly code?: unknown
  readonly table?: unknown
  readonly constraint?: unknown
  readonly detail?: unknown
  readonly message?: unknown
}

/** The ConstraintError an SqlError stands for, or undefined when it is some other failure. */
export const fromSqlError = (error: SqlError): ConstraintError | undefined => {
  const cause = error.cause as PgErrorLike | undefined
  const code = typeof cause?.code === "string" ? cause.code : undefined
  const reason = code === undefined ? undefined : reasons[code]
  if (reason === undefined) return undefined
  const text = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined)
  const table = text(cause?.table)
  const constraint = text(cause?.constraint)
  return new ConstraintError({
    reason,
    ...(table !== undefined ? { table } : {}),
    ...(constraint !== undefined ? { constraint } : {}),
    detail: [text(cause?.message), text(cause?.detail)].filter((s) => s !== undefined).join("; ")
  })
}

/** Turns the SqlErrors of an effect that are constraint violations into ConstraintErrors. */
export const refine = <A, E, R>(
  effect: Effect.Effect<A, E | SqlError, R>
): Effect.Effect<A, E | SqlError | ConstraintError, R> =>
  Effect.catchIf(
    effect,
    (e): e is SqlError => (e as { _tag?: unknown })._tag === "SqlError",
    (e) => {
      const refined = fromSqlError(e)
      return Effect.fail(refined ?? e)
    }
  )
