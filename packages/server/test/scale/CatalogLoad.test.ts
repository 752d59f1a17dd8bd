/**
 * The catalog's fast load (row triggers off, what they keep proved afterwards set-based, on
 * parallel connections) leaves the very database the slow load leaves, with every trigger
 * firing per row: the same rows, the same maintained counts and histograms, the same
 * constraints, validated. And COPY text a value would break is refused.
 */
import { TestDatabase } from "@ccat/core/testing"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { createHash } from "node:crypto"
import * as Catalog from "./Catalog.js"
import { copyText } from "./CopyIn.js"

const options = { files: 3_000, seed: 7, now: Date.UTC(2026, 5, 1, 12) }

/**
 * What must be equal between two loads: rows, counts, histograms and the constraints' state.
 * The topology's rows get fresh ids in each database, so they are named instead.
 */
const fingerprint = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const names = yield* sql<{ id: string; name: string }>`
    select id::text as id, name from data_location union all select id::text, name from site union all select id::text, 'route' from route`
  const digest = (rows: ReadonlyArray<{ k: string }>) => {
    const lines = rows.map(({ k }) => names.reduce((t, { id, name }) => t.replaceAll(id, name), k)).sort()
    return `${lines.length} ${createHash("sha256").update(lines.join("\n")).digest("hex")}`
  }
  const tables = [
    "executed_obs_unit",
    "raw_data_package",
    "raw_data_file",
    "data_transfer_package",
    "data_transfer_package_member",
    "data_transfer",
    "physical_copy",
    "staging_request",
    "staging_request_item"
  ]
  const out: Record<string, string> = {}
  for (const table of tables) out[table] = digest(yield* sql.unsafe<{ k: string }>(`select t::text as k from ${table} t`))
  out.event_log = digest(
    yield* sql<{ k: string }>`
    select concat_ws(',', entity_kind, entity_id, from_state, to_state, at, actor, details, tableoid::regclass) as k
    from event_log where entity_kind not in ('Site', 'DataLocation', 'Route')`
  )
  out.ops_count = digest(
    yield* sql<{ k: string }>`
    select concat_ws(',', entity, state, location_id, to_location_id, kind, reason, sum(n), sum(bytes), sum(ms), sum(retries)) as k
    from ops_count group by entity, state, location_id, to_location_id, kind, reason having sum(n) <> 0 or sum(bytes) <> 0`
  )
  out.ops_histogram = digest(
    yield* sql<{ k: string }>`
    select concat_ws(',', name, location_id, to_location_id, kind, le, sum(n), sum(total)) as k
    from ops_histogram group by name, location_id, to_location_id, kind, le having sum(n) <> 0`
  )
  out.constraints = digest(
    yield* sql<{ k: string }>`
    select concat_ws(' ', conname, contype, convalidated, pg_get_constraintdef(oid)) as k from pg_constraint where connamespace = 'public'::regnamespace`
  )
  const [checksum] = yield* sql<{ k: string }>`
    select concat_ws(' ', conname, convalidated, pg_get_constraintdef(oid)) as k from pg_constraint where contypid = 'checksum'::regtype`
  out.checksum = checksum!.k
  return out
})

describe("catalog load", () => {
  it.effect("the fast load leaves what the per-row load leaves", () =>
    Effect.gen(function* () {
      const fast = yield* Effect.gen(function* () {
        const loaded = yield* Catalog.load({ ...options, fast: true })
        assert.isFalse(loaded.triggers)
        return yield* fingerprint
      }).pipe(Effect.provide(TestDatabase.layer))
      const slow = yield* Effect.gen(function* () {
        const loaded = yield* Catalog.load({ ...options, fast: false })
        assert.isTrue(loaded.triggers)
        return yield* fingerprint
      }).pipe(Effect.provide(TestDatabase.layer))
      assert.match(slow.checksum, /^checksum_check t CHECK/)
      assert.deepStrictEqual(fast, slow)
    }), { timeout: 180_000 })

  it("COPY text a value would misread is refused with its line", () => {
    const run = (rows: ReadonlyArray<ReadonlyArray<string | number | null>>) => () => [...copyText("t", ["a", "b"], rows, () => undefined)]
    assert.deepStrictEqual(run([["x", null], ["y", 2]])(), ["x\t\\N\ny\t2\n"])
    assert.throws(run([["x\ty", "z"]]), /tab, newline/)
    assert.throws(run([["x", "a\nb"]]), /tab, newline/)
    assert.throws(run([["x", "back\\slash"]]), /tab, newline/)
    assert.throws(run([["x", "\\N"]]), /reads as null/)
    assert.throws(run([["x", "a\rb"]]), /tab, newline/)
  })
})
