/**
 * The archiving stage: RawDataPackages that arrived in the BUFFER of a site with
 * LONG_TERM_ARCHIVE locations are copied to those archives until they have the policy's
 * `archiveCopies` PRESENT, verified archive copies, spread over distinct archives in priority
 * order, and then marked completed (ARCHIVED). Every copy is streamed buffer → archive (or, when
 * the buffer copy went bad after the first archive copy at the site, archive → archive) through
 * the archive's atomic `put` with the package's checksum, then verified at the archive (read back
 * where the technology is online), and recorded in the same transaction that completes the
 * package once the required number is reached. An unreachable archive makes the job fail and
 * retry with backoff; a non-writable one gets no work until it is writable again.
 */
import { ConstraintError, Ids, Repositories, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as JobBatch from "../engine/JobBatch.js"
import { JobQueue } from "../engine/JobQueue.js"
import { LifecyclePolicy } from "./Packaging.js"
import * as Retention from "./Retention.js"
import * as Sites from "./Sites.js"
import { queueName, type Stage } from "./Stage.js"
import { Storages } from "./Storages.js"

/** The stage's name and queue suffix. */
export const name = "archive"

const Job = Schema.Struct({ packageId: Ids.RawDataPackageId })

/** A package as archiving and repair read it: what is copied, and the checksum every copy must have. */
export interface PackageRow {
  readonly id: Ids.RawDataPackageId
  readonly status: string
  readonly relativePath: string
  readonly sizeBytes: number
  readonly checksum: string
}

/** SQL: `pkg` has a good copy (PRESENT, verified, with its checksum) in a readable archive of `site`. */
const archivedHere = (sql: SqlClient.SqlClient, pkg: Fragment, site: string) => sql`
  exists (
    select 1 from physical_copy ac join data_location al on al.id = ac.data_location_id join site s on s.id = al.site_id
    where ac.raw_data_package_id = ${pkg}.id and s.name = ${site} and al.type = 'LONG_TERM_ARCHIVE' and al.readable
      and ac.status = 'PRESENT' and ac.verified_at is not null and ac.checksum = ${pkg}.checksum)`

/**
 * Packages in the site's BUFFER that an archive here still lacks (the package is short of copies
 * or sites, and an archive of this site holds no live copy of it), or that have every copy they
 * need and are not yet completed. A package still short whose buffer copy here went bad after its
 * first archive copy here was written is one too: its next copy comes from that archive copy.
 */
const waiting = (site: string, copies: number, sites: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // The buffers' ids as values, and the packages taken from their live copies first: PostgreSQL
    // then reads those few copies by the location's index and each package by its key, instead of
    // every package of the archive's history (a sequential scan at 10^7 files) for a semi-join.
    const buffers = (yield* Sites.locationsOf(site, "BUFFER")).map((l) => l.id)
    if (buffers.length === 0) return []
    return yield* sql<{ id: Ids.RawDataPackageId }>`
      with here as materialized (
        select distinct c.raw_data_package_id as id from physical_copy c
        where c.data_location_id in ${sql.in(buffers)} and c.raw_data_package_id is not null
          and c.status in ('PRESENT', 'CORRUPT', 'MISSING')
      ),
      candidate as (
        select p.id, p.status, p.updated_at,
          (select count(*) from physical_copy ac join data_location al on al.id = ac.data_location_id
           where ac.raw_data_package_id = p.id and al.type = 'LONG_TERM_ARCHIVE' and ac.status = 'PRESENT'
             and ac.verified_at is not null and ac.checksum = p.checksum) as good,
          (select count(distinct al.site_id) from physical_copy ac join data_location al on al.id = ac.data_location_id
           where ac.raw_data_package_id = p.id and al.type = 'LONG_TERM_ARCHIVE' and ac.status = 'PRESENT'
             and ac.verified_at is not null and ac.checksum = p.checksum) as good_sites,
          exists (
            select 1 from data_location al join site s on s.id = al.site_id
            where s.name = ${site} and al.type = 'LONG_TERM_ARCHIVE'
              and not exists (select 1 from physical_copy ac where ac.raw_data_package_id = p.id
                              and ac.data_location_id = al.id and ac.status <> 'DELETED')) as archive_here_lacks_it
        from here join raw_data_package p on p.id = here.id
        where p.status in ('in_progress', 'completed') and p.checksum is not null
          and (exists (
            select 1 from physical_copy c join data_location l on l.id = c.data_location_id join site s on s.id = l.site_id
            where c.raw_data_package_id = p.id and c.data_location_id in ${
              sql.in(buffers)
            } and s.name = ${site} and l.type = 'BUFFER' and l.readable
              and c.status = 'PRESENT' and c.verified_at is not null and c.checksum = p.checksum)
            -- its buffer copy here went bad between two archive copies: the next comes from the first
            or (p.status = 'in_progress'
              and exists (select 1 from physical_copy c where c.raw_data_package_id = p.id and c.data_location_id in ${sql.in(buffers)}
                          and c.status in ('CORRUPT', 'MISSING'))
              and ${archivedHere(sql, sql`p`, site)}))
      )
      select id from candidate
      where ((good < ${copies} or good_sites < ${sites}) and archive_here_lacks_it)
         or (status = 'in_progress' and good >= ${copies} and good_sites >= ${sites})
      order by updated_at
      limit 1000`
  })

