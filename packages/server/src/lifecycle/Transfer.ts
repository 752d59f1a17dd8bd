/**
 * The transfer stage: a bundle ready in a site's BUFFER moves to the next hop's BUFFER with the
 * route's adapter, one attempt per job run. Route choice and the attempts' records, backoff and
 * failure rules are in `TransferAttempts`; this module holds the worker, the planner that
 * re-derives lost jobs, and the stage. While a circuit is open or a route is at its concurrency
 * limit the job waits without creating attempt rows. An attempt whose adapter blames the source
 * (gone, or differing from the bundle's checksum) has the source copy re-read here, and only
 * when that re-read shows it bad is the copy marked (CopyCheck); the bad tar is then removed (its
 * copy DELETED) and the bundle fails, so an operator's retry writes it again from its packages.
 */
import { type Checksum, Ids, TransferError, TransferPolicy, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as JobBatch from "../engine/JobBatch.js"
import { JobQueue, noJobOf } from "../engine/JobQueue.js"
import * as Adapters from "./Adapters.js"
import * as Bundling from "./Bundling.js"
import * as CopyCheck from "./CopyCheck.js"
import * as CopyFindings from "./CopyFindings.js"
import * as Routes from "./Routes.js"
import * as Sites from "./Sites.js"
import { queueName, type Stage } from "./Stage.js"
import { Storages } from "./Storages.js"
import {
  attemptsOf,
  type Bundle,
  choose,
  consecutiveFailures,
  delivered,
  failed,
  jitterOf,
  later,
  name,
  startAttempt,
  wakeForRoute
} from "./TransferAttempts.js"

export { name, tryNow } from "./TransferAttempts.js"

const Job = Schema.Struct({ bundleId: Ids.DataTransferPackageId })

/**
 * Failures the adapter puts on the source's bytes: worth a re-read of the source copy. A
 * mismatch at the destination (ChecksumMismatch) says nothing about the source.
 */
const blamesSource = (e: TransferError.TransferError) =>
  e.reason === "SourceCorrupt" || e.reason === "SourceNotFound" || e.reason === "SourceVanished"

/**
 * Records a bundle tar found bad at its source, and removed, as DELETED: sending it again cannot
 * help, and without a live copy an operator's retry writes the bundle again from its packages.
 * Another finding may have come first (an inventory that saw it MISSING while the transfer ran):
 * the bytes are gone either way, so that copy is DELETED too, or a retry would take it for the
 * bundle's tar and wait for it forever. A copy someone else moved on otherwise is left to them.
 */
const removedBadSource = (site: string, copyId: string, finding: CopyFindings.Finding) =>
  Effect.gen(function* () {
    const remove = (from: CopyFindings.Finding) =>
      Transitions.transition({
        entity: "PhysicalCopy",
        id: copyId as Ids.PhysicalCopyId,
        from,
        to: "DELETED",
        actor: `worker:${site}`,
        details: { reason: `found ${finding} at the source of a transfer; the bundle is written again on retry` }
      })
    const conflict = (e: { readonly _tag: string }): e is Transitions.TransitionError =>
      e instanceof Transitions.TransitionError && e.reason === "StateConflict"
    yield* remove(finding).pipe(
      Effect.catchIf(conflict, (e) => e.actual === "CORRUPT" || e.actual === "MISSING" ? remove(e.actual) : Effect.void),
      Effect.catchIf(conflict, () => Effect.void)
    )
  })

/** A copy of the bundle's tar, with where it is seen from the worker's site. */
interface SourceCopy {
  readonly id: string
  readonly locationId: string
  readonly path: string
  readonly status: string
  /** At the worker's site, in any location or state. */
  readonly atSite: boolean
  /** PRESENT in a buffer at the worker's site: a copy to send from. */
  readonly here: boolean
  readonly location: Sites.Location
}

/**
 * Ends the bundle's attempts still open (a dead worker's, an operator's retry not taken up yet)
 * as failed with `reason`, in the caller's transaction: the bundle fails without sending, and an
 * open attempt would hold a place in its route's concurrency until someone noticed it.
 */
const closeOpenAttempts = (site: string, bundleId: Ids.DataTransferPackageId, reason: string, why: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const open = yield* sql<{ id: Ids.DataTransferId; status: "pending" | "scheduled" | "in_progress" }>`
      select id, status::text as status from data_transfer
      where data_transfer_package_id = ${bundleId} and status in ('pending', 'scheduled', 'in_progress') order by attempt for update`
    for (const a of open) {
      yield* Transitions.transition({
        entity: "DataTransfer",
        id: a.id,
        from: a.status as "in_progress",
        to: "failed",
        actor: `worker:${site}`,
        set: { errorReason: reason, errorMessage: `the bundle cannot be sent: ${why}`, retryable: false, finishedAt: new Date() }
      })
    }
  })

