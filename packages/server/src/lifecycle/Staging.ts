/**
 * Stage 6 of issue 6, staging: a StagingRequest (made through the API) is served at the site of
 * its PROCESSING location. The planner claims pending requests with their job; the worker finds
 * an archive copy of every package the request names (directly or through a whole
 * ExecutedObsUnit), recalls them in one batch per nearline archive, unpacks each into the
 * PROCESSING location's store under `.store/<executedObsUnitId>/<relativePath>` (stable paths,
 * shared between requests) verifying every file against the manifest and the filed checksum,
 * records each file as a STAGED verified copy, lays out the request's own folders
 * (`StagingLayout`: `<program>/<request id>/...`, links to the store with the programs' modes and
 * groups) and completes the request with `expires_at = now + stagingLifetime`. A file already
 * staged there is reused: the new request keeps it alive (cleanup deletes a staged copy only when
 * no open, or completed and neither released nor expired, request covers it).
 *
 * An archive copy that cannot be read back as recorded (wrong bytes, or gone) is confirmed by a
 * re-read and marked CORRUPT or MISSING (CopyCheck), and the next good copy is read instead. A
 * package left with no good archive copy, only bad ones, fails the request at once with a reason
 * naming each bad copy, and the package's `errorMessage` says it too; a read that failed for
 * another reason (an unreachable archive) is retried as before.
 */
import { EventLog, Ids, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as JobBatch from "../engine/JobBatch.js"
import { JobQueue, noJobOf } from "../engine/JobQueue.js"
import { LifecyclePolicy } from "./Packaging.js"
import { type ArchiveCopy, archiveCopiesOf, type FileRow, NoGoodCopy, noGoodCopyReason, packagesOf } from "./internal/StagingSources.js"
import { claimStaged, FiledMismatch, unpackPackage } from "./internal/StagingStore.js"
import * as Sites from "./Sites.js"
import { queueName, type Stage } from "./Stage.js"
import * as StagingLayout from "./StagingLayout.js"
export { type StagedFile, stagedFiles, stagedPaths } from "./StagedFiles.js"
import { Storages } from "./Storages.js"
import type * as Unpacker from "./Unpacker.js"

/** The stage's name and queue suffix. */
export const name = "staging"

const Job = Schema.Struct({ requestId: Ids.StagingRequestId })

/** Where a staged file is: its key at the PROCESSING location, stable across requests. */
export const stagedKey = StagingLayout.stagedKey

/** The staging queue: one job per request, retried with backoff, a job may run twelve hours. */
const queueOptions = { policy: "stately", retryLimit: 10, retryDelaySeconds: 15, retryBackoff: true, expireInSeconds: 12 * 3600 } as const

/** Claims the site's pending requests with their jobs, and re-sends jobs a lost queue dropped. */
export const plan = Effect.fn("Staging.plan")(function* (site: string) {
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobQueue
  const queue = queueName(site, name)
  const pending = yield* sql<{ id: Ids.StagingRequestId }>`
    select r.id from staging_request r join data_location l on l.id = r.data_location_id join site s on s.id = l.site_id
    where s.name = ${site} and r.status = 'pending' order by r.created_at limit 200`
  let enqueued = 0
  for (const r of pending) {
    enqueued += yield* sql.withTransaction(
      Effect.gen(function* () {
        yield* Transitions.transition({ entity: "StagingRequest", id: r.id, from: "pending", to: "scheduled", actor: `planner:${site}` })
        yield* jobs.send(queue, { requestId: r.id }, { singletonKey: r.id })
        return 1
      })
    ).pipe(Effect.catchIf((e) => e instanceof Transitions.TransitionError && e.reason === "StateConflict", () => Effect.succeed(0)))
  }
  const stale = yield* sql<{ id: string }>`
    select r.id from staging_request r join data_location l on l.id = r.data_location_id join site s on s.id = l.site_id
    where s.name = ${site} and r.status in ('scheduled', 'in_progress')
      and (r.updated_at < now() - interval '10 minutes' or ${noJobOf(sql, queue, sql`r.id`)})`
  if (stale.length > 0) yield* jobs.ensureQueue(queue, queueOptions)
  return enqueued + (yield* JobBatch.sendMany(queue, stale.map((r) => ({ data: { requestId: r.id }, singletonKey: r.id }))))
})

/** Fails the request, and notes on the package why it cannot be staged (its copies show the findings). */
const failNoGoodCopy = (site: string, requestId: Ids.StagingRequestId, e: NoGoodCopy) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(
      Effect.zipRight(
        sql`update raw_data_package set error_message = ${e.message}, updated_at = now() where id = ${e.packageId}`,
        failRequest(site, requestId, e.message)
      )
    ))

