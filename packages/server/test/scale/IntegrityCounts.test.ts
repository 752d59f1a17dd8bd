/**
 * The maintained integrity figures of migration 0029 (`ops_count_verified`,
 * `ops_package_archive_copies`). An ops-db filled before the migration gets them counted by it;
 * afterwards they equal a fresh count of the rows under real concurrent writers (eight
 * transactions at a time on their own connections, changing copies and their packages, some
 * rolling back), after a package is written again, a location changes type, a bulk recount,
 * and truncation.
 */
import { Migrations } from "@ccat/core"
import { TestDatabase } from "@ccat/core/testing"
import { assert, it } from "@effect/vitest"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Catalog from "./Catalog.js"

const before0029 = Migrator.make({})({
  loader: Migrator.fromRecord(Object.fromEntries(Object.entries(Migrations.migrations).filter(([name]) => name < "0029"))),
  table: Migrations.table
})

/** Where the maintained figures and a fresh count of the rows disagree (empty: exact). */
const disagreements = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const out: Array<string> = []
  const days = yield* sql<{ location: string; day: string; kept: number | null; real: number | null }>`
    with kept as (select location_id, day, sum(n)::int as n from ops_count_verified group by 1, 2 having sum(n) <> 0),
         real as (select data_location_id as location_id, (verified_at at time zone 'UTC')::date as day, count(*)::int as n
                  from physical_copy where status <> 'DELETED' and verified_at is not null group by 1, 2)
    select location_id::text as location, day::text as day, k.n as kept, r.n as real
    from kept k full join real r using (location_id, day) where k.n is distinct from r.n limit 5`
  for (const d of days) out.push(`verified at ${d.location} on ${d.day}: kept ${d.kept}, real ${d.real}`)
  const packages = yield* sql<{ id: string; kept: string; real: string }>`
    with real as (
      select p.id, count(c.id)::int as good
      from raw_data_package p
      left join (physical_copy c join data_location l on l.id = c.data_location_id and l.type = 'LONG_TERM_ARCHIVE')
        on c.raw_data_package_id = p.id and c.status = 'PRESENT' and c.verified_at is not null and c.checksum = p.checksum
      group by p.id)
    select coalesce(r.id, a.raw_data_package_id)::text as id, a.good::text as kept, r.good::text as real
    from ops_package_archive_copies a full join real r on r.id = a.raw_data_package_id
    where a.raw_data_package_id is null or r.id is null or a.good <> r.good limit 5`
  for (const p of packages) out.push(`package ${p.id}: kept ${p.kept} good copies, real ${p.real}`)
  return out
})

