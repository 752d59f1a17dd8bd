/**
 * The distributed job engine: pg-boss, living in the ops-db's own PostgreSQL (DESIGN §5). Jobs
 * are sent on the connection of the current SQL transaction, so a state change and the job it
 * enables commit together, or neither does. Queues are per site (`chile.package`,
 * `cologne.archive`): a worker takes only its own site's queues.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as Statement from "@effect/sql/Statement"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import { randomUUID } from "node:crypto"
import * as os from "node:os"
import PgBoss from "pg-boss"
import * as EngineSchema from "./EngineSchema.js"
import { oneStartAtATime, wakeupsOf } from "./internal/EngineStart.js"
import { dbOf, ensureQueueWith, sendWith } from "./internal/PgBoss.js"
import * as JobRecords from "./JobRecords.js"
import { attempt, JobQueueError } from "./JobQueueError.js"
import * as JobStatements from "./JobStatements.js"
import * as Leases from "./Leases.js"
import type * as Wakeups from "./Wakeups.js"
import * as WorkerLoop from "./WorkerLoop.js"

/** The job engine's failure, as every operation of the engine fails. */
export { JobQueueError } from "./JobQueueError.js"
/** The `application_name` of the connection that listens for ready jobs. */
export { wakeupsApplication } from "./internal/EngineStart.js"

/** A job as a worker receives it. */
export interface Job<A> {
  readonly id: string
  readonly queue: string
  readonly data: A
}

/** Options of a job when it is sent. */
export interface SendOptions {
  /** With a `stately` queue, at most one queued job per key: work found twice is queued once. */
  readonly singletonKey?: string
  /** Do not start before this many seconds have passed. */
  readonly startAfterSeconds?: number
  readonly priority?: number
  readonly retryLimit?: number
  readonly retryDelaySeconds?: number
  readonly retryBackoff?: boolean
  /** A job running longer than this is considered stuck and retried. */
  readonly expireInSeconds?: number
}

/** Options of a queue, set when it is created. */
export interface QueueOptions {
  readonly retryLimit?: number
  readonly retryDelaySeconds?: number
  readonly retryBackoff?: boolean
  readonly expireInSeconds?: number
  /** Queue receiving jobs that used up their retries. */
  readonly deadLetter?: string
  /**
   * pg-boss's queue policy. `stately` allows one queued and one active job per singleton key,
   * which is what planners that re-derive work need: the same work is never queued twice.
   */
  readonly policy?: "standard" | "short" | "singleton" | "stately"
}

/** Options of a worker. */
export interface WorkOptions {
  /** How often an idle worker polls, in seconds (pg-boss minimum is 0.5). */
  readonly pollingIntervalSeconds?: number
  /** How many jobs one worker runs at the same time. */
  readonly concurrency?: number
}

/** The job engine's operations. */
export interface JobQueueService {
  /** Makes a queue if it does not exist yet. */
  readonly ensureQueue: (queue: string, options?: QueueOptions) => Effect.Effect<void, JobQueueError>
  /**
   * Sends a job on the current SQL transaction's connection when there is one: it becomes
   * visible when the transaction commits and vanishes if it rolls back.
   */
  readonly send: (
    queue: string,
    data: object,
    options?: SendOptions
  ) => Effect.Effect<string | null, JobQueueError, SqlClient.SqlClient>
  /**
   * Runs `handler` for jobs of `queue` until the scope closes. A handler that fails fails the
   * job, which pg-boss retries by the queue's policy.
   */
  readonly work: <A, E, R>(
    queue: string,
    handler: (job: Job<A>) => Effect.Effect<void, E, R>,
    options?: WorkOptions
  ) => Effect.Effect<void, JobQueueError, Scope.Scope | R>
  /** Jobs waiting or running per state in a queue, for metrics and status. */
  readonly queueSize: (queue: string) => Effect.Effect<number, JobQueueError>
}

/** Tag of the job engine. */
export class JobQueue extends Context.Tag("@ccat/server/JobQueue")<JobQueue, JobQueueService>() {}

/** The database schema pg-boss keeps its tables in, beside the ops-db's. */
export const schema = "pgboss"

/**
 * A SQL condition, for planners' queries: the queue holds no job at all (in any state) whose
 * singleton key is `key`. Work claimed in the ops-db with no job anywhere was not lost by a
 * slow or dead worker (leases bring those back) but by the queue itself: an ops-db restored from
 * a backup, whose pg-boss tables are not in it, or a wiped queue. It can be re-derived at once.
 */
export const noJobOf = (sql: SqlClient.SqlClient, queue: string, key: Statement.Fragment): Statement.Fragment =>
  sql`not exists (select 1 from ${sql(schema)}.job j where j.name = ${queue} and j.singleton_key = (${key})::text)`