/** Fails the request with a reason the API shows. */
const failRequest = (site: string, requestId: Ids.StagingRequestId, message: string) =>
  Transitions.transition({
    entity: "StagingRequest",
    id: requestId,
    from: "in_progress",
    to: "failed",
    actor: `worker:${site}`,
    set: { errorMessage: message }
  }).pipe(
    Effect.zipRight(Effect.logWarning(`staging request ${requestId} failed: ${message}`))
  )

/** Serves one staging request. */
export const work = Effect.fn("Staging.work")(function* (site: string, data: unknown) {
  const { requestId } = yield* Schema.decodeUnknown(Job)(data)
  const sql = yield* SqlClient.SqlClient
  const policy = yield* LifecyclePolicy
  const actor = `worker:${site}`
  const [request] = yield* sql<{ status: string; dataLocationId: string }>`
    select status::text as status, data_location_id from staging_request where id = ${requestId}`
  if (request === undefined || !["scheduled", "in_progress"].includes(request.status)) return
  if (request.status === "scheduled") {
    yield* Transitions.transition({ entity: "StagingRequest", id: requestId, from: "scheduled", to: "in_progress", actor })
  }
  const processing = yield* Sites.location(request.dataLocationId)
  const packages = (yield* packagesOf(requestId)).filter((p) => p.status !== "failed" || p.explicit)
  const failed = packages.filter((p) => p.status === "failed")
  if (failed.length > 0) {
    return yield* failRequest(site, requestId, `packages failed and cannot be staged: ${failed.map((p) => p.id).join(", ")}`)
  }
  if (packages.length === 0) return yield* failRequest(site, requestId, "the request names no package")
  const files = yield* sql<FileRow>`
    select id, raw_data_package_id, relative_path, checksum from raw_data_file
    where raw_data_package_id in ${sql.in(packages.map((p) => p.id))} and state = 'packaged' order by relative_path`
  const copies = new Map<string, ReadonlyArray<ArchiveCopy>>()
  for (const p of packages) {
    const found = yield* archiveCopiesOf(p.id)
    if (found.length === 0) {
      const bad = yield* noGoodCopyReason(p.id)
      if (bad !== undefined) return yield* failNoGoodCopy(site, requestId, new NoGoodCopy({ packageId: p.id, message: bad }))
      return yield* Effect.fail(new Error(`package ${p.id} has no verified archive copy yet; the request waits`))
    }
    // A good copy again (repaired): the package's note of having none no longer holds.
    yield* sql`update raw_data_package set error_message = null, updated_at = now()
      where id = ${p.id} and status = 'completed' and error_message like ${`package ${p.id} has no good archive copy left:%`}`
    copies.set(p.id, found)
  }
  const staged = yield* claimStaged(site, processing.id, files)
  const needed = packages.filter((p) => files.some((f) => f.rawDataPackageId === p.id && !staged.has(f.id)))
  // Tape: one recall per archive for everything this request needs from it, before reading.
  const recalls = new Map<string, { storage: ArchiveCopy["storage"]; keys: Array<string> }>()
  for (const p of needed) {
    const first = copies.get(p.id)![0]
    if (!first.storage.capabilities.nearline) continue
    const entry = recalls.get(first.location.id) ?? { storage: first.storage, keys: [] }
    entry.keys.push(first.path)
    recalls.set(first.location.id, entry)
  }
  // A batch that fails (a copy that no longer matches its catalog entry) is not fatal: each read
  // below recalls its own object again, and tells which copy is bad.
  for (const { keys, storage } of recalls.values()) {
    yield* storage.recall(keys).pipe(Effect.catchAll((e) => Effect.logWarning("batch recall failed; each package is read on its own", e)))
  }
  const unpacked: Array<Unpacker.UnpackedMember> = []
  const stagedKeys = new Set(staged.values())
  for (const p of needed) {
    const members = yield* unpackPackage(
      site,
      p,
      files.filter((f) => f.rawDataPackageId === p.id),
      copies.get(p.id)!,
      processing,
      stagedKeys
    ).pipe(
      Effect.catchIf(
        (e): e is FiledMismatch => e instanceof FiledMismatch,
        (e) => Effect.as(failRequest(site, requestId, e.message), undefined)
      ),
      Effect.catchIf((e): e is NoGoodCopy => e instanceof NoGoodCopy, (e) => Effect.as(failNoGoodCopy(site, requestId, e), undefined))
    )
    if (members === undefined) return
    unpacked.push(...members)
  }
  // A member staged already at another path (an earlier release's layout) keeps that copy: the
  // bytes its package's unpack wrote into the store beside it would be recorded nowhere.
  const beside = unpacked.filter((m) => staged.has(m.id) && staged.get(m.id) !== m.key)
  if (beside.length > 0) {
    const destination = yield* Effect.flatMap(Storages, (s) => s.of(processing))
    for (const m of beside) yield* destination.delete(m.key)
  }
  const written = unpacked.filter((m) => !beside.includes(m))
  const folders = yield* StagingLayout.layOut(
    actor,
    requestId,
    processing,
    files,
    new Map([...staged, ...written.map((m) => [m.id, m.key] as const)])
  ).pipe(
    Effect.catchIf(
      (e): e is StagingLayout.LayoutError => e instanceof StagingLayout.LayoutError,
      (e) => Effect.as(failRequest(site, requestId, e.message), "failed" as const)
    )
  )
  if (folders === "failed") return
  const expiresAt = new Date(Date.now() + policy.stagingLifetime)
  yield* sql.withTransaction(
    Effect.gen(function* () {
      for (const m of written) {
        // A staged copy found bad or gone before: the unpack just wrote good bytes over it.
        const bad = yield* sql<{ id: Ids.PhysicalCopyId; status: "CORRUPT" | "MISSING" }>`
          select id, status::text as status from physical_copy
          where data_location_id = ${processing.id} and raw_data_file_id = ${m.id} and status in ('CORRUPT', 'MISSING')
          for update`
        for (const b of bad) {
          yield* Transitions.transition({
            entity: "PhysicalCopy",
            id: b.id,
            from: b.status,
            to: "DELETED",
            actor,
            details: { action: "replaced", by: "staging", requestId }
          })
        }
        const inserted = yield* sql`
          with copy as (
            insert into physical_copy (raw_data_file_id, data_location_id, path, size_bytes, checksum, status, verified_at)
            values (${m.id}, ${processing.id}, ${m.key}, ${m.sizeBytes}, ${m.checksum}, 'STAGED', now())
            on conflict do nothing returning id, status),
          created as (${
            EventLog.appendFrom(sql, {
              kind: "PhysicalCopy",
              rows: "copy",
              from: null,
              to: { column: "status" },
              actor,
              details: { action: "staged", requestId }
            })
          })
          select id from copy`
        if (inserted.length === 0) {
          yield* sql`update physical_copy set verified_at = now(), updated_at = now()
            where data_location_id = ${processing.id} and raw_data_file_id = ${m.id} and status = 'STAGED'`
        }
      }
      yield* Transitions.transition({
        entity: "StagingRequest",
        id: requestId,
        from: "in_progress",
        to: "completed",
        actor,
        set: { expiresAt },
        details: {
          files: files.length,
          unpacked: written.length,
          reused: files.length - written.length,
          ...(folders === undefined ? {} : { folders })
        }
      })
      if (folders !== undefined) {
        yield* sql`update staging_request set staged_folders = ${JSON.stringify(folders)}::jsonb where id = ${requestId}`
      }
    })
  )
})

/** The staging stage. */
export const stage: Stage<SqlClient.SqlClient | JobQueue | Storages | LifecyclePolicy> = {
  name,
  plan,
  work,
  queue: queueOptions,
  concurrency: 1
}
