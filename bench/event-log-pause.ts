/**
 * How long migration 0018 (the event log partitioned) holds up the previous release's writers:
 * an ops-db at 0017 gets EVENT_LOG_ROWS events spread over ten years, a writer inserts an event
 * every few milliseconds on its own connection (as the previous release's workers do), and 0018 is
 * applied in its own transaction meanwhile. Prints the migration's time, the writer's longest
 * insert (the pause) and its 99th percentile during the migration, and checks that every event,
 * the writer's included, is in the partitioned log afterwards with its id.
 *
 *   npx tsx bench/event-log-pause.ts                           # 10^6 events, embedded PostgreSQL (thrown away)
 *   EVENT_LOG_ROWS=100000 npx tsx bench/event-log-pause.ts
 *   DATABASE_URL=postgres://.../scratch npx tsx bench/event-log-pause.ts   # an empty database
 */
import { Migrations } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"

const rows = Number(process.env.EVENT_LOG_ROWS ?? 1_000_000)
const databaseUrl = process.env.DATABASE_URL ? Redacted.make(process.env.DATABASE_URL) : undefined
if (!Number.isInteger(rows) || rows < 1) throw new Error(`EVENT_LOG_ROWS must be a positive integer, got ${process.env.EVENT_LOG_ROWS}`)

const names = Object.keys(Migrations.migrations).sort()

/** Applies the migrations up to (without) `first`, each in its own transaction, as `Migrations.run` does. */
const migrateBefore = (first: string) =>
  Effect.gen(function* () {
    const upTo = names.filter((n) => n < first)
    for (let i = 1; i <= upTo.length; i++) {
      const loader = Migrator.fromRecord(Object.fromEntries(upTo.slice(0, i).map((n) => [n, Migrations.migrations[n]!])))
      yield* Migrator.make({})({ loader, table: Migrations.table })
    }
  })

const percentile = (xs: ReadonlyArray<number>, p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? 0

const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* migrateBefore("0018")
  const [{ n }] = yield* sql<{ n: number }>`select count(*)::int as n from event_log`
  if (n > 0) return yield* Effect.dieMessage(`the database already holds ${n} events: run the bench on an empty one`)
  const t0 = performance.now()
  // as the lifecycle writes them: files' filings over a decade, with small details
  yield* sql`
    insert into event_log (entity_kind, entity_id, from_state, to_state, at, actor, details)
    select 'RawDataFile', gen_random_uuid(), 'filed', 'packaged', now() - random() * interval '10 years', 'system',
           jsonb_build_object('package', gen_random_uuid(), 'attempt', 1 + (i % 3))
    from generate_series(1, ${rows}) i`
  yield* sql`analyze event_log`
  console.log(`${rows.toLocaleString("en-US")} events loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`)

  // The previous release's writer: one event at a time, each its own transaction, timed.
  const latencies = yield* Ref.make<Array<{ at: number; ms: number; id: string }>>([])
  const stop = yield* Ref.make(false)
  const writer = yield* Effect.fork(Effect.gen(function* () {
    while (!(yield* Ref.get(stop))) {
      const start = performance.now()
      const [row] = yield* sql<
        { id: string }
      >`insert into event_log (entity_kind, entity_id, to_state) values ('RawDataFile', gen_random_uuid(), 'filed') returning id::text`
      yield* Ref.update(latencies, (all) => (all.push({ at: start, ms: performance.now() - start, id: row!.id }), all))
      yield* Effect.sleep("5 millis")
    }
  }))
  yield* Effect.sleep("1 second")

  const started = performance.now()
  yield* Migrator.make({})({
    loader: Migrator.fromRecord(Object.fromEntries(names.filter((k) => k < "0019").map((k) => [k, Migrations.migrations[k]!]))),
    table: Migrations.table
  })
  const ended = performance.now()
  yield* Effect.sleep("1 second")
  // stopped between inserts, not interrupted in one: an insert interrupted may still commit
  yield* Ref.set(stop, true)
  yield* Fiber.join(writer)

  const all = yield* Ref.get(latencies)
  const during = all.filter((l) => l.at + l.ms >= started && l.at <= ended)
  const [kind] = yield* sql<{ kind: string }>`select relkind::text as kind from pg_class where oid = 'event_log'::regclass`
  const [after] = yield* sql<{ n: number; ids: number }>`select count(*)::int as n, count(distinct id)::int as ids from event_log`
  const ids = all.map((l) => l.id)
  const [found] = yield* sql<{ n: number }>`select count(*)::int as n from event_log where id = any(${ids}::bigint[])`
  console.log(
    `0018 applied in ${((ended - started) / 1000).toFixed(2)} s; event_log is ${
      kind!.kind === "p" ? "partitioned" : `NOT partitioned (${kind!.kind})`
    }`
  )
  console.log(
    `writer during the migration: ${during.length} inserts, longest ${Math.max(0, ...during.map((l) => l.ms)).toFixed(0)} ms, ` +
      `p99 ${percentile(during.map((l) => l.ms), 0.99).toFixed(0)} ms, median ${percentile(during.map((l) => l.ms), 0.5).toFixed(1)} ms`
  )
  console.log(
    `events after: ${after!.n.toLocaleString("en-US")} (expected ${
      (rows + all.length).toLocaleString("en-US")
    }); the writer's ${all.length} events found: ${found!.n}`
  )
  if (after!.n !== rows + all.length || after!.ids !== after!.n || found!.n !== all.length) {
    return yield* Effect.dieMessage("events were lost or doubled")
  }
})

const main = Effect.gen(function* () {
  const dir = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-bench-event-log-")))
  yield* Effect.promise(() => fs.chmod(dir, 0o755))
  yield* Effect.addFinalizer(() => Effect.promise(() => fs.rm(dir, { recursive: true, force: true })))
  yield* program.pipe(Effect.provide(OpsDb.layer({ databaseUrl, dataDir: dir, migrate: false })))
}).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))

Effect.runPromise(main).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
