/**
 * Job leases: the job of a worker process killed with SIGKILL runs again, elsewhere, once its
 * lease times out (not after pg-boss's expiry of hours), and the death counts as an attempt.
 */
import { Topology } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import { TestDatabase } from "@ccat/core/testing"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Redacted from "effect/Redacted"
import { spawn } from "node:child_process"
import * as JobQueue from "../../src/engine/JobQueue.js"
import { repoRoot } from "../support.js"

const lease = { heartbeatInterval: "200 millis", leaseTimeout: "1 second" } as const

describe("job leases", () => {
  it.scopedLive(
    "the job of a SIGKILLed worker runs again once its lease times out, and the death counts as an attempt",
    () =>
      Effect.gen(function* () {
        const { url } = yield* TestDatabase.freshDatabase
        const db = PgClient.layer(OpsDb.clientConfig(url))
        const queue = "test.lease"
        yield* Effect.gen(function* () {
          const jobs = yield* JobQueue.JobQueue
          const sql = yield* SqlClient.SqlClient
          // Expiry of an hour: only the lease can bring the job back within the test.
          yield* jobs.ensureQueue(queue, {
            policy: "stately",
            retryLimit: 3,
            retryDelaySeconds: 60,
            retryBackoff: true,
            expireInSeconds: 3600
          })
          const id = yield* jobs.send(queue, { v: 1 }, { singletonKey: "one" })
          assert.isNotNull(id)

          const child = spawn(process.execPath, ["--import", "tsx", "packages/server/test/engine/LeaseChild.ts"], {
            cwd: repoRoot,
            env: { ...process.env, DATABASE_URL: Redacted.value(url), CCAT_LEASE_QUEUE: queue },
            stdio: ["ignore", "pipe", "pipe"]
          })
          yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))
          let out = ""
          child.stdout!.on("data", (c) => (out += c))
          child.stderr!.on("data", (c) => (out += c))
          const deadline = Date.now() + 90_000
          while (!out.includes(`took ${id}`)) {
            if (Date.now() > deadline || child.exitCode !== null) return yield* Effect.dieMessage(`the child did not take the job:\n${out}`)
            yield* Effect.sleep("100 millis")
          }
          const [held] = yield* sql<{ worker: string }>`select worker from pgboss.ccat_job_lease where job_id = ${id}`
          assert.match(held!.worker, new RegExp(`/${child.pid}/`), "the child leased the job it runs")

          child.kill("SIGKILL")
          const killedAt = Date.now()
          const ran = yield* Deferred.make<string>()
          yield* jobs.work<{ v: number }, never, never>(queue, (job) => Deferred.succeed(ran, job.id), { pollingIntervalSeconds: 0.5 })
          // A 1 s lease renewed every 200 ms: back within a few heartbeats and a poll, not after the
          // hour of its expiry (the bound is the machine's load, not the lease).
          const again = yield* Deferred.await(ran).pipe(Effect.timeout("60 seconds"))
          console.log(`the job came back ${Date.now() - killedAt} ms after the kill`)
          assert.strictEqual(again, id, "the same job ran again")
          const row = sql<{ state: string; retryCount: number }>`
          select state::text as state, retry_count from pgboss.job where id = ${id}`.pipe(Effect.map((r) => r[0]))
          const until = Date.now() + 30_000
          while ((yield* row)?.state !== "completed") {
            if (Date.now() > until) return yield* Effect.dieMessage(`the job is ${JSON.stringify(yield* row)}, not completed`)
            yield* Effect.sleep("100 millis")
          }
          assert.deepStrictEqual(yield* row, { state: "completed", retryCount: 1 })
          const leases = yield* sql<{ n: number }>`select count(*)::int as n from pgboss.ccat_job_lease`
          assert.strictEqual(leases[0]!.n, 0, "no lease outlives its job")
        }).pipe(Effect.provide(JobQueue.layerWith(lease).pipe(Layer.provideMerge(db))))
      }),
    180_000
  )

  it.scopedLive(
    "a finished job whose completion cannot be recorded (its table away at that instant) leaves the process running and runs again",
    () =>
      Effect.gen(function* () {
        const { url } = yield* TestDatabase.freshDatabase
        const db = PgClient.layer(OpsDb.clientConfig(url))
        const queue = "test.record"
        yield* Effect.gen(function* () {
          const jobs = yield* JobQueue.JobQueue
          const sql = yield* SqlClient.SqlClient
          yield* jobs.ensureQueue(queue, { policy: "stately", retryLimit: 3, retryDelaySeconds: 60, expireInSeconds: 3600 })
          const id = yield* jobs.send(queue, { v: 1 }, { singletonKey: "one" })
          const failuresBefore = (yield* Metric.value(JobQueue.recordFailures)).count
          let runs = 0
          const again = yield* Deferred.make<string>()
          yield* jobs.work<{ v: number }, never, never>(queue, (job) =>
            Effect.gen(function* () {
              runs++
              // The first run ends as the database loses the job table: pg-boss cannot record it.
              if (runs === 1) yield* Effect.orDie(sql`alter table pgboss.job rename to job_away`)
              else yield* Deferred.succeed(again, job.id)
            }), { pollingIntervalSeconds: 0.5 })
          const deadline = Date.now() + 30_000
          while ((yield* Metric.value(JobQueue.recordFailures)).count === failuresBefore) {
            if (Date.now() > deadline) return yield* Effect.dieMessage(`the completion was never attempted (runs: ${runs})`)
            yield* Effect.sleep("50 millis")
          }
          yield* sql`alter table pgboss.job_away rename to job`
          assert.strictEqual(yield* Deferred.await(again).pipe(Effect.timeout("60 seconds")), id, "the same job ran again")
          const done = Effect.map(sql<{ state: string }>`select state::text as state from pgboss.job where id = ${id}`, (r) => r[0]?.state)
          const until = Date.now() + 30_000
          while ((yield* done) !== "completed") {
            if (Date.now() > until) return yield* Effect.dieMessage(`the job is ${yield* done}, not completed`)
            yield* Effect.sleep("100 millis")
          }
          assert.strictEqual(runs, 2)
        }).pipe(Effect.provide(JobQueue.layerWith(lease).pipe(Layer.provideMerge(db))))
      }),
    180_000
  )

  it.scopedLive("refuses a lease timeout shorter than three heartbeats, before it touches anything", () =>
    Effect.gen(function* () {
      const { url } = yield* TestDatabase.freshDatabase
      const result = yield* Effect.either(
        Layer.build(
          JobQueue.layerWith({ heartbeatInterval: "1 second", leaseTimeout: "2 seconds" }).pipe(
            Layer.provide(PgClient.layer(OpsDb.clientConfig(url)))
          )
        )
      )
      assert.isTrue(Either.isLeft(result))
      if (Either.isLeft(result)) {
        assert.strictEqual(result.left._tag, "LeaseOptionsError")
        assert.match(result.left.message, /at least three heartbeat intervals/)
      }
      const schemas = yield* Effect.flatMap(PgClient.PgClient, (sql) => sql<{ n: number }>`
        select count(*)::int as n from information_schema.schemata where schema_name = 'pgboss'`).pipe(
        Effect.provide(PgClient.layer(OpsDb.clientConfig(url)))
      )
      assert.strictEqual(schemas[0]!.n, 0, "pg-boss was not installed")
    }), 60_000)

  it("the configuration refuses the same, naming the field", () => {
    const decoded = Topology.decode({ sites: [], policy: { jobHeartbeat: "10 seconds", jobLeaseTimeout: "20 seconds" } })
    assert.isTrue(Either.isLeft(decoded))
    if (Either.isLeft(decoded)) {
      assert.include(decoded.left.message, "policy.jobLeaseTimeout: must be at least three times policy.jobHeartbeat")
    }
    const fine = Topology.decode({ sites: [], policy: { jobHeartbeat: "1 seconds", jobLeaseTimeout: "5 seconds" } })
    assert.isTrue(Either.isRight(fine))
  })
})