/** The archiving queue: one job per package, retried with backoff, a job may run six hours. */
const queue = { policy: "stately", retryLimit: 8, retryDelaySeconds: 10, retryBackoff: true, expireInSeconds: 6 * 3600 } as const

/** Enqueues a job per package waiting for its archive copies at the site. */
export const plan = Effect.fn("Archiving.plan")(function* (site: string) {
  const archives = yield* Sites.locationsOf(site, "LONG_TERM_ARCHIVE")
  // No archive here, or none writable (maintenance, circuit open): the packages wait in the buffer.
  if (!archives.some((a) => a.writable)) return 0
  const policy = yield* LifecyclePolicy
  const jobs = yield* JobQueue
  const ready = yield* waiting(site, policy.archiveCopies, policy.archiveSites)
  if (ready.length > 0) yield* jobs.ensureQueue(queueName(site, name), queue)
  return yield* JobBatch.sendMany(queueName(site, name), ready.map((p) => ({ data: { packageId: p.id }, singletonKey: p.id })))
})

/** Archives of the site that can take the package: writable, without a copy of it, with room. */
const archivesWithRoom = (site: string, packageId: string, bytes: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const storages = yield* Storages
    const holding = new Set(
      (yield* sql<{ locationId: string }>`
        select data_location_id as location_id from physical_copy where raw_data_package_id = ${packageId} and status <> 'DELETED'`).map((
        r
      ) => r.locationId)
    )
    const out: Array<Sites.Location> = []
    for (const loc of yield* Sites.locationsOf(site, "LONG_TERM_ARCHIVE")) {
      if (!loc.writable || holding.has(loc.id)) continue
      if (loc.capacityBytes !== null && Number(yield* Sites.usedBytes(loc.id)) + bytes > loc.capacityBytes) continue
      const space = yield* Effect.flatMap(storages.of(loc), (s) => s.space()).pipe(Effect.option)
      if (space._tag === "Some" && space.value.freeBytes < bytes) continue
      out.push(loc)
    }
    return out
  })

/**
 * Streams the package from the buffer into one archive and verifies it there. A retry after a
 * crash between the write and its record finds the object already stored with our checksum and
 * does not write it again.
 */
