/**
 * The maintained counts of migration 0012 (`ops_count`, `ops_histogram`). An ops-db filled
 * before the migration gets them backfilled by it; afterwards they stay exact under real
 * concurrent writers (eight transactions at a time on their own connections: transitions,
 * inserts, deletes, and transactions that roll back), folding keeps them small, and a
 * truncated table counts nothing.
 */
import { Migrations } from "@ccat/core"
import { TestDatabase } from "@ccat/core/testing"
import { assert, it } from "@effect/vitest"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Catalog from "./Catalog.js"

const before0012 = Migrator.make({})({
  loader: Migrator.fromRecord(Object.fromEntries(Object.entries(Migrations.migrations).filter(([name]) => name < "0012"))),
  table: Migrations.table
})

const counted = [
  ["RawDataFile", "raw_data_file", "state", "size_bytes"],
  ["RawDataPackage", "raw_data_package", "status", "coalesce(size_bytes, 0)"],
  ["DataTransferPackage", "data_transfer_package", "status", "coalesce(size_bytes, 0)"],
  ["DataTransfer", "data_transfer", "status", "case when status = 'completed' then bytes_transferred else 0 end"],
  ["StagingRequest", "staging_request", "status", "0"],
  ["PhysicalCopy", "physical_copy", "status", "size_bytes"]
] as const

/** Where the maintained counts and the rows disagree (empty: exact). */
const disagreements = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const out: Array<string> = []
  for (const [entity, table, column, bytes] of counted) {
    const rows = yield* sql.unsafe<{ state: string; kept: number; real: number; keptBytes: number; realBytes: number }>(`
      with kept as (select state, sum(n)::float8 as n, sum(bytes)::float8 as b from ops_count where entity = '${entity}' group by state),
           real as (select ${column}::text as state, count(*)::float8 as n, sum(${bytes})::float8 as b from ${table} group by 1)
      select coalesce(k.state, r.state) as state, coalesce(k.n, 0) as kept, coalesce(r.n, 0) as real, coalesce(k.b, 0) as kept_bytes, coalesce(r.b, 0) as real_bytes
      from kept k full join real r on r.state = k.state`)
    for (const r of rows) {
      if (r.kept !== r.real || r.keptBytes !== r.realBytes) {
        out.push(`${entity} ${r.state}: kept ${r.kept} (${r.keptBytes} B), real ${r.real} (${r.realBytes} B)`)
      }
    }
  }
  const perLocation = yield* sql<{ n: number }>`
    with kept as (select location_id, kind, state, sum(n) as n from ops_count where entity = 'PhysicalCopy' group by 1, 2, 3 having sum(n) <> 0),
         real as (select data_location_id as location_id,
                    case when raw_data_file_id is not null then 'file' when raw_data_package_id is not null then 'package' else 'bundle' end as kind,
                    status::text as state, count(*) as n from physical_copy group by 1, 2, 3)
    select count(*)::int as n from kept k full join real r using (location_id, kind, state) where k.n is distinct from r.n`
  if (perLocation[0]!.n > 0) out.push(`${perLocation[0]!.n} (location, kind, status) copy counts differ`)
  const [archived] = yield* sql<{ kept: number; real: number }>`
    select (select coalesce(sum(n), 0) from ops_histogram where name = 'package_archive')::float8 as kept,
           (select count(*) from raw_data_package where status = 'completed')::float8 as real`
  if (archived!.kept !== archived!.real) out.push(`archive histogram: kept ${archived!.kept}, real ${archived!.real}`)
  return out
})

it.layer(TestDatabase.layerEmpty, { timeout: 600_000 })("maintained counts", (it) => {
  it.effect("are backfilled by the migration on an ops-db filled before it", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* before0012
      // the catalog's configuration sync records sites, locations and routes as events, kinds a
      // later migration adds (idempotently, so applying it again below changes nothing)
      yield* Migrations.migrations["0017_topology_events"]!
      const loaded = yield* Catalog.load({ files: 30_000, fileEvents: false })
      assert.isAbove(loaded.rows, 60_000)
      const [none] = yield* sql<{ ok: boolean }>`select to_regclass('ops_count') is null as ok`
      assert.isTrue(none!.ok)
      const applied = yield* Migrations.run
      assert.include(applied.map(([, name]) => name), "state_counts")
      assert.deepStrictEqual(yield* disagreements, [])
      const [rows] = yield* sql<{ n: number }>`select count(*)::int as n from ops_count`
      assert.isAbove(rows!.n, 20)
    }))

  it.effect("stay exact under concurrent writers, including ones that roll back", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const writer = (k: number) =>
        Effect.forEach(Array.from({ length: 12 }, (_, i) => i), (i) => {
          const mine = sql`abs(hashtext(id::text)) % 8 = ${k}`
          const step = sql.withTransaction(
            Effect.gen(function* () {
              // Damage a few packaged files, and bring a few damaged ones back.
              yield* sql`update raw_data_file set state = 'corrupt', raw_data_package_id = null
                where id in (select id from raw_data_file where state = 'packaged' and ${mine} limit 3)`
              yield* sql`update raw_data_file set state = 'filed' where id in (select id from raw_data_file where state = 'corrupt' and ${mine} limit 1)`
              // Move live copies towards deletion, delete some history.
              yield* sql`update physical_copy set status = 'DELETION_POSSIBLE', updated_at = now()
                where id in (select id from physical_copy where status = 'PRESENT' and ${mine} limit 5)`
              yield* sql`delete from physical_copy where id in (select id from physical_copy where status = 'DELETED' and raw_data_file_id is not null and ${mine} limit 4)`
              // File new ones into an existing observation.
              yield* sql`insert into raw_data_file (id, executed_obs_unit_id, instrument_module_id, relative_path, size_bytes, checksum, source_location_id)
                select gen_random_uuid(), f.executed_obs_unit_id, f.instrument_module_id, 'concurrent/' || ${k} || '/' || ${i} || '/' || g, 1000 + g,
                       f.checksum, f.source_location_id
                from (select * from raw_data_file limit 1) f, generate_series(1, 5) g`
              // Every third transaction changes its mind.
              if (i % 3 === 2) return yield* Effect.fail("rolled back on purpose" as const)
            })
          )
          return Effect.ignore(step)
        })
      yield* Effect.all(Array.from({ length: 8 }, (_, k) => writer(k)), { concurrency: "unbounded", discard: true })
      // Two transactions in three of each writer committed (5 files each), the third rolled back.
      const [filed] = yield* sql<{ n: number }>`select count(*)::int as n from raw_data_file where relative_path like 'concurrent/%'`
      assert.strictEqual(filed!.n, 8 * 8 * 5)
      assert.deepStrictEqual(yield* disagreements, [])
      // Folding everything leaves one row per key, and the same sums.
      yield* sql`select ops_count_fold(1000000)`
      const [keys] = yield* sql<{ rows: number; keys: number }>`
        select count(*)::int as rows,
               (select count(*) from (select distinct entity, state, location_id, to_location_id, kind, reason from ops_count) d)::int as keys
        from ops_count`
      assert.strictEqual(keys!.rows, keys!.keys)
      assert.deepStrictEqual(yield* disagreements, [])
    }))

  it.effect("a truncated table counts nothing", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`truncate staging_request_item, staging_request`
      const [left] = yield* sql<{ n: number }>`select count(*)::int as n from ops_count where entity = 'StagingRequest'`
      assert.strictEqual(left!.n, 0)
      assert.deepStrictEqual(yield* disagreements, [])
    }))
})
