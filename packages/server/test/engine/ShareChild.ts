/**
 * A worker process for the sharing test: works `CCAT_SHARE_QUEUE` with `CCAT_SHARE_CONCURRENCY`
 * jobs at once and a poll of an hour (only wake-ups and finished jobs make it fetch), recording
 * each job it runs in `share_run` with its own pid, until it is stopped. Run with `node --import tsx`.
 */
import { OpsDb } from "@ccat/core/node"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as JobQueue from "../../src/engine/JobQueue.js"

const queue = process.env.CCAT_SHARE_QUEUE!
const engine = JobQueue.layer.pipe(
  Layer.provideMerge(PgClient.layer(OpsDb.clientConfig(Redacted.make(process.env.DATABASE_URL!))))
)

Effect.gen(function* () {
  const jobs = yield* JobQueue.JobQueue
  const sql = yield* SqlClient.SqlClient
  yield* jobs.work<{ n: number }, unknown, never>(queue, (job) =>
    Effect.gen(function* () {
      // a little work, so that the processes' jobs overlap
      yield* Effect.sleep("20 millis")
      yield* sql`insert into share_run (job_id, n, pid) values (${job.id}, ${job.data.n}, ${process.pid})`
    }), { concurrency: Number(process.env.CCAT_SHARE_CONCURRENCY ?? "2"), pollingIntervalSeconds: 3600 })
  console.log("working")
  yield* Effect.never
}).pipe(Effect.scoped, Effect.provide(engine), Effect.runPromise)
