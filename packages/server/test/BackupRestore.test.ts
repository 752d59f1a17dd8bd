/**
 * `ccat db backup` / `restore` on real PostgreSQL databases holding a real lifecycle: files
 * filed, packaged, bundled, moved and archived on the demo topology, and a second observation
 * caught mid-flight when the workers stop. The restored database has every row of the original;
 * the workers, started on it with no pg-boss jobs at all, finish the interrupted work; damaged
 * backups and non-empty targets are refused and change nothing.
 */
import { Migrations } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import { TestDatabase } from "@ccat/core/testing"
import { assert, describe, it } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { gunzipSync, gzipSync } from "node:zlib"
import pg from "pg"
import * as Backup from "../src/backup/Backup.js"
import * as Restore from "../src/backup/Restore.js"
import * as JobQueue from "../src/engine/JobQueue.js"
import * as Stages from "../src/lifecycle/Stages.js"
import * as Storages from "../src/lifecycle/Storages.js"
import { fileObservation, observatory, policyLayer, runUntil, syncTopology, tempDir, topologyIn } from "./lifecycle/LifecycleWorld.js"

const everySite = [["chile", Stages.all], ["cologne", Stages.all]] as const

/** A fresh database, migrated, and its URL. */
const migratedDatabase = Effect.map(TestDatabase.migratedDatabase, (db) => Redacted.value(db.url))

/** What the lifecycle runs on, for the database at `url`. */
const worldOn = (url: string) =>
  Layer.mergeAll(JobQueue.layer, Storages.layer()).pipe(
    Layer.provideMerge(PgClient.layer(OpsDb.clientConfig(Redacted.make(url)))),
    Layer.orDie
  )

/** Every table's rows, as text in a stable order, through a plain connection. */
const dump = (url: string) =>
  Effect.promise(async () => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      const tables = await Backup.tablesOf(client)
      const out: Record<string, string> = {}
      for (const t of [...tables.map((t) => t.name), Migrations.table]) {
        const cols = t === Migrations.table ? "migration_id, name" : "*"
        const r = await client.query<{ rows: string }>(
          `select coalesce(json_agg(x order by x::text), '[]')::text as rows from (select ${cols} from ${Backup.ident(t)}) x`
        )
        out[t] = r.rows[0]!.rows
      }
      return out
    } finally {
      await client.end()
    }
  })

/** Tables of the ops-db schema in the database: none in a database nothing was restored into. */
const tableCount = (url: string) =>
  Effect.promise(async () => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      return Number((await client.query<{ n: string }>(`select count(*) as n from pg_tables where schemaname = 'public'`)).rows[0]!.n)
    } finally {
      await client.end()
    }
  })

const reasonOf = <A, R>(e: Effect.Effect<A, { readonly reason: string; readonly message: string }, R>) =>
  Effect.match(e, { onFailure: (err) => `${err.reason} (${err.message})`, onSuccess: () => "success" })

const count = (query: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<{ n: number }>(query)).pipe(Effect.map((r) => r[0]!.n))

const allArchived = Effect.zipWith(
  count(`select count(*)::int as n from raw_data_package where status <> 'completed'`),
  count(`select count(*)::int as n from raw_data_file where raw_data_package_id is null`),
  (open, unpackaged) => open === 0 && unpackaged === 0
)

