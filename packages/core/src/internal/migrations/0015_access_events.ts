/**
 * Access changes join the event log: an account created, disabled or enabled, a grant given or
 * taken back, a token issued or revoked are recorded with who did it, in the transaction that
 * makes the change, so "who could file for this instrument last March" has an answer. Only the
 * enum grows; the values are usable once the migration's transaction commits.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** Adds `Account` and `ApiToken` to the event log's entity kinds. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.zipRight(
    sql.unsafe(`alter type entity_kind add value if not exists 'Account'`).raw,
    sql.unsafe(`alter type entity_kind add value if not exists 'ApiToken'`).raw
  )).pipe(Effect.asVoid)
