/**
 * The job engine's hot statements, each one round trip to the ops-db: taking a batch of a queue's
 * jobs together with their leases, and recording finished jobs together with dropping their
 * leases. They write pg-boss's job table directly, as the leases do (pg-boss is pinned to one
 * release); retries, backoff and dead letters stay pg-boss's own (its `fail`). A site 220 ms
 * from the ops-db pays each statement in full, so a job costs two of them here, whatever the
 * batch, where pg-boss and the leases took four.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"

/** The channel a worker listens on: a queue's name is sent on it when a job of it may be ready. */
export const readyChannel = "ccat_job_ready"

/** A job taken by `take`, leased to the worker that took it. */
export interface Taken {
  readonly id: string
  readonly data: unknown
  /** How long the job may run before it counts as stuck (the queue's or the job's expiry). */
  readonly expireSeconds: number
}

/** PostgreSQL's code for a unique violation. */
const uniqueViolation = "23505"

const codeOf = (e: unknown): string | undefined => {
  const cause = (e as { cause?: { code?: unknown } } | undefined)?.cause
  return typeof cause?.code === "string" ? cause.code : undefined
}

/**
 * Takes up to `limit` ready jobs of `queue` for `worker` and leases them, in one statement.
 * Locked rows are skipped, so workers in many processes never take the same job. On singleton
 * and stately queues a job whose key already has an active job is left waiting (pg-boss would
 * try it and fail the whole fetch on its unique index, blocking the queue behind it), and a
 * batch holds one job per key. Two workers racing for the two waiting jobs of one key can still
 * meet that index: the loser takes nothing this time and tries again.
 */
export const take = (queue: string, worker: string, limit: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ id: string; data: unknown; expire_seconds: number }>(
      `with next as (
         select j.id, j.singleton_key, j.policy from pgboss.job j
         where j.name = $1 and j.state < 'active' and j.start_after < now()
           and not (coalesce(j.policy, '') in ('singleton', 'stately') and exists (
             select 1 from pgboss.job a where a.name = $1 and a.state = 'active'
               and coalesce(a.singleton_key, '') = coalesce(j.singleton_key, '')))
         order by j.priority desc, j.created_on, j.id
         limit $2
         for update skip locked
       ), grouped as (
         select n.id, row_number() over (
           partition by case when coalesce(n.policy, '') in ('singleton', 'stately') then coalesce(n.singleton_key, '') else n.id::text end
         ) as nth
         from next n
       ), taken as (
         update pgboss.job j set state = 'active', started_on = now(),
           retry_count = case when j.started_on is not null then j.retry_count + 1 else j.retry_count end
         from grouped g
         where j.name = $1 and j.id = g.id and g.nth = 1
         returning j.id, j.data, extract(epoch from j.expire_in)::float8 as expire_seconds
       ), leased as (
         insert into pgboss.ccat_job_lease (job_id, queue, worker)
         select id, $1, $3 from taken
         on conflict (job_id) do update set worker = excluded.worker, started_at = now(), heartbeat_at = now()
       )
       select id::text as id, data, expire_seconds from taken`,
      [queue, limit, worker]
    ).withoutTransform).pipe(
      Effect.map((rows) => rows.map((r): Taken => ({ id: r.id, data: r.data, expireSeconds: r.expire_seconds }))),
      Effect.catchIf((e) => codeOf(e) === uniqueViolation, () => Effect.succeed([] as ReadonlyArray<Taken>)),
      Effect.withSpan("JobStatements.take", { attributes: { queue, limit } })
    )

/**
 * Records jobs `worker` finished and drops their leases, in one statement; returns how many
 * were still active (a job reclaimed from a worker that looked dead is no longer its to finish).
 */
export const complete = (queue: string, worker: string, ids: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ n: number }>(
      `with done as (
         update pgboss.job set completed_on = now(), state = 'completed', output = null
         where name = $1 and id = any($2::uuid[]) and state = 'active'
         returning id
       ), freed as (
         delete from pgboss.ccat_job_lease where job_id = any($2::uuid[]) and worker = $3
       )
       select count(*)::int as n from done`,
      [queue, ids, worker]
    ).withoutTransform).pipe(
      Effect.map((rows) => rows[0]?.n ?? 0),
      Effect.withSpan("JobStatements.complete", { attributes: { queue, jobs: ids.length } })
    )

