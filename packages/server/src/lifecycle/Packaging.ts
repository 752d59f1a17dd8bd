/**
 * Stage 1 of the seed, packaging: filed RawDataFiles at a site's SOURCE locations become tar
 * RawDataPackages in the site's BUFFER. The planner groups the files of closed observations by
 * ExecutedObsUnit and InstrumentModule and claims them for a package row in one transaction
 * with the job; the worker streams the tar into the first BUFFER that is available and has room,
 * verifying every file against its filed size and checksum on the way. A file that does not
 * match is marked corrupt (or missing) and reported, never packaged.
 */
import { EventLog, Ids, type StorageDriver, Topology, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { randomUUID } from "node:crypto"
import * as JobBatch from "../engine/JobBatch.js"
import { JobQueue, noJobOf } from "../engine/JobQueue.js"
import * as JobStatements from "../engine/JobStatements.js"
import * as ArchiveRecord from "./ArchiveRecord.js"
import * as BufferWrite from "./BufferWrite.js"
import * as PackageJob from "./PackageJob.js"
import * as Packager from "./Packager.js"
import * as Sites from "./Sites.js"
import { queueName, type Stage } from "./Stage.js"
import { Storages } from "./Storages.js"

/** The sizes and waits the lifecycle runs with (the configuration's `policy`). */
export class LifecyclePolicy extends Context.Tag("@ccat/server/LifecyclePolicy")<LifecyclePolicy, Topology.PolicyConfig>() {}

/** The stage's name and queue suffix. */
export const name = "package"

const Job = Schema.Struct({ packageId: Ids.RawDataPackageId })

/** The packaging queue: one job per package, retried with backoff, a job may run six hours. */
const queue = { policy: "stately", retryLimit: 20, retryDelaySeconds: 10, retryBackoff: true, expireInSeconds: 6 * 3600 } as const

type FileRow = PackageJob.FileRow

/** Files of an observation are packaged once it is closed (it has an end, or a final status). */
const readyFiles = (site: string, limit: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<FileRow & { readonly dataProductId: string | null }>`
      select f.id, f.executed_obs_unit_id, f.instrument_module_id, f.relative_path, f.size_bytes, f.checksum,
             f.source_location_id, f.data_product_id
      from raw_data_file f
      join data_location l on l.id = f.source_location_id
      join site s on s.id = l.site_id
      join executed_obs_unit e on e.id = f.executed_obs_unit_id
      where s.name = ${site} and f.state = 'filed' and f.raw_data_package_id is null
        and (e.end_at is not null or e.status in ('completed', 'failed'))
      order by f.executed_obs_unit_id, f.instrument_module_id, f.relative_path
      limit ${limit}`)

/**
 * Claims the planned files for a new package and enqueues its job, in one statement (one round
 * trip for a site far from the ops-db): the files are locked and checked first, and only when
 * every one is still unclaimed are the package (scheduled, with its two events: created,
 * scheduled), the claim of its files and its job written. Another planner that claimed some of
 * them meanwhile wins: nothing is written here and that one packages them.
 */
const claim = (site: string, planned: Packager.PlannedPackage<FileRow & Packager.FileToPlan>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const ids = planned.files.map((f) => f.id)
    // The plan's name is a digest of the files: a re-plan of the same files gets the same path.
    // A processed product's package is kept under the product, apart from raw data.
    const folder = planned.dataProductId == null
      ? `${planned.executedObsUnitId}/${planned.instrumentModuleId}`
      : `products/${planned.dataProductId}`
    const relativePath = `${folder}/${planned.name}-${randomUUID().slice(0, 8)}.tar`
    const [row] = yield* sql<{ id: Ids.RawDataPackageId | null }>`
      with free as (
        select id from raw_data_file
        where id in ${sql.in(ids)} and state = 'filed' and raw_data_package_id is null
        for update),
      ready as (select count(*) = ${ids.length} as ok from free),
      pkg as (
        insert into raw_data_package (executed_obs_unit_id, instrument_module_id, relative_path, status, data_product_id)
        select ${planned.executedObsUnitId}, ${planned.instrumentModuleId}, ${relativePath}, 'scheduled', ${
          planned.dataProductId ?? null
        }::uuid
        from ready where ready.ok
        returning id),
      steps as (
        select p.id, s.from_state, s.to_state from pkg p
        cross join (values (1, null::text, 'pending'), (2, 'pending', 'scheduled')) as s(n, from_state, to_state)
        order by s.n),
      logged as (${
        EventLog.appendFrom(sql, {
          kind: "RawDataPackage",
          rows: "steps",
          from: { column: "from_state" },
          to: { column: "to_state" },
          actor: `planner:${site}`
        })
      }),
      claimed as (
        update raw_data_file set raw_data_package_id = (select id from pkg), updated_at = now()
        where id in (select id from free) and exists (select 1 from pkg)
        returning id),
      job as (${
        JobStatements.sendFrom(sql, {
          queue: queueName(site, name),
          rows: "pkg",
          data: sql`jsonb_build_object('packageId', r.id)`,
          singletonKey: sql`r.id::text`
        })
      })
      select (select id from pkg) as id`
    const made: number = row === undefined || row.id === null ? 0 : 1
    return made
  })

