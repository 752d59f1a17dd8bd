/**
 * Runs the lifecycle at a site: a worker for each stage's queue at that site, and the stages'
 * planners on a schedule. `ccat worker --site NAME` runs one site (many such processes may run,
 * on many machines, sharing the load through pg-boss); `ccat serve` on the embedded default runs
 * every site in one process.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { JobQueue, type JobQueueError } from "../engine/JobQueue.js"
import * as PlannerRounds from "../engine/PlannerRounds.js"
import { queueName, type Stage } from "./Stage.js"

/** How often planners look for work and workers poll. */
export interface EngineOptions {
  /** Pause between two planning rounds (default 5 s). */
  readonly plannerInterval?: Duration.DurationInput
  /** How often an idle worker polls its queue (default 1 s). */
  readonly pollingIntervalSeconds?: number
}

/**
 * How many stages plan at once in a round. A planner is a handful of statements, each a round
 * trip to the ops-db; from a site 220 ms away, eleven planners one after the other make a round
 * last seconds and every stage hop waits for it. A few at a time keep rounds short while leaving
 * most of the connection pool to the running jobs, their leases and heartbeats.
 */
export const plannerConcurrency = 4

/** Runs every stage's planner once at the site; returns jobs enqueued per stage. */
export const planOnce = <R>(site: string, stages: ReadonlyArray<Stage<R>>) =>
  Effect.forEach(stages, (stage) =>
    stage.plan(site).pipe(
      Effect.map((n) => [stage.name, n] as const),
      Effect.catchAllCause((cause) =>
        Effect.as(
          Effect.logWarning(`planner ${queueName(site, stage.name)} failed; it runs again next round`, cause),
          [stage.name, 0] as const
        )
      ),
      Effect.withSpan("Engine.plan", { attributes: { site, stage: stage.name } })
    ), { concurrency: plannerConcurrency }).pipe(Effect.map((pairs) => Object.fromEntries(pairs) as Record<string, number>))

/**
 * One scheduled planning round: the stages this process claims for the round (those no process
 * of the site planned lately, `PlannerRounds`) are planned. When the claim itself fails (the
 * ops-db is unreachable) every stage is planned, as before there were shared rounds: the
 * planners then fail and say so, or find their work.
 */
const planRound = <R>(site: string, stages: ReadonlyArray<Stage<R>>, interval: Duration.DurationInput) =>
  PlannerRounds.claim(site, stages.map((s) => s.name), interval).pipe(
    Effect.map((claimed) => stages.filter((s) => claimed.has(s.name))),
    Effect.catchAllCause((cause) =>
      Effect.as(Effect.logWarning(`planning round at ${site}: the stages could not be claimed; planning them all`, cause), stages)
    ),
    Effect.flatMap((due) => due.length === 0 ? Effect.succeed({}) : planOnce(site, due))
  )

/**
 * A planner run on demand: a request while it runs makes it run once more after, so work a job
 * finished during a planning pass is never missed, and requests never pile up.
 */
const onDemand = <R>(site: string, stage: Stage<R>) =>
  Effect.gen(function* () {
    const requests = yield* Queue.sliding<void>(1)
    yield* Queue.take(requests).pipe(
      Effect.zipRight(planOnce(site, [stage])),
      Effect.forever,
      Effect.forkScoped
    )
    return () => void Queue.unsafeOffer(requests, undefined)
  })

/**
 * Starts the site's workers and planners; they run until the scope closes. Planning rounds run
 * in the background, each after the previous one finished, so they never pile up, and share
 * their stages with the site's other processes (`PlannerRounds`); a stage's finished job also
 * runs at once the planners of the stages that name it in `after`, in this process.
 */
export const runSite = <R>(
  site: string,
  stages: ReadonlyArray<Stage<R>>,
  options: EngineOptions = {}
): Effect.Effect<void, JobQueueError, R | JobQueue | SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function* () {
    const jobs = yield* JobQueue
    const followers = new Map<string, Array<() => void>>()
    for (const stage of stages) {
      if (stage.after === undefined || stage.after.length === 0) continue
      const plan = yield* onDemand(site, stage)
      for (const before of stage.after) followers.set(before, [...(followers.get(before) ?? []), plan])
    }
    for (const stage of stages) {
      const queue = queueName(site, stage.name)
      const next = followers.get(stage.name) ?? []
      yield* jobs.ensureQueue(queue, stage.queue)
      yield* jobs.work(queue, (job) =>
        next.length === 0
          ? stage.work(site, job.data)
          : Effect.tap(stage.work(site, job.data), () => Effect.sync(() => next.forEach((plan) => plan()))), {
        concurrency: stage.concurrency ?? 1,
        pollingIntervalSeconds: options.pollingIntervalSeconds ?? 1
      })
    }
    const interval = options.plannerInterval ?? Duration.seconds(5)
    yield* planRound(site, stages, interval).pipe(Effect.repeat(Schedule.spaced(interval)), Effect.forkScoped)
    yield* Effect.logInfo(`lifecycle workers running at site ${site}: ${stages.map((s) => s.name).join(", ")}`)
  }).pipe(Effect.withSpan("Engine.runSite", { attributes: { site } }))