/**
 * A bundle on its way whose tar here an audit or an inventory found CORRUPT or MISSING before a
 * transfer began. Dropping its job would leave it on its way for ever with nothing to send it, so
 * the tar is read again. Good: it is given back and sent. Bad: it is removed and the bundle fails
 * with its packages, as when a transfer finds it bad, so the failure is seen and an operator's
 * retry writes the bundle again from its packages (under a new name when an attempt records the
 * finding; under its own name otherwise, which nothing else holds once the bytes are deleted).
 * A buffer that is only unavailable is read again a minute later; one that refuses the read fails
 * the bundle too, with its tar and finding kept, and a retry reads it again.
 */
const withoutSource = (site: string, bundle: Bundle, copies: ReadonlyArray<SourceCopy>) =>
  Effect.gen(function* () {
    const bad = copies.find((c) => c.atSite && c.location.type === "BUFFER" && (c.status === "CORRUPT" || c.status === "MISSING"))
    if (bad === undefined) return yield* Effect.logWarning(`bundle ${bundle.id} has no copy in a buffer at ${site}; job dropped`)
    const sql = yield* SqlClient.SqlClient
    const storage = yield* (yield* Storages).of(bad.location)
    const actor = `worker:${site}`
    const found = yield* CopyCheck.reread(storage, bad.path, bundle.checksum!)
    if (found._tag === "Good") {
      yield* CopyFindings.restore(bad.id, "PRESENT", {
        actor,
        by: "transfer",
        detail: "read again before its transfer: it matches its checksum"
      })
      return yield* later(site, bundle.id, 0, `its tar here, recorded ${bad.status}, read good again`)
    }
    const tar = `its tar ${bad.path} in ${bad.location.name}`
    if (found._tag === "Unknown") {
      const why = `${tar} is recorded ${bad.status} and cannot be read again (${found.detail})`
      if (found.retryable) {
        yield* Effect.logWarning(`bundle ${bundle.id}: ${why}; it is read again in a minute`)
        return yield* later(site, bundle.id, 60_000, why)
      }
      yield* sql.withTransaction(Effect.zipRight(
        closeOpenAttempts(site, bundle.id, found.reason === "PermissionDenied" ? "PermissionDenied" : "Unknown", why),
        Bundling.fail(site, bundle.id, `${why}; a retry of the bundle reads it again`)
      ))
      return yield* Effect.logError(`bundle ${bundle.id} failed: ${why}`)
    }
    // The bad tar goes first, as when a transfer finds it bad: then finding, removal and the failed bundle in one commit.
    yield* storage.delete(bad.path)
    const { _tag, ...finding } = found
    const why = `${tar} was found ${finding.finding} before it was sent (${finding.detail}); it was removed, and a retry of the bundle ` +
      "writes it again from its packages"
    yield* sql.withTransaction(Effect.gen(function* () {
      yield* CopyFindings.mark(bad.id, finding.finding, { actor, by: "transfer", ...finding })
      yield* removedBadSource(site, bad.id, finding.finding)
      yield* closeOpenAttempts(site, bundle.id, finding.finding === "CORRUPT" ? "SourceCorrupt" : "SourceMissing", why)
      yield* Bundling.fail(site, bundle.id, why)
    }))
    yield* Effect.logError(`bundle ${bundle.id} failed: ${why}`)
  })

/** What one attempt moves: the bundle and its checksum, the attempt started, and its way. */
interface Sending {
  readonly bundle: Bundle
  readonly checksum: Checksum.Checksum
  readonly attempt: { readonly id: Ids.DataTransferId; readonly attempt: number }
  readonly route: Routes.Route
  readonly source: SourceCopy
  readonly destination: Sites.Location
}

