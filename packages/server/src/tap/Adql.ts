/**
 * ADQL queries as this service reads them: the syntax tree the grammar (`AdqlGrammar.ts`, run by
 * peggy) builds, and `parse`, which answers a tree or an `AdqlError` that says where the text
 * went wrong and, for what ADQL has but this service does not (JOIN, UNION, subqueries), that it
 * is not supported rather than a bare syntax error.
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import peggy from "peggy"
import { grammar } from "./AdqlGrammar.js"

/** A query the service refuses: bad syntax, an unknown name, an unsupported form, a bad parameter. */
export class AdqlError extends Data.TaggedError("AdqlError")<{
  readonly message: string
  /** `service` when the fault is the service's (the database unreachable), `busy` when it is full; else the query's. */
  readonly fault?: "service" | "busy"
}> {}

/** A name as written: regular names are folded to lower case, delimited ones kept exactly. */
export interface Identifier {
  readonly name: string
  readonly delimited: boolean
}

/** A value expression. */
export type Expr =
  | { readonly type: "num"; readonly text: string; readonly integer: boolean }
  | { readonly type: "str"; readonly value: string }
  | { readonly type: "null" }
  | { readonly type: "col"; readonly parts: ReadonlyArray<Identifier> }
  | { readonly type: "unary"; readonly op: "-" | "+"; readonly expr: Expr }
  | { readonly type: "binary"; readonly op: "+" | "-" | "*" | "/" | "||"; readonly left: Expr; readonly right: Expr }
  | { readonly type: "func"; readonly name: string; readonly args: ReadonlyArray<Expr>; readonly star: boolean; readonly distinct: boolean }

/** A search condition. */
export type Condition =
  | { readonly type: "and" | "or"; readonly left: Condition; readonly right: Condition }
  | { readonly type: "not"; readonly cond: Condition }
  | { readonly type: "cmp"; readonly op: "=" | "<>" | "<" | ">" | "<=" | ">="; readonly left: Expr; readonly right: Expr }
  | { readonly type: "between"; readonly not: boolean; readonly expr: Expr; readonly low: Expr; readonly high: Expr }
  | { readonly type: "like"; readonly not: boolean; readonly ci: boolean; readonly expr: Expr; readonly pattern: Expr }
  | { readonly type: "in"; readonly not: boolean; readonly expr: Expr; readonly list: ReadonlyArray<Expr> }
  | { readonly type: "isnull"; readonly not: boolean; readonly expr: Expr }

/** One entry of the select list. */
export type SelectItem =
  | { readonly type: "star"; readonly qualifier?: Identifier }
  | { readonly type: "item"; readonly expr: Expr; readonly alias: Identifier | null }

/** A parsed query. */
export interface Query {
  readonly distinct: boolean
  readonly top: number | null
  readonly items: ReadonlyArray<SelectItem>
  readonly from: { readonly name: ReadonlyArray<Identifier>; readonly alias: Identifier | null }
  readonly where: Condition | null
  readonly groupBy: ReadonlyArray<Expr> | null
  readonly having: Condition | null
  readonly orderBy: ReadonlyArray<{ readonly expr: Expr; readonly desc: boolean }> | null
  readonly offset: number | null
}

/** The longest query text accepted. */
export const maxQueryLength = 100_000

let parser: peggy.Parser | undefined
const compiled = (): peggy.Parser => (parser ??= peggy.generate(grammar))

// What ADQL (or SQL) has and this service does not, by the word the parser stopped at.
const unsupported: ReadonlyArray<readonly [RegExp, string]> = [
  [/^(join|inner|left|right|full|natural|cross)\b/i, "JOIN is not supported: a query reads one table (ivoa.obscore or a TAP_SCHEMA table)"],
  [/^,/, "a query reads one table (ivoa.obscore or a TAP_SCHEMA table); a list of tables in FROM is not supported"],
  [/^(union|intersect|except)\b/i, "UNION, INTERSECT and EXCEPT are not supported: send one SELECT"],
  [/^\(\s*select\b/i, "subqueries are not supported: send one SELECT over one table"],
  [/^select\b/i, "subqueries are not supported: send one SELECT over one table"],
  [/^with\b/i, "WITH (common table expressions) is not supported: send one SELECT"],
  [/^;/, "one statement per query: nothing may follow the SELECT"]
]

/** Parses ADQL text into a query, or says why it cannot. */
export const parse = (text: string): Either.Either<Query, AdqlError> => {
  if (text.trim() === "") return Either.left(new AdqlError({ message: "QUERY is empty: send an ADQL SELECT" }))
  if (text.length > maxQueryLength) return Either.left(new AdqlError({ message: `QUERY is longer than ${maxQueryLength} characters` }))
  try {
    return Either.right(compiled().parse(text) as Query)
  } catch (e) {
    const error = e as { location?: { start: { offset: number; line: number; column: number } }; message?: string }
    if (error.location === undefined) return Either.left(new AdqlError({ message: `cannot read the query: ${String(error.message ?? e)}` }))
    const { offset, line, column } = error.location.start
    const rest = text.slice(offset)
    const where = `at line ${line}, column ${column}`
    const found = unsupported.find(([pattern]) => pattern.test(rest))
    if (found !== undefined) return Either.left(new AdqlError({ message: `${found[1]} (${where})` }))
    const near = rest.slice(0, 20).replace(/\s+/g, " ")
    return Either.left(
      new AdqlError({
        message: `ADQL syntax error ${where}${near === "" ? ", at the end of the query" : ` near "${near}"`}: ${error.message ?? ""}`
      })
    )
  }
}