it.layer(TestDatabase.layerEmpty, { timeout: 600_000 })("maintained integrity figures", (it) => {
  it.effect("are counted by the migration on an ops-db filled before it", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* before0029
      yield* Catalog.load({ files: 20_000, fileEvents: false })
      const [none] = yield* sql<{ ok: boolean }>`select to_regclass('ops_package_archive_copies') is null as ok`
      assert.isTrue(none!.ok)
      const applied = yield* Migrations.run
      assert.include(applied.map(([, name]) => name), "integrity_counts")
      assert.deepStrictEqual(yield* disagreements, [])
      const [figures] = yield* sql<{ days: number; good: number }>`
        select (select count(*) from ops_count_verified)::int as days,
               (select count(*) from ops_package_archive_copies where good > 0)::int as good`
      assert.isAbove(figures!.days, 100)
      assert.isAbove(figures!.good, 100)
    }))

  it.effect("stay exact under concurrent writers of copies and their packages, including ones that roll back", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const failures: Array<string> = []
      const writer = (k: number) =>
        Effect.forEach(Array.from({ length: 9 }, (_, i) => i), (i) => {
          const copy = sql`abs(hashtext(c.id::text)) % 8 = ${k}`
          const pkg = sql`abs(hashtext(id::text)) % 8 = ${(k + i) % 8}`
          const archive = sql`(select id from data_location where type = 'LONG_TERM_ARCHIVE')`
          const step = sql.withTransaction(
            Effect.gen(function* () {
              // An audit: some archive copies found bad, some verified again today.
              yield* sql`update physical_copy set status = 'CORRUPT', updated_at = now() where id in (
                select c.id from physical_copy c where c.data_location_id in ${archive} and c.status = 'PRESENT' and ${copy} limit 2)`
              yield* sql`update physical_copy set verified_at = now() where id in (
                select c.id from physical_copy c where c.status = 'PRESENT' and ${copy} order by c.verified_at limit 20)`
              // A repair: a bad copy replaced by a verified one.
              yield* sql`with bad as (
                  update physical_copy set status = 'DELETED', updated_at = now() where id in (
                    select c.id from physical_copy c where c.status = 'CORRUPT' and c.data_location_id in ${archive} and ${copy} limit 1)
                  returning raw_data_package_id, data_location_id, path, size_bytes)
                insert into physical_copy (raw_data_package_id, data_location_id, path, size_bytes, checksum, status, verified_at)
                select b.raw_data_package_id, b.data_location_id, b.path || '.r' || ${k} || '.' || ${i}, b.size_bytes, p.checksum, 'PRESENT', now()
                from bad b join raw_data_package p on p.id = b.raw_data_package_id`
              // Packages leaving and coming back to completed, some of them with copies another writer changes.
              yield* sql`update raw_data_package set status = 'in_progress' where id in (
                select id from raw_data_package where status = 'completed' and ${pkg} limit 3)`
              yield* sql`update raw_data_package set status = 'completed' where id in (
                select id from raw_data_package where status = 'in_progress' and size_bytes is not null and checksum is not null and ${pkg} limit 2)`
              // Every third transaction changes its mind.
              if (i % 3 === 2) return yield* Effect.fail("rolled back on purpose" as const)
            })
          )
          // Only the planned rollbacks fail: the triggers add no deadlock or serialization failure.
          return Effect.catchAll(
            step,
            (e) =>
              e === "rolled back on purpose"
                ? Effect.void
                : Effect.sync(() => void failures.push(String((e as { cause?: { message?: string } }).cause?.message ?? e)))
          )
        })
      yield* Effect.all(Array.from({ length: 8 }, (_, k) => writer(k)), { concurrency: "unbounded", discard: true })
      assert.deepStrictEqual(failures, [])
      const [repaired] = yield* sql<{ n: number }>`select count(*)::int as n from physical_copy where path like '%.r_.%'`
      assert.isAbove(repaired!.n, 0)
      assert.deepStrictEqual(yield* disagreements, [])
      // Folding everything leaves one row per key, and the same sums.
      yield* sql`select ops_count_verified_fold(1000000)`
      const [keys] = yield* sql<{ rows: number; keys: number }>`
        select count(*)::int as rows, (select count(*) from (select distinct location_id, day from ops_count_verified) d)::int as keys
        from ops_count_verified`
      assert.strictEqual(keys!.rows, keys!.keys)
      assert.deepStrictEqual(yield* disagreements, [])
    }))

  it.effect("follow a package written again and a location that becomes an archive; a recount changes nothing", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const [pkg] = yield* sql<{ id: string }>`
        select raw_data_package_id as id from ops_package_archive_copies where good = 1 order by 1 limit 1`
      yield* sql`update raw_data_package set checksum = ${"sha256:" + "0".repeat(64)} where id = ${pkg!.id}`
      const [after] = yield* sql<{ good: number }>`select good from ops_package_archive_copies where raw_data_package_id = ${pkg!.id}`
      assert.strictEqual(after!.good, 0)
      // One statement over every package, after small ones on the same connection (a plan made
      // for a few rows): checksums changed, set where there was none, taken away, the rest only
      // stamped. Each package's two rows are compared by grouping, never by a join.
      yield* sql.withTransaction(Effect.gen(function* () {
        for (let i = 0; i < 3; i++) {
          yield* sql`update raw_data_package set updated_at = updated_at where id in (select id from raw_data_package order by id limit 5)`
        }
        const [changed] = yield* sql<{ n: number }>`
          with picked as (select id, row_number() over (order by id) as k from raw_data_package),
          done as (
            update raw_data_package p set
              checksum = case when x.k % 97 = 0 or p.checksum is null then ${"sha256:" + "1".repeat(64)}
                              when x.k % 89 = 0 and p.status <> 'completed' then null else p.checksum end,
              archived_at = coalesce(p.archived_at, p.updated_at)
            from picked x where x.id = p.id returning 1)
          select count(*)::int as n from done`
        const [all] = yield* sql<{ n: number }>`select count(*)::int as n from raw_data_package`
        assert.strictEqual(changed!.n, all!.n)
      }))
      assert.deepStrictEqual(yield* disagreements, [])
      yield* sql`update data_location set type = 'LONG_TERM_ARCHIVE' where name = 'cologne-buffer'`
      assert.deepStrictEqual(yield* disagreements, [])
      yield* sql`update data_location set type = 'BUFFER' where name = 'cologne-buffer'`
      assert.deepStrictEqual(yield* disagreements, [])
      const before = yield* sql<
        { k: string }
      >`select concat_ws(' ', raw_data_package_id, good) as k from ops_package_archive_copies order by 1`
      yield* sql`select ops_count_rebuild()`
      assert.deepStrictEqual(
        yield* sql<
          { k: string }
        >`select concat_ws(' ', raw_data_package_id, good) as k from ops_package_archive_copies order by 1`,
        before
      )
      assert.deepStrictEqual(yield* disagreements, [])
    }))

  it.effect("count nothing once their tables are truncated", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`truncate physical_copy cascade`
      const [left] = yield* sql<{ days: number; good: number }>`
        select (select count(*) from ops_count_verified)::int as days, (select count(*) from ops_package_archive_copies where good <> 0)::int as good`
      assert.deepStrictEqual(left, { days: 0, good: 0 })
      assert.deepStrictEqual(yield* disagreements, [])
    }))
})
