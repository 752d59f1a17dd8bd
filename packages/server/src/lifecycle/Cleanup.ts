/**
 * Stage 7 of issue 6, cleanup: SOURCE file copies, BUFFER package and bundle copies and
 * PROCESSING staged copies are deleted exactly when invariant 1 and the location's retention
 * policy allow it (the rules are `Retention.eligible`). The planner moves an eligible copy
 * PRESENT/STAGED → DELETION_POSSIBLE → DELETION_SCHEDULED and sends one job per location with
 * scheduled copies. That job deletes them, up to the location's `delete_concurrency` at once:
 * for each copy it locks the copy, re-checks the rule inside its transaction (a copy that became
 * a transfer source, is needed by a staging request, or whose archive copies lost their
 * verification is called off, back to PRESENT or STAGED), moves it to DELETION_IN_PROGRESS,
 * deletes it (a file already gone counts as deleted) and records DELETED, or DELETION_FAILED,
 * which the planner schedules again after a capped exponential wait. At a PROCESSING location the
 * job first removes the folders of requests that were released or expired (`StagingLayout`), so
 * no link there keeps a deleted copy's bytes on disk.
 */
import { Ids } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as JobBatch from "../engine/JobBatch.js"
import { JobQueue, noJobOf, type QueueOptions } from "../engine/JobQueue.js"
import * as CleanupScope from "./CleanupScope.js"
import { batch, failedDue, planBatch, scheduleAll } from "./internal/CleanupScheduling.js"
import { deleteCopy, type Target } from "./internal/CopyDeletion.js"
import { foldersDue, removeFolders } from "./internal/RequestFolders.js"
import * as Retention from "./Retention.js"
import * as Sites from "./Sites.js"
import { queueName, type Stage } from "./Stage.js"
import { Storages } from "./Storages.js"

/** The stage's name and queue suffix. */
export const name = "cleanup"

/**
 * A cleanup job: every scheduled copy at one location (what the planner sends), or one copy (what
 * releases before concurrent cleanup sent; such jobs may still sit in a queue after an upgrade).
 */
const Job = Schema.Union(Schema.Struct({ locationId: Ids.DataLocationId }), Schema.Struct({ copyId: Ids.PhysicalCopyId }))

/** A deletion in progress this long, or with no job at all, lost its worker: its job is sent again. */
const staleMinutes = 10

/**
 * A location job starts no new round after this long and leaves the rest to the next job the
 * planner sends, so a job stays far inside the queue's expiry (an expired job would be run again
 * beside the one still working).
 */
const jobBudgetMillis = 10 * 60_000

/**
 * SQL: the copy `c` is in DELETION_IN_PROGRESS by cleanup's hand, so a cleanup job finishes it
 * when the worker that started it died. Two kinds of bundle tar are not, and their own jobs finish
 * them: a tar delivered here, which arrival deletes once it has unpacked it (`Arrival`), and the
 * tar of a bundle still on its way, which a retry set aside for the bundle's job to delete
 * (`BundleRecovery`). Finishing those beside their owners made the owner's job fail, or recorded a
 * set-aside tar CORRUPT instead of deleted.
 */
const cleanupsInProgress = (sql: SqlClient.SqlClient, c: Fragment) => sql`
  (${c}.status = 'DELETION_IN_PROGRESS' and (${c}.data_transfer_package_id is null or (
    not exists (select 1 from data_transfer_package d where d.id = ${c}.data_transfer_package_id and d.status <> 'completed')
    and not exists (select 1 from data_transfer t
                    where t.data_transfer_package_id = ${c}.data_transfer_package_id and t.to_location_id = ${c}.data_location_id))))`

/** The cleanup queues' policy: a job per location queued and one running (`stately`), retried with backoff. */
const queueOptions: QueueOptions = { policy: "stately", retryLimit: 5, retryDelaySeconds: 30, retryBackoff: true, expireInSeconds: 3600 }

/** The singleton key of a location's cleanup job: one queued (and one running) per location. */
const locationKey = (locationId: string) => `location:${locationId}`

/**
 * Schedules the deletion of the site's eligible copies (among those that can have become eligible
 * since its last tick, `CleanupScope`) and retries failed deletions whose wait is over; then sends one job per location that has scheduled copies (or deletions a dead
 * worker left in progress), which also re-derives jobs a lost queue dropped. Returns the jobs sent.
 */
export const plan = Effect.fn("Cleanup.plan")(function* (site: string) {
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobQueue
  const overThreshold = yield* Retention.overThreshold({ site })
  const eligible = yield* CleanupScope.eligible(site, {
    statuses: ["PRESENT", "STAGED", "DELETION_POSSIBLE"],
    overThreshold,
    limit: planBatch
  })
  yield* scheduleAll(site, eligible)
  // A failed deletion is retried whatever the rule says now: the worker re-checks it.
  yield* scheduleAll(
    site,
    (yield* failedDue(site)).map((copy) => ({
      ...copy,
      status: "DELETION_FAILED",
      locationType: copy.locationType as Retention.Deletable["locationType"]
    }))
  )
  // asked per location (by the deletion index), not gathered from every scheduled copy: a
  // backlog of thousands of scheduled copies names the same few locations
  const locations = yield* sql<{ id: string }>`
    select l.id from data_location l join site s on s.id = l.site_id
    where s.name = ${site} and (
      exists (select 1 from physical_copy c where c.data_location_id = l.id and c.status = 'DELETION_SCHEDULED')
      or exists (select 1 from physical_copy c
        where c.data_location_id = l.id and ${cleanupsInProgress(sql, sql`c`)}
          and (c.updated_at < now() - make_interval(mins => ${staleMinutes})
            or ${noJobOf(sql, queueName(site, name), sql`${"location:"} || c.data_location_id::text`)})))
    union
    select r.data_location_id from staging_request r join data_location l on l.id = r.data_location_id join site s on s.id = l.site_id
    where s.name = ${site} and ${foldersDue(sql)}`
  if (locations.length === 0) return 0
  // one statement for every location's job (the singleton key drops one already queued)
  yield* jobs.ensureQueue(queueName(site, name), queueOptions)
  return yield* JobBatch.sendMany(
    queueName(site, name),
    locations.map((l) => ({ data: { locationId: l.id }, singletonKey: locationKey(l.id) }))
  )
})

