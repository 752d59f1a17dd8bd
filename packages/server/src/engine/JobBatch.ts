/**
 * Many jobs of one queue sent in one statement: a planner that re-derives the jobs of a few
 * hundred items (claimed long ago, or found without a job) pays one round trip, where a send per
 * item paid one each, most of them dropped by the singleton key anyway.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as JobStatements from "./JobStatements.js"

/** One job of a batch: its data and the singleton key the queue's policy holds it to. */
export interface Send {
  readonly data: object
  readonly singletonKey: string
}

/**
 * Enqueues `jobs` on `queue` in one statement, on the current SQL transaction's connection when
 * there is one, and returns how many were enqueued. Each row is what pg-boss's own `send` inserts
 * with a singleton key (`JobStatements.sendFrom`): a job the queue's policy already holds is
 * skipped, as `send` returns null then, and so is a second job of one key in the same batch. The
 * queue must exist (`JobQueue.ensureQueue`); for one that does not, nothing is enqueued. An empty
 * batch sends no statement.
 */
export const sendMany = (queue: string, jobs: ReadonlyArray<Send>) =>
  Effect.gen(function* () {
    if (jobs.length === 0) return 0
    const sql = yield* SqlClient.SqlClient
    const seen = new Set<string>()
    const rows: Array<{ data: object; key: string }> = []
    for (const j of jobs) {
      if (seen.has(j.singletonKey)) continue
      seen.add(j.singletonKey)
      rows.push({ data: j.data, key: j.singletonKey })
    }
    const [row] = yield* sql<{ n: number }>`
      with batch as (select b.data, b.key from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as b(data jsonb, key text)),
      job as (${JobStatements.sendFrom(sql, { queue, rows: "batch", data: sql`r.data`, singletonKey: sql`r.key` })})
      select count(*)::int as n from job`
    return row?.n ?? 0
  }).pipe(Effect.withSpan("JobBatch.sendMany", { attributes: { queue, jobs: jobs.length } }))
