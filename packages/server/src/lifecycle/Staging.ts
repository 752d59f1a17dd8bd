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
import { type Checksum, EventLog, Ids, StorageError, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as JobBatch from "../engine/JobBatch.js"
import { JobQueue, noJobOf } from "../engine/JobQueue.js"
import { LifecyclePolicy } from "./Packaging.js"
import * as CopyCheck from "./CopyCheck.js"
import * as Sites from "./Sites.js"
import { queueName, type Stage } from "./Stage.js"
import * as StagingLayout from "./StagingLayout.js"
export { type StagedFile, stagedFiles, stagedPaths } from "./StagedFiles.js"
import { Storages } from "./Storages.js"
import * as Unpacker from "./Unpacker.js"

/** The stage's name and queue suffix. */
export const name = "staging"

const Job = Schema.Struct({ requestId: Ids.StagingRequestId })

interface PackageRow {
  readonly id: string
  readonly status: string
  readonly explicit: boolean
  readonly relativePath: string
  readonly sizeBytes: number
  readonly checksum: string
  readonly executedObsUnitId: string
}

interface FileRow {
  readonly id: string
  readonly rawDataPackageId: string
  readonly relativePath: string
  readonly checksum: string
}

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

/** The packages a request covers: those it names, and the archived ones of the observations it names. */
const packagesOf = (requestId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<PackageRow>`
      select p.id, p.status::text as status, bool_or(i.raw_data_package_id is not null) as explicit, p.relative_path,
             p.size_bytes, p.checksum, p.executed_obs_unit_id
      from staging_request_item i
      -- an observation's raw data: a processed product kept under it is staged by its package's id
      join raw_data_package p on p.id = i.raw_data_package_id
        or (i.raw_data_package_id is null and p.executed_obs_unit_id = i.executed_obs_unit_id and p.data_product_id is null)
      where i.staging_request_id = ${requestId}
      group by p.id order by p.relative_path`)

/** Verified archive copies of a package, online ones first, then by priority. */
const archiveCopiesOf = (packageId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const storages = yield* Storages
    const rows = yield* sql<{ id: string; locationId: string; path: string }>`
      select c.id, c.data_location_id as location_id, c.path from physical_copy c
      join data_location l on l.id = c.data_location_id join raw_data_package p on p.id = c.raw_data_package_id
      where c.raw_data_package_id = ${packageId} and l.type = 'LONG_TERM_ARCHIVE' and l.readable and c.status = 'PRESENT'
        and c.verified_at is not null and c.checksum = p.checksum
      order by l.priority, l.name`
    const out = []
    for (const r of rows) {
      const location = yield* Sites.location(r.locationId)
      const storage = yield* storages.of(location)
      out.push({ id: r.id, location, storage, path: r.path })
    }
    return out.sort((a, b) => Number(a.storage.capabilities.nearline) - Number(b.storage.capabilities.nearline))
  })

type ArchiveCopy = Effect.Effect.Success<ReturnType<typeof archiveCopiesOf>>[number]

/**
 * Why a package has no good archive copy, when it has bad ones: each CORRUPT or MISSING archive
 * copy with what its finder saw; undefined when it has none (it is not archived yet).
 */
const noGoodCopyReason = (packageId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const bad = yield* sql<{ location: string; status: string; detail: string | null }>`
      select l.name as location, c.status::text as status,
        (select e.details->>'detail' from event_log e where e.entity_kind = 'PhysicalCopy' and e.entity_id = c.id
         order by e.id desc limit 1) as detail
      from physical_copy c join data_location l on l.id = c.data_location_id
      where c.raw_data_package_id = ${packageId} and l.type = 'LONG_TERM_ARCHIVE' and c.status in ('CORRUPT', 'MISSING')
      order by l.priority, l.name`
    if (bad.length === 0) return undefined
    const each = bad.map((b) => `copy at ${b.location} ${b.status}${b.detail === null ? "" : ` (${b.detail})`}`)
    return `package ${packageId} has no good archive copy left: ${each.join("; ")}`
  })

/** A package whose every archive copy was found bad: the request cannot be served. */
class NoGoodCopy extends Data.TaggedError("NoGoodCopy")<{ readonly packageId: string; readonly message: string }> {}

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

