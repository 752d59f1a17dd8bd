/**
 * The transfer stage's attempt bookkeeping. A bundle goes along the best route whose circuit is
 * not open, to a writable BUFFER with room at the next hop (RouteChoice). Every attempt is a
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
import { expedite, JobQueue, wakeWaiting } from "../engine/JobQueue.js"
import * as JobStatements from "../engine/JobStatements.js"
import * as Bundling from "./Bundling.js"
import type { Started } from "./internal/AttemptChecks.js"
import { startNew } from "./internal/NewAttempt.js"
import { takeUpRetry } from "./internal/RetryTakeUp.js"
import * as Routes from "./Routes.js"
import * as Sites from "./Sites.js"
import { queueName } from "./Stage.js"

/** The circuit rule in SQL and what an attempt's start came to, as the attempt's checks hold them. */
export { circuitLetsThroughSql, type Started } from "./internal/AttemptChecks.js"
/** The route and destination a bundle goes by, or the wait and why. */
export { choose } from "./internal/RouteChoice.js"

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

/**
 * Re-sends this bundle's transfer job after a wait; the job then starts over from the ops-db. A
 * wait for a place on a route names it (`waitsFor`), so the attempt that frees one wakes it.
 */
export const later = (site: string, bundleId: string, ms: number, why: string, waitsFor?: string) =>
  Effect.gen(function* () {
    const jobs = yield* JobQueue
    yield* jobs.send(queueName(site, name), waitsFor === undefined ? { bundleId } : { bundleId, waitsFor }, {
      singletonKey: bundleId,
      startAfterSeconds: Math.max(1, Math.ceil(ms / 1000))
    })
    yield* Effect.logInfo(`bundle ${bundleId} waits ${Math.ceil(ms / 1000)} s: ${why}`)
  })

/**
 * After an attempt on `route` ended (delivered, failed or cut short): as many bundles as the
 * route has places free now, of those waiting for one, start now, the longest waiting first. A
 * failure here only delays them to the end of their wait, so it is logged, not raised.
 */
export const wakeForRoute = (site: string, route: Routes.Route) =>
  wakeWaiting(
    queueName(site, name),
    "waitsFor",
    route.id,
    (sql) => sql`${route.maxConcurrentTransfers}::int - ${Routes.runningSql(sql, route.id)}`
  ).pipe(
    Effect.catchAllCause((cause) => Effect.logWarning(`route ${route.id}: the bundles waiting for a place were not woken`, cause)),
    Effect.withSpan("TransferAttempts.wakeForRoute", { attributes: { site, route: route.id } })
  )

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
