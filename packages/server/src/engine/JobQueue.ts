/**
 * The distributed job engine: pg-boss, living in the ops-db's own PostgreSQL (DESIGN §5). Jobs
 * are sent on the connection of the current SQL transaction, so a state change and the job it
 * enables commit together, or neither does. Queues are per site (`chile.package`,
 * `cologne.archive`): a worker takes only its own site's queues.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as Statement from "@effect/sql/Statement"
import { Backoff } from "@ccat/core"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import { randomUUID } from "node:crypto"
import * as os from "node:os"
import pg from "pg"
import PgBoss from "pg-boss"
import * as EngineSchema from "./EngineSchema.js"
import * as JobRecords from "./JobRecords.js"
import * as JobStatements from "./JobStatements.js"
import * as Leases from "./Leases.js"
import * as Wakeups from "./Wakeups.js"
import * as WorkerLoop from "./WorkerLoop.js"

/** A failure of the job engine itself (not of a job's work). */
export class JobQueueError extends Data.TaggedError("JobQueueError")<{
  readonly operation: string
  readonly queue?: string
  readonly cause: unknown
}> {
  override get message(): string {
    const c = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `job engine: ${this.operation}${this.queue ? ` on ${this.queue}` : ""} failed: ${c}`
  }
}

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
 * Makes the queued job of `queue` with singleton key `singletonKey`, if one waits for a later
 * start (a backoff, a circuit's probe), start now; on the current SQL transaction's connection.
 * Returns how many jobs it moved (0 or 1). Needs only the database, not a running pg-boss, so the
 * API can call it (`ccat serve --workers none` runs no pg-boss); with no job table yet (no worker
 * ever started) there is nothing to move. pg-boss has no call for this: its job table is written
 * directly, as the leases do, which is why pg-boss is pinned to one release.
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
            : Effect.map(
              // skip locked: a job a worker is fetching right now starts anyway, and a retry never waits on it
              sql<{ id: string }>`
            update ${sql(schema)}.job set start_after = now()
            where id in (
              select id from ${sql(schema)}.job
              where name = ${queue} and singleton_key = ${singletonKey} and state in ('created', 'retry') and start_after > now()
              for update skip locked)
            returning id`,
              (rows) => rows.length
            )
      )
  ).pipe(
    Effect.mapError((cause) => new JobQueueError({ operation: "expedite", queue, cause })),
    Effect.withSpan("JobQueue.expedite", { attributes: { queue } })
  )

/**
 * pg-boss's `db` adapter: its SQL runs through our client, on whatever connection the runtime
 * holds. It counts the statements in flight: pg-boss completes or fails a job without awaiting
 * it, after its worker loop moved on, so a stop must wait for those before the pool closes.
 * `answers` are rows known already for exact statement texts, each given once instead of asking
 * the database (EngineSchema.startAnswers).
 */
const dbOf = (runtime: Runtime.Runtime<SqlClient.SqlClient>, answers?: Map<string, ReadonlyArray<Record<string, unknown>>>) => {
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

const attempt = <A>(operation: string, queue: string | undefined, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => new JobQueueError({ operation, ...(queue ? { queue } : {}), cause }) })

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

/** The `application_name` of the connection that listens for ready jobs. */
export const wakeupsApplication = "ccat job wake-ups"

/**
 * The wake-ups of a process: a listening connection of its own, made like the ops-db client's
 * (a client that is not PostgreSQL's, or none asked for, leaves workers to their poll).
 */
const wakeupsOf = (options: JobEngineOptions) =>
  Effect.gen(function* () {
    const client = yield* Effect.serviceOption(PgClient.PgClient)
    if (options.wakeups === false || client._tag === "None") return Wakeups.none
    const c = client.value.config
    return yield* Wakeups.make(JobStatements.readyChannel, () =>
      new pg.Client({
        ...(c.url !== undefined ? { connectionString: Redacted.value(c.url) } : {}),
        ...(c.host !== undefined ? { host: c.host } : {}),
        ...(c.port !== undefined ? { port: c.port } : {}),
        ...(c.database !== undefined ? { database: c.database } : {}),
        ...(c.username !== undefined ? { user: c.username } : {}),
        ...(c.password !== undefined ? { password: Redacted.value(c.password) } : {}),
        ...(c.ssl !== undefined ? { ssl: c.ssl } : {}),
        // named so an operator sees it in pg_stat_activity (a URL's own application_name wins)
        application_name: wakeupsApplication,
        keepAlive: true
      }), options.wakeups ?? {})
  })

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

/**
 * Runs `start` while holding a session advisory lock on a connection of its own, so that processes
 * starting together (a site's workers restarted at once, a fresh deployment) install or migrate
 * pg-boss's schema one after the other. Racing installs are not harmless here: pg-boss sends its
 * install as one `BEGIN; ...; COMMIT` text, and the loser's error would leave a pooled connection
 * inside an aborted transaction, failing whatever runs on it next.
 */
const oneStartAtATime = <A, E, R>(sql: SqlClient.SqlClient, start: Effect.Effect<A, E, R>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const connection = yield* sql.reserve
      yield* Effect.acquireRelease(
        connection.execute("select pg_advisory_lock(hashtext('ccat.job-engine.start'))", [], undefined),
        () => Effect.ignore(connection.execute("select pg_advisory_unlock(hashtext('ccat.job-engine.start'))", [], undefined))
      )
      return yield* start
    })
  ).pipe(Effect.mapError((e) => (e instanceof JobQueueError ? e : new JobQueueError({ operation: "start", cause: e }))))

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
      const ensureQueue = (queue: string, options: QueueOptions = {}) =>
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
            // rolls one back. Its next try finds the queue or creates it.
            Effect.retry(Backoff.schedule({ base: "100 millis", jitter: Backoff.around, times: 8 }))
          )
      const send: JobQueueService["send"] = (queue, data, options = {}) =>
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
