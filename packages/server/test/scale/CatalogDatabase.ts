/**
 * A fresh ops-db holding the synthetic catalog, for the scale tests. Loading 10^6 files takes
 * minutes, so the first suite of a test run that asks for a catalog loads it once into a
 * template database and every suite gets its own copy (`CREATE DATABASE ... TEMPLATE`, a file
 * copy of seconds). Suites still never see each other's rows: each writes to its own copy.
 *
 * The template's name holds what it was loaded from (the catalog's options, the migrations), so
 * a template left from an older schema or another size is never used; an advisory lock makes
 * suites in parallel workers wait for the one loading it, and it is renamed into place only
 * once complete, so a load killed half-way is never cloned.
 */
import { Migrations } from "@ccat/core"
import { TestDatabase } from "@ccat/core/testing"
import { OpsDb } from "@ccat/core/node"
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { createHash, randomBytes } from "node:crypto"
import * as Catalog from "./Catalog.js"

/** What the scale suites load. */
export interface Options {
  readonly files: number
  readonly fileEvents: boolean
}

const withDatabase = (database: string) => {
  const u = new URL(Redacted.value(TestDatabase.adminUrl()))
  u.pathname = `/${database}`
  return Redacted.make(u.toString())
}

/**
 * Runs statements as the test PostgreSQL's admin, on one session (the advisory lock is a
 * session's). The pool's idle timeout is off: by default it closes a connection idle for 10 s,
 * and with it went the lock while the first suite loaded, so a second suite loaded too.
 */
const admin = <A, E>(effect: Effect.Effect<A, E, PgClient.PgClient>) =>
  effect.pipe(
    Effect.provide(PgClient.layer({ url: TestDatabase.adminUrl(), maxConnections: 1, idleTimeout: Duration.zero })),
    Effect.scoped
  )

const templateName = (options: Options) =>
  `ccat_catalog_${
    createHash("sha256").update(JSON.stringify({ options, migrations: Object.keys(Migrations.migrations) })).digest("hex").slice(0, 16)
  }`

/** Loads the template once per test run (or finds it), then clones it for this suite. */
const clone = (options: Options) =>
  Effect.acquireRelease(
    admin(Effect.gen(function* () {
      const sql = yield* PgClient.PgClient
      const template = templateName(options)
      yield* sql`select pg_advisory_lock(hashtext(${template}))`
      const found = yield* sql<{ n: number }>`select count(*)::int as n from pg_database where datname = ${template}`
      if (found[0]!.n === 0) {
        const loading = `${template}_loading_${randomBytes(4).toString("hex")}`
        yield* sql.unsafe(`create database ${loading}`)
        yield* Effect.gen(function* () {
          yield* Migrations.run
          const loaded = yield* Catalog.load(options)
          // Printed, not logged: the suite's output is where CI's time goes, and this is most of it.
          yield* Effect.sync(() =>
            console.log(
              `catalog template (${options.files} files): ${loaded.rows} rows in ${loaded.seconds.toFixed(1)} s (${
                loaded.tables.map((t) => `${t.table} ${t.seconds.toFixed(1)} s`).join(", ")
              })`
            )
          )
        }).pipe(Effect.provide(PgClient.layer(OpsDb.clientConfig(withDatabase(loading)))), Effect.scoped, Effect.orDie)
        yield* sql.unsafe(`alter database ${loading} rename to ${template}`)
      }
      const name = `ccat_test_${randomBytes(6).toString("hex")}`
      yield* sql.unsafe(`create database ${name} template ${template}`)
      yield* sql`select pg_advisory_unlock(hashtext(${template}))`
      return name
    })).pipe(Effect.orDie),
    (name) =>
      admin(Effect.flatMap(PgClient.PgClient, (sql) => sql.unsafe(`drop database if exists ${name} with (force)`))).pipe(Effect.ignore)
  )

/** A fresh ops-db of its own holding the catalog of `options`. */
export const layer = (options: Options): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient> =>
  Layer.unwrapScoped(Effect.map(clone(options), (name) => PgClient.layer(OpsDb.clientConfig(withDatabase(name))))).pipe(Layer.orDie)
