/**
 * A lifecycle stage: a planner that finds ready work at a site in the ops-db and enqueues jobs,
 * and a worker that does one job's I/O and commits the next state. Stages know nothing of each
 * other; the ops-db's states connect them (DESIGN §5).
 */
import type * as Effect from "effect/Effect"
import type { QueueOptions } from "../engine/JobQueue.js"

/** One stage of the lifecycle. */
export interface Stage<R = never> {
  /** Short name, the second half of its queue names (`chile.package`). */
  readonly name: string
  /**
   * Finds work that is ready at the site and enqueues it, in the same transaction as the state
   * change that claims it; returns how many jobs it enqueued. Safe to run anywhere, any time,
   * concurrently: it re-derives lost jobs from the ops-db and never enqueues work twice.
   */
  readonly plan: (site: string) => Effect.Effect<number, unknown, R>
  /** Does one job. Idempotent and safe to kill at any instant (DESIGN §4.4). */
  readonly work: (site: string, data: unknown) => Effect.Effect<void, unknown, R>
  /** Retry and expiry policy of the stage's queues. */
  readonly queue?: QueueOptions
  /** Jobs of this stage one worker process runs at once. */
  readonly concurrency?: number
  /**
   * Stages whose finished jobs can make work for this one's planner (packaging's finished job
   * is a package waiting for a bundle): such a job, finished at the site, runs this planner at
   * once instead of at the next planning round.
   */
  readonly after?: ReadonlyArray<string>
}

/** The queue of a stage at a site. */
export const queueName = (site: string, stage: string): string => `${site}.${stage}`
