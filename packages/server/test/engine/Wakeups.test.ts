/**
 * Idle workers are woken by the jobs they wait for, not by their poll: every worker here polls
 * once an hour, so a job taken within the test's bound was taken because its commit woke the
 * worker. The listening connection comes back by itself when the server drops it, and several
 * worker processes share one queue's jobs, each job run exactly once.
 */
import { OpsDb } from "@ccat/core/node"
import { TestDatabase } from "@ccat/core/testing"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import { spawn } from "node:child_process"
import * as JobQueue from "../../src/engine/JobQueue.js"
import { repoRoot } from "../support.js"

/** An hour: no job in these tests is found by a poll. */
const noPoll = 3600

/** Waits for `condition` with a bound; dies naming `what` when the bound passes. */
const until = <E, R>(what: string, condition: Effect.Effect<boolean, E, R>, ms: number) =>
  Effect.gen(function* () {
    const deadline = Date.now() + ms
    while (!(yield* condition)) {
      if (Date.now() > deadline) return yield* Effect.dieMessage(`${what} within ${ms} ms`)
      yield* Effect.sleep("25 millis")
    }
  })

/** The backend that listens for ready jobs, if any. */
const listener = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    sql<
      { pid: number }
    >`select pid from pg_stat_activity where application_name = ${JobQueue.wakeupsApplication} and datname = current_database()`
).pipe(Effect.map((rows) => rows[0]?.pid))

describe("wake-ups of idle workers", () => {
  it.scopedLive(
    "a job committed while its worker idles is taken at once, also after the listening connection was dropped",
    () =>
      Effect.gen(function* () {
        const { url } = yield* TestDatabase.freshDatabase
        const db = PgClient.layer(OpsDb.clientConfig(url))
        yield* Effect.gen(function* () {
          const jobs = yield* JobQueue.JobQueue
          const sql = yield* SqlClient.SqlClient
          const queue = "test.wake"
          yield* jobs.ensureQueue(queue)
          const ran = yield* Queue.unbounded<number>()
          yield* jobs.work<{ v: number }, never, never>(queue, (job) => Queue.offer(ran, job.data.v), { pollingIntervalSeconds: noPoll })
          yield* until("the worker listens", Effect.map(listener, (pid) => pid !== undefined), 30_000)
          // The worker's first fetch found nothing; from here on only a wake-up makes it fetch.
          yield* Effect.sleep("500 millis")

          const sentAt = Date.now()
          yield* sql.withTransaction(jobs.send(queue, { v: 1 }))
          assert.strictEqual(yield* Queue.take(ran).pipe(Effect.timeout("20 seconds")), 1, "taken on its commit, not at the hour's poll")
          const tookMs = Date.now() - sentAt

          // A dropped connection (a restarted server, a cut link) is made again, and woken workers look at once.
          const first = (yield* listener)!
          yield* sql`select pg_terminate_backend(${first})`
          yield* until("the listening connection is made again", Effect.map(listener, (pid) => pid !== undefined && pid !== first), 30_000)
          yield* Effect.sleep("500 millis")
          yield* jobs.send(queue, { v: 2 })
          assert.strictEqual(yield* Queue.take(ran).pipe(Effect.timeout("20 seconds")), 2, "taken after the reconnection, without a poll")

          // A job that becomes ready later is announced when it does: an expedited backoff.
          yield* jobs.send(queue, { v: 3 }, { startAfterSeconds: 3000, singletonKey: "later" })
          yield* sql.withTransaction(JobQueue.expedite(queue, "later"))
          assert.strictEqual(yield* Queue.take(ran).pipe(Effect.timeout("20 seconds")), 3, "taken once expedited")
          yield* Effect.logInfo(`first wake-up took ${tookMs} ms`)
        }).pipe(Effect.provide(JobQueue.layer.pipe(Layer.provideMerge(db))))
      }),
    180_000
  )

  it.scopedLive("three worker processes share a queue's jobs: every job runs once, each process takes some", () =>
    Effect.gen(function* () {
      const { url } = yield* TestDatabase.freshDatabase
      const db = PgClient.layer(OpsDb.clientConfig(url))
      const queue = "test.share"
      const total = 300
      yield* Effect.gen(function* () {
        const jobs = yield* JobQueue.JobQueue
        const sql = yield* SqlClient.SqlClient
        yield* jobs.ensureQueue(queue)
        yield* sql`create table share_run (job_id uuid not null, n int not null, pid int not null)`
        const children = [0, 1, 2].map(() => {
          const child = spawn(process.execPath, ["--import", "tsx", "packages/server/test/engine/ShareChild.ts"], {
            cwd: repoRoot,
            env: { ...process.env, DATABASE_URL: Redacted.value(url), CCAT_SHARE_QUEUE: queue, CCAT_SHARE_CONCURRENCY: "2" },
            stdio: ["ignore", "pipe", "pipe"]
          })
          let out = ""
          child.stdout!.on("data", (c) => (out += c))
          child.stderr!.on("data", (c) => (out += c))
          return { child, out: () => out }
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => children.forEach((c) => c.child.kill("SIGKILL"))))
        yield* until("every worker process runs", Effect.sync(() => children.every((c) => c.out().includes("working"))), 90_000).pipe(
          Effect.catchAllDefect((d) => Effect.dieMessage(`${d}\n${children.map((c) => c.out()).join("\n---\n")}`))
        )
        // three children and this process
        yield* until(
          "every worker process listens",
          Effect.flatMap(
            sql<
              { n: number }
            >`select count(*)::int as n from pg_stat_activity where application_name = ${JobQueue.wakeupsApplication} and datname = current_database()`,
            (rows) => Effect.succeed(rows[0]!.n >= 4)
          ),
          30_000
        )
        yield* sql.withTransaction(
          Effect.forEach(Array.from({ length: total }, (_, n) => n), (n) => jobs.send(queue, { n }), { discard: true })
        )
        const counts = sql<{ runs: number; jobs: number; processes: number; least: number }>`
          select count(*)::int as runs, count(distinct job_id)::int as jobs, count(distinct pid)::int as processes,
            coalesce((select min(c) from (select count(*)::int as c from share_run group by pid) p), 0) as least
          from share_run`
        yield* until(`all ${total} jobs run`, Effect.map(counts, (r) => r[0]!.runs >= total), 120_000)
        const [done] = yield* sql<{ n: number }>`select count(*)::int as n from pgboss.job where name = ${queue} and state = 'completed'`
        yield* until(
          "every job is recorded completed",
          Effect.map(
            sql<{ n: number }>`select count(*)::int as n from pgboss.job where name = ${queue} and state = 'completed'`,
            (r) => r[0]!.n === total
          ),
          30_000
        )
        const [c] = yield* counts
        assert.strictEqual(c!.runs, total, `no job ran twice (completed so far ${done!.n})`)
        assert.strictEqual(c!.jobs, total)
        assert.strictEqual(c!.processes, 3, "every process took a share")
        const [leases] = yield* sql<{ n: number }>`select count(*)::int as n from pgboss.ccat_job_lease`
        assert.strictEqual(leases!.n, 0, "no lease outlives its job")
      }).pipe(Effect.provide(JobQueue.layer.pipe(Layer.provideMerge(db))))
    }), 240_000)
})
