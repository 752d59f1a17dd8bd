/**
 * The main server's `Idempotency-Key` handling: records in the ops-db's `idempotency_key`,
 * callers scoped by account (so a token rotated between a request and its retry still replays),
 * retention from `CCAT_IDEMPOTENCY_RETENTION` (default 7 days: an outbox at the telescope may
 * retry after a link outage of days; past that, a retry runs again, which filing by the
 * instrument's UUIDs answers the same way).
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as SqlClient from "@effect/sql/SqlClient"
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

/** The caller of a request with a bearer token the ops-db knows, as `account:<id>`. */
export const accountScope = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<Option.Option<string>, never, SqlClient.SqlClient> => {
  const auth = request.headers.authorization ?? ""
  if (!auth.toLowerCase().startsWith("bearer ")) return Effect.succeedNone
  return authenticate(auth.slice(7).trim()).pipe(
    Effect.map((p) => Option.some(`account:${p.accountId}`)),
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
