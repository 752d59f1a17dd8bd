/**
 * What the upgrade tests share: a fresh ops-db per run, its URL for the `ccat` commands run
 * against it, and a way to bring it to a given set of migrations as a release would have.
 */
import { Migrations } from "@ccat/core"
import { TestDatabase } from "@ccat/core/testing"
import { OpsDb } from "@ccat/core/node"
import * as Migrator from "@effect/sql/Migrator"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"

/** Applies the given migrations, one transaction each, as `Migrations.run` does. */
export const migrateTo = (keys: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    for (let upTo = 1; upTo <= keys.length; upTo++) {
      const loader = Migrator.fromRecord(Object.fromEntries(keys.slice(0, upTo).map((k) => [k, Migrations.migrations[k]!])))
      yield* Migrator.make({})({ loader, table: Migrations.table })
    }
  })

/** The test database's URL, for the command run against it. */
export class Url extends Context.Tag("test/Url")<Url, Redacted.Redacted<string>>() {}

const database = Layer.unwrapScoped(
  Effect.map(TestDatabase.freshDatabase, (db) => Layer.merge(PgClient.layer(OpsDb.clientConfig(db.url)), Layer.succeed(Url, db.url)))
).pipe(Layer.orDie)

/** Runs `effect` against a fresh, empty ops-db of its own. */
export const run = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient | Url>) => Effect.runPromise(Effect.provide(effect, database))
