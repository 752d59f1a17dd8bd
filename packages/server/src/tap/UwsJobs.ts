/**
 * Asynchronous TAP queries as UWS 1.1 jobs, kept in this server's memory with clear bounds: at
 * most `maxJobs` jobs and `maxResultBytes` of results at once (finished jobs, then pending ones,
 * oldest first, are destroyed to make room; a new job is refused when every kept job is running), each job
 * destroyed at its destruction time (checked whenever the store is used), at most `concurrency` running at a time. A restart loses
 * the jobs; a client sees a 404 and submits again. A job belongs to the account that made it;
 * anonymous jobs are reachable only by their unguessable id.
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { randomUUID } from "node:crypto"
import { AdqlError } from "./Adql.js"
import * as TapQuery from "./TapQuery.js"

/** A job's phase (UWS 1.1). */
export type Phase = "PENDING" | "QUEUED" | "EXECUTING" | "COMPLETED" | "ERROR" | "ABORTED"

/** One job. Mutable fields change only through this module. */
export interface Job {
  readonly id: string
  /** The owning account's name, as UWS shows it. */
  readonly owner: string | null
  /** The owning account, which alone reaches the job; null for an anonymous job. */
  readonly ownerId: string | null
  readonly caller: TapQuery.Caller
  readonly created: Date
  phase: Phase
  params: Map<string, string>
  executionDuration: number
  destruction: Date
  started: Date | null
  ended: Date | null
  result: TapQuery.Output | null
  error: string | null
  fiber: Fiber.RuntimeFiber<void, never> | null
  readonly done: Deferred.Deferred<void>
}

/** The bounds of the store. */
export interface UwsLimits {
  readonly maxJobs: number
  readonly maxResultBytes: number
  readonly retention: Duration.Duration
  readonly concurrency: number
}

/** Defaults: 200 jobs, 256 MiB of results, a day's retention, 2 queries at once. */
export const defaultLimits: UwsLimits = { maxJobs: 200, maxResultBytes: 256 * 1024 * 1024, retention: Duration.days(1), concurrency: 2 }

const active = (p: Phase) => p === "QUEUED" || p === "EXECUTING"
const finished = (p: Phase) => p === "COMPLETED" || p === "ERROR" || p === "ABORTED"

