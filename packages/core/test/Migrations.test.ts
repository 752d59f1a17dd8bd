import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Migrations from "../src/Migrations.js"
import * as TestDatabase from "../src/testing/TestDatabase.js"

describe("Migrations", () => {
  it.layer(TestDatabase.layerEmpty)((it) => {
    it.effect("migrate an empty database, and a second run applies nothing", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const first = yield* Migrations.run
        assert.deepStrictEqual(
          first.map(([id, name]) => `${String(id).padStart(4, "0")}_${name}`),
          Object.keys(Migrations.migrations)
        )
        const second = yield* Migrations.run
        assert.deepStrictEqual(second, [])
        const tables = yield* sql<{ tableName: string }>`
          select table_name from information_schema.tables where table_schema = 'public' order by table_name`
        const names = tables.map((t) => t.tableName)
        for (const t of ["observatory", "raw_data_file", "physical_copy", "event_log", "staging_request", "api_token"]) {
          assert.include(names, t)
        }
      }))
  })
})
