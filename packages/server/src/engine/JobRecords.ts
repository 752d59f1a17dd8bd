/**
 * pg-boss records a finished job's completion or failure without awaiting it (its worker loop
 * moves on). With the database away at that instant (a partition, a restart) that promise's
 * rejection would be unhandled, and Node ends the process: a worker riding out an outage must not
 * die of it. Here every such rejection is handled: counted, logged by the job engines of this
 * process, and the job, still active, runs again once its lease lapses (every job is idempotent).
 * Callers that await the call still see the error.
 *
 * pg-boss keeps its manager private and calls the methods on it, not on the instance it hands
 * out, so the patch goes on the manager's prototype, once per process.
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Runtime from "effect/Runtime"
import { createRequire } from "node:module"

/** Finished jobs whose completion or failure could not be recorded; each runs again once its lease lapses. */
export const failures = Metric.counter("ccat_job_engine_record_failures_total", {
  description:
    "Finished jobs whose completion or failure this process could not record (the database away at that instant); each runs again once its lease lapses.",
  incremental: true
})

type Report = (method: "complete" | "fail", error: unknown) => void

const listeners = new Set<Report>()
let patched = false

const patch = () => {
  if (patched) return
  patched = true
  const Manager = createRequire(import.meta.url)("pg-boss/src/manager.js") as { prototype: Record<string, unknown> }
  for (const method of ["complete", "fail"] as const) {
    const original = Manager.prototype[method] as (...args: Array<unknown>) => Promise<unknown>
    const patchedMethod = function (this: unknown, ...args: Array<unknown>) {
      const recorded = original.apply(this, args)
      recorded.catch((error: unknown) => {
        for (const report of listeners) report(method, error)
        if (listeners.size === 0) console.error(`job engine: a finished job's ${method} could not be recorded`, error)
      })
      return recorded
    }
    // pg-boss publishes its manager's methods on each instance under their names: keep the name,
    // or an instance made after the patch has no `complete` or `fail`
    Object.defineProperty(patchedMethod, "name", { value: method })
    Manager.prototype[method] = patchedMethod
  }
}

/**
 * Handles the rejections of pg-boss's unawaited records for the lifetime of the calling scope,
 * reporting them through `runtime` (a warning and the `failures` counter).
 */
export const handledWith = (runtime: Runtime.Runtime<never>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      patch()
      const report: Report = (method, error) =>
        Runtime.runFork(runtime)(
          Effect.zipRight(
            Metric.increment(failures),
            Effect.logWarning(
              `job engine: a finished job's ${
                method === "complete" ? "completion" : "failure"
              } could not be recorded; it runs again once its lease lapses`,
              error
            )
          )
        )
      listeners.add(report)
      return report
    }),
    (report) => Effect.sync(() => void listeners.delete(report))
  )
