/**
 * Stage 3 of issue 6, transfer: a bundle ready in a site's BUFFER moves to the next hop's BUFFER
 * along the best route whose circuit is not open, with the route's adapter. Every attempt is a
 * DataTransfer row (attempt n linked to n-1) holding its bytes, duration, throughput and, when
 * it failed, the reason and whether a retry can help. A success records the bundle's copy at the
 * destination and enqueues its arrival there in one transaction; a retryable failure is tried
 * again after a jittered, capped exponential backoff; a permanent one, or one bundle failing too
 * often on a working route, ends the bundle FAILED with its reason. While a circuit is open or a
 * route is at its concurrency limit the job waits without creating attempt rows. An attempt
 * whose adapter blames the source (gone, or differing from the bundle's checksum) has the source
 * copy re-read here, and only when that re-read shows it bad is the copy marked (CopyCheck); the
 * bad tar is then removed (its copy DELETED) and the bundle fails, so an operator's retry writes
 * it again from its packages.
 */
import { type Checksum, Ids, Repositories, type TransferAdapter, TransferError, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { expedite, JobQueue, noJobOf } from "../engine/JobQueue.js"
import * as Adapters from "./Adapters.js"
import * as Bundling from "./Bundling.js"
import * as CopyCheck from "./CopyCheck.js"
import * as CopyFindings from "./CopyFindings.js"
import * as Routes from "./Routes.js"
import * as Sites from "./Sites.js"
import { queueName, type Stage } from "./Stage.js"
import { Storages } from "./Storages.js"

/** The stage's name and queue suffix. */
export const name = "transfer"

/** The stage the delivery enables at the next hop (Arrival.name; a literal keeps modules acyclic). */
const arrivalQueue = "arrive"

const Job = Schema.Struct({ bundleId: Ids.DataTransferPackageId })

interface Bundle {
  readonly id: Ids.DataTransferPackageId
  readonly status: string
  readonly relativePath: string
  readonly sizeBytes: number | null
  readonly checksum: Checksum.Checksum | null
}

interface Attempt {
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

/** Re-sends this bundle's transfer job after a wait; the job then starts over from the ops-db. */
/**
 * Moves a bundle's next try, queued at `site` for when its backoff ends, to now (an operator
 * fixed what failed); 0 when no try waits. The queue and singleton key are `later`'s.
 */
export const tryNow = (site: string, bundleId: string) => expedite(queueName(site, name), bundleId)

const later = (site: string, bundleId: string, ms: number, why: string) =>
  Effect.gen(function* () {
    const jobs = yield* JobQueue
    yield* jobs.send(queueName(site, name), { bundleId }, { singletonKey: bundleId, startAfterSeconds: Math.max(1, Math.ceil(ms / 1000)) })
    yield* Effect.logInfo(`bundle ${bundleId} waits ${Math.ceil(ms / 1000)} s: ${why}`)
  })

/** A stable jitter per attempt, so every look at the same failure computes the same delay. */
const jitterOf = (id: string) => parseInt(id.replace(/-/g, "").slice(0, 8), 16) / 0xffffffff

const attemptsOf = (bundleId: string) =>
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
const consecutiveFailures = (attempts: ReadonlyArray<Attempt>) => {
  let n = 0
  for (const a of attempts) {
    if (a.interrupted && !a.beforeRetry) continue
    if (a.status !== "failed" || a.beforeRetry) break
    n++
  }
  return n
}

/** Picks the first route whose circuit lets work through and a destination BUFFER for it. */
const choose = (site: string, bundleId: string, bytes: number, policy: Routes.TransferPolicyConfig) =>
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
const startAttempt = (
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
        } as never)
        yield* Transitions.transition({ entity: "DataTransfer", id: row.id, from: "pending", to: "scheduled", actor })
        yield* Transitions.transition({ entity: "DataTransfer", id: row.id, from: "scheduled", to: "in_progress", actor, set: { startedAt: new Date() } })
        return { attempt: row } as const
      })
    )
  )

/** The delivery: attempt completed, the bundle's copy at the destination, arrival enqueued. */
const delivered = (site: string, bundle: Bundle, attemptId: Ids.DataTransferId, route: Routes.Route, to: Sites.Location, result: TransferAdapter.Result) =>
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
        } as never)
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

/**
 * Failures the adapter puts on the source's bytes: worth a re-read of the source copy. A
 * mismatch at the destination (ChecksumMismatch) says nothing about the source.
 */
