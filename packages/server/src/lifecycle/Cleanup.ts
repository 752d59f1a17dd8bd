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
import { Backoff, EventLog, Ids, Retention as CoreRetention, type StorageDriver, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { JobQueue, noJobOf } from "../engine/JobQueue.js"
import * as CleanupScope from "./CleanupScope.js"
import * as Retention from "./Retention.js"
import * as Sites from "./Sites.js"
import { queueName, type Stage } from "./Stage.js"
import * as StagingLayout from "./StagingLayout.js"
import { Storages } from "./Storages.js"

/** The stage's name and queue suffix. */
export const name = "cleanup"

/**
 * A cleanup job: every scheduled copy at one location (what the planner sends), or one copy (what
 * releases before concurrent cleanup sent; such jobs may still sit in a queue after an upgrade).
 */
const Job = Schema.Union(Schema.Struct({ locationId: Ids.DataLocationId }), Schema.Struct({ copyId: Ids.PhysicalCopyId }))

/** Copies a planning round schedules at most, and a location job takes per round, so one round stays short. */
const batch = 500

/** Waits before a failed deletion is tried again: 2 s after the first failure, doubling, at most an hour. */
const deletionRetry: Backoff.Policy = { base: "2 seconds", cap: "1 hour", jitter: Backoff.none }

/**
 * The policy's waits in seconds by failures so far (1-based), up to the first at the cap: the
 * planner's statement picks each copy's from its count of failures.
 */
const deletionWaits: ReadonlyArray<number> = (() => {
  const waits: Array<number> = []
  for (let failures = 1; failures <= 64; failures++) {
    waits.push(Duration.toSeconds(Backoff.delayFor(deletionRetry, failures, 0)))
    if (waits[waits.length - 1] >= Duration.toSeconds(deletionRetry.cap!)) break
  }
  return waits
})()

/** A deletion in progress this long, or with no job at all, lost its worker: its job is sent again. */
const staleMinutes = 10

/**
 * A location job starts no new round after this long and leaves the rest to the next job the
 * planner sends, so a job stays far inside the queue's expiry (an expired job would be run again
 * beside the one still working).
 */
const jobBudgetMillis = 10 * 60_000

/** The singleton key of a location's cleanup job: one queued (and one running) per location. */
const locationKey = (locationId: string) => `location:${locationId}`

const isConflict = (e: unknown): e is Transitions.TransitionError =>
  e instanceof Transitions.TransitionError && e.reason === "StateConflict"

/**
 * Moves one eligible copy to DELETION_SCHEDULED (a savepoint of the caller's transaction, so a
 * copy that moved on meanwhile is skipped without undoing the others); its location's job is
 * sent after.
 */
const schedule = (site: string, copy: Retention.Deletable) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const id = copy.id as Ids.PhysicalCopyId
    const actor = `planner:${site}`
    return yield* sql.withTransaction(
      Effect.gen(function* () {
        if (copy.status === "PRESENT" || copy.status === "STAGED") {
          yield* Transitions.transition({ entity: "PhysicalCopy", id, from: copy.status, to: "DELETION_POSSIBLE", actor })
        }
        const from = copy.status === "DELETION_FAILED" ? "DELETION_FAILED" as const : "DELETION_POSSIBLE" as const
        yield* Transitions.transition({ entity: "PhysicalCopy", id, from, to: "DELETION_SCHEDULED", actor })
      })
    ).pipe(Effect.catchIf(isConflict, () => Effect.void))
  })

/** Copies scheduled per planner transaction: one commit for many, short enough not to hold locks long. */
const scheduleChunk = 100

/** Schedules copies, `scheduleChunk` per transaction. */
const scheduleAll = (site: string, copies: ReadonlyArray<Retention.Deletable>) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      Effect.forEach(
        Array.from(
          { length: Math.ceil(copies.length / scheduleChunk) },
          (_, i) => copies.slice(i * scheduleChunk, (i + 1) * scheduleChunk)
        ),
        (chunk) => sql.withTransaction(Effect.forEach(chunk, (copy) => schedule(site, copy), { discard: true })),
        { discard: true }
      )
  )

