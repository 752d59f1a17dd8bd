/**
 * Column schemas shared by the ops-db entities. Each entity is a `Model.Class` (a Schema.Class
 * with variants): the class decodes a selected row, `.insert` encodes a new row, `.json` is the
 * shape the HTTP API sends. Timestamps are `Date` in SQL and ISO strings in JSON, so a field
 * says both once here instead of every entity repeating it.
 */
import * as Model from "@effect/sql/Model"
import * as Schema from "effect/Schema"

/** A byte count: a non-negative integer, exact up to 9 PB (the `byte_size` domain in SQL). */
export const ByteSize = Schema.NonNegativeInt.annotations({ identifier: "ByteSize" })
/** A byte count. */
export type ByteSize = typeof ByteSize.Type

/** A human-readable name (1 to 200 characters; the `display_name` domain in SQL). */
export const DisplayName = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)).annotations({
  identifier: "DisplayName"
})

/** Free JSON metadata: always an object, so it can grow keys without a migration. */
export const JsonObject = Schema.Record({ key: Schema.String, value: Schema.Unknown }).annotations({
  identifier: "JsonObject"
})
/** Free JSON metadata. */
export type JsonObject = typeof JsonObject.Type

/** A timestamp the caller supplies: a `Date` to and from SQL, an ISO string in JSON. */
export const Timestamp = Model.Field({
  select: Model.DateTimeFromDate,
  insert: Model.DateTimeFromDate,
  update: Model.DateTimeFromDate,
  json: Schema.DateTimeUtc,
  jsonCreate: Schema.DateTimeUtc,
  jsonUpdate: Schema.DateTimeUtc
})

/** A timestamp that may be absent (an observation still running, a copy never verified). */
export const TimestampOrNull = Model.Field({
  select: Schema.NullOr(Model.DateTimeFromDate),
  insert: Schema.NullOr(Model.DateTimeFromDate),
  update: Schema.NullOr(Model.DateTimeFromDate),
  json: Schema.NullOr(Schema.DateTimeUtc),
  jsonCreate: Schema.NullOr(Schema.DateTimeUtc),
  jsonUpdate: Schema.NullOr(Schema.DateTimeUtc)
})

/** A timestamp the database sets (`default now()`): read, never written by the caller. */
export const GeneratedTimestamp = Model.Field({
  select: Model.DateTimeFromDate,
  json: Schema.DateTimeUtc
})

/** A nullable timestamp only the workflow sets (by a transition), never the creator of the row. */
export const WorkflowTimestamp = Model.Field({
  select: Schema.NullOr(Model.DateTimeFromDate),
  update: Schema.NullOr(Model.DateTimeFromDate),
  json: Schema.NullOr(Schema.DateTimeUtc)
})

/**
 * A column the database fills on insert (the machine's initial state, a zero counter) and only
 * transitions change afterwards: present when reading, absent when creating.
 */
export const Workflow = Model.FieldExcept("insert", "jsonCreate")