const blamesSource = (e: TransferError.TransferError) =>
  e.reason === "SourceCorrupt" || e.reason === "SourceNotFound" || e.reason === "SourceVanished"

/**
 * Records a bundle tar found bad at its source, and removed, as DELETED: sending it again cannot
 * help, and without a live copy an operator's retry writes the bundle again from its packages. A
 * copy someone else moved on meanwhile is left to them.
 */
const removedBadSource = (site: string, copyId: string, finding: CopyFindings.Finding) =>
  Effect.gen(function* () {
    yield* Transitions.transition({
      entity: "PhysicalCopy", id: copyId as Ids.PhysicalCopyId, from: finding, to: "DELETED", actor: `worker:${site}`,
      details: { reason: `found ${finding} at the source of a transfer; the bundle is written again on retry` }
    }).pipe(Effect.catchIf((e) => e._tag === "TransitionError" && e.reason === "StateConflict", () => Effect.void))
  })

/** Records a failed attempt, then retries after a backoff, waits for the circuit, or fails the bundle. */
const failed = (site: string, bundle: Bundle, attemptId: Ids.DataTransferId, attemptNo: number, route: Routes.Route, e: TransferError.TransferError, startedMs: number) =>
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

/** Moves one bundle one hop, or decides when to try again. */
export const work = Effect.fn("Transfer.work")(function* (site: string, data: unknown) {
  const { bundleId } = yield* Schema.decodeUnknown(Job)(data)
  const sql = yield* SqlClient.SqlClient
  const storages = yield* Storages
  const policy = yield* Routes.transferPolicy
  const rows = yield* sql<Bundle>`
    select id, status::text as status, relative_path, size_bytes, checksum from data_transfer_package where id = ${bundleId}`
  const bundle = rows[0]
  if (bundle === undefined || bundle.status !== "in_progress" || bundle.checksum === null || bundle.sizeBytes === null) return
  const copies = yield* sql<{ id: string; locationId: string; path: string; here: boolean }>`
    select c.id, c.data_location_id as location_id, c.path, (s.name = ${site} and l.type = 'BUFFER' and c.status = 'PRESENT') as here
    from physical_copy c join data_location l on l.id = c.data_location_id join site s on s.id = l.site_id
    where c.data_transfer_package_id = ${bundleId} and c.status <> 'DELETED'`
  const source = copies.find((c) => c.here)
  if (source === undefined) return yield* Effect.logWarning(`bundle ${bundleId} has no copy in a buffer at ${site}; job dropped`)
  // A copy beyond this site means the bundle was delivered; its arrival job came with it.
  if (copies.some((c) => !c.here)) return
  let attempts = yield* attemptsOf(bundleId)
  // A pending attempt is an operator's retry (a worker's own attempts are in progress from the
  // start): it is taken up below, without waiting out the backoff.
  const stuck = attempts.find((a) => a.status === "scheduled" || a.status === "in_progress")
  if (stuck !== undefined) {
    // pg-boss runs one job per bundle at a time: an open attempt is a dead worker's.
    yield* Transitions.transition({
      entity: "DataTransfer", id: stuck.id, from: stuck.status as "in_progress", to: "failed", actor: `worker:${site}`,
      set: { errorReason: "Interrupted", errorMessage: "the worker stopped during the attempt", retryable: true, finishedAt: new Date() }
    })
    attempts = yield* attemptsOf(bundleId)
  }
  const retry = attempts.find((a) => a.status === "pending")
  const previous = attempts[0]
  const failures = consecutiveFailures(attempts)
  // The backoff runs from the last real failure; an interruption after it neither restarts nor extends it.
  const judged = attempts.find((a) => !a.interrupted)
  if (retry === undefined && judged !== undefined && judged.status === "failed" && !judged.beforeRetry) {
    const remaining = Routes.backoffMs(policy, failures, jitterOf(judged.id)) - (judged.sinceMs ?? 0)
    if (remaining > 1000) return yield* later(site, bundleId, remaining, `backoff after attempt ${judged.attempt}`)
  }
  const chosen = yield* choose(site, bundle.id, bundle.sizeBytes, policy)
  if (chosen.route === undefined) return yield* later(site, bundleId, chosen.waitMs, chosen.why)
  const { route, destination } = chosen
  const sourceRoot = storages.rootOf(yield* Sites.location(source.locationId))
  const destinationRoot = storages.rootOf(destination)
  const started = yield* startAttempt(site, bundle, route, source, destination, previous, policy, retry)
  if ("gone" in started) return yield* Effect.logWarning(`bundle ${bundleId} is not sent: ${started.gone}; job dropped`)
  if (started.attempt === undefined) return yield* later(site, bundleId, started.wait, started.why)
  const attempt = started.attempt
  const startedMs = Date.now()
  const run = Effect.gen(function* () {
    const adapter = yield* Adapters.adapterOf(route)
    if (sourceRoot === undefined || destinationRoot === undefined) {
      return yield* Effect.fail(TransferError.make(route.adapter, "Unsupported", "bundles move between BUFFERs with a local folder (disk) only"))
    }
    return yield* adapter.transfer({
      ...Adapters.endpoints(route, sourceRoot, source.path, destinationRoot, bundle.relativePath),
      kind: "file",
      expected: bundle.checksum!,
      ...(route.bandwidthLimit !== undefined && adapter.capabilities.bandwidthLimit ? { bandwidthLimit: Routes.transferShare(route)! } : {})
    })
  })
  // A worker stopping mid-transfer closes its attempt, so the next run need not wait for pg-boss's expiry.
  const result = yield* Effect.either(run).pipe(
    Effect.onInterrupt(() =>
      Transitions.transition({
        entity: "DataTransfer", id: attempt.id, from: "in_progress", to: "failed", actor: `worker:${site}`,
        set: { errorReason: "Interrupted", errorMessage: "the worker stopped during the attempt", retryable: true, finishedAt: new Date() }
      }).pipe(Effect.ignore)
    )
  )
  if (result._tag === "Right") return yield* delivered(site, bundle, attempt.id, route, destination, result.right)
  if (blamesSource(result.left)) {
    const storage = yield* storages.of(yield* Sites.location(source.locationId))
    const found = yield* CopyCheck.confirm(storage, source.path, bundle.checksum)
    if (found !== undefined) {
      // The bad tar goes first: a crash before the record leaves a PRESENT copy with no bytes,
      // which the next attempt finds MISSING. Finding, removal and the failed bundle are one commit.
      yield* storage.delete(source.path)
      const e = result.left
      const permanent = TransferError.make(e.adapter, e.reason, e.detail, { retryable: false, ...(e.exitCode !== undefined ? { exitCode: e.exitCode } : {}) })
      return yield* sql.withTransaction(Effect.gen(function* () {
        yield* CopyFindings.mark(source.id, found.finding, { actor: `worker:${site}`, by: "transfer", ...found })
        yield* removedBadSource(site, source.id, found.finding)
        yield* failed(site, bundle, attempt.id, attempt.attempt, route, permanent, startedMs)
      }))
    }
  }
  return yield* failed(site, bundle, attempt.id, attempt.attempt, route, result.left, startedMs)
})

