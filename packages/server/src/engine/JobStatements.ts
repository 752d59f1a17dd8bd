/**
 * The job engine's hot statements, each one round trip to the ops-db: taking a batch of a queue's
 * jobs together with their leases, and recording finished jobs together with dropping their
 * leases. They write pg-boss's job table directly, as the leases do (pg-boss is pinned to one
 * release); retries, backoff and dead letters stay pg-boss's own (its `fail`). A site 220 ms
 * from the ops-db pays each statement in full, so a job costs two of them here, whatever the
 * batch, where pg-boss and the leases took four.
 */
import * as SqlClient from "@effect/sql/SqlClient"
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
    ).withoutTransform
  ).pipe(
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
    ).withoutTransform
  ).pipe(Effect.map((rows) => rows[0]?.n ?? 0), Effect.withSpan("JobStatements.complete", { attributes: { queue, jobs: ids.length } }))

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
    sql.unsafe<{ n: number }>(`select count(*)::int as n from pg_trigger where tgname = 'ccat_job_ready' and tgrelid = 'pgboss.job'::regclass`),
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
