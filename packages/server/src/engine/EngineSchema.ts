/**
 * What a job engine finds of its schema when it starts, read in one statement. On an ops-db
 * where pg-boss is installed at the version this release runs, with the lease table and the
 * ready trigger made, a start has nothing to install, migrate or create, so it needs neither the
 * start lock nor any of the statements that would make them: from a site 220 ms away each one
 * is a round trip, and the start of a site's workers after a partition waits for every one.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { createRequire } from "node:module"

const require = createRequire(import.meta.url)

/** The schema version of the pinned pg-boss release: a start at another version installs or migrates. */
export const pgBossSchemaVersion: number = (require("pg-boss/version.json") as { schema: number }).schema

/** The job engine's schema as a start found it. */
export interface Found {
  /** pg-boss's schema version. */
  readonly version: number
  /** The queues that exist. */
  readonly queues: ReadonlyArray<string>
  /** Whether the lease table and its index exist. */
  readonly leases: boolean
  /** Whether the ready trigger exists. */
  readonly readyTrigger: boolean
}

/**
 * Reads the job engine's schema in one statement; `undefined` when pg-boss was never installed
 * (its tables missing make the statement fail, outside any transaction) or the look failed: the
 * start then takes the full path, which installs what is missing and reports what is wrong.
 */
export const look: Effect.Effect<Found | undefined, never, SqlClient.SqlClient> = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    sql.unsafe<{ version: number; queues: ReadonlyArray<string>; leases: boolean; ready: boolean }>(
      `select v.version::int as version,
       array(select q.name from pgboss.queue q order by q.name) as queues,
       to_regclass('pgboss.ccat_job_lease') is not null and to_regclass('pgboss.ccat_job_lease_worker') is not null as leases,
       exists (select 1 from pg_trigger where tgname = 'ccat_job_ready' and tgrelid = to_regclass('pgboss.job')) as ready
     from pgboss.version v`
    ).withoutTransform
).pipe(
  Effect.map(([row]): Found | undefined =>
    row === undefined ? undefined : { version: row.version, queues: row.queues, leases: row.leases, readyTrigger: row.ready }
  ),
  Effect.orElseSucceed(() => undefined),
  Effect.withSpan("EngineSchema.look")
)

/** Whether `found` needs nothing made: pg-boss at this release's version, the lease table and the ready trigger present. */
export const current = (found: Found | undefined): found is Found =>
  found !== undefined && found.version === pgBossSchemaVersion && found.leases && found.readyTrigger

/**
 * pg-boss's start asks whether its schema is installed and at which version, two statements in
 * a row; `found` already says. Returns the answers to exactly those two statements (the texts
 * pg-boss's own plans give for `schema`), each given once: any other statement, or a later ask,
 * goes to the database.
 */
export const startAnswers = (schema: string, found: Found): Map<string, ReadonlyArray<Record<string, unknown>>> => {
  const plans = require("pg-boss/src/plans.js") as { versionTableExists: (s: string) => string; getVersion: (s: string) => string }
  return new Map<string, ReadonlyArray<Record<string, unknown>>>([
    [plans.versionTableExists(schema), [{ name: `${schema}.version` }]],
    [plans.getVersion(schema), [{ version: String(found.version) }]]
  ])
}
