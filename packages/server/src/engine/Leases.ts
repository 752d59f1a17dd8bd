/**
 * Job leases: which worker process runs which active job, kept alive by heartbeats, so that the
 * jobs of a worker that died (SIGKILL, power cut, OOM killer) run again within seconds instead of
 * waiting for pg-boss's expiry, which must be hours long because a tape write may take hours.
 * The table lives in pg-boss's schema beside the jobs it annotates: it is the job engine's own
 * bookkeeping, not the ops-db's.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** One active job taken back from a worker that stopped heartbeating. */
export interface Reclaimed {
  readonly id: string
  readonly queue: string
  /** The worker that held it, or null when it died between taking the job and leasing it. */
  readonly worker: string | null
  /** What became of the job: run again at once, or `failed` (retries used up, or an equal job already waits). */
  readonly outcome: "retry" | "failed"
}

// pg-boss 10 keeps its tables in the `pgboss` schema (JobQueue.schema); the lease is keyed by
// the job's id and dropped with its worker's last heartbeat.
const table = "pgboss.ccat_job_lease"

/** Makes the lease table if it does not exist; serialised so that racing processes do not collide. */
export const ensureTable = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql.withTransaction(
    Effect.gen(function* () {
      yield* sql.unsafe(`select pg_advisory_xact_lock(hashtext('${table}'))`)
      yield* sql.unsafe(`create table if not exists ${table} (
        job_id uuid primary key,
        queue text not null,
        worker text not null,
        started_at timestamptz not null default now(),
        heartbeat_at timestamptz not null default now()
      )`)
      yield* sql.unsafe(`create index if not exists ccat_job_lease_worker on ${table} (worker)`)
    })
  )
}).pipe(Effect.withSpan("Leases.ensureTable"))

/** Records that `worker` runs job `jobId` now. */
export const take = (worker: string, jobId: string, queue: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(
      `insert into ${table} (job_id, queue, worker) values ($1, $2, $3)
       on conflict (job_id) do update set worker = excluded.worker, started_at = now(), heartbeat_at = now()`,
      [jobId, queue, worker]
    )).pipe(Effect.asVoid, Effect.withSpan("Leases.take", { attributes: { queue, jobId } }))

/** Drops the lease of a job `worker` finished (or gave up). */
export const release = (worker: string, jobId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`delete from ${table} where job_id = $1 and worker = $2`, [jobId, worker])).pipe(
    Effect.asVoid,
    Effect.withSpan("Leases.release", { attributes: { jobId } })
  )

/** Drops every lease of `worker`: it stops, and whatever it still held is reclaimed by the rule. */
export const releaseAll = (worker: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`delete from ${table} where worker = $1`, [worker])).pipe(
    Effect.asVoid
  )

/**
 * Says `worker` is alive and still runs `jobIds`: their leases stay its own for another lease
 * timeout. Its other leases (a job whose end could not be recorded) are left to lapse.
 */
export const heartbeat = (worker: string, jobIds: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    jobIds.length === 0
      ? Effect.void
      : sql.unsafe(`update ${table} set heartbeat_at = now() where worker = $1 and job_id = any($2::uuid[])`, [worker, jobIds])).pipe(
      Effect.asVoid,
      Effect.withSpan("Leases.heartbeat")
    )

/**
 * Takes back the active jobs whose lease was not renewed for `timeoutSeconds` (or that have no
 * lease and started that long ago: their worker died between fetching and leasing). Each goes
 * back to `retry` to start at once, without pg-boss's backoff: a dead worker is not the job's
 * fault. The death still counts as an attempt, so a job that kills every worker that runs it
 * ends `failed` after its retry limit rather than taking the site down forever. On a stately
 * queue, when an equal job (same key) already waits, this one is `failed` and the waiting one
 * does the work: two waiting copies of one key would make pg-boss's fetch of the second fail
 * while the first runs. Locked rows are skipped, so concurrent reapers never clash.
 */
export const reap = (timeoutSeconds: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    return yield* sql.withTransaction(
      Effect.gen(function* () {
        const stale = yield* sql.unsafe<{ id: string; queue: string; worker: string | null; retry: boolean }>(
          `select j.id::text as id, j.name as queue, l.worker,
             j.retry_count < j.retry_limit and not exists (
               select 1 from pgboss.job o where o.name = j.name and o.state in ('created', 'retry') and o.policy = 'stately'
                 and coalesce(o.singleton_key, '') = coalesce(j.singleton_key, '') and o.id <> j.id
             ) as retry
           from pgboss.job j left join ${table} l on l.job_id = j.id
           where j.state = 'active'
             and coalesce(l.heartbeat_at, j.started_on) < now() - make_interval(secs => $1)
           for update of j skip locked`,
          [timeoutSeconds]
        ).withoutTransform
        if (stale.length === 0) return [] as ReadonlyArray<Reclaimed>
        const again = stale.filter((j) => j.retry).map((j) => j.id)
        const failed = stale.filter((j) => !j.retry).map((j) => j.id)
        const output = (why: string) => JSON.stringify({ message: why })
        if (again.length > 0) {
          yield* sql.unsafe(
            `update pgboss.job set state = 'retry', start_after = now(), output = $2::jsonb
             where id = any($1::uuid[]) and state = 'active'`,
            [again, output("its worker stopped heartbeating; run again")]
          )
        }
        if (failed.length > 0) {
          yield* sql.unsafe(
            `update pgboss.job set state = 'failed', completed_on = now(), output = $2::jsonb
             where id = any($1::uuid[]) and state = 'active'`,
            [failed, output("its worker stopped heartbeating; retries used up or an equal job already waits")]
          )
        }
        yield* sql.unsafe(`delete from ${table} where job_id = any($1::uuid[])`, [stale.map((j) => j.id)])
        return stale.map((j): Reclaimed => ({ id: j.id, queue: j.queue, worker: j.worker, outcome: j.retry ? "retry" : "failed" }))
      })
    )
  }).pipe(Effect.withSpan("Leases.reap"))

/** Drops leases left by workers that died after their job ended (the job is no longer active). */
export const sweep = (timeoutSeconds: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe(
      `delete from ${table} l where l.heartbeat_at < now() - make_interval(secs => $1)
         and not exists (select 1 from pgboss.job j where j.id = l.job_id and j.state = 'active')`,
      [timeoutSeconds]
    )).pipe(Effect.asVoid)
