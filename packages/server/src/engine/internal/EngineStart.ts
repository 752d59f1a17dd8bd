/**
 * What the job engine's start needs beside pg-boss: a lock so that processes starting together
 * install pg-boss's schema one after the other, and the connection that wakes idle workers.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import pg from "pg"
import type { JobEngineOptions } from "../JobQueue.js"
import { JobQueueError } from "../JobQueueError.js"
import * as JobStatements from "../JobStatements.js"
import * as Wakeups from "../Wakeups.js"

/** The `application_name` of the connection that listens for ready jobs. */
export const wakeupsApplication = "ccat job wake-ups"

/**
 * The wake-ups of a process: a listening connection of its own, made like the ops-db client's
 * (a client that is not PostgreSQL's, or none asked for, leaves workers to their poll).
 */
export const wakeupsOf = (options: JobEngineOptions) =>
  Effect.gen(function* () {
    const client = yield* Effect.serviceOption(PgClient.PgClient)
    if (options.wakeups === false || client._tag === "None") return Wakeups.none
    const c = client.value.config
    return yield* Wakeups.make(JobStatements.readyChannel, () =>
      new pg.Client({
        ...(c.url !== undefined ? { connectionString: Redacted.value(c.url) } : {}),
        ...(c.host !== undefined ? { host: c.host } : {}),
        ...(c.port !== undefined ? { port: c.port } : {}),
        ...(c.database !== undefined ? { database: c.database } : {}),
        ...(c.username !== undefined ? { user: c.username } : {}),
        ...(c.password !== undefined ? { password: Redacted.value(c.password) } : {}),
        ...(c.ssl !== undefined ? { ssl: c.ssl } : {}),
        // named so an operator sees it in pg_stat_activity (a URL's own application_name wins)
        application_name: wakeupsApplication,
        keepAlive: true
      }), options.wakeups ?? {})
  })

/**
 * Runs `start` while holding a session advisory lock on a connection of its own, so that processes
 * starting together (a site's workers restarted at once, a fresh deployment) install or migrate
 * pg-boss's schema one after the other. Racing installs are not harmless here: pg-boss sends its
 * install as one `BEGIN; ...; COMMIT` text, and the loser's error would leave a pooled connection
 * inside an aborted transaction, failing whatever runs on it next.
 */
export const oneStartAtATime = <A, E, R>(sql: SqlClient.SqlClient, start: Effect.Effect<A, E, R>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const connection = yield* sql.reserve
      yield* Effect.acquireRelease(
        connection.execute("select pg_advisory_lock(hashtext('ccat.job-engine.start'))", [], undefined),
        () => Effect.ignore(connection.execute("select pg_advisory_unlock(hashtext('ccat.job-engine.start'))", [], undefined))
      )
      return yield* start
    })
  ).pipe(Effect.mapError((e) => (e instanceof JobQueueError ? e : new JobQueueError({ operation: "start", cause: e }))))
