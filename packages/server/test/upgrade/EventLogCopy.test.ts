/**
 * Migration 0018 copies the event log into its partitioned form without holding up the previous
 * release's writers: while a writer's transaction holds an event not yet committed, the copy
 * waits for it and another writer's event goes in meanwhile; once the first commits, the log is
 * partitioned with every event, each once, under its id.
 */
import { Migrations } from "@ccat/core"
import { TestDatabase } from "@ccat/core/testing"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"

const names = Object.keys(Migrations.migrations).sort()

const migrateThrough = (last: string) =>
  Effect.gen(function* () {
    const upTo = names.filter((n) => n <= last)
    for (let i = 1; i <= upTo.length; i++) {
      const loader = Migrator.fromRecord(Object.fromEntries(upTo.slice(0, i).map((n) => [n, Migrations.migrations[n]!])))
      yield* Migrator.make({})({ loader, table: Migrations.table })
    }
  })

const before18 = names.filter((n) => n < "0018").at(-1)!
const the18 = names.find((n) => n.startsWith("0018_"))!

describe("the event log's copy", () => {
  it(
    "waits for a writer's open transaction, lets other writers in meanwhile, and keeps every event once",
    () =>
      Effect.runPromise(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          yield* migrateThrough(before18)
          yield* sql`
        insert into event_log (entity_kind, entity_id, to_state, at)
        select 'RawDataFile', gen_random_uuid(), 'filed', now() - i * interval '1 day' from generate_series(1, 3000) i`

          // a writer of the previous release, its event inserted and not yet committed
          const inserted = yield* Deferred.make<string>()
          const commit = yield* Deferred.make<void>()
          const open = yield* Effect.fork(sql.withTransaction(Effect.gen(function* () {
            const [row] = yield* sql<
              { id: string }
            >`insert into event_log (entity_kind, entity_id, to_state) values ('RawDataFile', gen_random_uuid(), 'filed') returning id::text`
            yield* Deferred.succeed(inserted, row!.id)
            yield* Deferred.await(commit)
          })))
          const pending = yield* Deferred.await(inserted)

          const migration = yield* Effect.fork(migrateThrough(the18))
          // the copy is waiting for that writer (sleeping between looks), not holding the log
          yield* sql<
            { n: number }
          >`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event = 'PgSleep'`.pipe(
            Effect.filterOrFail((r) => r[0]!.n === 1, () => new Error("the copy is not waiting for the open writer yet")),
            Effect.retry(Schedule.spaced("50 millis")),
            Effect.timeoutFail({
              duration: "30 seconds",
              onTimeout: () => new Error("timed out waiting for the copy to wait for the open writer")
            })
          )
          const [meanwhile] = yield* sql<
            { id: string }
          >`insert into event_log (entity_kind, entity_id, to_state) values ('RawDataFile', gen_random_uuid(), 'filed') returning id::text`
            .pipe(
              Effect.timeoutFail({ duration: "15 seconds", onTimeout: () => new Error("a writer was held up by the copy") })
            )
          yield* Deferred.succeed(commit, undefined)
          yield* Fiber.join(open)
          yield* Fiber.join(migration)

          const [kind] = yield* sql<{ kind: string }>`select relkind::text as kind from pg_class where oid = 'event_log'::regclass`
          assert.strictEqual(kind!.kind, "p")
          const [counts] = yield* sql<{ n: number; ids: number }>`select count(*)::int as n, count(distinct id)::int as ids from event_log`
          assert.deepStrictEqual(counts, { n: 3002, ids: 3002 })
          const found = yield* sql<{ id: string }>`select id::text from event_log where id in (${pending}, ${meanwhile!.id}) order by id`
          assert.deepStrictEqual(found.map((r) => r.id), [pending, meanwhile!.id].sort((a, b) => Number(a) - Number(b)))
          // ids go on after every id handed out, and the index names are the log's own
          const [next] = yield* sql<
            { id: string }
          >`insert into event_log (entity_kind, entity_id, to_state) values ('RawDataFile', gen_random_uuid(), 'filed') returning id::text`
          assert.isTrue(BigInt(next!.id) > BigInt(meanwhile!.id) && BigInt(next!.id) > BigInt(pending))
          const indexes = yield* sql<{ name: string }>`select indexname as name from pg_indexes where tablename = 'event_log' order by 1`
          assert.deepStrictEqual(indexes.map((i) => i.name), ["event_log_entity", "event_log_pkey", "event_log_repaired_copy"])
          const [sequence] = yield* sql<{ name: string }>`select pg_get_serial_sequence('event_log', 'id') as name`
          assert.match(sequence!.name, /(^|\.)event_log_id_seq$/)
        }).pipe(Effect.provide(TestDatabase.layerEmpty))
      ),
    60_000
  )
})
