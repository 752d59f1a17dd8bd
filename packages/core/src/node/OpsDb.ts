/**
 * The ops-db connection: the PostgreSQL at `DATABASE_URL` when one is given, otherwise the
 * embedded one in the local data folder; migrated before anything uses it.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { MigrationError } from "@effect/sql/Migrator"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as String from "effect/String"
import pg from "pg"
import * as path from "node:path"
import * as Migrations from "../Migrations.js"
import * as EmbeddedDatabase from "./EmbeddedDatabase.js"

/** What the running process is connected to, for the health endpoint and logs. */
export interface OpsDbInfo {
  readonly kind: "embedded" | "external"
  /** Host, port and database, without credentials. */
  readonly target: string
  /** The embedded cluster's folder, when embedded. */
  readonly dataDir?: string
}

/** Tag of the connection description. */
export class OpsDb extends Context.Tag("@ccat/core/OpsDb")<OpsDb, OpsDbInfo>() {}

/** Options of the ops-db layer. */
export interface Options {
  /** A real server's URL; when absent the embedded PostgreSQL is started. */
  readonly databaseUrl?: Redacted.Redacted<string> | undefined
  /** Folder under which the embedded cluster lives (`<dataDir>/postgres`). */
  readonly dataDir: string
  /** Name of the database on the embedded server. */
  readonly database?: string
  /** Whether to apply pending migrations at start (default true). */
  readonly migrate?: boolean
  /** Receives the embedded PostgreSQL's own log lines. */
  readonly onLog?: (line: string) => void
}

/**
 * Client settings shared by every connection to the ops-db: columns are snake_case in SQL and
 * camelCase in TypeScript, and `bigint` columns (byte sizes) arrive as numbers, exact up to
 * 9 PB, rather than as strings.
 */
export const clientConfig = (url: Redacted.Redacted<string>, extra?: Partial<PgClient.PgClientConfig>): PgClient.PgClientConfig => ({
  url,
  transformResultNames: String.snakeToCamel,
  transformQueryNames: String.camelToSnake,
  types: {
    getTypeParser:
      ((oid: number, format?: "text" | "binary") =>
        oid === int8Oid ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as "text")) as never
  },
  ...extra
})

const int8Oid = 20

/** Where a URL points, without its credentials. */
export const describeUrl = (url: string): string => {
  try {
    const u = new URL(url)
    return `${u.hostname}:${u.port || "5432"}${u.pathname}`
  } catch {
    return "(unparseable DATABASE_URL)"
  }
}

const createDatabaseIfMissing = (adminUrl: Redacted.Redacted<string>, database: string) =>
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    const rows = yield* sql<{ n: number }>`select count(*)::int as n from pg_database where datname = ${database}`
    if (rows[0].n === 0) yield* sql.unsafe(`create database "${database.replace(/"/g, '""')}"`)
  }).pipe(Effect.provide(PgClient.layer({ url: adminUrl })), Effect.scoped)

/**
 * The ops-db as `SqlClient` and `PgClient`, plus `OpsDb` describing it. The embedded server
 * lives as long as the layer.
 */
export const layer = (
  options: Options
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient | OpsDb, EmbeddedDatabase.EmbeddedDatabaseError | SqlError | MigrationError> =>
  Layer.unwrapScoped(
    Effect.gen(function* () {
      let url: Redacted.Redacted<string>
      let info: OpsDbInfo
      if (options.databaseUrl !== undefined) {
        url = options.databaseUrl
        info = { kind: "external", target: describeUrl(Redacted.value(url)) }
      } else {
        const dataDir = path.join(path.resolve(options.dataDir), "postgres")
        const db = yield* EmbeddedDatabase.start({ dataDir, ...(options.onLog ? { onLog: options.onLog } : {}) })
        const database = options.database ?? "ccat"
        yield* createDatabaseIfMissing(db.adminUrl, database)
        url = db.urlFor(database)
        info = { kind: "embedded", target: describeUrl(Redacted.value(url)), dataDir }
      }
      const pg = PgClient.layer(clientConfig(url))
      const migrated = options.migrate === false ? pg : Layer.tap(pg, (ctx) => Migrations.run.pipe(Effect.provide(ctx)))
      return Layer.merge(migrated, Layer.succeed(OpsDb, info))
    })
  )
