/**
 * Repair (DESIGN §4 invariant 8): an archive copy found CORRUPT or MISSING (CopyFindings) is
 * copied again from a good copy of the same package at the same site (another archive, or a
 * buffer copy still PRESENT and verified; a site with none is sent the package by a site that has
 * one, or writes it again from its files where they were filed there, see RepairForward), verified where it was written, and recorded: in one
 * transaction the bad row goes to DELETED (event `{ action: "repaired", replacement, source }`)
 * and the new row is inserted PRESENT with its `verifiedAt`, in that order, since a location
 * holds one live copy of a package and one live row per path.
 *
 * A site that archived a package it must still send on (more `archiveSites` along the routes)
 * sends it from its buffer copy; when that copy goes bad first, it is repaired the same way from
 * the site's archive, in its own BUFFER (or another of the site's buffers), never in an archive.
 *
 * The new copy goes to the bad copy's location under the same key when that location is
 * writable and has room, written by the driver's atomic, verified `put` over the bad object: a
 * disk location renames a complete temporary file over it, S3 replaces the object whole, a tape
 * appends a new tape file and moves the catalog entry to it (nothing is overwritten in place;
 * the old tape file is space reclaimed when the volume is repacked). Until that commit the bad
 * object stays where it was, so a killed repair leaves either the bad object or the good one,
 * never a part. Objects are not quarantined: the finding's event keeps what was seen, and a
 * quarantined object would hold archive space and appear as dark data for ever. When the bad
 * copy's location cannot take the copy (not writable, full), another archive of the site that
 * holds no copy of the package does, and the bad object is deleted where deletions are allowed
 * (else left for the inventory to report).
 *
 * A kill at any instant converges: before the put the bad object is untouched; after it and
 * before the record, the copy is still bad, so the retry writes it again (in place, where a
 * stored checksum proves nothing about the bytes) or verifies what it finds (at another archive)
 * and records it.
 */
import { Ids } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import * as JobBatch from "../engine/JobBatch.js"
import { expedite, JobQueue, type QueueOptions } from "../engine/JobQueue.js"
import type { PackageRow } from "./Archiving.js"
import { repairOne } from "./internal/RepairCopy.js"
import * as RepairForward from "./RepairForward.js"
import * as SentFrom from "./SentFrom.js"
import { queueName, type Stage } from "./Stage.js"
import { Storages } from "./Storages.js"

/** The stage's name and queue suffix. */
export const name = "repair"

const Job = Schema.Union(Schema.Struct({ packageId: Ids.RawDataPackageId }), RepairForward.Job, RepairForward.RepackJob)

/** Repair attempts that failed (a job that failed and is retried), per site. */
export const failures = Metric.counter("ccat_repair_failures_total", {
  description: "Repair jobs this process ran that failed (and are retried with backoff), per site.",
  incremental: true
})

/** A CORRUPT or MISSING copy to repair: an archive copy, or a buffer copy still to be sent on. */
export interface BadCopy {
  readonly id: string
  readonly status: "CORRUPT" | "MISSING"
  readonly locationId: string
  readonly location: string
  readonly site: string
  readonly path: string
  readonly sizeBytes: number
}

/** A good copy to repair from: PRESENT, verified, with the package's checksum, at a readable archive or buffer. */
export interface GoodCopy {
  readonly id: string
  readonly locationId: string
  readonly location: string
  readonly site: string
  readonly path: string
}

/**
 * SQL: the site `here` is still to send the package `pkg` on from its buffer: archived here but
 * not yet everywhere it must be (in_progress, with a good archive copy here), in no bundle from
 * here yet, and a route leaves from or through the site. Bundling sends only good buffer copies,
 * so a bad buffer copy of such a package is repaired from the archive here like a bad archive
 * copy; nothing else would send it on (the site it came from sees a good archive copy here).
 */
const stillToSendOn = (sql: SqlClient.SqlClient, pkg: Fragment, here: Fragment) => sql`
  (${pkg}.status = 'in_progress'
    and exists (select 1 from route r where r.from_site_id = ${here} or r.via_site_id = ${here})
    and ${RepairForward.goodAt(sql, pkg, here, "LONG_TERM_ARCHIVE")}
    and not ${SentFrom.inBundleFrom(sql, pkg, here)})`

