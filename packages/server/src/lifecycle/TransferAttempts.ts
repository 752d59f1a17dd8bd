/**
 * The transfer stage's route choice and attempt bookkeeping. A bundle goes along the best route
 * whose circuit is not open, to a writable BUFFER with room at the next hop. Every attempt is a
 * DataTransfer row (attempt n linked to n-1), created under the route's lock only while both
 * circuits are closed and the route is below its limit, and closed with its bytes, duration and
 * throughput, or its reason and whether a retry can help. A delivery records the bundle's copy at
 * the destination and enqueues its arrival in one transaction; a retryable failure is tried again
 * after a jittered, capped exponential backoff; a permanent one, or one bundle failing too often
 * on a working route, ends the bundle FAILED with its reason.
 */
import { type Checksum, EventLog, Ids, type TransferAdapter, type TransferError, TransferPolicy, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import { expedite, JobQueue } from "../engine/JobQueue.js"
import * as JobStatements from "../engine/JobStatements.js"
import * as Bundling from "./Bundling.js"
import * as OneRoundTrip from "./internal/OneRoundTrip.js"
import * as Routes from "./Routes.js"
import * as Sites from "./Sites.js"
import { queueName } from "./Stage.js"
import { Storages } from "./Storages.js"

/** The stage's name and queue suffix. */
export const name = "transfer"

/** The stage the delivery enables at the next hop (Arrival.name; a literal keeps modules acyclic). */
const arrivalQueue = "arrive"

/** A bundle as the transfer reads it from the ops-db. */
export interface Bundle {
  readonly id: Ids.DataTransferPackageId
  readonly status: string
  readonly relativePath: string
  readonly sizeBytes: number | null
  readonly checksum: Checksum.Checksum | null
}

/** One transfer attempt of a bundle, newest first in `attemptsOf`. */
export interface Attempt {
  readonly id: Ids.DataTransferId
  readonly attempt: number
  readonly status: "pending" | "scheduled" | "in_progress" | "completed" | "failed"
  readonly sinceMs: number | null
  /**
   * Made before an operator last retried the failed bundle: its failure is already answered. An
   * attempt the retry itself made (same transaction, same timestamp) is not before it.
   */
  readonly beforeRetry: boolean
  /** Cut short by a worker that stopped or died: says nothing of the way or the bundle. */
  readonly interrupted: boolean
}

/**
 * Moves a bundle's next try, queued at `site` for when its backoff ends, to now (an operator
 * fixed what failed); 0 when no try waits. The queue and singleton key are `later`'s.
 */
export const tryNow = (site: string, bundleId: string) => expedite(queueName(site, name), bundleId)

/** Re-sends this bundle's transfer job after a wait; the job then starts over from the ops-db. */
export const later = (site: string, bundleId: string, ms: number, why: string) =>
  Effect.gen(function* () {
    const jobs = yield* JobQueue
    yield* jobs.send(queueName(site, name), { bundleId }, { singletonKey: bundleId, startAfterSeconds: Math.max(1, Math.ceil(ms / 1000)) })
    yield* Effect.logInfo(`bundle ${bundleId} waits ${Math.ceil(ms / 1000)} s: ${why}`)
  })

/** A stable jitter per attempt, so every look at the same failure computes the same delay. */
export const jitterOf = (id: string) => parseInt(id.replace(/-/g, "").slice(0, 8), 16) / 0xffffffff

/** The bundle's attempts, newest first, with what each says about the way and the bundle. */
export const attemptsOf = (bundleId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<Attempt>`
      select id, attempt, status::text as status,
        (extract(epoch from (now() - finished_at)) * 1000)::float8 as since_ms,
        coalesce(error_reason, '') = 'Interrupted' as interrupted,
        created_at < coalesce((
          select max(e.at) from event_log e where e.entity_kind = 'DataTransferPackage' and e.entity_id = ${bundleId}
            and e.from_state = 'failed' and e.to_state = 'pending'), '-infinity') as before_retry
      from data_transfer where data_transfer_package_id = ${bundleId} order by attempt desc`)

/**
 * Consecutive failed attempts at the head of the history (since the last delivery or operator
 * retry). Interrupted attempts are skipped, as the circuit breaker skips them: workers killed
 * mid-copy must not back a bundle off, nor fail it after `maxAttempts` deaths.
 */
export const consecutiveFailures = (attempts: ReadonlyArray<Attempt>) => {
  let n = 0
  for (const a of attempts) {
    if (a.interrupted && !a.beforeRetry) continue
    if (a.status !== "failed" || a.beforeRetry) break
    n++
  }
  return n
}

/**
 * Picks the first route whose circuit lets work through and a destination BUFFER for it. Every
 * route's circuit, every next hop's buffers with their circuits and fill are read in one
 * statement, whatever the number of routes: each round trip counts from a site far away.
 */
export const choose = (site: string, routes: ReadonlyArray<Routes.Route>, bytes: number, policy: TransferPolicy.TransferPolicyConfig) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const storages = yield* Storages
    let waitMs = 30_000
    const reasons: Array<string> = []
    const hops = [...new Set(routes.map((r) => r.nextHop))]
    const rows = routes.length === 0 ? [] : yield* sql<{
      kind: "route" | "location"
      n: number
      hop: string | null
      location: Sites.Location | null
      last: TransferPolicy.CircuitFacts["last"]
      probing: number
      used: number
    }>`
      select 'route' as kind, k.n::int as n, null::text as hop, null::json as location,
        ${Routes.circuitFactsSql(sql, "route_id", sql`k.id`, policy)}, 0::float8 as used
      from unnest(${routes.map((r) => r.id)}::uuid[]) with ordinality as k(id, n)
      union all
      select 'location' as kind, (row_number() over (order by h.n, l.priority, l.name))::int as n, h.name as hop, ${
        Sites.locationJson(sql)
      } as location,
        ${Routes.circuitFactsSql(sql, "to_location_id", sql`l.id`, policy)},
        case when l.capacity_bytes is null then 0 else (
          select coalesce(sum(c.size_bytes), 0)::float8 from physical_copy c where c.data_location_id = l.id and c.status <> 'DELETED') end as used
      from unnest(${hops}::text[]) with ordinality as h(name, n)
      join site s on s.name = h.name join data_location l on l.site_id = s.id and l.type = 'BUFFER'
      order by kind desc, n`
    const routeCircuits = rows.filter((r) => r.kind === "route").map((r) => TransferPolicy.circuitOf(r, policy))
    const buffers = rows.filter((r) => r.kind === "location" && r.location !== null && r.location.writable)
    for (const [i, route] of routes.entries()) {
      const c = routeCircuits[i]!
      if (c.state === "open") {
        waitMs = Math.min(waitMs, c.retryInMs)
        reasons.push(`route ${route.fromSite}→${route.toSite} (${route.adapter}) open: ${c.reason}`)
        continue
      }
      for (const b of buffers.filter((b) => b.hop === route.nextHop)) {
        const loc = b.location!
        if (loc.capacityBytes !== null && b.used + bytes > loc.capacityBytes) continue
        const lc = TransferPolicy.circuitOf(b, policy)
        if (lc.state === "open") {
          waitMs = Math.min(waitMs, lc.retryInMs)
          reasons.push(`location ${loc.name} open: ${lc.reason}`)
          continue
        }
        if (storages.rootOf(loc) === undefined) continue
        return { route, destination: loc, waitMs, why: "" }
      }
      reasons.push(`no writable BUFFER with room at ${route.nextHop}`)
    }
    return { route: undefined, destination: undefined, waitMs, why: reasons.join("; ") || `no route leaves ${site} towards an archive` }
  })

