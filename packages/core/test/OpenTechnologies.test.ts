/**
 * Migration 0021 on an ops-db that already holds locations: the enum of storage technologies
 * gives way to a name, every location keeps its technology, an integrator's technology can be
 * stored, and a value that is not a name is still refused by the database itself.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Migrations from "../src/Migrations.js"
import * as TestDatabase from "../src/testing/TestDatabase.js"

describe("Migration 0021: open technologies", () => {
  it.layer(TestDatabase.layerEmpty)((it) => {
    it.effect("keeps every location's technology, stores an integrator's, refuses what is not a name", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const before = Object.keys(Migrations.migrations).filter((name) => name < "0021")
        for (let upTo = 1; upTo <= before.length; upTo++) {
          const loader = Migrator.fromRecord(Object.fromEntries(before.slice(0, upTo).map((name) => [name, Migrations.migrations[name]!])))
          yield* Migrator.make({})({ loader, table: Migrations.table })
        }
        const [site] = yield* sql<{ id: string }>`insert into site (name, short_name, role) values ('Cologne', 'col', 'main') returning id`
        for (const [name, technology] of [["col-disk", "disk"], ["col-s3", "s3"], ["col-tape", "tape"]]) {
          yield* sql`insert into data_location (site_id, name, type, technology) values (${site.id}, ${name}, 'LONG_TERM_ARCHIVE', ${technology})`
        }
        const applied = yield* Migrations.run
        assert.include(applied.map(([, name]) => name), "open_technologies")
        const rows = yield* sql<{ name: string; technology: string }>`select name, technology from data_location order by name`
        assert.deepStrictEqual(rows.map((r) => [r.name, r.technology]), [["col-disk", "disk"], ["col-s3", "s3"], ["col-tape", "tape"]])
        const [type] = yield* sql<{ t: string }>`select pg_typeof(technology)::text as t from data_location limit 1`
        assert.strictEqual(type.t, "short_name")
        const [enums] = yield* sql<{ n: number }>`select count(*)::int as n from pg_type where typname = 'storage_technology'`
        assert.strictEqual(enums.n, 0)
        yield* sql`insert into data_location (site_id, name, type, technology) values (${site.id}, 'col-memory', 'LONG_TERM_ARCHIVE', 'memory')`
        const refused = yield* Effect.either(
          sql`insert into data_location (site_id, name, type, technology) values (${site.id}, 'col-bad', 'BUFFER', 'Not A Name')`
        )
        assert.strictEqual(refused._tag, "Left")
      }))
  })
})