/**
 * The statement that makes queued jobs of `queue` matching `which`, waiting for a later start,
 * start now, oldest first, at most `limit` of them. The jobs are picked once, in a materialized
 * CTE: as `id in (select … limit n)` PostgreSQL may run the pick again for each row it updates and
 * move more than `limit` jobs. Skip locked: a job a worker is fetching right now starts anyway,
 * and a caller never waits on it. pg-boss has no call for this: its job table is written
 * directly, as the leases do, which is why pg-boss is pinned to one release.
 */
const moveUp = (sql: SqlClient.SqlClient, queue: string, which: Statement.Fragment, limit: Statement.Fragment) => sql<{ id: string }>`
    with picked as materialized (
      select id from ${sql(schema)}.job
      where name = ${queue} and state in ('created', 'retry') and start_after > now() and ${which}
      order by created_on limit ${limit}
      for update skip locked)
    update ${sql(schema)}.job j set start_after = now()
    from picked where j.name = ${queue} and j.id = picked.id
    returning j.id`

/**
 * Makes the queued job of `queue` with singleton key `singletonKey`, if one waits for a later
 * start (a backoff, a circuit's probe), start now; on the current SQL transaction's connection.
 * Returns how many jobs it moved (0 or 1). Needs only the database, not a running pg-boss, so the
 * API can call it (`ccat serve --workers none` runs no pg-boss); with no job table yet (no worker
 * ever started) there is nothing to move.
 */
export const expedite = (queue: string, singletonKey: string): Effect.Effect<number, JobQueueError, SqlClient.SqlClient> =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      Effect.flatMap(
        sql<{ present: boolean }>`select to_regclass(${`${schema}.job`}) is not null as present`,
        ([row]) =>
          row?.present !== true
            ? Effect.succeed(0)
            : Effect.map(moveUp(sql, queue, sql`singleton_key = ${singletonKey}`, sql`1`), (rows) => rows.length)
      )
  ).pipe(
    Effect.mapError((cause) => new JobQueueError({ operation: "expedite", queue, cause })),
    Effect.withSpan("JobQueue.expedite", { attributes: { queue } })
  )

/**
 * Makes queued jobs of `queue` whose data says `field: value`, waiting for a later start, start
 * now, oldest first, as many as `limit` (a SQL expression, so the caller counts what it freed in
 * the same statement): the jobs that wait for something a worker just freed (a place on a route).
 * One statement, from a worker, whose pg-boss made the job table. Returns how many it moved.
 */
export const wakeWaiting = (
  queue: string,
  field: string,
  value: string,
  limit: (sql: SqlClient.SqlClient) => Statement.Fragment
): Effect.Effect<number, JobQueueError, SqlClient.SqlClient> =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => Effect.map(moveUp(sql, queue, sql`data ->> ${field} = ${value}`, sql`greatest(0, ${limit(sql)})`), (rows) => rows.length)
  ).pipe(
    Effect.mapError((cause) => new JobQueueError({ operation: "wakeWaiting", queue, cause })),
    Effect.withSpan("JobQueue.wakeWaiting", { attributes: { queue } })
  )

/**
 * How quickly the jobs of a worker that died run again. Every process renews the leases of the
 * jobs it runs each `heartbeatInterval`; a job whose lease was not renewed for `leaseTimeout` is
 * taken back by any live process (DESIGN §4.4). The timeout must comfortably exceed the longest
 * stall of a live process (a full GC, a saturated database), or a live job would run twice;
 * every job is idempotent, so that is slow, never wrong.
 */
export interface LeaseOptions {
  /** How often a process renews its leases and looks for dead ones (default 10 s). */
  readonly heartbeatInterval?: Duration.DurationInput
  /** A lease not renewed for this long belongs to a dead worker (default 60 s). */
  readonly leaseTimeout?: Duration.DurationInput
}

/** The job engine's options: its leases, and how idle workers are woken. */
export interface JobEngineOptions extends LeaseOptions {
  /** The wake-up connection's watch; `false` leaves idle workers to their poll alone. */
  readonly wakeups?: Wakeups.WakeupOptions | false
}

/** Why lease options cannot be used: the timeout must leave room for missed heartbeats. */
export class LeaseOptionsError extends Data.TaggedError("LeaseOptionsError")<{
  readonly heartbeatMillis: number
  readonly leaseTimeoutMillis: number
}> {
  override get message(): string {
    return `job engine: the lease timeout (${this.leaseTimeoutMillis} ms) must be at least three heartbeat intervals ` +
      `(${this.heartbeatMillis} ms each), so that a live worker that misses one heartbeat keeps its jobs`
  }
}