/**
 * Re-derives lost transfer jobs: bundles in a buffer here, delivered nowhere else, with no
 * attempt touched for two minutes (a wait re-sends its own job; this catches a lost queue).
 */
export const plan = Effect.fn("Transfer.plan")(function* (site: string) {
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobQueue
  const ready = yield* sql<{ id: string }>`
    select d.id from data_transfer_package d
    join physical_copy c on c.data_transfer_package_id = d.id and c.status = 'PRESENT'
    join data_location l on l.id = c.data_location_id and l.type = 'BUFFER'
    join site s on s.id = l.site_id and s.name = ${site}
    where d.status = 'in_progress' and d.checksum is not null
      and not exists (select 1 from physical_copy o join data_location ol on ol.id = o.data_location_id
                      where o.data_transfer_package_id = d.id and o.status <> 'DELETED' and ol.site_id <> s.id)
      and ((c.created_at < now() - interval '2 minutes'
            and not exists (select 1 from data_transfer t where t.data_transfer_package_id = d.id and t.updated_at > now() - interval '2 minutes'))
           or ${noJobOf(sql, queueName(site, name), sql`d.id`)})`
  let sent = 0
  for (const r of ready) if ((yield* jobs.send(queueName(site, name), { bundleId: r.id }, { singletonKey: r.id })) !== null) sent++
  return sent
})

/** The transfer stage. */
export const stage: Stage<SqlClient.SqlClient | JobQueue | Storages> = {
  name,
  plan,
  work,
  queue: Routes.queues.transfer,
  concurrency: 4
}