/** What the checks under the route's lock found. */
interface Checks {
  readonly copy: string | null
  readonly routeLast: TransferPolicy.CircuitFacts["last"]
  readonly routeProbing: number
  readonly toLast: TransferPolicy.CircuitFacts["last"]
  readonly toProbing: number
  readonly running: number
  readonly open: number
}

/**
 * The checks made under the route's lock, as CTEs ending in `checks` (one row): the copy (locked
 * for share), both circuits' facts, the route's running transfers and the bundle's open attempts
 * other than `retryId`.
 */
const checksSql = (
  sql: SqlClient.SqlClient,
  bundleId: string,
  routeId: string,
  sourceId: string,
  toId: string,
  retryId: string | undefined,
  policy: TransferPolicy.TransferPolicyConfig
) => sql`
  copy as (select status::text as status from physical_copy where id = ${sourceId} for share),
  route_circuit as (select ${Routes.circuitFactsSql(sql, "route_id", sql`${routeId}::uuid`, policy)}),
  to_circuit as (select ${Routes.circuitFactsSql(sql, "to_location_id", sql`${toId}::uuid`, policy)}),
  checks as (
    select (select status from copy) as copy,
      rc.last as route_last, rc.probing as route_probing, tc.last as to_last, tc.probing as to_probing,
      (select count(*)::int from data_transfer where route_id = ${routeId}::uuid and status in ('scheduled', 'in_progress')) as running,
      (select count(*)::int from data_transfer
       where data_transfer_package_id = ${bundleId}::uuid and status in ('pending', 'scheduled', 'in_progress')
         and id <> ${retryId ?? "00000000-0000-0000-0000-000000000000"}::uuid) as open
    from route_circuit rc, to_circuit tc)`

