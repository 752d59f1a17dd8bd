/**
 * The job engine's own failure, and how a pg-boss call's rejection becomes one: every operation
 * of the engine fails with it, naming the operation and the queue.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"

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

/** Runs a pg-boss call, its rejection a JobQueueError naming `operation` and `queue`. */
export const attempt = <A>(operation: string, queue: string | undefined, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => new JobQueueError({ operation, ...(queue ? { queue } : {}), cause }) })
