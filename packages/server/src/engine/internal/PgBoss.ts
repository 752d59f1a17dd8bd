/**
 * pg-boss as the job queue drives it: its `db` adapter on our SQL client, and the service's calls
 * that create queues and send jobs through it.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Backoff } from "@ccat/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Runtime from "effect/Runtime"
import type PgBoss from "pg-boss"
import type { JobQueueService, QueueOptions } from "../JobQueue.js"
import { attempt } from "../JobQueueError.js"

/**
 * pg-boss's `db` adapter: its SQL runs through our client, on whatever connection the runtime
 * holds. It counts the statements in flight: pg-boss completes or fails a job without awaiting
 * it, after its worker loop moved on, so a stop must wait for those before the pool closes.
 * `answers` are rows known already for exact statement texts, each given once instead of asking
 * the database (EngineSchema.startAnswers).
 */
export const dbOf = (runtime: Runtime.Runtime<SqlClient.SqlClient>, answers?: Map<string, ReadonlyArray<Record<string, unknown>>>) => {
  const sql = Runtime.runSync(runtime)(SqlClient.SqlClient)
  const inFlight = new Set<Promise<unknown>>()
  const track = <A>(p: Promise<A>): Promise<A> => {
    inFlight.add(p)
    const done = () => void inFlight.delete(p)
    p.then(done, done)
    return p
  }
  return {
    /** Resolves once no statement is in flight, or after `ms`. */
    settled: async (ms: number) => {
      const deadline = Date.now() + ms
      while (inFlight.size > 0 && Date.now() < deadline) {
        await Promise.race([Promise.allSettled([...inFlight]), new Promise((r) => setTimeout(r, Math.max(1, deadline - Date.now())))])
      }
    },
    executeSql: (text: string, values: Array<unknown>) => {
      const known = answers?.get(text)
      if (known !== undefined && (values ?? []).length === 0) {
        answers!.delete(text)
        return Promise.resolve({ rows: known as Array<any> })
      }
      return track(
        Runtime.runPromise(runtime)(
          // pg-boss reads its own column names: no camelCase transform on its rows.
          Effect.either(Effect.map(sql.unsafe(text, values ?? []).withoutTransform, (rows) => ({ rows: rows as Array<any> })))
        ).then((result) => {
          if (Either.isRight(result)) return result.right
          // pg-boss tells a harmless race (processes starting together create its schema or a
          // queue at once) from a failure by PostgreSQL's own message, so it gets the driver's error.
          const cause = result.left.cause
          throw cause instanceof Error ? cause : result.left
        })
      )
    }
  }
}

/** The real clock, for waits on other processes. */
const liveClock = Clock.make()

/**
 * The service's `ensureQueue` on `boss`. `created` holds the queues known to exist (those the
 * start found, and each made since), so a queue is made at most once per process.
 */
export const ensureQueueWith = (boss: PgBoss, created: Set<string>) => (queue: string, options: QueueOptions = {}) =>
  created.has(queue)
    ? Effect.void
    : attempt("createQueue", queue, async () => {
      // pg-boss's create_queue does nothing for a queue that exists (its insert meets the
      // name and returns before any DDL): no look first, one round trip per missing queue.
      await boss.createQueue(queue, {
        name: queue,
        ...(options.retryLimit !== undefined ? { retryLimit: options.retryLimit } : {}),
        ...(options.retryDelaySeconds !== undefined ? { retryDelay: options.retryDelaySeconds } : {}),
        ...(options.retryBackoff !== undefined ? { retryBackoff: options.retryBackoff } : {}),
        ...(options.expireInSeconds !== undefined ? { expireInSeconds: options.expireInSeconds } : {}),
        ...(options.deadLetter !== undefined ? { deadLetter: options.deadLetter } : {}),
        ...(options.policy !== undefined ? { policy: options.policy } : {})
      }).catch(async (e) => {
        // Another process made it while ours failed (its partition's attach won).
        if ((await boss.getQueue(queue)) === null) throw e
      })
      created.add(queue)
    }).pipe(
      // Creating a queue attaches a partition to pg-boss's job table; processes starting
      // together (a site's workers restarted at once) can deadlock there, and PostgreSQL
      // rolls one back. Its next try finds the queue or creates it. The wait is for another
      // process's DDL, so it runs on the real clock whatever clock the caller's fiber has (a
      // test clock would never end it).
      Effect.retry(Backoff.schedule({ base: "100 millis", jitter: Backoff.around, times: 8 })),
      Effect.withClock(liveClock)
    )

/** The service's `send` on `boss`, on the connection of the caller's SQL transaction when there is one. */
export const sendWith = (boss: PgBoss): JobQueueService["send"] => (queue, data, options = {}) =>
  Effect.gen(function* () {
    const here = yield* Effect.runtime<SqlClient.SqlClient>()
    return yield* attempt("send", queue, () =>
      boss.send(queue, data, {
        db: dbOf(here),
        ...(options.singletonKey !== undefined ? { singletonKey: options.singletonKey } : {}),
        ...(options.startAfterSeconds !== undefined ? { startAfter: options.startAfterSeconds } : {}),
        ...(options.priority !== undefined ? { priority: options.priority } : {}),
        ...(options.retryLimit !== undefined ? { retryLimit: options.retryLimit } : {}),
        ...(options.retryDelaySeconds !== undefined ? { retryDelay: options.retryDelaySeconds } : {}),
        ...(options.retryBackoff !== undefined ? { retryBackoff: options.retryBackoff } : {}),
        ...(options.expireInSeconds !== undefined ? { expireInSeconds: options.expireInSeconds } : {})
      }))
  }).pipe(Effect.withSpan("JobQueue.send", { attributes: { queue } }))