/**
 * Whether a circuit with facts `last` (json, newest first) and `probing` lets an attempt through,
 * in SQL: TransferPolicy.circuitOf's rule (closed, or half-open with no probe running), so the
 * statement that checks can also create the attempt. `decided` below holds the two to agreeing.
 */
export const circuitLetsThroughSql = (
  sql: SqlClient.SqlClient,
  last: string,
  probing: string,
  policy: TransferPolicy.TransferPolicyConfig
) => sql`(
  json_array_length(${sql.literal(last)}) < ${policy.breakerThreshold}::int
  or exists (select 1 from json_array_elements(${sql.literal(last)}) e where e->>'status' <> 'failed')
  or (${policy.breakerCoolDownMs}::float8 - (${sql.literal(last)}->0->>'sinceMs')::float8 <= 0 and ${sql.literal(probing)} = 0))`

/** What `startAttempt` did: an attempt started, a wait and why, or why the bundle cannot be sent from this copy. */
export type Started =
  | { readonly attempt: { readonly id: Ids.DataTransferId; readonly attempt: number } }
  | { readonly attempt?: undefined; readonly wait: number; readonly why: string }
  | { readonly gone: string }

/** What the checks allow: an attempt (`go`), a wait and why, or that the copy cannot be sent from. */
const decided = (
  site: string,
  route: Routes.Route,
  checks: Checks,
  policy: TransferPolicy.TransferPolicyConfig
): Exclude<Started, { readonly attempt: object }> | { readonly go: true } => {
  if (checks.copy !== "PRESENT") return { gone: `its copy at ${site} is ${checks.copy ?? "gone"}` } as const
  for (const facts of [{ last: checks.routeLast, probing: checks.routeProbing }, { last: checks.toLast, probing: checks.toProbing }]) {
    const c = TransferPolicy.circuitOf(facts, policy)
    if (c.state === "open") return { wait: c.retryInMs, why: c.reason } as const
  }
  if (checks.running >= route.maxConcurrentTransfers) {
    return { wait: 2_000, why: `route at its limit of ${route.maxConcurrentTransfers} transfers` } as const
  }
  if (checks.open > 0) return { wait: 5_000, why: "another worker is moving it" } as const
  return { go: true } as const
}

