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
import { type Checksum, Ids, Repositories, type TransferAdapter, type TransferError, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import { expedite, JobQueue } from "../engine/JobQueue.js"
import * as Bundling from "./Bundling.js"
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
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<Attempt>`
      select id, attempt, status::text as status,
        (extract(epoch from (now() - finished_at)) * 1000)::float8 as since_ms,
        coalesce(error_reason, '') = 'Interrupted' as interrupted,
        created_at < coalesce((
          select max(e.at) from event_log e where e.entity_kind = 'DataTransferPackage' and e.entity_id = ${bundleId}
            and e.from_state = 'failed' and e.to_state = 'pending'), '-infinity') as before_retry
      from data_transfer where data_transfer_package_id = ${bundleId} order by attempt desc`
  )

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

/** Picks the first route whose circuit lets work through and a destination BUFFER for it. */
export const choose = (site: string, bundleId: string, bytes: number, policy: Routes.TransferPolicyConfig) =>
  Effect.gen(function* () {
    const storages = yield* Storages
    let waitMs = 30_000
    const reasons: Array<string> = []
    for (const route of yield* Routes.leaving(site, bundleId)) {
      const c = yield* Routes.circuit({ routeId: route.id }, policy)
      if (c.state === "open") {
        waitMs = Math.min(waitMs, c.retryInMs)
        reasons.push(`route ${route.fromSite}→${route.toSite} (${route.adapter}) open: ${c.reason}`)
        continue
      }
      for (const loc of yield* Sites.locationsOf(route.nextHop, "BUFFER")) {
        if (!loc.writable) continue
        if (loc.capacityBytes !== null && (yield* Sites.usedBytes(loc.id)) + bytes > loc.capacityBytes) continue
        const lc = yield* Routes.circuit({ toLocationId: loc.id }, policy)
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

/**
 * Creates the next attempt row in one transaction under the route's lock, after checking again
 * that neither circuit is open (one probe at a time) and the route is below its limit; returns
 * the attempt, or how long to wait, or why the bundle cannot be sent from this copy at all. An
 * operator's retry made the attempt already (`pending`, linked to the one it retries): that row
 * is taken up instead, with the route and destination chosen now.
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
  policy: Routes.TransferPolicyConfig,
  retry: Attempt | undefined
) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(
      Effect.gen(function* () {
        yield* Routes.lockRoute(route.id)
        const [copy] = yield* sql<{ status: string }>`select status::text as status from physical_copy where id = ${source.id} for share`
        if (copy?.status !== "PRESENT") {
          const gone = `its copy at ${site} is ${copy?.status ?? "gone"}`
          // The operator's attempt cannot run from here: it ends failed rather than pending for ever.
          if (retry !== undefined) {
            yield* Transitions.transition({
              entity: "DataTransfer", id: retry.id, from: "pending", to: "failed", actor: `worker:${site}`,
              set: { errorReason: "SourceMissing", errorMessage: `the bundle cannot be sent: ${gone}`, retryable: false, finishedAt: new Date() }
            })
          }
          return { gone } as const
        }
        for (const on of [{ routeId: route.id }, { toLocationId: to.id }]) {
          const c = yield* Routes.circuit(on, policy)
          if (c.state === "open") return { wait: c.retryInMs, why: c.reason } as const
        }
        const n = yield* Routes.running(route.id)
        if (n >= route.maxConcurrentTransfers) return { wait: 2_000, why: `route at its limit of ${route.maxConcurrentTransfers} transfers` } as const
        const open = yield* sql<{ n: number }>`
          select count(*)::int as n from data_transfer
          where data_transfer_package_id = ${bundle.id} and status in ('pending', 'scheduled', 'in_progress')
            and id <> ${retry?.id ?? "00000000-0000-0000-0000-000000000000"}`
        if (open[0].n > 0) return { wait: 5_000, why: "another worker is moving it" } as const
        const actor = `worker:${site}`
        if (retry !== undefined) {
          const taken = yield* sql<{ id: Ids.DataTransferId; attempt: number }>`
            update data_transfer set route_id = ${route.id}, from_location_id = ${source.locationId}, to_location_id = ${to.id},
              adapter = ${route.adapter}, updated_at = now()
            where id = ${retry.id} and status = 'pending' returning id, attempt`
          if (taken.length === 0) return { wait: 1_000, why: "the operator's retry attempt moved on meanwhile" } as const
          yield* Transitions.transition({ entity: "DataTransfer", id: retry.id, from: "pending", to: "scheduled", actor, details: { retry: "operator's attempt taken up" } })
          yield* Transitions.transition({ entity: "DataTransfer", id: retry.id, from: "scheduled", to: "in_progress", actor, set: { startedAt: new Date() } })
          return { attempt: taken[0] } as const
        }
        const row = yield* Repositories.dataTransfers.insert({
          dataTransferPackageId: bundle.id,
          rawDataPackageId: null,
          routeId: route.id as Ids.RouteId,
          fromLocationId: source.locationId as Ids.DataLocationId,
          toLocationId: to.id as Ids.DataLocationId,
          previousAttemptId: previous?.id ?? null,
          attempt: (previous?.attempt ?? 0) + 1,
          adapter: route.adapter
        } as never, { actor })
        yield* Transitions.transition({ entity: "DataTransfer", id: row.id, from: "pending", to: "scheduled", actor })
        yield* Transitions.transition({ entity: "DataTransfer", id: row.id, from: "scheduled", to: "in_progress", actor, set: { startedAt: new Date() } })
        return { attempt: row } as const
      })
    )
  )

/** The delivery: attempt completed, the bundle's copy at the destination, arrival enqueued. */
export const delivered = (site: string, bundle: Bundle, attemptId: Ids.DataTransferId, route: Routes.Route, to: Sites.Location, result: TransferAdapter.Result) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const jobs = yield* JobQueue
    yield* jobs.ensureQueue(queueName(route.nextHop, arrivalQueue), Routes.queues.arrive)
    yield* sql.withTransaction(
      Effect.gen(function* () {
        yield* Transitions.transition({
          entity: "DataTransfer", id: attemptId, from: "in_progress", to: "completed", actor: `worker:${site}`,
          set: {
            bytesTransferred: result.bytes,
            durationMs: Math.round(result.durationMs),
            throughputBytesPerSecond: result.throughput,
            finishedAt: new Date()
          }
        })
        yield* Repositories.physicalCopies.insert({
          rawDataFileId: null,
          rawDataPackageId: null,
          dataTransferPackageId: bundle.id,
          dataLocationId: to.id,
          path: bundle.relativePath,
          sizeBytes: result.bytes,
          checksum: result.checksum ?? bundle.checksum!,
          status: "PRESENT",
          // The adapter compared our checksum at the destination; arrival checks it again before unpacking.
          verifiedAt: result.verified ? DateTime.unsafeNow() : null
        } as never, { actor: `worker:${site}`, details: { action: "delivered", bundleId: bundle.id, attemptId } })
        yield* jobs.send(queueName(route.nextHop, arrivalQueue), { bundleId: bundle.id }, { singletonKey: bundle.id })
      })
    )
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
export const failed = (site: string, bundle: Bundle, attemptId: Ids.DataTransferId, attemptNo: number, route: Routes.Route, e: TransferError.TransferError, startedMs: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const policy = yield* Routes.transferPolicy
    const outcome = yield* sql.withTransaction(
      Effect.gen(function* () {
        yield* Transitions.transition({
          entity: "DataTransfer", id: attemptId, from: "in_progress", to: "failed", actor: `worker:${site}`,
          set: {
            errorReason: e.reason, errorMessage: e.message, retryable: e.retryable,
            durationMs: Math.max(0, Date.now() - startedMs), finishedAt: new Date()
          }
        })
        const failures = consecutiveFailures(yield* attemptsOf(bundle.id))
        const c = yield* Routes.circuit({ routeId: route.id }, policy)
        // While the route's circuit is open the failure is the route's, not this bundle's.
        const exhausted = failures >= policy.maxAttempts && c.state !== "open"
        if ((!e.retryable && !ofTheWay(e)) || exhausted) {
          const why = e.retryable ? `${failures} attempts failed, the last: ${e.message}` : `attempt ${attemptNo} failed permanently: ${e.message}`
          yield* Bundling.fail(site, bundle.id, why)
          return { failedWith: why }
        }
        const wait = Math.max(Routes.backoffMs(policy, failures, jitterOf(attemptId)), c.state === "open" ? c.retryInMs : 0)
        yield* later(site, bundle.id, wait, `attempt ${attemptNo} failed (${e.reason}${e.retryable ? ", retryable" : ", waits for the way to be fixed"})${c.state === "open" ? `; ${c.reason}` : ""}`)
        return { failedWith: undefined }
      })
    )
    if (outcome.failedWith !== undefined) yield* Effect.logError(`bundle ${bundle.id} FAILED: ${outcome.failedWith}`)
  })