const copyTo = (pkg: PackageRow, source: { readonly location: Sites.Location; readonly path: string }, archive: Sites.Location) =>
  Effect.gen(function* () {
    const storages = yield* Storages
    const from = yield* storages.of(source.location)
    const to = yield* storages.of(archive)
    const checksum = pkg.checksum as never
    const stored = yield* to.stat(pkg.relativePath).pipe(Effect.option)
    const already = stored._tag === "Some" && stored.value.size === pkg.sizeBytes && stored.value.checksum === pkg.checksum
    if (!already) {
      if (from.capabilities.nearline) yield* from.recall([source.path])
      yield* to.put(pkg.relativePath, from.get(source.path), { checksum, overwrite: true, sizeHint: pkg.sizeBytes })
    }
    if (to.capabilities.nearline) {
      // Reading a tape back would be a recall of what was just written; the put verified the
      // stream it wrote and the catalog must agree on size and checksum.
      const info = yield* to.stat(pkg.relativePath)
      if (info.size !== pkg.sizeBytes || (info.checksum !== undefined && info.checksum !== pkg.checksum)) {
        return yield* Effect.fail(
          new Error(`archive ${archive.name} holds ${info.size} bytes ${info.checksum ?? ""} for ${pkg.relativePath}`)
        )
      }
    } else {
      yield* to.verify(pkg.relativePath, checksum)
    }
  })

/** Records one verified archive copy and, when it is the last one needed, the package completed. */
const record = (site: string, pkg: PackageRow, archive: Sites.Location, target: Target) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql.withTransaction(
      Effect.gen(function* () {
        yield* Repositories.physicalCopies.insert({
          rawDataFileId: null,
          rawDataPackageId: pkg.id,
          dataTransferPackageId: null,
          dataLocationId: archive.id,
          path: pkg.relativePath,
          sizeBytes: pkg.sizeBytes,
          checksum: pkg.checksum,
          status: "PRESENT",
          verifiedAt: yield* DateTime.now
        } as never, { actor: `worker:${site}`, details: { action: "archived" } }).pipe(
          // Recorded already by an earlier attempt that crashed after its commit.
          Effect.catchIf((e) => e instanceof ConstraintError.ConstraintError && e.reason === "UniqueViolation", () => Effect.void)
        )
        yield* completeIfArchived(site, pkg.id, target)
      })
    )
  })

/** What the policy asks of a package's archive copies: how many, at how many distinct sites. */
interface Target {
  readonly copies: number
  readonly sites: number
}

/** Whether good copies meet the target. */
const meets = (copies: ReadonlyArray<{ readonly siteId: string }>, target: Target) =>
  copies.length >= target.copies && new Set(copies.map((c) => c.siteId)).size >= target.sites

/**
 * Moves the package to completed (ARCHIVED) once it has the required verified archive copies at
 * the required sites, and stamps its `archived_at` in the same transaction: the cleanup planner
 * starts from the packages whose stamp plus a location's minimum age has just passed.
 */
const completeIfArchived = (site: string, packageId: Ids.RawDataPackageId, target: Target) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const copies = yield* Retention.verifiedArchiveCopies(packageId)
    if (!meets(copies, target)) return false
    const moved = yield* Transitions.transition({
      entity: "RawDataPackage",
      id: packageId,
      from: "in_progress",
      to: "completed",
      actor: `worker:${site}`,
      details: { archiveCopies: copies.map((c) => c.id) }
    }).pipe(
      Effect.as(true),
      Effect.catchIf((e) => e._tag === "TransitionError" && e.reason === "StateConflict", () => Effect.succeed(false))
    )
    if (moved) yield* sql`update raw_data_package set archived_at = now() where id = ${packageId} and archived_at is null`
    return true
  })