/**
 * Creates the next attempt under the route's lock, after checking again that neither circuit is
 * open (one probe at a time) and the route is below its limit; returns the attempt, or how long
 * to wait, or why the bundle cannot be sent from this copy at all. An operator's retry made the
 * attempt already (`pending`, linked to the one it retries): that row is taken up instead, with
 * the route and destination chosen now.
 *
 * A new attempt costs one round trip: the lock, the checks and the attempt with its three events
 * are two statements of one query string (OneRoundTrip), the attempt inserted only when the
 * checks allow it. The operator's retry, rare, runs as a transaction of its own statements.
 *
 * The source copy is locked `for share` and must still be PRESENT: cleanup decides a deletion
 * with the copy locked `for update` and calls it off when an open attempt reads the copy, so
 * either the deletion was decided first (and no attempt starts from a copy being deleted) or the
 * attempt commits first (and cleanup sees it).
 */
export const startAttempt = (
  site: string,
  bundle: Bundle,
  route: Routes.Route,
  source: { readonly id: string; readonly locationId: string },
  to: Sites.Location,
  previous: Attempt | undefined,
  policy: TransferPolicy.TransferPolicyConfig,
  retry: Attempt | undefined
): Effect.Effect<Started, SqlError | Transitions.TransitionError, SqlClient.SqlClient> =>
  retry !== undefined
    ? takeUpRetry(site, bundle, route, source, to, policy, retry)
    : startNew(site, bundle, route, source, to, previous, policy)

/** A new attempt, created scheduled and started with its three events, in one round trip under the route's lock. */
const startNew = (
  site: string,
  bundle: Bundle,
  route: Routes.Route,
  source: { readonly id: string; readonly locationId: string },
  to: Sites.Location,
  previous: Attempt | undefined,
  policy: TransferPolicy.TransferPolicyConfig
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const actor = `worker:${site}`
    const [, rows] = yield* OneRoundTrip.run(sql, [
      sql`select pg_advisory_xact_lock(hashtext(${Routes.routeLockKey(route.id)}))`,
      sql`
        with ${checksSql(sql, bundle.id, route.id, source.id, to.id, undefined, policy)},
        attempt as (
          insert into data_transfer (data_transfer_package_id, route_id, from_location_id, to_location_id, previous_attempt_id, attempt, adapter, status, started_at)
          select ${bundle.id}::uuid, ${route.id}::uuid, ${source.locationId}::uuid, ${to.id}::uuid, ${previous?.id ?? null}::uuid,
                 ${(previous?.attempt ?? 0) + 1}::int, ${route.adapter}::text, 'in_progress', now()
          from checks c
          where c.copy = 'PRESENT' and c.running < ${route.maxConcurrentTransfers}::int and c.open = 0
            and ${circuitLetsThroughSql(sql, "c.route_last", "c.route_probing", policy)}
            and ${circuitLetsThroughSql(sql, "c.to_last", "c.to_probing", policy)}
          returning id, attempt),
        steps as (
          select a.id, s.from_state, s.to_state from attempt a
          cross join (values (1, null::text, 'pending'), (2, 'pending', 'scheduled'), (3, 'scheduled', 'in_progress')) as s(n, from_state, to_state)
          order by s.n),
        logged as (${
          EventLog.appendFrom(sql, {
            kind: "DataTransfer",
            rows: "steps",
            from: { column: "from_state" },
            to: { column: "to_state" },
            actor
          })
        })
        select c.copy, c.route_last, c.route_probing, c.to_last, c.to_probing, c.running, c.open, a.id::text as attempt_id, a.attempt
        from checks c left join attempt a on true`
    ])
    const row = rows![0]! as {
      copy: string | null
      route_last: Checks["routeLast"]
      route_probing: number
      to_last: Checks["toLast"]
      to_probing: number
      running: number
      open: number
      attempt_id: string | null
      attempt: number | null
    }
    const verdict = decided(site, route, {
      copy: row.copy,
      routeLast: row.route_last,
      routeProbing: row.route_probing,
      toLast: row.to_last,
      toProbing: row.to_probing,
      running: row.running,
      open: row.open
    }, policy)
    if (row.attempt_id !== null) {
      // the statement's rule and circuitOf's must agree; an attempt made anyway is taken, and said
      if (!("go" in verdict)) {
        yield* Effect.logWarning(`bundle ${bundle.id}: attempt created although ${"gone" in verdict ? verdict.gone : verdict.why}`)
      }
      return { attempt: { id: row.attempt_id as Ids.DataTransferId, attempt: row.attempt! } } as const
    }
    if ("go" in verdict) return { wait: 1_000, why: "the checks allowed no attempt this time" } as const
    return verdict
  })