/** Starts pg-boss on the ops-db's SQL client and stops it (gracefully) when the layer is released. */
export const layerWith = (
  options: JobEngineOptions = {}
): Layer.Layer<JobQueue, JobQueueError | LeaseOptionsError, SqlClient.SqlClient> =>
  Layer.scoped(
    JobQueue,
    Effect.gen(function* () {
      const heartbeatMillis = Duration.toMillis(options.heartbeatInterval ?? Duration.seconds(10))
      const leaseTimeoutMillis = Duration.toMillis(options.leaseTimeout ?? Duration.seconds(60))
      if (!(heartbeatMillis > 0) || leaseTimeoutMillis < 3 * heartbeatMillis) {
        return yield* new LeaseOptionsError({ heartbeatMillis, leaseTimeoutMillis })
      }
      const runtime = yield* Effect.runtime<SqlClient.SqlClient>()
      // Closed after pg-boss stopped (finalizers run in reverse order): leases are renewed while
      // a graceful stop lets running jobs finish.
      const heartbeatScope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
      // An ops-db with everything made (any restart) starts in this one statement; a new or older
      // one installs, migrates and creates under the start lock.
      const found = yield* EngineSchema.look
      const ready = EngineSchema.current(found)
      const db = dbOf(runtime, ready ? EngineSchema.startAnswers(schema, found) : undefined)
      const boss = new PgBoss({ db, schema, supervise: true, schedule: false })
      boss.on("error", (error) => Runtime.runFork(runtime)(Effect.logWarning("job engine error", error)))
      yield* JobRecords.handledWith(runtime)
      const sqlClient = yield* SqlClient.SqlClient
      const start = attempt("start", undefined, () => boss.start())
      yield* Effect.acquireRelease(
        ready ? start : oneStartAtATime(sqlClient, start),
        () =>
          Effect.promise(() => boss.stop({ graceful: true, wait: true, close: false, timeout: 20_000 })).pipe(
            Effect.ignore,
            // a job's completion pg-boss sent without awaiting it must reach the database before the pool closes
            Effect.zipRight(Effect.promise(() => db.settled(10_000)))
          )
      )
      const worker = `${os.hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`
      const engineFailure = (operation: string) => (cause: unknown) => new JobQueueError({ operation, cause })
      if (!ready) {
        yield* Effect.mapError(Leases.ensureTable, engineFailure("create the lease table"))
        yield* Effect.mapError(oneStartAtATime(sqlClient, JobStatements.ensureReadyTrigger), engineFailure("create the ready trigger"))
      }
      const wakeups = yield* wakeupsOf(options)
      // The jobs this process runs now: the heartbeat renews their leases and no others, so the
      // lease of a job whose end could not be recorded lapses and the job runs again.
      const running = new Set<string>()
      const timeoutSeconds = leaseTimeoutMillis / 1000
      yield* Effect.gen(function* () {
        yield* Leases.heartbeat(worker, [...running])
        const reclaimed = yield* Leases.reap(timeoutSeconds)
        for (const job of reclaimed) {
          yield* Effect.logWarning(
            `job ${job.id} on ${job.queue}: its worker ${job.worker ?? "(died before leasing it)"} stopped heartbeating; ` +
              (job.outcome === "retry" ? "it runs again now" : "marked failed (retries used up, or an equal job already waits)")
          )
        }
        yield* Leases.sweep(timeoutSeconds)
      }).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("job engine: heartbeat failed; trying again", cause)),
        Effect.repeat(Schedule.spaced(Duration.millis(heartbeatMillis))),
        Effect.ensuring(Effect.ignore(Leases.releaseAll(worker))),
        Effect.forkIn(heartbeatScope)
      )
      // queues that exist need no look: a site's dozen stages start without a round trip each
      const created = new Set<string>(found?.queues ?? [])
      const ensureQueue = ensureQueueWith(boss, created)
      const send = sendWith(boss)
      const work: JobQueueService["work"] = (queue, handler, options = {}) =>
        WorkerLoop.start({
          queue,
          worker,
          concurrency: Math.max(1, options.concurrency ?? 1),
          pollMillis: Math.max(50, (options.pollingIntervalSeconds ?? 2) * 1000),
          running,
          wakeups,
          sql: sqlClient,
          fail: (id, error) =>
            attempt("fail", queue, () => boss.fail(queue, id, { message: error instanceof Error ? error.message : String(error) })).pipe(
              Effect.zipRight(Effect.provideService(Leases.release(worker, id), SqlClient.SqlClient, sqlClient))
            ),
          stopGraceMillis: 20_000
        }, (job) => handler({ id: job.id, queue, data: job.data as any }))
      const queueSize = (queue: string) => attempt("getQueueSize", queue, () => boss.getQueueSize(queue))
      return { ensureQueue, send, work, queueSize } satisfies JobQueueService
    })
  )

/** Finished jobs whose completion or failure this process could not record (see JobRecords). */
export const recordFailures = JobRecords.failures

/** The job engine with the default leases (heartbeat 10 s, timeout 60 s). */
export const layer: Layer.Layer<JobQueue, JobQueueError | LeaseOptionsError, SqlClient.SqlClient> = layerWith()
