/**
 * The batch send: many jobs of one queue in one statement, each as pg-boss's own `send` makes it,
 * the queue's policy holding one waiting job per singleton key, and a job of a batch that rolls
 * back never seen.
 */
import { OpsDb } from "@ccat/core/node"
import { TestDatabase } from "@ccat/core/testing"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as JobBatch from "../../src/engine/JobBatch.js"
import * as JobQueue from "../../src/engine/JobQueue.js"

const jobsOf = (queue: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql.unsafe<{ singleton_key: string; data: { n: number }; state: string; retry_limit: number; expire_seconds: number }>(
        `select singleton_key, data, state::text as state, retry_limit, extract(epoch from expire_in)::int as expire_seconds
       from pgboss.job where name = $1 order by singleton_key`,
        [queue]
      ).withoutTransform
  )

describe("JobBatch.sendMany", () => {
  it.scopedLive(
    "sends a batch in one statement with the queue's options, one waiting job per key, and nothing on rollback",
    () =>
      Effect.gen(function* () {
        const { url } = yield* TestDatabase.freshDatabase
        yield* Effect.gen(function* () {
          const jobs = yield* JobQueue.JobQueue
          const sql = yield* SqlClient.SqlClient
          const queue = "test.batch"
          yield* jobs.ensureQueue(queue, { policy: "stately", retryLimit: 7, expireInSeconds: 120 })
          assert.strictEqual(yield* JobBatch.sendMany(queue, []), 0)
          // a key twice in one batch is one job
          const sent = yield* JobBatch.sendMany(queue, [
            { data: { n: 1 }, singletonKey: "a" },
            { data: { n: 2 }, singletonKey: "b" },
            { data: { n: 3 }, singletonKey: "a" }
          ])
          assert.strictEqual(sent, 2)
          const first = yield* jobsOf(queue)
          assert.deepStrictEqual(first.map((j) => [j.singleton_key, j.data.n, j.state, j.retry_limit, j.expire_seconds]), [
            ["a", 1, "created", 7, 120],
            ["b", 2, "created", 7, 120]
          ])
          // keys the queue already holds waiting are dropped; a new one is sent; a send of pg-boss's own agrees
          assert.strictEqual(
            yield* JobBatch.sendMany(queue, [{ data: { n: 4 }, singletonKey: "a" }, { data: { n: 5 }, singletonKey: "c" }]),
            1
          )
          assert.isNull(yield* jobs.send(queue, { n: 6 }, { singletonKey: "c" }))
          assert.deepStrictEqual((yield* jobsOf(queue)).map((j) => j.singleton_key), ["a", "b", "c"])
          // inside a transaction that rolls back, the batch is never seen
          const rolledBack = yield* sql.withTransaction(
            Effect.flatMap(JobBatch.sendMany(queue, [{ data: { n: 7 }, singletonKey: "d" }]), () => Effect.fail("undo" as const))
          ).pipe(Effect.flip)
          assert.strictEqual(rolledBack, "undo")
          assert.deepStrictEqual((yield* jobsOf(queue)).map((j) => j.singleton_key), ["a", "b", "c"])
          // a queue that does not exist gets nothing, and nothing fails
          assert.strictEqual(yield* JobBatch.sendMany("test.none", [{ data: { n: 8 }, singletonKey: "e" }]), 0)
          // many at once: one statement
          const many = Array.from({ length: 500 }, (_, i) => ({ data: { n: i }, singletonKey: `k${i}` }))
          assert.strictEqual(yield* JobBatch.sendMany(queue, many), 500)
        }).pipe(Effect.provide(Layer.provideMerge(JobQueue.layerWith({ wakeups: false }), PgClient.layer(OpsDb.clientConfig(url)))))
      }),
    60_000
  )
})