/** Copies one package to as many archives as it still needs. */
export const work = Effect.fn("Archiving.work")(function* (site: string, data: unknown) {
  const { packageId } = yield* Schema.decodeUnknown(Job)(data)
  const sql = yield* SqlClient.SqlClient
  const policy = yield* LifecyclePolicy
  const rows = yield* sql<PackageRow>`
    select id, status::text as status, relative_path, size_bytes, checksum from raw_data_package
    where id = ${packageId} and checksum is not null`
  if (rows.length === 0 || rows[0].status === "failed") return
  const pkg = { ...rows[0], sizeBytes: Number(rows[0].sizeBytes) }
  const target: Target = { copies: policy.archiveCopies, sites: policy.archiveSites }
  const good = yield* Retention.verifiedArchiveCopies(packageId)
  const have = good.length
  if (meets(good, target)) {
    if (pkg.status === "in_progress") yield* sql.withTransaction(completeIfArchived(site, packageId, target))
    return
  }
  // From a good buffer copy here; with none (it went bad after the first archive copy here was
  // written), from a good archive copy here, online before tape.
  const sources = yield* sql<{ locationId: string; path: string }>`
    select c.data_location_id as location_id, c.path from physical_copy c
    join data_location l on l.id = c.data_location_id join site s on s.id = l.site_id
    where c.raw_data_package_id = ${packageId} and s.name = ${site} and l.type in ('BUFFER', 'LONG_TERM_ARCHIVE') and l.readable
      and c.status = 'PRESENT' and c.verified_at is not null and c.checksum = ${pkg.checksum}
    order by l.type = 'LONG_TERM_ARCHIVE', l.technology = 'tape', l.priority, l.name limit 1`
  if (sources.length === 0) {
    return yield* Effect.logWarning(`package ${packageId} has no verified copy in a buffer or an archive at ${site}; job dropped`)
  }
  const source = { location: yield* Sites.location(sources[0].locationId), path: sources[0].path }
  const archives = yield* archivesWithRoom(site, packageId, pkg.sizeBytes)
  // A site holds at most one copy per archive location; copies still missing after this site's,
  // and sites still missing, are made further on: bundling sends the package along the routes.
  const goodSites = new Set(good.map((c) => c.siteId)).size
  const newSite = good.every((c) => c.siteName !== site) && goodSites < policy.archiveSites
  const holding = yield* sql<{ n: number }>`
    select count(distinct c.data_location_id)::int as n from physical_copy c join data_location l on l.id = c.data_location_id
    join site s on s.id = l.site_id
    where c.raw_data_package_id = ${packageId} and c.status <> 'DELETED' and l.type = 'LONG_TERM_ARCHIVE' and s.name = ${site}`
  const lacking = (yield* Sites.locationsOf(site, "LONG_TERM_ARCHIVE")).length - holding[0].n
  // copies kept back for the sites still to come, one each, so the total stays at the target
  const sitesAfter = Math.max(0, policy.archiveSites - goodSites - (newSite ? 1 : 0))
  const toWrite = Math.min(lacking, Math.max(policy.archiveCopies - have - sitesAfter, newSite ? 1 : 0))
  const movesOn = have + toWrite < policy.archiveCopies || goodSites + (newSite && toWrite > 0 ? 1 : 0) < policy.archiveSites
  let needed = toWrite
  let lastError: unknown = new Error(`no LONG_TERM_ARCHIVE at ${site} is writable with room for package ${packageId}; it waits`)
  for (const archive of archives) {
    if (needed <= 0) break
    const result = yield* copyTo(pkg, source, archive).pipe(Effect.either)
    if (result._tag === "Left") {
      lastError = result.left
      yield* Effect.logWarning(`package ${packageId}: archive ${archive.name} failed, trying the next`, result.left)
      continue
    }
    yield* record(site, pkg, archive, target)
    needed--
  }
  if (needed > 0) return yield* Effect.fail(lastError)
  if (movesOn) {
    yield* Effect.logInfo(
      `package ${packageId} archived at ${site}; it moves on to archives at other sites (${policy.archiveCopies} copies at ${policy.archiveSites} sites)`
    )
  }
})

/** The archiving stage. */
export const stage: Stage<SqlClient.SqlClient | JobQueue | Storages | LifecyclePolicy> = {
  name,
  plan,
  work,
  queue,
  concurrency: 2
}