/** An operator's retry attempt (`pending`) taken up with the route and destination chosen now, in a transaction under the route's lock. */
const takeUpRetry = (
  site: string,
  bundle: Bundle,
  route: Routes.Route,
  source: { readonly id: string; readonly locationId: string },
  to: Sites.Location,
  policy: TransferPolicy.TransferPolicyConfig,
  retry: Attempt
) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(
      Effect.gen(function* () {
        yield* Routes.lockRoute(route.id)
        const [checks] = yield* sql<Checks>`with ${
          checksSql(sql, bundle.id, route.id, source.id, to.id, retry.id, policy)
        } select * from checks`
        const verdict = decided(site, route, checks!, policy)
        if ("gone" in verdict) {
          // The operator's attempt cannot run from here: it ends failed rather than pending for ever.
          yield* Transitions.transition({
            entity: "DataTransfer",
            id: retry.id,
            from: "pending",
            to: "failed",
            actor: `worker:${site}`,
            set: {
              errorReason: "SourceMissing",
              errorMessage: `the bundle cannot be sent: ${verdict.gone}`,
              retryable: false,
              finishedAt: new Date()
            }
          })
          return verdict
        }
        if (!("go" in verdict)) return verdict
        const actor = `worker:${site}`
        const taken = yield* sql<{ id: Ids.DataTransferId; attempt: number }>`
          update data_transfer set route_id = ${route.id}, from_location_id = ${source.locationId}, to_location_id = ${to.id},
            adapter = ${route.adapter}, updated_at = now()
          where id = ${retry.id} and status = 'pending' returning id, attempt`
        if (taken.length === 0) return { wait: 1_000, why: "the operator's retry attempt moved on meanwhile" } as const
        yield* Transitions.transition({
          entity: "DataTransfer",
          id: retry.id,
          from: "pending",
          to: "scheduled",
          actor,
          details: { retry: "operator's attempt taken up" }
        })
        yield* Transitions.transition({
          entity: "DataTransfer",
          id: retry.id,
          from: "scheduled",
          to: "in_progress",
          actor,
          set: { startedAt: new Date() }
        })
        return { attempt: taken[0]! } as const
      })
    ))

/** The delivery: attempt completed, the bundle's copy at the destination, arrival enqueued. */
export const delivered = (
  site: string,
  bundle: Bundle,
  attemptId: Ids.DataTransferId,
  route: Routes.Route,
  to: Sites.Location,
  result: TransferAdapter.Result
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const jobs = yield* JobQueue
    yield* jobs.ensureQueue(queueName(route.nextHop, arrivalQueue), Routes.queues.arrive)
    const actor = `worker:${site}`
    // The attempt completed, the bundle's copy at the destination, each with its event, and
    // the arrival's job, in one statement. The adapter compared our checksum at the
    // destination (verified); arrival checks it again before unpacking.
    const done = yield* sql<{ id: string }>`
      with moved as (
        update data_transfer set status = 'completed', updated_at = now(), bytes_transferred = ${result.bytes},
          duration_ms = ${Math.round(result.durationMs)}, throughput_bytes_per_second = ${result.throughput}, finished_at = now()
        where id = ${attemptId} and status = 'in_progress'
        returning id),
      completed as (${EventLog.appendFrom(sql, { kind: "DataTransfer", rows: "moved", from: "in_progress", to: "completed", actor })}),
      copy as (
        insert into physical_copy (data_transfer_package_id, data_location_id, path, size_bytes, checksum, status, verified_at)
        select ${bundle.id}::uuid, ${to.id}::uuid, ${bundle.relativePath}::text, ${result.bytes}::bigint, ${
          result.checksum ?? bundle.checksum!
        }::text,
               'PRESENT'::physical_copy_status, ${result.verified ? sql`now()` : sql`null::timestamptz`}
        from moved
        returning id, status),
      created as (${
        EventLog.appendFrom(sql, {
          kind: "PhysicalCopy",
          rows: "copy",
          from: null,
          to: { column: "status" },
          actor,
          details: { action: "delivered", bundleId: bundle.id, attemptId }
        })
      }),
      job as (${
        JobStatements.sendFrom(sql, {
          queue: queueName(route.nextHop, arrivalQueue),
          rows: "moved",
          data: sql`jsonb_build_object('bundleId', ${bundle.id}::text)`,
          singletonKey: sql`${bundle.id}::text`
        })
      })
      select id from moved`
    if (done.length === 0) {
      const [found] = yield* sql<{ status: string }>`select status::text as status from data_transfer where id = ${attemptId}`
      return yield* new Transitions.TransitionError({
        reason: found === undefined ? "NotFound" : "StateConflict",
        entity: "DataTransfer",
        id: attemptId,
        from: "in_progress",
        to: "completed",
        ...(found === undefined ? {} : { actual: found.status })
      })
    }
    yield* Effect.logInfo(`bundle ${bundle.id} delivered to ${to.name}: ${result.bytes} bytes in ${Math.round(result.durationMs)} ms`)
  })