/** The job store of one server. */
export const make = (limits: UwsLimits, tap: TapQuery.TapLimits) =>
  Effect.gen(function* () {
    const jobs = new Map<string, Job>()
    const scope = yield* Effect.scope
    const slots = yield* Effect.makeSemaphore(limits.concurrency)
    const context = yield* Effect.context<never>()

    const resultBytes = () => [...jobs.values()].reduce((n, j) => n + (j.result?.body.length ?? 0), 0)
    const destroy = (job: Job) =>
      Effect.gen(function* () {
        jobs.delete(job.id)
        if (job.fiber !== null) yield* Fiber.interrupt(job.fiber)
      })
    const sweep = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      for (const job of [...jobs.values()]) if (job.destruction.getTime() <= now) yield* destroy(job)
    })
    // Finished jobs first, then pending ones, oldest first, until one more job fits and the results do.
    const makeRoom = Effect.gen(function* () {
      yield* sweep
      const byAge = [...jobs.values()].filter((j) => !active(j.phase))
        .sort((a, b) => Number(a.phase === "PENDING") - Number(b.phase === "PENDING") || a.created.getTime() - b.created.getTime())
      while ((jobs.size >= limits.maxJobs || resultBytes() > limits.maxResultBytes) && byAge.length > 0) yield* destroy(byAge.shift()!)
      if (jobs.size >= limits.maxJobs) {
        return yield* new AdqlError({
          message: `the service holds ${limits.maxJobs} active jobs already: try again when some have finished`,
          fault: "busy"
        })
      }
    })

    const create = (caller: TapQuery.Caller, params: Map<string, string>) =>
      Effect.gen(function* () {
        yield* makeRoom
        const now = new Date(yield* Clock.currentTimeMillis)
        const job: Job = {
          id: randomUUID(),
          owner: caller.kind === "account" ? caller.principal.name : null,
          ownerId: caller.kind === "account" ? caller.principal.accountId : null,
          caller,
          created: now,
          phase: "PENDING",
          params,
          executionDuration: Math.round(Duration.toSeconds(tap.asyncTimeout)),
          destruction: new Date(now.getTime() + Duration.toMillis(limits.retention)),
          started: null,
          ended: null,
          result: null,
          error: null,
          fiber: null,
          done: yield* Deferred.make<void>()
        }
        jobs.set(job.id, job)
        return job
      })

    const execute = (job: Job) =>
      Effect.gen(function* () {
        job.phase = "EXECUTING"
        job.started = new Date(yield* Clock.currentTimeMillis)
        const outcome = yield* Effect.gen(function* () {
          const format = yield* TapQuery.formatOf(job.params)
          const checked = yield* TapQuery.checkParams(job.params, tap)
          return yield* TapQuery.run({ ...checked, format, caller: job.caller, timeout: Duration.seconds(job.executionDuration) })
        }).pipe(Effect.either)
        job.ended = new Date(yield* Clock.currentTimeMillis)
        if (outcome._tag === "Right") {
          job.result = outcome.right
          job.phase = "COMPLETED"
        } else {
          job.error = outcome.left.message
          job.phase = "ERROR"
        }
      }).pipe(
        slots.withPermits(1),
        Effect.catchAllDefect((defect) => Effect.sync(() => {
          job.error = `the service failed running the query: ${String(defect)}`
          job.phase = "ERROR"
        })),
        Effect.ensuring(Deferred.succeed(job.done, undefined)),
        Effect.provide(context)
      )

    /** Starts a PENDING job (a job already started is left as it is, as UWS says). */
    const start = (job: Job) =>
      Effect.gen(function* () {
        if (job.phase !== "PENDING") return
        job.phase = "QUEUED"
        job.fiber = yield* Effect.forkIn(execute(job), scope)
      })

    /** Aborts a job that has not finished. */
    const abort = (job: Job) =>
      Effect.gen(function* () {
        if (finished(job.phase)) return
        if (job.fiber !== null) yield* Fiber.interrupt(job.fiber)
        job.phase = "ABORTED"
        job.ended = new Date(yield* Clock.currentTimeMillis)
        yield* Deferred.succeed(job.done, undefined)
      })

    /** The job, if it exists and the caller may reach it (its owner, or anyone for an anonymous job). */
    const get = (caller: TapQuery.Caller, id: string) =>
      Effect.map(sweep, () => {
        const job = jobs.get(id)
        if (job === undefined) return undefined
        const owner = caller.kind === "account" ? caller.principal.accountId : null
        return job.ownerId === null || job.ownerId === owner ? job : undefined
      })

    /** The caller's jobs (none for anonymous callers: their jobs are not listed to anyone). */
    const list = (caller: TapQuery.Caller) =>
      Effect.map(sweep, () => caller.kind === "anonymous" ? [] : [...jobs.values()].filter((j) => j.ownerId === caller.principal.accountId))

    /** Waits up to `seconds` while the job is active (UWS 1.1 blocking). */
    const wait = (job: Job, seconds: number) =>
      active(job.phase)
        ? Effect.asVoid(Effect.timeout(Deferred.await(job.done), Duration.seconds(seconds)).pipe(Effect.ignore))
        : Effect.void

    return { create, start, abort, destroy, get, list, wait, limits, tap }
  })

/** The job store's interface. */
export type UwsJobs = Effect.Effect.Success<ReturnType<typeof make>>

/** Whether a phase is final. */
export const isFinished = finished
/** Whether a phase is active. */
export const isActive = active