const badAt = (packageId: string, site: string | undefined, which: (sql: SqlClient.SqlClient) => Fragment) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<BadCopy>`
      select c.id, c.status::text as status, c.data_location_id as location_id, l.name as location, s.name as site, c.path,
             c.size_bytes::float8 as size_bytes
      from physical_copy c join data_location l on l.id = c.data_location_id join site s on s.id = l.site_id
      join raw_data_package p on p.id = c.raw_data_package_id
      where c.raw_data_package_id = ${packageId} and c.status in ('CORRUPT', 'MISSING') and ${which(sql)}
        and (${site ?? null}::text is null or s.name = ${site ?? null})
      order by s.name, l.priority, l.name`)

/** The CORRUPT or MISSING archive copies of a package, at one site or everywhere. */
export const badCopies = (packageId: string, site?: string) => badAt(packageId, site, (sql) => sql`l.type = 'LONG_TERM_ARCHIVE'`)

/** The CORRUPT or MISSING buffer copies of a package at a site that is still to send it on (`stillToSendOn`). */
export const badBufferCopies = (packageId: string, site: string) =>
  badAt(packageId, site, (sql) => sql`l.type = 'BUFFER' and ${stillToSendOn(sql, sql`p`, sql`s.id`)}`)

/** Good copies of a package at a site to repair from: archives before buffers, by priority. */
export const goodSources = (packageId: string, site: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<GoodCopy>`
      select c.id, c.data_location_id as location_id, l.name as location, s.name as site, c.path
      from physical_copy c join data_location l on l.id = c.data_location_id join site s on s.id = l.site_id
      join raw_data_package p on p.id = c.raw_data_package_id
      where c.raw_data_package_id = ${packageId} and s.name = ${site} and l.type in ('LONG_TERM_ARCHIVE', 'BUFFER') and l.readable
        and c.status = 'PRESENT' and c.verified_at is not null and c.checksum = p.checksum
      order by l.type = 'BUFFER', l.priority, l.name`)

/**
 * Packages with a bad archive copy at the site and a writable archive there, or a bad buffer copy
 * of a package the site is still to send on, and a good copy there to repair from.
 */
const needing = (site: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: Ids.RawDataPackageId }>`
      select distinct p.id from raw_data_package p
      join physical_copy b on b.raw_data_package_id = p.id and b.status in ('CORRUPT', 'MISSING')
      join data_location bl on bl.id = b.data_location_id
      join site s on s.id = bl.site_id
      where s.name = ${site} and p.checksum is not null and p.status <> 'failed'
        and ((bl.type = 'LONG_TERM_ARCHIVE'
            and exists (select 1 from data_location w where w.site_id = bl.site_id and w.type = 'LONG_TERM_ARCHIVE' and w.writable))
          or (bl.type = 'BUFFER' and ${stillToSendOn(sql, sql`p`, sql`s.id`)}))
        and exists (
          select 1 from physical_copy g join data_location gl on gl.id = g.data_location_id
          where g.raw_data_package_id = p.id and gl.site_id = bl.site_id and gl.type in ('LONG_TERM_ARCHIVE', 'BUFFER') and gl.readable
            and g.status = 'PRESENT' and g.verified_at is not null and g.checksum = p.checksum)
      limit 1000`)

const queueOptions: QueueOptions = {
  policy: "stately",
  retryLimit: 8,
  retryDelaySeconds: 30,
  retryBackoff: true,
  expireInSeconds: 6 * 3600
}

/**
 * Enqueues a repair job per package that needs and can get one at the site; its three reads go
 * out together and its jobs in one statement (each a round trip from a site far from the ops-db).
 */
export const plan = Effect.fn("Repair.plan")(function* (site: string) {
  const jobs = yield* JobQueue
  // Besides the packages to repair here, those another site has nothing left to repair from:
  // sent on from here, from an archive copy or written again from the files filed here
  // (RepairForward); and those with nothing left here but their files, written again for here.
  const [repair, forward, repack, repackHere] = yield* Effect.all([
    needing(site),
    RepairForward.toBuffer(site),
    RepairForward.toRepack(site),
    RepairForward.toRepackHere(site)
  ], { concurrency: 4 })
  const repackIds = [...new Set([...repack, ...repackHere].map((p) => p.id))]
  const batch: Array<JobBatch.Send> = [
    ...repair.map((p) => ({ data: { packageId: p.id }, singletonKey: p.id })),
    ...forward.map((p) => ({ data: { packageId: p.id, forward: true }, singletonKey: `${p.id}:forward` })),
    ...repackIds.map((id) => ({ data: { packageId: id, repack: true }, singletonKey: `${id}:repack` }))
  ]
  if (batch.length > 0) yield* jobs.ensureQueue(queueName(site, name), queueOptions)
  return yield* JobBatch.sendMany(queueName(site, name), batch)
})

