/**
 * Keeping the ops-db's history small to query (docs/ops-db.md, "History"): once an `interval`,
 * a job creates the event log's year partitions ahead (`policy.history.yearsAhead`), moves any
 * events the default partition caught into their years, and applies the configured retention:
 * years of events older than `policy.history.events` are dropped whole, and the finished
 * transfer attempts of completed bundles and packages older than
 * `policy.history.transferAttempts` are deleted, a batch per transaction. Both default to
 * "forever", in which case nothing is ever taken away.
 *
 * The work is the whole ops-db's, not a site's: every site's planner may send the job, the
 * planners see each other's jobs in the queue, and an advisory lock lets one run at a time.
 * Each statement waits at most `lockTimeout` for its lock (creating or dropping a partition
 * locks the event log for an instant), so a long reader makes the job retry later rather than
 * queue every writer of events behind it.
 */
import { Topology } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { JobQueue, schema as jobSchema } from "../engine/JobQueue.js"
import { LifecyclePolicy } from "./Packaging.js"
import { queueName, type Stage } from "./Stage.js"

/** The stage's name and queue suffix. */
export const name = "history"

/** How often the history is kept: far more often than a year turns, so partitions are always ahead. */
export const interval = Duration.hours(1)

/** The longest a statement of the job waits for a lock before the job gives up and retries. */
export const lockTimeout = "5s"

/** Attempts deleted per transaction. */
export const transferBatch = 1000

/** What one run did. */
export interface Kept {
  readonly partitionsCreated: number
  readonly yearsDropped: ReadonlyArray<string>
  readonly attemptsDeleted: number
}

/** The instant before which history goes, or undefined to keep it forever. */
export const cutoff = (retention: Topology.HistoryConfig["events"], now: Date): Date | undefined =>
  retention === "forever" ? undefined : new Date(now.getTime() - retention)

/**
 * Sends the job from this site unless one of any site was sent within the last `interval` (or
 * is waiting or running); several planners at once are held to one job by the singleton key.
 */
export const plan = Effect.fn("History.plan")(function* (site: string) {
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobQueue
  const recent = yield* sql<{ n: number }>`
    select count(*)::int as n from ${sql(jobSchema)}.job j
    where j.name like ${`%.${name}`} and (j.state::text in ('created', 'retry', 'active')
      or j.created_on > now() - make_interval(secs => ${Duration.toSeconds(interval)}))`
  if (recent[0]!.n > 0) return 0
  return (yield* jobs.send(queueName(site, name), {}, { singletonKey: name })) === null ? 0 : 1
})

/**
 * Creates partitions ahead and applies the retention, as `policy.history` says; returns what it
 * did. Safe to run at any time and concurrently: a second run finds the lock taken and does
 * nothing.
 */
export const keep = Effect.fn("History.keep")(function* (history: Topology.HistoryConfig, now: Date = new Date()) {
  const sql = yield* SqlClient.SqlClient
  const partitions = yield* sql.withTransaction(Effect.gen(function* () {
    yield* sql`select set_config('lock_timeout', ${lockTimeout}, true)`
    const [lock] = yield* sql<{ ok: boolean }>`select pg_try_advisory_xact_lock(hashtext('ccat.history')) as ok`
    if (lock?.ok !== true) return undefined
    const [made] = yield* sql<{ n: number }>`select history_partitions_ensure(null::timestamptz, ${history.yearsAhead}::int) as n`
    const before = cutoff(history.events, now)
    const dropped = before === undefined
      ? []
      : (yield* sql<{ name: string }>`select history_retire_events(${before}::timestamptz) as name`).map((r) => r.name)
    return { created: made?.n ?? 0, dropped }
  }))
  if (partitions === undefined) {
    yield* Effect.logDebug("history: another process is keeping it; nothing done")
    return { partitionsCreated: 0, yearsDropped: [], attemptsDeleted: 0 } satisfies Kept
  }
  let attemptsDeleted = 0
  const before = cutoff(history.transferAttempts, now)
  if (before !== undefined) {
    for (;;) {
      const [batch] = yield* sql.withTransaction(
        Effect.zipRight(
          sql`select set_config('lock_timeout', ${lockTimeout}, true)`,
          sql<{ n: number }>`select history_retire_transfers(${before}::timestamptz, ${transferBatch}::int) as n`
        )
      )
      attemptsDeleted += batch?.n ?? 0
      if ((batch?.n ?? 0) === 0) break
    }
  }
  return { partitionsCreated: partitions.created, yearsDropped: partitions.dropped, attemptsDeleted } satisfies Kept
})

/** Keeps the history as the running configuration's policy says, and says what it did. */
export const work = Effect.fn("History.work")(function* (_site: string, _data: unknown) {
  const policy = yield* LifecyclePolicy
  const kept = yield* keep(policy.history)
  const what = `history: ${kept.partitionsCreated} event log years created ahead, ` +
    `${kept.yearsDropped.length} years of events dropped${kept.yearsDropped.length > 0 ? ` (${kept.yearsDropped.join(", ")})` : ""}, ` +
    `${kept.attemptsDeleted} finished transfer attempts deleted`
  if (kept.yearsDropped.length > 0 || kept.attemptsDeleted > 0 || kept.partitionsCreated > 0) yield* Effect.logInfo(what)
  else yield* Effect.logDebug(what)
})

/** The history stage. */
export const stage: Stage<SqlClient.SqlClient | JobQueue | LifecyclePolicy> = {
  name,
  plan,
  work,
  queue: { policy: "stately", retryLimit: 5, retryDelaySeconds: 60, retryBackoff: true, expireInSeconds: 6 * 3600 },
  concurrency: 1
}