/**
 * Packages an operator retried (failed → pending) that were never written: the retry attached
 * their files again (ones found corrupt or missing come back to be checked again), so each is
 * scheduled with its job, in one transaction, and written like a new one.
 */
const retried = (site: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const jobs = yield* JobQueue
    const rows = yield* sql<{ id: Ids.RawDataPackageId }>`
      select p.id from raw_data_package p
      where p.status = 'pending'
        and not exists (select 1 from physical_copy c where c.raw_data_package_id = p.id and c.status <> 'DELETED')
        and exists (select 1 from raw_data_file f join data_location l on l.id = f.source_location_id join site s on s.id = l.site_id
                    where f.raw_data_package_id = p.id and f.state = 'filed' and s.name = ${site})
      order by p.updated_at`
    let n = 0
    for (const p of rows) {
      n += yield* sql.withTransaction(
        Effect.gen(function* () {
          yield* Transitions.transition({
            entity: "RawDataPackage",
            id: p.id,
            from: "pending",
            to: "scheduled",
            actor: `planner:${site}`,
            details: { retry: true }
          })
          yield* jobs.send(queueName(site, name), { packageId: p.id }, { singletonKey: p.id })
          return 1
        })
      ).pipe(Effect.catchIf((e) => e instanceof Transitions.TransitionError && e.reason === "StateConflict", () => Effect.succeed(0)))
    }
    return n
  })

/**
 * Finds files ready to package at the site and claims them for packages. Its reads and claims
 * that do not depend on each other go out together: from a site far from the ops-db each
 * statement is a round trip.
 */
export const plan = Effect.fn("Packaging.plan")(function* (site: string) {
  const policy = yield* LifecyclePolicy
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobQueue
  const [again, files] = yield* Effect.all([retried(site), readyFiles(site, 20_000)], { concurrency: 2 })
  const bySource = new Map<string, Array<FileRow>>()
  for (const f of files) bySource.set(f.sourceLocationId, [...(bySource.get(f.sourceLocationId) ?? []), f])
  // Claims are independent transactions (a lost race gives one up alone), so a few run at once.
  // Beside them, jobs a lost queue would have dropped are derived again: packages claimed but not
  // written for a while, or at once when the queue holds no job of theirs at all (a restored
  // ops-db, a wiped queue). A package claimed now commits with its job, so it is never among them.
  const planned = [...bySource.values()].flatMap((group) => Packager.plan(group, { maxPackageBytes: policy.maxPackageBytes }))
  // a claim enqueues its job in its own statement, which needs the queue (made once per process)
  if (planned.length > 0) yield* jobs.ensureQueue(queueName(site, name), queue)
  const [claimed, stale] = yield* Effect.all([
    Effect.forEach(planned, (p) => claim(site, p), { concurrency: 4 }),
    sql<{ id: Ids.RawDataPackageId }>`
      select p.id from raw_data_package p
      where p.status in ('scheduled', 'in_progress')
        and (p.updated_at < now() - interval '10 minutes' or ${noJobOf(sql, queueName(site, name), sql`p.id`)})
        and not exists (select 1 from physical_copy c where c.raw_data_package_id = p.id and c.status <> 'DELETED')
        and exists (select 1 from raw_data_file f join data_location l on l.id = f.source_location_id
                    join site s on s.id = l.site_id where f.raw_data_package_id = p.id and s.name = ${site})`
  ], { concurrency: 2 })
  if (stale.length > 0 && planned.length === 0) yield* jobs.ensureQueue(queueName(site, name), queue)
  const resent = yield* JobBatch.sendMany(queueName(site, name), stale.map((p) => ({ data: { packageId: p.id }, singletonKey: p.id })))
  return again + claimed.reduce((a, b) => a + b, 0) + resent
})

/**
 * Records the written package (`PackageJob.commit`, one statement). Each SOURCE file's copy
 * keeps the identity its file had when it was read, and the buffer copy the identity of what was
 * written, so cleanup never deletes bytes that changed since.
 */
const commit = (
  site: string,
  packageId: Ids.RawDataPackageId,
  buffer: Sites.Location,
  written: Packager.Written,
  files: ReadonlyArray<FileRow>,
  identities: ReadonlyMap<string, string>
) =>
  Effect.flatMap(
    ArchiveRecord.identityOf(buffer, written.key),
    (bufferIdentity) => PackageJob.commit(site, packageId, buffer, written, bufferIdentity, files, identities)
  )

/**
 * The identity of each SOURCE file before it is read (where the driver tells one). A file
 * rewritten after this but before it is read fails its checksum; one rewritten after it is read
 * no longer has this identity, so cleanup keeps it.
 */
