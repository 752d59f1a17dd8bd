/**
 * A worker process for the lease test: takes one job of `CCAT_LEASE_QUEUE` and never finishes it,
 * saying which job it took, until the test SIGKILLs it. Run with `node --import tsx`.
 */
import { OpsDb } from "@ccat/core/node"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as JobQueue from "../../src/engine/JobQueue.js"

const queue = process.env.CCAT_LEASE_QUEUE!
const engine = JobQueue.layerWith({ heartbeatInterval: "200 millis", leaseTimeout: "1 second" }).pipe(
  Layer.provideMerge(PgClient.layer(OpsDb.clientConfig(Redacted.make(process.env.DATABASE_URL!))))
)

Effect.gen(function* () {
  const jobs = yield* JobQueue.JobQueue
  yield* jobs.work(queue, (job) => Effect.zipRight(Effect.sync(() => console.log(`took ${job.id}`)), Effect.never), {
    pollingIntervalSeconds: 0.5
  })
  yield* Effect.never
}).pipe(Effect.scoped, Effect.provide(engine), Effect.runPromise)
