/**
 * The event log before and after migration 0018 (monthly partitions), on the synthetic catalog:
 * loads the catalog into an ops-db migrated to 0017, times the history queries, applies the
 * remaining migrations (timing the conversion), times the same queries again, then applies a
 * five-year retention through the history job.
 *
 *   npx tsx bench/history.ts                                   # 10^5 files, embedded PostgreSQL (thrown away)
 *   HISTORY_FILES=1000000 npx tsx bench/history.ts             # 10^6
 *   DATABASE_URL=postgres://.../scratch HISTORY_FILES=1000000 npx tsx bench/history.ts   # an empty database
 *
 * HISTORY_RUNS (default 20) runs per probe after one untimed run; each probe reports the median
 * and the smallest time, and how many partitions the plan read.
 */
import { Migrations, Topology } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as EventHistory from "../packages/server/src/http/EventHistory.js"
import * as History from "../packages/server/src/lifecycle/History.js"
import * as Catalog from "../packages/server/test/scale/Catalog.js"

const files = Number(process.env.HISTORY_FILES ?? 100_000)
const runs = Number(process.env.HISTORY_RUNS ?? 20)
const databaseUrl = process.env.DATABASE_URL ? Redacted.make(process.env.DATABASE_URL) : undefined
if (!Number.isInteger(files) || files < 1) throw new Error(`HISTORY_FILES must be a positive integer, got ${process.env.HISTORY_FILES}`)

const migrateBefore = (first: string) =>
  Effect.gen(function* () {
    const names = Object.keys(Migrations.migrations).sort().filter((n) => n < first)
    for (let i = 1; i <= names.length; i++) {
      const loader = Migrator.fromRecord(Object.fromEntries(names.slice(0, i).map((n) => [n, Migrations.migrations[n]!])))
      yield* Migrator.make({})({ loader, table: Migrations.table })
    }
  })

interface Probe {
  readonly name: string
  /** The statement and its parameters, for this schema. */
  readonly statement: (partitioned: boolean, i: number) => readonly [string, ReadonlyArray<unknown>]
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** Times a probe `runs` times (each run a different item where the probe has items) and reads its plan once. */
const measure = (probe: Probe, partitioned: boolean) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const times: Array<number> = []
    for (let i = 0; i <= runs; i++) {
      const [text, params] = probe.statement(partitioned, i)
      const t0 = performance.now()
      yield* sql.unsafe(text, params as Array<unknown>)
      if (i > 0) times.push(performance.now() - t0)
    }
    const [text, params] = probe.statement(partitioned, 1)
    const [plan] = yield* sql.unsafe<{ "QUERY PLAN": unknown }>(`explain (analyze, buffers, format json) ${text}`, params as Array<unknown>)
    const relations = new Set<string>()
    const walk = (node: unknown): void => {
      if (node === null || typeof node !== "object") return
      const n = node as Record<string, unknown>
      if (typeof n["Relation Name"] === "string") relations.add(n["Relation Name"])
      for (const v of Object.values(n)) if (typeof v === "object") walk(v)
    }
    walk(plan!["QUERY PLAN"])
    const top = (plan!["QUERY PLAN"] as Array<{ Plan: Record<string, number> }>)[0]!.Plan
    const buffers = (top["Shared Hit Blocks"] ?? 0) + (top["Shared Read Blocks"] ?? 0)
    return { median: median(times), min: Math.min(...times), relations: relations.size, buffers }
  })

const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* migrateBefore("0018")
  const [{ n }] = yield* sql<{ n: number }>`select count(*)::int as n from raw_data_file`
  if (n > 0) return yield* Effect.dieMessage(`the database already holds ${n} files: run the bench on an empty one`)
  console.log(`loading ${files.toLocaleString("en-US")} files into an ops-db at 0017`)
  const loaded = yield* Catalog.load({ files })
  const [{ events }] = yield* sql<{ events: number }>`select count(*)::float8 as events from event_log`
  console.log(`  ${loaded.rows.toLocaleString("en-US")} rows in ${loaded.seconds.toFixed(0)} s; ${events.toLocaleString("en-US")} events`)

  // Items whose history a user asks for: files across the decade, and their filing time.
  const items = yield* sql<{ id: string; born: Date }>`
    select id, filed_at as born from raw_data_file tablesample system (1) order by random() limit ${runs + 1}`
  const item = (i: number) => items[i % items.length]!
  const probes: ReadonlyArray<Probe> = [
    {
      name: "events of a file, first page (GET /events, ccat events)",
      statement: (partitioned, i) =>
        partitioned
          ? EventHistory.page(sql, { entity: "RawDataFile", id: item(i).id, born: item(i).born, after: 0, limit: 100 }).compile()
          : [`select * from event_log where entity_kind = 'RawDataFile' and entity_id = $1 and id > 0 order by id limit 101`, [item(i).id]]
    },
    {
      name: "events of the last day, newest 100 (a time filter)",
      statement: () => [`select * from event_log where at >= now() - interval '1 day' order by at desc limit 100`, []]
    },
    {
      name: "copies repaired per location (metrics)",
      statement: () => [
        `select c.data_location_id, count(*) from event_log e join physical_copy c on c.id = e.entity_id
        where e.entity_kind = 'PhysicalCopy' and e.to_state = 'DELETED' and (e.details->>'action') = 'repaired' group by 1`,
        []
      ]
    }
  ]
  const before: Array<Effect.Effect.Success<ReturnType<typeof measure>>> = []
  for (const p of probes) before.push(yield* measure(p, false))

  const t0 = performance.now()
  yield* Migrations.run
  const migrated = (performance.now() - t0) / 1000
  const [{ parts }] = yield* sql<{ parts: number }>`select count(*)::int as parts from pg_inherits where inhparent = 'event_log'::regclass`
  console.log(`migrations 0018 and after: ${migrated.toFixed(1)} s (${parts} partitions)`)
  const after: Array<Effect.Effect.Success<ReturnType<typeof measure>>> = []
  for (const p of probes) after.push(yield* measure(p, true))

  console.log(
    `\n| probe (${files.toLocaleString("en-US")} files, ${
      events.toLocaleString("en-US")
    } events) | before: median (min), partitions, buffers | after: median (min), partitions, buffers |`
  )
  console.log("|---|---|---|")
  probes.forEach((p, i) => {
    const b = before[i]!, a = after[i]!
    const cell = (x: typeof b) => `${x.median.toFixed(1)} (${x.min.toFixed(1)}) ms, ${x.relations} tables, ${x.buffers} buffers`
    console.log(`| ${p.name} | ${cell(b)} | ${cell(a)} |`)
  })

  const t1 = performance.now()
  const kept = yield* History.keep(new Topology.HistoryConfig({ events: 5 * 365 * 24 * 3600_000 }))
  const [{ left }] = yield* sql<{ left: number }>`select count(*)::float8 as left from event_log`
  console.log(
    `\nretention of 5 years: ${kept.yearsDropped.length} years dropped, ${(events - left).toLocaleString("en-US")} events, in ${
      ((performance.now() - t1) / 1000).toFixed(2)
    } s`
  )
})

const main = Effect.gen(function* () {
  const dir = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-bench-history-")))
  yield* Effect.promise(() => fs.chmod(dir, 0o755))
  yield* Effect.addFinalizer(() => Effect.promise(() => fs.rm(dir, { recursive: true, force: true })))
  yield* program.pipe(
    Effect.provide(OpsDb.layer({ databaseUrl, dataDir: dir, database: databaseUrl ? undefined : `ccat_history_${files}`, migrate: false }))
  )
}).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))

Effect.runPromise(main).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
