/**
 * The main server's `Idempotency-Key` handling: records in the ops-db's `idempotency_key`,
 * callers scoped by account (so a token rotated between a request and its retry still replays),
 * retention from `CCAT_IDEMPOTENCY_RETENTION` (default 7 days: an outbox at the telescope may
 * retry after a link outage of days; past that, a retry runs again, which filing by the
 * instrument's UUIDs answers the same way). A keyed request from an admin account (a relay) that
 * names, in `CCAT-On-Behalf-Of`, the instrument's account it forwards for has that account
 * recorded in the details of every event the request writes (`onBehalfOf`, migration 0010);
 * the event's actor stays the relay's account.
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { authenticate } from "../auth/Authentication.js"
import * as Idempotency from "./Idempotency.js"

/** The ops-db table of records. */
export const table = "idempotency_key"

/** How long keys are remembered, and how often expired ones are purged. */
export const config = Config.all({
  retention: Config.duration("CCAT_IDEMPOTENCY_RETENTION").pipe(Config.withDefault(Duration.days(7))),
  purgeEvery: Config.duration("CCAT_IDEMPOTENCY_PURGE_EVERY").pipe(Config.withDefault(Duration.minutes(10)))
})

/** The header in which a relay names the account it forwards a request for (as Node lower-cases it). */
export const onBehalfOfHeader = "ccat-on-behalf-of"

/** What an account name in the header may be: printable ASCII without spaces, 1 to 200 characters (a header carries no more). */
export const onBehalfOfPattern = /^[\x21-\x7e]{1,200}$/

/** Marks the request's transaction so its events name the account it was relayed for (migration 0010). */
const markRelayed = (name: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`select set_config('ccat.on_behalf_of', ${name}, true)`).pipe(Effect.orDie, Effect.asVoid)

/**
 * The caller of a request with a bearer token the ops-db knows, scoped `account:<id>`; an admin
 * caller's `CCAT-On-Behalf-Of` is honoured (anyone else's is ignored: only a relay forwards).
 */
export const accountScope = (
  request: HttpServerRequest.HttpServerRequest
): Effect.Effect<Option.Option<Idempotency.Caller>, never, SqlClient.SqlClient> => {
  const auth = request.headers.authorization ?? ""
  if (!auth.toLowerCase().startsWith("bearer ")) return Effect.succeedNone
  return authenticate(auth.slice(7).trim()).pipe(
    Effect.map((p) => {
      const forWhom = request.headers[onBehalfOfHeader]
      const relayed = p.role === "admin" && forWhom !== undefined && onBehalfOfPattern.test(forWhom)
      return Option.some<Idempotency.Caller>({ scope: `account:${p.accountId}`, begin: relayed ? markRelayed(forWhom) : undefined })
    }),
    Effect.catchTag("Unauthorized", () => Effect.succeedNone)
  )
}

/** The middleware for the main server, given the body limit and the retention. */
export const middleware = (options: { readonly maxBodyBytes: number; readonly retention: Duration.DurationInput }) =>
  Idempotency.middleware({
    table,
    retention: options.retention,
    lease: Duration.minutes(2),
    wait: Duration.seconds(30),
    maxBodyBytes: options.maxBodyBytes,
    scopeOf: accountScope
  })