/** The jobs `sendFrom` enqueues: one per row of a CTE of the same statement. */
export interface SendFrom {
  readonly queue: string
  /** The name of the CTE whose rows each get a job; its columns are read as `r.<column>`. */
  readonly rows: string
  /** The job's data, an SQL expression over `r` giving a jsonb object (`jsonb_build_object('bundleId', r.id)`). */
  readonly data: Fragment
  /** The job's singleton key, an SQL expression over `r` (`r.id::text`). */
  readonly singletonKey: Fragment
}

/**
 * The SQL that enqueues one job per row of the CTE `rows`, to be placed as a CTE of the very
 * statement that makes the change the job follows from (`with copy as (insert ... returning
 * id), job as (${sendFrom(...)}) select ...`): the change and its job are one statement, where a
 * transaction with a separate send costs a site far from the ops-db four round trips. It inserts
 * what pg-boss's own `send` inserts with only a singleton key given (the queue's retry, expiry,
 * retention and policy), skipping a job the queue's policy already holds (on conflict do nothing,
 * as `send` returns null then); a queue that does not exist gets no job, as with `send`, so
 * callers make sure of it first (`JobQueue.ensureQueue`). It fires the ready trigger as a send
 * does.
 */
export const sendFrom = (sql: SqlClient.SqlClient, e: SendFrom): Fragment => sql`
  insert into pgboss.job (id, name, data, priority, start_after, singleton_key, singleton_on, dead_letter, expire_in, keep_until,
    retry_limit, retry_delay, retry_backoff, policy)
  select gen_random_uuid(), q.name, ${e.data}, 0, now(), ${e.singletonKey}, null, q.dead_letter,
    case when q.expire_seconds is not null then q.expire_seconds * interval '1s' else interval '15 minutes' end,
    now() + cast(coalesce((q.retention_minutes * 60)::text, '14 days') as interval),
    coalesce(q.retry_limit, 2),
    case when coalesce(q.retry_backoff, false) then greatest(q.retry_delay, 1) else coalesce(q.retry_delay, 0) end,
    coalesce(q.retry_backoff, false), q.policy
  from ${sql(e.rows)} r join pgboss.queue q on q.name = ${e.queue}
  on conflict do nothing
  returning id`

/**
 * Makes every job that becomes ready (sent, retried without delay, expedited) announce its
 * queue's name on `readyChannel` when its transaction commits, so idle workers take it at once
 * instead of at their next poll. PostgreSQL folds equal notifications of one transaction into
 * one, so a planner enqueuing a hundred jobs of a queue wakes its workers once. A job starting
 * later (a backoff, a wait) is found by the workers' poll. The trigger is made once: creating a
 * trigger locks the job table against every writer, and a process that did so at each start
 * would stall every worker behind any long transaction that touched a job.
 */
export const ensureReadyTrigger = Effect.flatMap(SqlClient.SqlClient, (sql) => {
  const present = Effect.map(
    sql.unsafe<{ n: number }>(
      `select count(*)::int as n from pg_trigger where tgname = 'ccat_job_ready' and tgrelid = 'pgboss.job'::regclass`
    ),
    (rows) => (rows[0]?.n ?? 0) > 0
  )
  return Effect.flatMap(present, (there) =>
    there ? Effect.void : sql.withTransaction(
      Effect.gen(function* () {
        yield* sql.unsafe(`select pg_advisory_xact_lock(hashtext('pgboss.ccat_job_ready'))`)
        if (yield* present) return
        yield* sql.unsafe(`create or replace function pgboss.ccat_job_ready() returns trigger language plpgsql as $$
          begin
            perform pg_notify('${readyChannel}', new.name);
            return null;
          end $$`)
        yield* sql.unsafe(`create trigger ccat_job_ready
          after insert or update of state, start_after on pgboss.job
          for each row when (new.state in ('created', 'retry') and new.start_after <= now())
          execute function pgboss.ccat_job_ready()`)
      })
    ))
}).pipe(Effect.withSpan("JobStatements.ensureReadyTrigger"))
