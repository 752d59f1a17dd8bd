/**
 * Several statements sent as one query string: PostgreSQL runs them in one implicit transaction
 * (all committed at the end, or none), each with a snapshot of its own taken when it starts, and
 * answers in one round trip. So a lock taken by the first statement is held until the last one
 * has run, and the later statements see everything committed before the lock was granted: the
 * lock, the checks made under it and the change they allow cost a site far from the ops-db one
 * round trip instead of a transaction's five. Such a query uses the simple protocol, which
 * carries no parameters, so the statements' parameters are written into the text as literals
 * (strings quoted by node-postgres's own `escapeLiteral`).
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Statement } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import pg from "pg"

/** A parameter as an SQL literal. */
const literal = (value: unknown): string => {
  if (value === null || value === undefined) return "null"
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`cannot write ${value} into a statement`)
    return String(value)
  }
  if (typeof value === "bigint") return value.toString()
  if (typeof value === "boolean") return value ? "true" : "false"
  if (value instanceof Date) return pg.escapeLiteral(value.toISOString())
  if (typeof value === "string") return pg.escapeLiteral(value)
  if (value instanceof Uint8Array) throw new Error("cannot write bytes into a statement")
  return pg.escapeLiteral(JSON.stringify(value))
}

/**
 * The statement's text with each `$n` outside a quoted string replaced by its parameter. Our own
 * statements only: their text has no dollar-quoted bodies and no backslash escapes in literals.
 */
export const inlined = (statement: Statement<unknown>): string => {
  const [text, params] = statement.compile(true)
  let out = ""
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (c === "'") quoted = !quoted
    const digits = !quoted && c === "$" ? /^\d+/.exec(text.slice(i + 1))?.[0] : undefined
    if (digits === undefined) {
      out += c
      continue
    }
    const n = Number(digits)
    if (n < 1 || n > params.length) throw new Error(`statement parameter $${n} has no value (${params.length} given)`)
    out += literal(params[n - 1])
    i += digits.length
  }
  return out
}

/**
 * Runs `statements` as one query string in one round trip and returns each one's rows, in
 * order. Not for a pooled client inside a transaction of another kind: the statements join the
 * surrounding transaction when there is one.
 */
export const run = (sql: SqlClient.SqlClient, statements: ReadonlyArray<Statement<unknown>>) =>
  Effect.suspend(() => {
    const text = statements.map(inlined).join(";\n")
    return Effect.map(sql.unsafe(text).withoutTransform, (results) =>
      // one statement answers with its rows, several with a list of each one's rows
      (statements.length === 1 ? [results] : results) as unknown as ReadonlyArray<ReadonlyArray<Record<string, unknown>>>)
  })