/** A location, its storage and its deletion concurrency (1 where no retention row says). */
const targetOf = (locationId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const storages = yield* Storages
    const location = yield* Sites.location(locationId)
    const storage = yield* storages.of(location)
    const [policy] = yield* sql<{ deleteConcurrency: number }>`
      select delete_concurrency from retention_policy where data_location_id = ${locationId}`
    return { location, storage, concurrency: policy?.deleteConcurrency ?? 1 }
  })

/**
 * Deletes the location's scheduled copies, `delete_concurrency` at a time, round after round
 * until none is left (or the job's time budget is spent: the planner sends the next job). Copies the minimum age allows are decided and deleted in parallel; the
 * others depend on how full the location is, which each deletion changes, so they go one at a
 * time with the fill measured afresh. Every copy keeps its own locked re-check and its own
 * transitions. A copy that failed unexpectedly stays scheduled and the job fails at the end, so
 * the engine retries it; the other copies are not held up.
 */
const workLocation = Effect.fn("Cleanup.workLocation")(function* (site: string, locationId: Ids.DataLocationId) {
  const sql = yield* SqlClient.SqlClient
  const { concurrency, location, storage } = yield* targetOf(locationId)
  const seen = new Set<string>()
  const failures: Array<unknown> = []
  if (location.type === "PROCESSING") {
    const failed = yield* removeFolders(site, locationId, (yield* Storages).rootOf(location))
    if (failed > 0) failures.push(new Error(`${failed} request folders could not be removed`))
  }
  const started = yield* Effect.clockWith((c) => c.currentTimeMillis)
  // A location's job is a singleton (stately queue, one key per location): while it runs, no
  // other location job deletes here, so a deletion it finds in progress was cut off by a dead
  // worker (its job ran again once its lease timed out) and is finished now, not 10 minutes later.
  const run = (rows: ReadonlyArray<{ readonly id: Ids.PhysicalCopyId }>, rule: Target["rule"], n: number) =>
    Effect.forEach(rows, (r) =>
      deleteCopy(site, r.id, { location, storage, rule }).pipe(
        Effect.catchAllCause((cause) => Effect.sync(() => failures.push(cause)))
      ), { concurrency: n, discard: true })
  while ((yield* Effect.clockWith((c) => c.currentTimeMillis)) - started < jobBudgetMillis) {
    const rows = yield* sql<{ id: Ids.PhysicalCopyId; status: string }>`
      select c.id, c.status::text as status from physical_copy c
      where c.data_location_id = ${locationId} and not (c.id = any(${[...seen]}::uuid[]))
        and (c.status = 'DELETION_SCHEDULED' or ${cleanupsInProgress(sql, sql`c`)})
      order by c.updated_at, c.id limit ${batch}`
    if (rows.length === 0) break
    for (const r of rows) seen.add(r.id)
    const byAge = new Set(
      (yield* Retention.eligible({
        copyIds: rows.map((r) => r.id),
        statuses: ["DELETION_SCHEDULED"],
        overThreshold: [],
        limit: rows.length
      })).map((c) => c.id)
    )
    const parallel = rows.filter((r) => r.status === "DELETION_IN_PROGRESS" || byAge.has(r.id))
    yield* run(parallel, "age", concurrency)
    yield* run(rows.filter((r) => !parallel.includes(r)), "fill", 1)
  }
  if (failures.length > 0) {
    yield* Effect.logWarning(`cleanup at ${location.name}: ${failures.length} deletions failed unexpectedly`, failures[0])
    return yield* Effect.fail(
      new Error(`${failures.length} of ${seen.size} deletions at ${location.name} failed unexpectedly; the job is retried`)
    )
  }
})

/** Runs a cleanup job: every scheduled copy of a location, or one named copy. */
export const work = Effect.fn("Cleanup.work")(function* (site: string, data: unknown) {
  const job = yield* Schema.decodeUnknown(Job)(data)
  if ("locationId" in job) return yield* workLocation(site, job.locationId)
  const sql = yield* SqlClient.SqlClient
  const [copy] = yield* sql<{ locationId: string }>`select data_location_id as location_id from physical_copy where id = ${job.copyId}`
  if (copy === undefined) return yield* Effect.logWarning(`physical copy ${job.copyId} does not exist; job dropped`)
  const { location, storage } = yield* targetOf(copy.locationId)
  yield* deleteCopy(site, job.copyId, { location, storage, rule: "fill" })
})

/** The cleanup stage. */
export const stage: Stage<SqlClient.SqlClient | JobQueue | Storages> = {
  name,
  plan,
  work,
  queue: queueOptions,
  concurrency: 2
}
