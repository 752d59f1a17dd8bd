/**
 * A fresh, migrated ops-db for each test suite, on the PostgreSQL the test run started (see
 * `globalSetup`) or on the server at `DATABASE_URL`. Suites never see each other's rows, and
 * the database is dropped when the suite's layer is released.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { randomBytes } from "node:crypto"
import * as Migrations from "../Migrations.js"
import * as OpsDb from "../node/OpsDb.js"

/** Environment variable through which the global setup hands the admin URL to test workers. */
export const adminUrlVariable = "CCAT_TEST_ADMIN_URL"

/** The admin URL of the test PostgreSQL. */
export const adminUrl = (): Redacted.Redacted<string> => {
  const url = process.env[adminUrlVariable] ?? process.env.DATABASE_URL
  if (url === undefined || url === "") {
    throw new Error(
      `no test PostgreSQL: run the tests through vitest (its globalSetup starts one) or set ${adminUrlVariable} or DATABASE_URL`
    )
  }
  return Redacted.make(url)
}

const withDatabase = (base: Redacted.Redacted<string>, database: string) => {
  const u = new URL(Redacted.value(base))
  u.pathname = `/${database}`
  return Redacted.make(u.toString())
}

const admin = <A, E>(effect: Effect.Effect<A, E, PgClient.PgClient>) =>
  effect.pipe(Effect.provide(PgClient.layer({ url: adminUrl() })), Effect.scoped)

const dropDatabase = (name: string) =>
  admin(Effect.flatMap(PgClient.PgClient, (sql) => sql.unsafe(`drop database if exists ${name} with (force)`)))

/** Creates a database with a new name by `create` (given the name) and drops it when the scope ends. */
const created = (create: (name: string) => string) =>
  Effect.acquireRelease(
    Effect.gen(function* () {
      const name = `ccat_test_${randomBytes(6).toString("hex")}`
      yield* admin(Effect.flatMap(PgClient.PgClient, (sql) => sql.unsafe(create(name))))
      return { name, url: withDatabase(adminUrl(), name) }
    }),
    ({ name }) => Effect.ignore(dropDatabase(name))
  )

/** Creates an empty database and drops it (closing its sessions) when the scope ends. */
export const freshDatabase = created((name) => `create database ${name}`)

/**
 * Environment variable naming a migrated database to copy for each suite (the global setup makes
 * one per test run): copying it takes a fraction of a second, applying every migration seconds.
 */
export const templateVariable = "CCAT_TEST_TEMPLATE"

/**
 * Makes `name`, a database with every migration applied, on the test PostgreSQL, to be copied for
 * the suites (`migratedDatabase`). Nothing may stay connected to it; `dropTemplate` removes it.
 */
export const makeTemplate = (name: string) =>
  Effect.gen(function* () {
    yield* admin(Effect.flatMap(PgClient.PgClient, (sql) => sql.unsafe(`create database ${name}`)))
    yield* Migrations.run.pipe(Effect.provide(PgClient.layer(OpsDb.clientConfig(withDatabase(adminUrl(), name)))), Effect.scoped)
  })

/** Drops the template made by `makeTemplate`. */
export const dropTemplate = dropDatabase

/**
 * A fresh database with every migration applied, dropped when the scope ends: a copy of the run's
 * migrated template when there is one, else a new database migrated here.
 */
export const migratedDatabase = Effect.suspend(() => {
  const template = process.env[templateVariable]
  return template === undefined || template === ""
    ? Effect.tap(
      freshDatabase,
      (db) => Migrations.run.pipe(Effect.provide(PgClient.layer(OpsDb.clientConfig(db.url))), Effect.scoped, Effect.orDie)
    )
    : /^[a-z_][a-z0-9_]*$/.test(template)
    ? created((name) => `create database ${name} template ${template}`)
    : Effect.dieMessage(`${templateVariable} must name a database in lower case letters, digits and _, not ${JSON.stringify(template)}`)
})

/** A fresh empty database, not migrated: for tests of the migrations themselves. */
export const layerEmpty: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient> = Layer.unwrapScoped(
  Effect.map(freshDatabase, ({ url }) => PgClient.layer(OpsDb.clientConfig(url)))
).pipe(Layer.orDie)

/** A fresh database with every migration applied. */
export const layer: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient> = Layer.unwrapScoped(
  Effect.map(migratedDatabase, ({ url }) => PgClient.layer(OpsDb.clientConfig(url)))
).pipe(Layer.orDie)
