/**
 * The history tables (migration 0018 and the history job): an ops-db at 0017 holding events over
 * several years and finished transfer attempts is upgraded with every row, index, trigger and
 * count kept; the job creates years ahead and moves rows the default partition caught; the
 * retention drops only whole years and only finished chains of completed bundles, and every
 * total that counts them keeps counting; a reader holding the log makes the job give up and
 * change nothing; an item's history reads only the years it lived in; a backup and restore keep
 * every event and count. One database for the file, the tests in order.
 */
import { Migrations, Topology } from "@ccat/core"
import { TestDatabase } from "@ccat/core/testing"
import { OpsDb } from "@ccat/core/node"
import * as PgClient from "@effect/sql-pg/PgClient"
import { assert, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Backup from "../src/backup/Backup.js"
import * as Restore from "../src/backup/Restore.js"
import * as EventHistory from "../src/http/EventHistory.js"
import * as History from "../src/lifecycle/History.js"
import {
  before18,
  eventRows,
  partitions,
  repairedTotal,
  runOnly,
  seed,
  sha,
  thisYear,
  transferCounts,
  type World,
  yearName
} from "./HistoryWorld.js"

it.layer(TestDatabase.layerEmpty, { timeout: 120_000 })("history tables", (it) => {
  let world: World
  let before: { events: string; counts: string; repaired: number }

  it.effect("an ops-db at 0017 keeps every event, index, trigger, grant and count through the partitioning", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* runOnly(before18)
      // a reporting role an operator gave the log to
      yield* sql.unsafe(
        `do $$ begin if not exists (select from pg_roles where rolname = 'ccat_history_reader') then create role ccat_history_reader; end if; end $$`
      )
      yield* sql`grant select on event_log to ccat_history_reader`
      world = yield* seed
      // the metrics' count as a release before 0018 makes it
      const [repaired] = yield* sql<{ n: number }>`select count(*)::int as n from event_log e join physical_copy c on c.id = e.entity_id
        where e.entity_kind = 'PhysicalCopy' and e.to_state = 'DELETED' and (e.details->>'action') = 'repaired'`
      before = { events: yield* eventRows, counts: yield* transferCounts, repaired: repaired!.n }
      assert.strictEqual(before.repaired, 2)

      yield* Migrations.run
      const [kind] = yield* sql<{ kind: string }>`select relkind::text as kind from pg_class where oid = 'event_log'::regclass`
      assert.strictEqual(kind!.kind, "p")
      assert.strictEqual(yield* eventRows, before.events)
      assert.strictEqual(yield* transferCounts, before.counts)
      assert.strictEqual(yield* repairedTotal, 2)
      const names = yield* partitions
      assert.include(names, "event_log_default")
      for (let y = 2024; y <= thisYear() + 1; y++) assert.include(names, yearName(y))
      assert.notInclude(names, yearName(thisYear() + 2))
      const [caught] = yield* sql<{ n: number }>`select count(*)::int as n from event_log_default`
      assert.strictEqual(caught!.n, 0)
      const [granted] = yield* sql<{ ok: boolean }>`select has_table_privilege('ccat_history_reader', 'event_log', 'select') as ok`
      assert.isTrue(granted!.ok)
      const indexes = yield* sql<{ name: string }>`select indexname as name from pg_indexes where tablename = 'event_log' order by 1`
      assert.deepStrictEqual(indexes.map((i) => i.name), ["event_log_entity", "event_log_pkey", "event_log_repaired_copy"])
      // Still append-only, through the table and through a partition; ids go on; relayed events still name their account.
      for (const statement of [
        sql`update event_log set to_state = 'x'`,
        sql`delete from event_log`,
        sql`truncate event_log`,
        sql.unsafe(`truncate ${yearName(thisYear())}`),
        sql.unsafe(`delete from ${yearName(2024)}`)
      ]) {
        const refused = yield* Effect.either(statement)
        assert.isTrue(Either.isLeft(refused))
        assert.match(String(Either.isLeft(refused) ? refused.left.cause : ""), /append-only/)
      }
      const [max] = yield* sql<{ id: string }>`select max(id)::text as id from event_log`
      const [added] = yield* sql.withTransaction(Effect.zipRight(
        sql`select set_config('ccat.on_behalf_of', 'telescope-1', true)`,
        sql<
          { id: string; by: string }
        >`insert into event_log (entity_kind, entity_id, to_state) values ('RawDataFile', ${randomUUID()}, 'filed')
          returning id::text, details->>'onBehalfOf' as by`
      ))
      assert.isTrue(BigInt(added!.id) > BigInt(max!.id))
      assert.strictEqual(added!.by, "telescope-1")
      before = { ...before, events: yield* eventRows }
    }))

  it.effect("the history job creates years ahead and moves what the default partition caught", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`insert into event_log (entity_kind, entity_id, to_state, at) values
        ('RawDataFile', ${randomUUID()}, 'filed', '2019-05-10T00:00:00Z'), ('RawDataFile', ${randomUUID()}, 'filed', now() + interval '5 years')`
      const [inDefault] = yield* sql<{ n: number }>`select count(*)::int as n from event_log_default`
      assert.strictEqual(inDefault!.n, 2)
      const events = yield* eventRows
      const kept = yield* History.keep(new Topology.HistoryConfig({ yearsAhead: 3 }))
      // 2019 to 2023 (years stay contiguous back to the oldest row), and years 2 and 3 ahead
      assert.deepStrictEqual(kept, { partitionsCreated: 5 + 2, yearsDropped: [], attemptsDeleted: 0 })
      const names = yield* partitions
      assert.include(names, "event_log_y2019")
      assert.include(names, yearName(thisYear() + 3))
      assert.notInclude(names, yearName(thisYear() + 4))
      const [moved] = yield* sql<{ n: number }>`select count(*)::int as n from event_log_y2019`
      assert.strictEqual(moved!.n, 1)
      const [stays] = yield* sql<{ n: number }>`select count(*)::int as n from event_log_default`
      assert.strictEqual(stays!.n, 1)
      assert.strictEqual(yield* eventRows, events)
      // the rows moved are still guarded, and a second run has nothing to do
      assert.isTrue(Either.isLeft(yield* Effect.either(sql`delete from event_log_y2019`)))
      assert.deepStrictEqual(yield* History.keep(new Topology.HistoryConfig({ yearsAhead: 3 })), {
        partitionsCreated: 0,
        yearsDropped: [],
        attemptsDeleted: 0
      })
    }))

  it.effect("retention takes only whole years and finished chains of completed bundles, and totals keep counting them", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      // The default keeps everything.
      assert.deepStrictEqual(yield* History.keep(new Topology.HistoryConfig({ yearsAhead: 3 })), {
        partitionsCreated: 0,
        yearsDropped: [],
        attemptsDeleted: 0
      })
      // More old attempts of failed bundles (waiting for an operator) than a batch, older than the rest: kept, and never in the way.
      yield* sql`
        with b as (
          insert into data_transfer_package (relative_path, size_bytes, checksum, status)
          select 'bundles/chile/waiting-' || g || '.tar', 10, ${sha}, 'failed' from generate_series(1, ${History.transferBatch + 100}) g
          returning id)
        insert into data_transfer (data_transfer_package_id, from_location_id, to_location_id, attempt, adapter, status, error_reason, started_at, finished_at, created_at)
        select id, ${world.buffers[0]}, ${
          world.buffers[1]
        }, 1, 'rsync', 'failed', 'Timeout', '2023-05-01', '2023-05-01', '2023-05-01' from b`
      const counts = yield* transferCounts
      const now = new Date()
      const retention = 400 * 24 * 3600_000
      const cutoff = new Date(now.getTime() - retention)
      const firstKept = new Date(Date.UTC(cutoff.getUTCFullYear(), 0, 1))
      const [expected] = yield* sql<{ n: number }>`select count(*)::int as n from event_log where at >= ${firstKept}`
      const kept = yield* History.keep(new Topology.HistoryConfig({ events: retention, transferAttempts: retention, yearsAhead: 3 }), now)
      assert.include(kept.yearsDropped, "event_log_y2019")
      assert.include(kept.yearsDropped, "event_log_y2024")
      assert.notInclude(kept.yearsDropped, yearName(firstKept.getUTCFullYear()))
      assert.strictEqual(kept.attemptsDeleted, 3)
      const [left] = yield* sql<{ n: number; oldest: Date }>`select count(*)::int as n, min(at) as oldest from event_log`
      assert.strictEqual(left!.n, expected!.n)
      assert.isTrue(new Date(left!.oldest).getTime() >= firstKept.getTime())
      // the item's recent event is there, its 2024 one went with its year
      const item = yield* sql<{ toState: string }>`select to_state from event_log where entity_id = ${world.item}`
      assert.deepStrictEqual(item.map((e) => e.toState), ["completed"])
      const attempts = yield* sql<{ bundle: string; status: string }>`
        select data_transfer_package_id as bundle, status::text as status from data_transfer`
      assert.strictEqual(attempts.length, 3 + History.transferBatch + 100)
      assert.sameMembers(
        attempts.filter((a) => a.status !== "failed" || a.bundle === world.bundles.live).map((a) => `${a.bundle}:${a.status}`),
        [
          `${world.bundles.live}:failed`,
          `${world.bundles.live}:in_progress`,
          `${world.bundles.recent}:completed`
        ]
      )
      // Counters count what retention took away: repairs, transfers, bytes, durations; a recount too.
      assert.strictEqual(yield* repairedTotal, 2)
      assert.strictEqual(yield* transferCounts, counts)
      yield* sql`select ops_count_rebuild()`
      assert.strictEqual(yield* transferCounts, counts)
      // A second run finds nothing more.
      const again = yield* History.keep(new Topology.HistoryConfig({ events: retention, transferAttempts: retention, yearsAhead: 3 }), now)
      assert.deepStrictEqual(again, { partitionsCreated: 0, yearsDropped: [], attemptsDeleted: 0 })
    }))

  it.effect("a reader holding the log makes the job give up within its lock timeout, change nothing, and succeed once it is gone", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const holding = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const reader = yield* Effect.fork(sql.withTransaction(Effect.gen(function* () {
        yield* sql`select count(*) from event_log`
        yield* Deferred.succeed(holding, undefined)
        yield* Deferred.await(release)
      })))
      yield* Deferred.await(holding)
      const names = yield* partitions
      const started = Date.now()
      const blocked = yield* Effect.either(History.keep(new Topology.HistoryConfig({ yearsAhead: 5 })))
      assert.isTrue(Either.isLeft(blocked))
      assert.match(String(Either.isLeft(blocked) ? blocked.left.cause : ""), /lock timeout/)
      assert.isBelow(Date.now() - started, 30_000)
      assert.deepStrictEqual(yield* partitions, names)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(reader)
      assert.strictEqual((yield* History.keep(new Topology.HistoryConfig({ yearsAhead: 5 }))).partitionsCreated, 2)
    }))

  it.effect("an item's history reads only the years since it was created", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const scanned = (born: Date) =>
        Effect.gen(function* () {
          const [text, params] = EventHistory.page(sql, { entity: "DataTransferPackage", id: world.item, born, after: 0, limit: 100 })
            .compile()
          const [plan] = yield* sql.unsafe<{ "QUERY PLAN": unknown }>(`explain (analyze, format json) ${text}`, params as Array<unknown>)
          const names = new Set<string>()
          const walk = (node: unknown): void => {
            if (node === null || typeof node !== "object") return
            const n = node as Record<string, unknown>
            if (typeof n["Relation Name"] === "string") names.add(n["Relation Name"])
            for (const v of Object.values(n)) if (typeof v === "object") walk(v)
          }
          walk(plan!["QUERY PLAN"])
          return [...names].sort()
        })
      const all = (yield* partitions).length
      const born = new Date(Date.now() - 30 * 24 * 3600_000)
      const recent = yield* scanned(born)
      // the year it was born in (and the one before, if born in its first month), the five years ahead and the default; never the years before
      assert.isAtMost(recent.length, 8)
      assert.isBelow(recent.length, all)
      for (const name of recent) assert.isTrue(name === "event_log_default" || name >= yearName(born.getUTCFullYear() - 1), name)
      const everything = yield* scanned(new Date("2000-01-01T00:00:00Z"))
      assert.strictEqual(everything.length, all)
    }))

  it.effect("a backup holds the log as one table; a restore keeps every event and count, and the job puts old years back", () =>
    Effect.gen(function* () {
      const source = yield* Effect.map(PgClient.PgClient, (sql) => Redacted.value(sql.config.url!))
      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-history-"))),
        (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
      )
      // an event of last year, which a freshly migrated database has no partition for
      yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`insert into event_log (entity_kind, entity_id, to_state, at)
        values ('RawDataFile', ${randomUUID()}, 'filed', make_timestamptz(extract(year from now())::int - 1, 6, 1, 0, 0, 0, 'UTC'))`)
      const file = path.join(dir, "ops-db.ccat-backup")
      const summary = yield* Backup.backup(source, file)
      assert.isFalse(summary.tables.some((t) => /^event_log_(y|default)/.test(t.name)), "partitions are never named in a backup")
      const wanted = { events: yield* eventRows, counts: yield* transferCounts, repaired: yield* repairedTotal }
      const target = yield* Effect.map(TestDatabase.freshDatabase, (db) => db.url)
      yield* Restore.restore(Redacted.value(target), file)
      yield* Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        assert.strictEqual(yield* eventRows, wanted.events)
        assert.strictEqual(yield* transferCounts, wanted.counts)
        assert.strictEqual(yield* repairedTotal, wanted.repaired)
        // the years before the fresh database's first wait in the default partition, until the job moves them
        const [caught] = yield* sql<{ n: number }>`select count(*)::int as n from event_log_default where at < now()`
        assert.isAbove(caught!.n, 0)
        yield* History.keep(new Topology.HistoryConfig({}))
        const [left] = yield* sql<{ n: number }>`select count(*)::int as n from event_log_default where at < now()`
        assert.strictEqual(left!.n, 0)
        assert.strictEqual(yield* eventRows, wanted.events)
        const [max] = yield* sql<{ id: string }>`select max(id)::text as id from event_log`
        const [added] = yield* sql<
          { id: string }
        >`insert into event_log (entity_kind, entity_id, to_state) values ('RawDataFile', ${randomUUID()}, 'filed') returning id::text`
        assert.isTrue(BigInt(added!.id) > BigInt(max!.id), "ids go on after the restored ones")
      }).pipe(Effect.provide(PgClient.layer(OpsDb.clientConfig(target))))
    }).pipe(Effect.scoped))
})
