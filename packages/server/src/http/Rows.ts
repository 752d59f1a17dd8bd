/**
 * Decoding ops-db rows into the domain models for answers. A row that does not decode is a
 * defect (the schema and the migrations disagree), never an error a caller could act on.
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

/** Decodes rows with a model, dying on a mismatch. */
export const decoder = <A, I>(model: Schema.Schema<A, I>) => (rows: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<A>> =>
  Effect.orDie(Schema.decodeUnknown(Schema.Array(model))(rows))

/** Decodes one row with a model, dying on a mismatch. */
export const decodeOne = <A, I>(model: Schema.Schema<A, I>) => (row: unknown): Effect.Effect<A> =>
  Effect.orDie(Schema.decodeUnknown(model)(row))
