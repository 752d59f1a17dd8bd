/**
 * The job engine's start: the first on an ops-db installs pg-boss, the lease table and the ready
 * trigger; a later one finds them in one statement and makes nothing, knowing its queues without a
 * look; one that finds a piece missing takes the full path again and makes it. Several processes
 * starting at once on a made ops-db all come up.
 */
import { TestDatabase } from "@ccat/core/testing"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as EngineSchema from "../../src/engine/EngineSchema.js"
import * as JobQueue from "../../src/engine/JobQueue.js"

/** Runs `use` with a job engine started on the current database, stopped after. */
const withEngine = <A, E>(use: Effect.Effect<A, E, JobQueue.JobQueue | SqlClient.SqlClient>) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      Effect.scoped(
        Effect.provide(use, JobQueue.layerWith({ wakeups: false }).pipe(Layer.provideMerge(Layer.succeed(SqlClient.SqlClient, sql))))
      )
  )

describe("the job engine's start", () => {
  it.layer(TestDatabase.layer, { timeout: 60_000 })((it) => {
    it.effect("installs once, then starts on what it finds; a missing piece is made again", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        assert.isUndefined(yield* EngineSchema.look, "no pg-boss yet")
        yield* withEngine(Effect.flatMap(JobQueue.JobQueue, (jobs) => jobs.ensureQueue("start.a")))
        const found = yield* EngineSchema.look
        assert.isTrue(EngineSchema.current(found), JSON.stringify(found))
        assert.deepStrictEqual(found!.queues, ["start.a"])

        // Later starts (several at once) make nothing; a queue they know exists is used at once, a new one made.
        yield* Effect.all(
          Array.from({ length: 3 }, (_, i) =>
            withEngine(Effect.gen(function* () {
              const jobs = yield* JobQueue.JobQueue
              yield* jobs.ensureQueue("start.a")
              yield* jobs.ensureQueue(`start.b${i % 2}`)
              assert.isString(yield* jobs.send("start.a", { i }))
            }))),
          { concurrency: 3 }
        )
        assert.deepStrictEqual((yield* EngineSchema.look)!.queues, ["start.a", "start.b0", "start.b1"])
        assert.strictEqual((yield* sql<{ n: number }>`select count(*)::int as n from pgboss.job where name = 'start.a'`)[0]!.n, 3)

        // A missing trigger (an older release's ops-db) sends the start down the full path, which makes it.
        yield* sql`drop trigger ccat_job_ready on pgboss.job`
        assert.isFalse(EngineSchema.current(yield* EngineSchema.look))
        yield* withEngine(Effect.void)
        assert.isTrue(EngineSchema.current(yield* EngineSchema.look))
      }))
  })
})