/** Failed deletions whose wait (`deletionRetry`) is over. */
const failedDue = (site: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string; path: string; locationId: string; locationType: string }>`
      select c.id, c.path, c.data_location_id as location_id, l.type::text as location_type
      from physical_copy c join data_location l on l.id = c.data_location_id join site s on s.id = l.site_id
      where s.name = ${site} and c.status = 'DELETION_FAILED'
        and c.updated_at < now() - make_interval(secs => (${deletionWaits}::float8[])[least(${deletionWaits.length}, greatest(1, (
          select count(*)::int from event_log e
          where e.entity_kind = 'PhysicalCopy' and e.entity_id = c.id and e.to_state = 'DELETION_FAILED')))])
      limit ${batch}`)

/**
 * Schedules the deletion of the site's eligible copies (among those that can have become eligible
 * since its last tick, `CleanupScope`) and retries failed deletions whose wait is over; then sends one job per location that has scheduled copies (or deletions a dead
 * worker left in progress), which also re-derives jobs a lost queue dropped. Returns the jobs sent.
 */
export const plan = Effect.fn("Cleanup.plan")(function* (site: string) {
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobQueue
  const overThreshold = yield* Retention.overThreshold({ site })
  const eligible = yield* CleanupScope.eligible(site, { statuses: ["PRESENT", "STAGED", "DELETION_POSSIBLE"], overThreshold, limit: batch })
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
  const locations = yield* sql<{ id: string }>`
    select distinct c.data_location_id as id
    from physical_copy c join data_location l on l.id = c.data_location_id join site s on s.id = l.site_id
    where s.name = ${site} and (c.status = 'DELETION_SCHEDULED'
      or (c.status = 'DELETION_IN_PROGRESS' and (c.updated_at < now() - make_interval(mins => ${staleMinutes})
          or ${noJobOf(sql, queueName(site, name), sql`${"location:"} || c.data_location_id::text`)})))
    union
    select r.data_location_id from staging_request r join data_location l on l.id = r.data_location_id join site s on s.id = l.site_id
    where s.name = ${site} and ${foldersDue(sql)}`
  let sent = 0
  for (const location of locations) {
    if ((yield* jobs.send(queueName(site, name), { locationId: location.id }, { singletonKey: locationKey(location.id) })) !== null) sent++
  }
  return sent
})

/**
 * Decides, inside one transaction with the copy locked, whether the deletion goes ahead: only a
 * scheduled copy that is still eligible moves to DELETION_IN_PROGRESS; one that is not is called
 * off. A copy already in progress goes ahead: it was checked before it moved there, and a
 * location's job is a singleton, so a deletion it finds in progress was cut off by a dead worker.
 */
const decide = (site: string, copyId: Ids.PhysicalCopyId, locationType: string, overThreshold: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const actor = `worker:${site}`
    return yield* sql.withTransaction(
      Effect.gen(function* () {
        const [row] = yield* sql<{ status: string }>`select status::text as status from physical_copy where id = ${copyId} for update`
        if (row === undefined) return false
        if (row.status === "DELETION_IN_PROGRESS") return true
        if (row.status !== "DELETION_SCHEDULED") return false
        const still = yield* Retention.eligible({ copyId, statuses: ["DELETION_SCHEDULED"], overThreshold, limit: 1 })
        if (still.length === 0) {
          yield* Transitions.transition({
            entity: "PhysicalCopy",
            id: copyId,
            from: "DELETION_SCHEDULED",
            to: CoreRetention.keptState(locationType),
            actor,
            details: { reason: "no longer eligible for deletion" }
          })
          return false
        }
        yield* Transitions.transition({ entity: "PhysicalCopy", id: copyId, from: "DELETION_SCHEDULED", to: "DELETION_IN_PROGRESS", actor })
        return true
      })
    )
  })

/**
 * Where a copy is deleted, and how its re-check judges the fill threshold: `age` lets only the
 * minimum age make a copy eligible (a decision deletions running beside it cannot change, so such
 * copies may go in parallel); `fill` also counts the location's fill, measured afresh.
 */
interface Target {
  readonly location: Sites.Location
  readonly storage: StorageDriver.Service
  readonly rule: "age" | "fill"
}