/**
 * Runs a started attempt with the route's adapter and records how it ended: delivered, failed,
 * or (a source the adapter blames, found bad when read again) the bad tar removed and the bundle
 * failed for good.
 */
const send = Effect.fn("Transfer.send")(
  function* (site: string, { attempt, bundle, checksum: expected, destination, route, source }: Sending) {
    const sql = yield* SqlClient.SqlClient
    const storages = yield* Storages
    const sourceRoot = storages.rootOf(source.location)
    const destinationRoot = storages.rootOf(destination)
    const startedMs = Date.now()
    const run = Effect.gen(function* () {
      const adapter = yield* Adapters.adapterOf(route)
      if (sourceRoot === undefined || destinationRoot === undefined) {
        return yield* Effect.fail(
          TransferError.make(route.adapter, "Unsupported", "bundles move between BUFFERs with a local folder (disk) only")
        )
      }
      return yield* adapter.transfer({
        ...Adapters.endpoints(route, sourceRoot, source.path, destinationRoot, bundle.relativePath),
        kind: "file",
        expected,
        ...(route.bandwidthLimit !== undefined && adapter.capabilities.bandwidthLimit
          ? { bandwidthLimit: Routes.transferShare(route)! }
          : {})
      })
    })
    // A worker stopping mid-transfer closes its attempt, so the next run need not wait for pg-boss's expiry.
    const result = yield* Effect.either(run).pipe(
      Effect.onInterrupt(() =>
        Transitions.transition({
          entity: "DataTransfer",
          id: attempt.id,
          from: "in_progress",
          to: "failed",
          actor: `worker:${site}`,
          set: {
            errorReason: "Interrupted",
            errorMessage: "the worker stopped during the attempt",
            retryable: true,
            finishedAt: new Date()
          }
        }).pipe(Effect.ignore)
      )
    )
    if (result._tag === "Right") return yield* delivered(site, bundle, attempt.id, route, destination, result.right)
    if (blamesSource(result.left)) {
      const storage = yield* storages.of(source.location)
      const found = yield* CopyCheck.confirm(storage, source.path, expected)
      if (found !== undefined) {
        // The bad tar goes first: a crash before the record leaves a PRESENT copy with no bytes,
        // which the next attempt finds MISSING. Finding, removal and the failed bundle are one commit.
        yield* storage.delete(source.path)
        const e = result.left
        const permanent = TransferError.make(e.adapter, e.reason, e.detail, {
          retryable: false,
          ...(e.exitCode !== undefined ? { exitCode: e.exitCode } : {})
        })
        return yield* sql.withTransaction(Effect.gen(function* () {
          yield* CopyFindings.mark(source.id, found.finding, { actor: `worker:${site}`, by: "transfer", ...found })
          yield* removedBadSource(site, source.id, found.finding)
          yield* failed(site, bundle, attempt.id, attempt.attempt, route, permanent, startedMs)
        }))
      }
    }
    return yield* failed(site, bundle, attempt.id, attempt.attempt, route, result.left, startedMs)
  }
)

