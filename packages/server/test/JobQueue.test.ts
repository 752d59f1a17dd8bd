import { assert, describe, it } from "@effect/vitest"
import { TestDatabase } from "@ccat/core/testing"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as JobQueue from "../src/engine/JobQueue.js"

const layer = JobQueue.layer.pipe(Layer.provideMerge(TestDatabase.layer))

const countJobs = (queue: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ n: number }>`select count(*)::int as n from pgboss.job where name = ${queue}`.pipe(Effect.map((r) => r[0].n))
  )

describe("JobQueue on pg-boss in the ops-db", () => {
  it.layer(layer, { timeout: 60_000 })((it) => {
    it.effect("a job sent in a transaction that rolls back never exists", () =>
      Effect.gen(function* () {
        const jobs = yield* JobQueue.JobQueue
        const sql = yield* SqlClient.SqlClient
        yield* jobs.ensureQueue("test.rollback")
        yield* sql`create table if not exists marker (v int)`
        const result = yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`insert into marker values (1)`
            yield* jobs.send("test.rollback", { v: 1 })
            return yield* Effect.fail("abort" as const)
          })
        ).pipe(Effect.either)
        assert.strictEqual(result._tag, "Left")
        assert.strictEqual(yield* countJobs("test.rollback"), 0)
        const markers = yield* sql<{ n: number }>`select count(*)::int as n from marker`
        assert.strictEqual(markers[0].n, 0)
      }))

    it.effect("a job sent in a committed transaction commits with the state change and is worked once", () =>
      Effect.gen(function* () {
        const jobs = yield* JobQueue.JobQueue
        const sql = yield* SqlClient.SqlClient
        yield* jobs.ensureQueue("test.commit")
        yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`create table if not exists state (v int)`
            yield* sql`insert into state values (7)`
            yield* jobs.send("test.commit", { v: 7 })
          })
        )
        assert.strictEqual(yield* countJobs("test.commit"), 1)
        const seen = yield* Ref.make<Array<number>>([])
        const done = yield* Deferred.make<void>()
        yield* Effect.scoped(
          Effect.gen(function* () {
            yield* jobs.work<{ v: number }, never, never>(
              "test.commit",
              (job) => Effect.zipRight(Ref.update(seen, (a) => [...a, job.data.v]), Deferred.succeed(done, undefined)),
              { pollingIntervalSeconds: 0.5 }
            )
            yield* Deferred.await(done).pipe(Effect.timeout(Duration.seconds(20)))
          })
        )
        assert.deepStrictEqual(yield* Ref.get(seen), [7])
      }))

    it.effect("on a stately queue a singleton key enqueues the same work once", () =>
      Effect.gen(function* () {
        const jobs = yield* JobQueue.JobQueue
        yield* jobs.ensureQueue("test.singleton", { policy: "stately" })
        const first = yield* jobs.send("test.singleton", { p: 1 }, { singletonKey: "package:abc" })
        const second = yield* jobs.send("test.singleton", { p: 1 }, { singletonKey: "package:abc" })
        assert.isString(first)
        assert.isNull(second)
        assert.strictEqual(yield* countJobs("test.singleton"), 1)
      }))
  })
})