/**
 * Takes back staged copies of the request's files that cleanup was about to delete, with the
 * copies locked; returns the keys staged already. A copy being deleted right now makes the
 * request wait for it (the job fails and is retried); one found CORRUPT or MISSING is staged
 * again, and its row replaced when the request completes.
 */
const claimStaged = (site: string, locationId: string, files: ReadonlyArray<FileRow>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    if (files.length === 0) return new Map<string, string>()
    return yield* sql.withTransaction(
      Effect.gen(function* () {
        const rows = yield* sql<{ id: Ids.PhysicalCopyId; status: string; rawDataFileId: string; path: string }>`
          select id, status::text as status, raw_data_file_id, path from physical_copy
          where data_location_id = ${locationId} and raw_data_file_id in ${sql.in(files.map((f) => f.id))} and status <> 'DELETED'
          for update`
        const staged = new Map<string, string>()
        for (const row of rows) {
          if (row.status === "DELETION_POSSIBLE" || row.status === "DELETION_SCHEDULED") {
            yield* Transitions.transition({
              entity: "PhysicalCopy",
              id: row.id,
              from: row.status,
              to: "STAGED",
              actor: `worker:${site}`,
              details: { reason: "needed by a staging request" }
            })
          } else if (row.status === "CORRUPT" || row.status === "MISSING") {
            // Found bad or gone here: staged again from the archive, and the row replaced below.
            continue
          } else if (row.status !== "STAGED") {
            return yield* Effect.fail(
              new Error(`staged copy ${row.path} is ${row.status}; the request waits for cleanup to finish with it`)
            )
          }
          staged.set(row.rawDataFileId, row.path)
        }
        return staged
      })
    )
  })

/** A package whose manifest disagrees with the filed files: staging it cannot give the scientist the filed bytes. */
class FiledMismatch extends Data.TaggedError("FiledMismatch")<{ readonly message: string }> {}

/**
 * Unpacks one package from the first archive copy that works into the PROCESSING location. A
 * copy that fails for good (not a transient storage failure) is re-read and, when its bytes are
 * shown wrong or gone, marked; when every copy was marked and no good one appeared meanwhile the
 * package fails with NoGoodCopy, else with the last error (the job is retried).
 */
const unpackPackage = (
  site: string,
  pkg: PackageRow,
  files: ReadonlyArray<FileRow>,
  copies: ReadonlyArray<ArchiveCopy>,
  processing: Sites.Location,
  stagedKeys: ReadonlySet<string>
) =>
  Effect.gen(function* () {
    const destination = yield* Effect.flatMap(Storages, (s) => s.of(processing))
    // A failed unpack removes what it wrote, but never a file another request staged before.
    const guarded = { ...destination, delete: (key: string) => (stagedKeys.has(key) ? Effect.void : destination.delete(key)) }
    let lastError: unknown
    let marked = 0
    for (const copy of copies) {
      const result = yield* Unpacker.unpackFrom(copy.storage, copy.path, {
        destination: guarded,
        prefix: `${StagingLayout.storeFolder}/${pkg.executedObsUnitId}/`,
        checksum: pkg.checksum as never,
        sizeBytes: Number(pkg.sizeBytes),
        overwrite: true
      }).pipe(Effect.either)
      if (result._tag === "Left") {
        lastError = result.left
        yield* Effect.logWarning(`package ${pkg.id}: unpacking from ${copy.location.name} failed, trying the next copy`, result.left)
        if (StorageError.isRetryable(result.left)) continue
        const found = yield* CopyCheck.confirmAndMark(copy.id, copy.storage, copy.path, pkg.checksum as Checksum.Checksum, {
          actor: `worker:${site}`,
          by: "staging"
        })
        if (found !== undefined) marked++
        continue
      }
      const filed = new Map(files.map((f) => [f.id, f]))
      for (const m of result.right.members) {
        if (filed.get(m.id)?.checksum !== m.checksum) {
          return yield* new FiledMismatch({
            message: `package ${pkg.id}: member ${m.relativePath} has ${m.checksum}, filed ${filed.get(m.id)?.checksum ?? "nothing"}`
          })
        }
      }
      return result.right.members
    }
    if (marked === copies.length && (yield* archiveCopiesOf(pkg.id)).length === 0) {
      const reason = yield* noGoodCopyReason(pkg.id)
      if (reason !== undefined) return yield* new NoGoodCopy({ packageId: pkg.id, message: reason })
    }
    return yield* Effect.fail(lastError)
  })

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