/**
 * Makes the repair of a package at a site start now (or, with `sendOn`, its sending on to a site
 * in need: from the site's archive, or written again from its files, which `repack` also does
 * for the site's own repair): sends its job when a job engine
 * runs in this process, and moves a job waiting for its backoff forward. Returns whether a job was sent
 * or moved; without either the site's planner sends it within its next round.
 */
export const startNow = (site: string, packageId: string, sendOn?: "forward" | "repack") =>
  Effect.gen(function* () {
    const jobs = yield* Effect.serviceOption(JobQueue)
    const key = sendOn === undefined ? packageId : `${packageId}:${sendOn}`
    if (jobs._tag === "Some") {
      // The API process may run no worker of the site, so the queue may not exist yet.
      yield* jobs.value.ensureQueue(queueName(site, name), queueOptions)
      const job = sendOn === undefined ? { packageId } : { packageId, [sendOn]: true }
      const sent = yield* jobs.value.send(queueName(site, name), job, { singletonKey: key })
      if (sent !== null) return true
    }
    return (yield* expedite(queueName(site, name), key)) > 0
  })

/**
 * Repairs every bad copy of one package at the site, archive copies and a buffer copy still to be
 * sent on (a repack job first writes the package again from its files into a buffer here, and
 * goes on to repair from it when this site's copies are the bad ones).
 */
export const work = Effect.fn("Repair.work")(function* (site: string, data: unknown) {
  const job = yield* Schema.decodeUnknown(Job)(data)
  const { packageId } = job
  if ("forward" in job) return yield* RepairForward.work(site, packageId)
  // written for a site in need elsewhere, the site has no bad copy of its own and stops below
  if ("repack" in job && !(yield* RepairForward.repack(site, packageId))) return
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<PackageRow>`
    select id, status::text as status, relative_path, size_bytes, checksum from raw_data_package
    where id = ${packageId} and checksum is not null`
  if (rows.length === 0 || rows[0].status === "failed") return
  const pkg = { ...rows[0], sizeBytes: Number(rows[0].sizeBytes) }
  const bad = [...yield* badCopies(packageId, site), ...yield* badBufferCopies(packageId, site)]
  if (bad.length === 0) return
  const sources = yield* goodSources(packageId, site)
  if (sources.length === 0) {
    return yield* Effect.logWarning(
      `package ${packageId} has ${bad.length} bad copies at ${site} and no good copy there to repair them from`
    )
  }
  let lastError: unknown
  for (const b of bad) {
    const result = yield* repairOne(site, pkg, { ...b, sizeBytes: Number(b.sizeBytes) }, sources).pipe(Effect.either)
    if (result._tag === "Left") lastError = result.left
  }
  if (lastError !== undefined) return yield* Effect.fail(lastError)
}, (effect, site) => Effect.tapError(effect, () => Metric.increment(Metric.tagged(failures, "site", site))))

/** Packages below their copy target, with their good and bad archive copy counts. */
export interface BelowTarget {
  readonly id: Ids.RawDataPackageId
  readonly status: string
  readonly goodCopies: number
  readonly badCopies: number
}

const belowTargetSql = `
  select p.id, p.status::text as status,
    count(c.id) filter (where c.status = 'PRESENT' and c.verified_at is not null and c.checksum = p.checksum)::int as good_copies,
    count(c.id) filter (where c.status in ('CORRUPT', 'MISSING'))::int as bad_copies
  from raw_data_package p
  left join physical_copy c on c.raw_data_package_id = p.id
    and c.data_location_id in (select id from data_location where type = 'LONG_TERM_ARCHIVE')
  where p.status = 'completed'
  group by p.id
  having count(c.id) filter (where c.status = 'PRESENT' and c.verified_at is not null and c.checksum = p.checksum) < $1`

/**
 * Archived (completed) packages with fewer good archive copies than `required` (the policy's
 * `archiveCopies`): a package stays ARCHIVED when a copy goes bad, and this is where it shows.
 */
export const belowTarget = Effect.fn("Repair.belowTarget")(function* (required: number, limit = 1000) {
  const sql = yield* SqlClient.SqlClient
  return yield* sql.unsafe<BelowTarget>(`${belowTargetSql} order by p.id limit $2`, [required, limit])
})

/** How many archived packages are below their copy target. */
export const belowTargetCount = Effect.fn("Repair.belowTargetCount")(function* (required: number) {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql.unsafe<{ n: number }>(`select count(*)::int as n from (${belowTargetSql}) x`, [required])
  return row.n
})

/** The repair stage. */
export const stage: Stage<SqlClient.SqlClient | JobQueue | Storages> = {
  name,
  plan,
  work,
  queue: queueOptions,
  concurrency: 1
}