/**
 * Permanent failures of the way rather than of the bundle: a refused login or write, a missing
 * tool, a full disk at the destination. They do not clear by retrying at once, but an operator
 * fixes them for every bundle; so the bundle waits (and the breaker pauses the route or location)
 * instead of ending FAILED. The attempt still records the adapter's own `retryable`.
 */
const ofTheWay = (e: TransferError.TransferError) =>
  e.reason === "PermissionDenied" || e.reason === "AuthenticationFailed" || e.reason === "ToolMissing" || e.reason === "DestinationFull"

/** Records a failed attempt, then retries after a backoff, waits for the circuit, or fails the bundle. */
export const failed = (
  site: string,
  bundle: Bundle,
  attemptId: Ids.DataTransferId,
  attemptNo: number,
  route: Routes.Route,
  e: TransferError.TransferError,
  startedMs: number
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const policy = yield* Routes.transferPolicy
    const outcome = yield* sql.withTransaction(
      Effect.gen(function* () {
        yield* Transitions.transition({
          entity: "DataTransfer",
          id: attemptId,
          from: "in_progress",
          to: "failed",
          actor: `worker:${site}`,
          set: {
            errorReason: e.reason,
            errorMessage: e.message,
            retryable: e.retryable,
            durationMs: Math.max(0, Date.now() - startedMs),
            finishedAt: new Date()
          }
        })
        const failures = consecutiveFailures(yield* attemptsOf(bundle.id))
        const c = yield* Routes.circuit({ routeId: route.id }, policy)
        // While the route's circuit is open the failure is the route's, not this bundle's.
        const exhausted = failures >= policy.maxAttempts && c.state !== "open"
        if ((!e.retryable && !ofTheWay(e)) || exhausted) {
          const why = e.retryable
            ? `${failures} attempts failed, the last: ${e.message}`
            : `attempt ${attemptNo} failed permanently: ${e.message}`
          yield* Bundling.fail(site, bundle.id, why)
          return { failedWith: why }
        }
        const wait = Math.max(TransferPolicy.backoffMs(policy, failures, jitterOf(attemptId)), c.state === "open" ? c.retryInMs : 0)
        yield* later(
          site,
          bundle.id,
          wait,
          `attempt ${attemptNo} failed (${e.reason}${e.retryable ? ", retryable" : ", waits for the way to be fixed"})${
            c.state === "open" ? `; ${c.reason}` : ""
          }`
        )
        return { failedWith: undefined }
      })
    )
    if (outcome.failedWith !== undefined) yield* Effect.logError(`bundle ${bundle.id} FAILED: ${outcome.failedWith}`)
  })