/** Moves one bundle one hop, or decides when to try again. */
export const work = Effect.fn("Transfer.work")(function* (site: string, data: unknown) {
  const { bundleId } = yield* Schema.decodeUnknown(Job)(data)
  const sql = yield* SqlClient.SqlClient
  const policy = yield* Routes.transferPolicy
  // The reads that do not depend on each other go out together: from a site far from the ops-db
  // each is a round trip. The source copy's location comes with it (no lookup of its own).
  const [rows, copies, initial, routes] = yield* Effect.all([
    sql<Bundle>`select id, status::text as status, relative_path, size_bytes, checksum from data_transfer_package where id = ${bundleId}`,
    sql<SourceCopy>`
      select c.id, c.data_location_id as location_id, c.path, c.status::text as status, s.name = ${site} as at_site,
        (s.name = ${site} and l.type = 'BUFFER' and c.status = 'PRESENT') as here, ${Sites.locationJson(sql)} as location
      from physical_copy c join data_location l on l.id = c.data_location_id join site s on s.id = l.site_id
      where c.data_transfer_package_id = ${bundleId} and c.status <> 'DELETED'`,
    attemptsOf(bundleId),
    Routes.leaving(site, bundleId)
  ], { concurrency: 4 })
  const bundle = rows[0]
  if (bundle === undefined || bundle.status !== "in_progress" || bundle.checksum === null || bundle.sizeBytes === null) return
  // A copy beyond this site means the bundle was delivered; its arrival job came with it.
  if (copies.some((c) => !c.atSite)) return
  const source = copies.find((c) => c.here)
  if (source === undefined) return yield* withoutSource(site, bundle, copies)
  let attempts = initial
  // A pending attempt is an operator's retry (a worker's own attempts are in progress from the
  // start): it is taken up below, without waiting out the backoff.
  const stuck = attempts.find((a) => a.status === "scheduled" || a.status === "in_progress")
  if (stuck !== undefined) {
    // pg-boss runs one job per bundle at a time: an open attempt is a dead worker's.
    yield* Transitions.transition({
      entity: "DataTransfer",
      id: stuck.id,
      from: stuck.status as "in_progress",
      to: "failed",
      actor: `worker:${site}`,
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
    const remaining = TransferPolicy.backoffMs(policy, failures, jitterOf(judged.id)) - (judged.sinceMs ?? 0)
    if (remaining > 1000) return yield* later(site, bundleId, remaining, `backoff after attempt ${judged.attempt}`)
  }
  const chosen = yield* choose(site, routes, bundle.sizeBytes, policy)
  if (chosen.route === undefined) return yield* later(site, bundleId, chosen.waitMs, chosen.why)
  const { route, destination } = chosen
  const started = yield* startAttempt(site, bundle, route, source, destination, previous, policy, retry)
  if ("gone" in started) return yield* Effect.logWarning(`bundle ${bundleId} is not sent: ${started.gone}; job dropped`)
  if (started.attempt === undefined) {
    yield* later(site, bundleId, started.wait, started.why, started.waitsFor)
    // A place freed between the checks and this wait's commit woke nobody: look once more now
    // that the wait can be found, or the route could sit idle for the whole wait.
    if (started.waitsFor !== undefined) yield* wakeForRoute(site, route)
    return
  }
  // However the attempt ends, the place it held on the route goes to a bundle waiting for one.
  return yield* send(site, { bundle, checksum: bundle.checksum, attempt: started.attempt, route, source, destination }).pipe(
    Effect.ensuring(wakeForRoute(site, route))
  )
})

/**
 * Re-derives lost transfer jobs: bundles in a buffer here, delivered nowhere else, with no
 * attempt touched for two minutes (a wait re-sends its own job; this catches a lost queue). A
 * bundle whose tar here was found CORRUPT or MISSING is one too: its job fails it (`withoutSource`).
 */
export const plan = Effect.fn("Transfer.plan")(function* (site: string) {
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobQueue
  // From the open bundles to their copies (an `exists` per bundle): as a join, PostgreSQL merged
  // the open bundles with every bundle copy ever made, which grows with the archive.
  const ready = yield* sql<{ id: string }>`
    select d.id from data_transfer_package d join site s on s.name = ${site}
    where d.status = 'in_progress' and d.checksum is not null
      and exists (select 1 from physical_copy c join data_location l on l.id = c.data_location_id
                  where c.data_transfer_package_id = d.id and c.status in ('PRESENT', 'CORRUPT', 'MISSING')
                    and l.type = 'BUFFER' and l.site_id = s.id
                    and ((c.created_at < now() - interval '2 minutes'
                          and not exists (select 1 from data_transfer t where t.data_transfer_package_id = d.id
                                          and t.updated_at > now() - interval '2 minutes'))
                         or ${noJobOf(sql, queueName(site, name), sql`d.id`)}))
      and not exists (select 1 from physical_copy o join data_location ol on ol.id = o.data_location_id
                      where o.data_transfer_package_id = d.id and o.status <> 'DELETED' and ol.site_id <> s.id)`
  if (ready.length > 0) yield* jobs.ensureQueue(queueName(site, name), Routes.queues.transfer)
  return yield* JobBatch.sendMany(queueName(site, name), ready.map((r) => ({ data: { bundleId: r.id }, singletonKey: r.id })))
})

/** The transfer stage. */
export const stage: Stage<SqlClient.SqlClient | JobQueue | Storages> = {
  name,
  plan,
  work,
  queue: Routes.queues.transfer,
  concurrency: 4
}
