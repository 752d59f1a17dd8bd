/**
 * Running a TAP query: the request's parameters checked (REQUEST, LANG, QUERY, MAXREC, FORMAT or
 * RESPONSEFORMAT), the ADQL parsed and translated for the caller, the SQL run read-only with a
 * statement timeout, and the rows written as VOTable or CSV. Every refusal is an `AdqlError` with
 * a message for the astronomer; a database failure is reported without the SQL.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as ScienceAccess from "../science/ScienceAccess.js"
import { AdqlError, parse } from "./Adql.js"
import { type Access, translate } from "./AdqlTranslate.js"
import * as Votable from "./Votable.js"

/** The service's limits. */
export interface TapLimits {
  /** Rows returned when the request gives no MAXREC. */
  readonly defaultMaxrec: number
  /** The most rows any request may have. */
  readonly hardMaxrec: number
  /** How long a synchronous query may run. */
  readonly syncTimeout: Duration.Duration
  /** How long an asynchronous query may run, unless its job asks for less. */
  readonly asyncTimeout: Duration.Duration
}

/** The limits from the environment: `CCAT_TAP_MAXREC`, `CCAT_TAP_MAXREC_HARD`, `CCAT_TAP_SYNC_TIMEOUT`, `CCAT_TAP_ASYNC_TIMEOUT`. */
export const limitsConfig: Config.Config<TapLimits> = Config.all({
  defaultMaxrec: Config.integer("CCAT_TAP_MAXREC").pipe(
    Config.withDefault(10_000),
    Config.validate({ message: "CCAT_TAP_MAXREC must be 0 or more", validation: (n) => n >= 0 })
  ),
  hardMaxrec: Config.integer("CCAT_TAP_MAXREC_HARD").pipe(
    Config.withDefault(100_000),
    Config.validate({ message: "CCAT_TAP_MAXREC_HARD must be 1 or more", validation: (n) => n >= 1 })
  ),
  syncTimeout: Config.duration("CCAT_TAP_SYNC_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30))),
  asyncTimeout: Config.duration("CCAT_TAP_ASYNC_TIMEOUT").pipe(Config.withDefault(Duration.minutes(10)))
})

/** Who asks: no token, or an authenticated account. */
export type Caller = ScienceAccess.Caller

/** Which ObsCore rows a caller sees: public ones, plus its programs (scientists) or instruments; operators and admins all. */
export const accessOf = (caller: Caller): Access => {
  if (caller.kind === "anonymous") return { kind: "public" }
  const p = caller.principal
  if (p.role === "operator" || p.role === "admin") return { kind: "all" }
  return p.role === "instrument" ? { kind: "instruments", ids: p.instrumentIds } : { kind: "programs", ids: p.programIds }
}

/** A finished result, ready to send. */
export interface Output {
  readonly body: string
  readonly contentType: string
  readonly rows: number
  readonly overflow: boolean
}

/** The format a request asks for: VOTable unless it asks for CSV. */
export const formatOf = (params: ReadonlyMap<string, string>): Either.Either<"votable" | "csv", AdqlError> => {
  const asked = (params.get("responseformat") ?? params.get("format") ?? "votable").trim().toLowerCase()
  if (
    ["votable", "application/x-votable+xml", "text/xml", "votable/td", "application/x-votable+xml;serialization=tabledata"].includes(
      asked.replaceAll(" ", "")
    )
  ) return Either.right("votable")
  if (["csv", "text/csv", "text/csv;header=present"].includes(asked.replaceAll(" ", ""))) return Either.right("csv")
  return Either.left(
    new AdqlError({ message: `RESPONSEFORMAT ${asked} is not offered: use votable (application/x-votable+xml) or csv (text/csv)` })
  )
}

/** Checks the protocol parameters of a query request, answering the query text and MAXREC to use. */
export const checkParams = (
  params: ReadonlyMap<string, string>,
  limits: TapLimits
): Either.Either<{ readonly query: string; readonly maxrec: number }, AdqlError> => {
  const request = params.get("request")
  if (request !== undefined && request !== "doQuery") {
    return Either.left(new AdqlError({ message: `REQUEST=${request} is not supported: use REQUEST=doQuery (or leave it out)` }))
  }
  const lang = params.get("lang") ?? "ADQL"
  if (!/^ADQL(-2\.[01])?$/i.test(lang)) {
    return Either.left(new AdqlError({ message: `LANG=${lang} is not supported: this service speaks ADQL (2.0 and 2.1)` }))
  }
  const query = params.get("query")
  if (query === undefined || query.trim() === "") {
    return Either.left(new AdqlError({ message: "QUERY is missing: send an ADQL SELECT in the QUERY parameter" }))
  }
  const text = params.get("maxrec")
  let maxrec = limits.defaultMaxrec
  if (text !== undefined && text.trim() !== "") {
    if (!/^\s*\d+\s*$/.test(text)) {
      return Either.left(new AdqlError({ message: `MAXREC must be a whole number of rows, not ${JSON.stringify(text)}` }))
    }
    maxrec = Number(text)
  }
  return Either.right({ query, maxrec: Math.min(maxrec, limits.hardMaxrec) })
}

/** Runs a checked query for a caller within a timeout, in the asked format. */
export const run = Effect.fn("Tap.run")(function* (input: {
  readonly query: string
  readonly maxrec: number
  readonly format: "votable" | "csv"
  readonly caller: Caller
  readonly timeout: Duration.Duration
}) {
  const parsed = yield* parse(input.query)
  const translation = yield* translate(parsed, { access: accessOf(input.caller), maxrec: input.maxrec })
  const sql = yield* SqlClient.SqlClient
  const ms = Math.max(1, Math.round(Duration.toMillis(input.timeout)))
  const rows = yield* sql.withTransaction(Effect.gen(function* () {
    yield* sql.unsafe("set transaction read only")
    yield* sql.unsafe(`set local statement_timeout = ${ms}`)
    return yield* sql.unsafe(translation.text, translation.params as Array<any>).values
  })).pipe(Effect.catchAll((e) => Effect.fail(databaseError(e, ms))))
  const overflow = rows.length > translation.maxrec
  const kept = overflow ? rows.slice(0, translation.maxrec) : rows
  const body = input.format === "csv"
    ? Votable.csv(translation.fields, kept)
    : Votable.results(translation.fields, kept, { overflow, query: input.query })
  return {
    body,
    contentType: input.format === "csv" ? Votable.csvContentType : Votable.contentType,
    rows: kept.length,
    overflow
  } satisfies Output
})

// A query the database refused: its message (a type or grouping mistake ADQL allowed), never the SQL.
const databaseError = (e: unknown, ms: number): AdqlError => {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause
  if (cause?.code === "57014") {
    return new AdqlError({
      message: `the query ran longer than ${ms / 1000} s and was cancelled: narrow it (a cone, a time range, TOP) or run it asynchronously`
    })
  }
  const message = (cause?.message ?? "").replace(/"c(\d+)"/g, "select item $1")
  const queryFault = cause?.code !== undefined && /^(42|22)/.test(cause.code)
  return new AdqlError({
    message: `the database could not run the query${message === "" ? "" : `: ${message}`}`,
    ...(queryFault ? {} : { fault: "service" as const })
  })
}
