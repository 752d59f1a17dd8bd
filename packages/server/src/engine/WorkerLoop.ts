/**
 * One queue's worker in a process: takes as many jobs as it has free slots in one statement
 * (with their leases), runs them, and records each finished one with its lease in one more. It
 * fetches again at once while jobs keep coming and when a slot frees up; idle, it sleeps until
 * a wake-up names its queue (a job committed, `Wakeups`) or its poll interval passes, whichever
 * comes first. A stop lets running jobs finish for a while, then interrupts them; their leases
 * lapse and any live process runs them again (every job is idempotent).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as JobRecords from "./JobRecords.js"
import * as JobStatements from "./JobStatements.js"
import * as Leases from "./Leases.js"
import type { Wakeups } from "./Wakeups.js"

/** What a queue's worker needs from its process's job engine. */
export interface LoopContext {
  readonly queue: string
  /** This process's name in the leases. */
  readonly worker: string
  /** Jobs of the queue run at once. */
  readonly concurrency: number
  /** The longest an idle worker waits before it looks again without a wake-up. */
  readonly pollMillis: number
  /** Ids of the jobs this process runs now, of every queue: the heartbeat renews exactly these leases. */
  readonly running: Set<string>
  readonly wakeups: Wakeups
  readonly sql: SqlClient.SqlClient
  /** Records a job as failed by the queue's retry policy (pg-boss's own `fail`) and drops its lease. */
  readonly fail: (id: string, error: unknown) => Effect.Effect<void, unknown>
  /** How long a stop lets running jobs finish before interrupting them. */
  readonly stopGraceMillis: number
}

/**
 * A pause on the wall clock, whatever clock the fiber runs with: polls and grace periods are
 * about the database and real jobs, so a test's clock must not stop them.
 */
const wallClock = (ms: number) =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), ms)
    return Effect.sync(() => clearTimeout(timer))
  })

/** A job as the handler receives it. */
export interface LoopJob {
  readonly id: string
  readonly data: unknown
}

/**
 * Runs the queue's worker until the scope closes. `handler` failing fails the job, which then
 * retries by the queue's policy; a job running past its expiry is interrupted and failed.
 */
export const start = <E, R>(
  ctx: LoopContext,
  handler: (job: LoopJob) => Effect.Effect<void, E, R>
): Effect.Effect<void, never, Scope.Scope | R> =>
  Effect.gen(function* () {
    const { queue, sql } = ctx
    const withSql = Effect.provideService(SqlClient.SqlClient, sql)
    const signal = yield* Queue.sliding<void>(1)
    const wake = () => void Queue.unsafeOffer(signal, undefined)
    yield* ctx.wakeups.on(queue, wake)
    const jobs = yield* FiberSet.make<void, never>()
    /** Jobs holding a slot: taken and not finished. */
    let active = 0
    /** Jobs taken and not yet recorded: a stop waits for these. */
    let inFlight = 0
    let stopping = false
    let lastFetchWarning = 0

    const record = (id: string, exit: "done" | { readonly error: unknown }) =>
      (exit === "done"
        ? Effect.asVoid(withSql(JobStatements.complete(queue, ctx.worker, [id])))
        : ctx.fail(id, exit.error)).pipe(
          // the job stays active without a renewed lease: it runs again once the lease lapses
          Effect.catchAllCause((cause) =>
            Effect.zipRight(
              Metric.increment(JobRecords.failures),
              Effect.logWarning(
                `job engine: job ${id} on ${queue} finished but its ${
                  exit === "done" ? "completion" : "failure"
                } could not be recorded; it runs again once its lease lapses`,
                cause
              )
            )
          )
        )

    const run = (job: JobStatements.Taken) => {
      let settled = false
      // The slot and the lease's renewal end with the job however it ends, interrupted too:
      // a lease renewed for a job nobody runs would keep it, and its key, blocked for ever.
      const settle = () => {
        if (settled) return
        settled = true
        ctx.running.delete(job.id)
        active--
        wake()
      }
      return handler({ id: job.id, data: job.data }).pipe(
        Effect.timeoutFail({
          duration: Duration.seconds(job.expireSeconds > 0 ? job.expireSeconds : 15 * 60),
          onTimeout: () => new Error(`job ran longer than its expiry (${job.expireSeconds} s)`)
        }),
        Effect.withSpan("JobQueue.job", { attributes: { queue, jobId: job.id } }),
        Effect.exit,
        Effect.flatMap((exit) => {
          settle()
          if (exit._tag === "Success") return record(job.id, "done")
          if (Cause.isInterruptedOnly(exit.cause)) return Effect.void
          return Effect.zipRight(
            Effect.logWarning(`job ${job.id} on ${queue} failed`, exit.cause),
            record(job.id, { error: Cause.squash(exit.cause) })
          )
        }),
        // Cut off by a stop: the job stays active without a lease, and any live process takes it back.
        Effect.onInterrupt(() => Effect.ignore(withSql(Leases.release(ctx.worker, job.id)))),
        Effect.ensuring(Effect.sync(() => {
          settle()
          inFlight--
          wake()
        }))
      )
    }

    let loopEnded = false
    const loop = Effect.gen(function* () {
      while (!stopping) {
        // wake-ups that came before this fetch are answered by it; later ones fetch again
        yield* Queue.takeAll(signal)
        const free = ctx.concurrency - active
        if (free > 0) {
          // Not cut off mid-statement: jobs it took are active and leased to us, so they must run.
          const taken = yield* withSql(JobStatements.take(queue, ctx.worker, free)).pipe(
            Effect.uninterruptible,
            Effect.catchAllCause((cause) => {
              if (Date.now() - lastFetchWarning > 60_000) {
                lastFetchWarning = Date.now()
                return Effect.as(Effect.logWarning(`job engine: could not fetch jobs of ${queue}; trying again`, cause), [])
              }
              return Effect.succeed([] as ReadonlyArray<JobStatements.Taken>)
            })
          )
          for (const job of taken) {
            active++
            inFlight++
            ctx.running.add(job.id)
            yield* FiberSet.run(jobs, run(job))
          }
        }
        if (stopping) break
        // Until a wake-up (a job committed, a slot freed, one came during the fetch) or the poll.
        // Slots left free after a fetch mean the queue is empty for now; all slots busy wait for one.
        yield* Effect.raceFirst(Queue.take(signal), wallClock(ctx.pollMillis))
      }
    }).pipe(Effect.ensuring(Effect.sync(() => void (loopEnded = true))))
    yield* Effect.forkScoped(loop)
    // Runs before the scope interrupts the loop and the jobs: no new job is taken, running ones get a grace period.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        stopping = true
        wake()
        const deadline = Date.now() + ctx.stopGraceMillis
        // the loop ends after the fetch it may be in, whose jobs then run like the others
        while ((!loopEnded || inFlight > 0) && Date.now() < deadline) yield* wallClock(20)
      })
    )
  })