describe("ops-db backup and restore", () => {
  it.scopedLive("restores every row of a database caught mid-lifecycle, and the workers finish its work", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const topology = topologyIn(dir)
      const source = yield* migratedDatabase

      // On the source database: one observation all the way to the archive, then a second one
      // whose workers are stopped part-way (as a crash would), leaving work in flight.
      const inFlight = yield* Effect.gen(function* () {
        yield* syncTopology(topology)
        const obs = yield* observatory
        yield* fileObservation(topology, obs, [{ path: "det/a.fits", bytes: 300_000 }, { path: "hk/h.dat", bytes: 2_000, module: 1 }])
        yield* runUntil(everySite, allArchived, 120_000).pipe(Effect.provide(policyLayer(topology)))
        const second = yield* fileObservation(topology, obs, [
          { path: "scan/big.raw", bytes: 1_500_000 },
          { path: "scan/small.raw", bytes: 9_000 }
        ])
        const packaged = Effect.map(
          count(
            `select count(*)::int as n from raw_data_file where raw_data_package_id is not null and executed_obs_unit_id = '${second.eou.id}'`
          ),
          (n) => n > 0
        )
        const run = yield* Effect.fork(runUntil(everySite, allArchived, 120_000).pipe(Effect.provide(policyLayer(topology))))
        while (!(yield* packaged)) yield* Effect.sleep("50 millis")
        yield* Fiber.interrupt(run)
        return second
      }).pipe(Effect.provide(worldOn(source)))
      assert.isFalse(yield* allArchived.pipe(Effect.provide(worldOn(source))), "the second observation is still in flight")

      const file = path.join(dir, "ops-db.ccat-backup")
      const summary = yield* Backup.backup(source, file)
      assert.strictEqual(summary.migration.id, Math.max(...Object.keys(Migrations.migrations).map((k) => Number(k.slice(0, 4)))))
      assert.isAbove(summary.rows, 20)
      for (const t of ["raw_data_file", "raw_data_package", "physical_copy", "data_transfer", "event_log", "site", "data_location"]) {
        assert.isAbove(summary.tables.find((x) => x.name === t)?.rows ?? 0, 0, `${t} is in the backup`)
      }
      assert.notInclude(summary.tables.map((t) => t.name), "job", "pg-boss's tables are not backed up")
      assert.match(
        yield* reasonOf(Backup.backup(source, file)),
        /^Exists \(backup: Exists: .* exists; choose a new name/,
        "a backup never replaces a file"
      )

      // Damaged copies: refused before the target database is touched.
      const bytes = yield* Effect.promise(() => fs.readFile(file))
      const truncated = path.join(dir, "truncated.ccat-backup")
      yield* Effect.promise(() => fs.writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length * 0.6))))
      const flipped = path.join(dir, "flipped.ccat-backup")
      const flippedBytes = Buffer.from(bytes)
      flippedBytes[Math.floor(bytes.length / 2)]! ^= 0x20
      yield* Effect.promise(() => fs.writeFile(flipped, flippedBytes))
      // valid gzip around one changed row: only our checksums can tell
      const edited = path.join(dir, "edited.ccat-backup")
      const text = gunzipSync(bytes).toString("utf8")
      const victim = text.indexOf("det/a.fits")
      assert.isAbove(victim, 0)
      yield* Effect.promise(() =>
        fs.writeFile(edited, gzipSync(Buffer.from(text.slice(0, victim) + "det/b" + text.slice(victim + 5), "utf8")))
      )
      const empty = path.join(dir, "empty.ccat-backup")
      yield* Effect.promise(() => fs.writeFile(empty, gzipSync(Buffer.from("CCAT-OPS-DB-BACKUP 1\n"))))
      const notOurs = path.join(dir, "not-ours.ccat-backup")
      yield* Effect.promise(() => fs.writeFile(notOurs, gzipSync(Buffer.from("-- PostgreSQL database dump\n"))))

      const target = yield* Effect.map(TestDatabase.freshDatabase, (db) => Redacted.value(db.url))
      assert.match(yield* reasonOf(Restore.restore(target, truncated)), /^Truncated \(backup: Truncated: /)
      assert.match(yield* reasonOf(Restore.restore(target, flipped)), /^(Corrupt|Truncated) \(backup: /)
      assert.match(
        yield* reasonOf(Restore.restore(target, edited)),
        /^Corrupt \(backup: Corrupt: table raw_data_file: .* where the backup recorded/
      )
      assert.match(yield* reasonOf(Restore.restore(target, empty)), /^Truncated \(backup: Truncated: /)
      assert.match(yield* reasonOf(Restore.restore(target, notOurs)), /^Unsupported \(backup: Unsupported: .* is not a ccat ops-db backup/)
      assert.strictEqual(yield* tableCount(target), 0, "a refused restore created nothing")

      // A database with rows is refused, and keeps exactly what it had.
      const before = yield* dump(source)
      assert.match(
        yield* reasonOf(Restore.restore(source, file)),
        /^NotEmpty \(backup: NotEmpty: the target database is not empty: table \w+ has rows/
      )
      assert.deepStrictEqual(yield* dump(source), before)

      // The good file: every row of every table comes back.
      const verified = yield* Restore.restore(target, file)
      assert.strictEqual(verified.trailer.rows, summary.rows)
      assert.deepStrictEqual(yield* dump(target), before)
      assert.match(yield* reasonOf(Restore.restore(target, file)), /^NotEmpty/, "a second restore into the same database is refused")

      // The restored ops-db has no pg-boss jobs; its planners find the interrupted work and finish it.
      yield* Effect.gen(function* () {
        // No row is aged and no job is sent by hand: planners see claimed work with no job at all
        // in the (empty) queue and re-derive it at once.
        yield* runUntil(everySite, allArchived, 120_000).pipe(Effect.provide(policyLayer(topology)))
        const archived = yield* count(`
          select count(*)::int as n from raw_data_file f join raw_data_package p on p.id = f.raw_data_package_id
          join physical_copy c on c.raw_data_package_id = p.id and c.status = 'PRESENT' and c.verified_at is not null
          join data_location l on l.id = c.data_location_id and l.type = 'LONG_TERM_ARCHIVE'
          where f.executed_obs_unit_id = '${inFlight.eou.id}'`)
        assert.strictEqual(archived, inFlight.files.length, "every file of the interrupted observation is archived")
        // new events continue after the restored ids (the identity sequence was moved on)
        const events = yield* count(`select count(*)::int as n from event_log`)
        assert.isAbove(events, JSON.parse(before.event_log!).length)
      }).pipe(Effect.provide(worldOn(target)))
    }), 400_000)
})