/** A copy as cleanup reads it before deleting: where, what was recorded, and whose SOURCE path it holds. */
interface CopyRow {
  readonly path: string
  readonly sizeBytes: number
  readonly checksum: string
  readonly identity: string | null
  /** The RawDataFile whose SOURCE path this copy is, if it is one. */
  readonly sourceFileId: string | null
}

/**
 * Why the object under the copy's path is not the one recorded, or undefined when it is (or is
 * gone, which deleting treats as done): an instrument that wrote new bytes to a packaged path, or
 * anyone who replaced a buffer's package, must never lose them to cleanup. Its size must match.
 * An unchanged identity (where the record and the driver both have one) proves the rest at the
 * cost of a stat; otherwise (no identity recorded, or one that moved without the bytes changing:
 * a remount, a chmod) the object is read whole against the recorded checksum, and only the
 * recorded bytes are deleted. A read that cannot tell fails, so the deletion is retried.
 */
const changedSince = (storage: StorageDriver.Service, copy: CopyRow) =>
  Effect.gen(function* () {
    const info = yield* storage.stat(copy.path)
    if (Number(info.size) !== Number(copy.sizeBytes)) return `it holds ${info.size} bytes, not the ${copy.sizeBytes} recorded`
    if (copy.identity !== null && info.identity !== undefined && info.identity === copy.identity) return undefined
    const moved = copy.identity !== null && info.identity !== undefined
      ? `identity ${info.identity}, recorded ${copy.identity}`
      : "no identity to compare"
    return yield* storage.verify(copy.path, copy.checksum as never).pipe(
      Effect.as(undefined),
      Effect.catchIf(
        (e) => e.reason === "Corrupt",
        (e) => Effect.succeed(`it was written again since it was recorded (${moved}): ${e.description ?? e.message}`)
      )
    )
  }).pipe(Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed(undefined)))

/** Deletes one scheduled copy if the rule still allows it, and records the outcome. */
const deleteCopy = (site: string, copyId: Ids.PhysicalCopyId, target: Target) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [copy] = yield* sql<CopyRow>`
      select c.path, c.size_bytes, c.checksum, c.identity, f.id as source_file_id from physical_copy c
      left join raw_data_file f on f.id = c.raw_data_file_id and f.source_location_id = c.data_location_id
      where c.id = ${copyId}`
    if (copy === undefined) return yield* Effect.logWarning(`physical copy ${copyId} does not exist; nothing to delete`)
    const overThreshold = target.rule === "age" ? [] : yield* Retention.overThreshold({ locationId: target.location.id })
    if (!(yield* decide(site, copyId, target.location.type, overThreshold))) return
    if (target.location.type !== "PROCESSING") {
      const changed = yield* changedSince(target.storage, copy).pipe(Effect.either)
      const why = changed._tag === "Left" ? undefined : changed.right
      if (why !== undefined) {
        yield* Transitions.transition({
          entity: "PhysicalCopy",
          id: copyId,
          from: "DELETION_IN_PROGRESS",
          to: "CORRUPT",
          actor: `worker:${site}`,
          details: { reason: "changed since recorded", detail: why }
        })
        return yield* Effect.logError(
          `not deleting ${copy.path} at ${target.location.name}: ${why}; the copy is marked CORRUPT and kept for an operator`
        )
      }
      // A stat that failed otherwise is the location's problem: the deletion fails and is retried.
      if (changed._tag === "Left") {
        yield* Transitions.transition({
          entity: "PhysicalCopy",
          id: copyId,
          from: "DELETION_IN_PROGRESS",
          to: "DELETION_FAILED",
          actor: `worker:${site}`,
          details: { error: `could not check the object before deleting it: ${changed.left.message}` }
        })
        return yield* Effect.logWarning(
          `checking ${copy.path} at ${target.location.name} before deleting it failed; the planner retries it`,
          changed.left
        )
      }
    }
    // The rule again, right before the bytes go: an archive copy found bad since the decision
    // (or a deletion resumed after a crash, long after it) must not let the last good bytes go.
    const still = yield* Retention.eligible({ copyId, statuses: ["DELETION_IN_PROGRESS"], overThreshold, limit: 1 })
    if (still.length === 0) {
      yield* Transitions.transition({
        entity: "PhysicalCopy",
        id: copyId,
        from: "DELETION_IN_PROGRESS",
        to: "DELETION_FAILED",
        actor: `worker:${site}`,
        details: {
          error:
            "no longer eligible when about to be deleted (an archive copy it relied on is no longer good, or it is needed again); the planner looks again"
        }
      })
      return yield* Effect.logWarning(
        `not deleting ${copy.path} at ${target.location.name}: it is no longer eligible; the planner looks at it again`
      )
    }
    // Delete is idempotent: an object already gone counts as deleted. Whatever else happens (a
    // driver's defect too) is recorded, so the copy never waits in DELETION_IN_PROGRESS for nothing.
    const deleted = yield* target.storage.delete(copy.path).pipe(Effect.sandbox, Effect.either)
    const actor = `worker:${site}`
    // Two workers may finish the same crashed deletion; the second finds it done, which is no error.
    // A SOURCE file's path is released with its deletion, in the same transaction: from then on
    // the instrument may file new bytes under it.
    const finish = (to: "DELETED" | "DELETION_FAILED", details?: { readonly error: string }) =>
      sql.withTransaction(
        Effect.gen(function* () {
          yield* Transitions.transition({
            entity: "PhysicalCopy",
            id: copyId,
            from: "DELETION_IN_PROGRESS",
            to,
            actor,
            ...(details ? { details } : {})
          })
          if (to === "DELETED" && copy.sourceFileId !== null) {
            yield* sql`update raw_data_file set source_released_at = now() where id = ${copy.sourceFileId} and source_released_at is null`
          }
        })
      ).pipe(
        Effect.asVoid,
        Effect.catchIf(
          isConflict,
          (e) => Effect.logDebug(`copy ${copyId} is ${e.actual ?? "elsewhere"}: another worker finished its deletion`)
        )
      )
    if (deleted._tag === "Right") return yield* finish("DELETED")
    const error = Cause.squash(deleted.left)
    yield* finish("DELETION_FAILED", { error: error instanceof Error ? error.message : String(error) })
    yield* Effect.logWarning(`deleting ${copy.path} at ${target.location.name} failed; the planner retries it`, deleted.left)
  }).pipe(Effect.withSpan("Cleanup.deleteCopy", { attributes: { copyId } }))