const identitiesOf = (source: StorageDriver.Service, files: ReadonlyArray<FileRow>) =>
  Effect.forEach(files, (f) =>
    source.stat(f.relativePath).pipe(
      Effect.map((info) => [f.id, info.identity] as const),
      Effect.orElseSucceed(() => [f.id, undefined] as const)
    ), { concurrency: 16 }).pipe(
      Effect.map((pairs) => new Map(pairs.filter((p): p is readonly [Ids.RawDataFileId, string] => p[1] !== undefined)))
    )

/** Marks the faulty files, detaches them, and either retries the package with the rest or fails it. */
const reportFaults = (site: string, packageId: Ids.RawDataPackageId, error: Packager.PackagingError, remaining: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const jobs = yield* JobQueue
    yield* sql.withTransaction(
      Effect.gen(function* () {
        for (const m of error.members) {
          yield* Transitions.transition({
            entity: "RawDataFile",
            id: m.id as Ids.RawDataFileId,
            from: "filed",
            to: m.problem === "Corrupt" ? "corrupt" : "missing",
            actor: `worker:${site}`,
            details: {
              packageId,
              detail: m.detail ?? null,
              expectedChecksum: m.expectedChecksum,
              actualChecksum: m.actualChecksum ?? null
            },
            set: { rawDataPackageId: null }
          })
        }
        if (remaining === 0) {
          yield* Transitions.transition({
            entity: "RawDataPackage",
            id: packageId,
            from: "in_progress",
            to: "failed",
            actor: `worker:${site}`,
            set: { errorMessage: error.message }
          })
        } else {
          yield* Transitions.transition({
            entity: "RawDataPackage",
            id: packageId,
            from: "in_progress",
            to: "scheduled",
            actor: `worker:${site}`,
            details: { retry: "without faulty files", faulty: error.members.map((m) => m.id) }
          })
          yield* jobs.send(queueName(site, name), { packageId }, { singletonKey: `${packageId}:${Date.now()}` })
        }
      })
    )
    yield* Effect.logError(`package ${packageId}: ${error.message}`).pipe(
      Effect.annotateLogs({ packageId, faulty: error.members.map((m) => `${m.id} ${m.relativePath} ${m.problem}`).join("; ") })
    )
  })

/**
 * Fails a package the packager can never write (its files' names cannot go into one tar), with
 * the reason, so it shows FAILED and an operator can retry it once the files are re-filed; it is
 * never re-planned on its own.
 */
const failInvalid = (site: string, packageId: Ids.RawDataPackageId, error: Packager.PackagingError) =>
  Transitions.transition({
    entity: "RawDataPackage",
    id: packageId,
    from: "in_progress",
    to: "failed",
    actor: `worker:${site}`,
    details: { reason: "Invalid", detail: error.description ?? null },
    set: { errorMessage: error.message }
  }).pipe(Effect.zipRight(Effect.logError(`package ${packageId} cannot be written: ${error.message}`)))

/** Writes one package into the first BUFFER that takes it. */
export const work = Effect.fn("Packaging.work")(function* (site: string, data: unknown) {
  const { packageId } = yield* Schema.decodeUnknown(Job)(data)
  const storages = yield* Storages
  // One round trip to start: the package, its files and their location read and the package
  // moved to in_progress in one statement, the site's buffers read beside it.
  const [pkg, buffersHere] = yield* Effect.all([PackageJob.start(site, packageId), Sites.locationsOf(site, "BUFFER")], { concurrency: 2 })
  if (pkg === undefined) return yield* Effect.logWarning(`package ${packageId} does not exist; job dropped`)
  // Written already (a retry after the commit), or ended: nothing to do.
  if (pkg.hasCopy || pkg.status === "completed" || pkg.status === "failed" || pkg.status === "pending") return
  const files = pkg.files
  if (files.length === 0 || pkg.source === null) return yield* Effect.dieMessage(`package ${packageId} has no files to package`)
  const estimate = files.reduce((n, f) => n + f.sizeBytes + 1536, 10 * 1024 * 1024)
  const buffers = yield* BufferWrite.withRoomAmong(buffersHere, estimate)
  const sourceLocation = pkg.source
  const source = yield* storages.of(sourceLocation)
  const identities = yield* identitiesOf(source, files)
  return yield* BufferWrite.toFirst(
    `package ${packageId}`,
    buffers,
    (buffer) =>
      Effect.flatMap(storages.of(buffer), (destination) =>
        Packager.pack({
          packageId,
          executedObsUnitId: files[0].executedObsUnitId,
          instrumentModuleId: files[0].instrumentModuleId,
          files,
          source,
          destination,
          key: pkg.relativePath,
          overwrite: true
        })),
    {
      written: (buffer, written) => commit(site, packageId, buffer, written, files, identities),
      faulty: (error) => reportFaults(site, packageId, error, files.length - error.members.length),
      invalid: (error) => failInvalid(site, packageId, error)
    }
  )
})

/** The packaging stage. */
export const stage: Stage<SqlClient.SqlClient | JobQueue | Storages | LifecyclePolicy> = {
  name,
  plan,
  work,
  queue,
  concurrency: 2
}