/** Requests whose folders are to be removed: made, not yet removed, and released or expired. */
const foldersDue = (sql: SqlClient.SqlClient) =>
  sql`r.staged_folders is not null and r.folders_removed_at is null and (r.released_at is not null or r.expires_at <= now())`

/**
 * Removes the folders of the location's released or expired requests, each recorded (with its
 * event) once gone. The copies they linked stay in the store until no live request needs them.
 * A folder that cannot be removed fails the job (it is retried); the others are not held up.
 */
const removeFolders = (site: string, locationId: string, root: string | undefined) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    if (root === undefined) return 0
    const due = yield* sql<{ id: string; status: string; stagedFolders: Record<string, string> }>`
      select r.id, r.status::text as status, r.staged_folders from staging_request r
      where r.data_location_id = ${locationId} and ${foldersDue(sql)} order by r.updated_at limit ${batch}`
    let failed = 0
    for (const r of due) {
      const removed = yield* StagingLayout.remove(root, Object.values(r.stagedFolders)).pipe(Effect.either)
      if (removed._tag === "Left") {
        failed++
        yield* Effect.logWarning(`removing the folders of staging request ${r.id} failed; the job is retried`, removed.left)
        continue
      }
      yield* sql.withTransaction(Effect.zipRight(
        sql`update staging_request set folders_removed_at = now() where id = ${r.id}`,
        EventLog.append({
          kind: "StagingRequest",
          id: r.id,
          from: r.status,
          to: r.status,
          actor: `worker:${site}`,
          details: { action: "folders-removed", folders: Object.values(r.stagedFolders) }
        })
      ))
    }
    return failed
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
      select id, status::text as status from physical_copy
      where data_location_id = ${locationId} and not (id = any(${[...seen]}::uuid[]))
        and status in ('DELETION_SCHEDULED', 'DELETION_IN_PROGRESS')
      order by updated_at, id limit ${batch}`
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
  queue: { policy: "stately", retryLimit: 5, retryDelaySeconds: 30, retryBackoff: true, expireInSeconds: 3600 },
  concurrency: 2
}
