/**
 * Repair from another site. Repair replaces a bad archive copy from a good copy at the same site;
 * a site whose every copy of a package went bad has nothing to repair from, and the good copies
 * are elsewhere. Such a site is sent the package again along the routes, as it was the first time:
 * a site that holds a good copy and has a route to it puts the package in one of its BUFFERs (from
 * its archive, when no buffer copy is left), bundling sends it, arrival unpacks it into a buffer of
 * the site that needs it, and that site's repair then finds a good copy there and repairs as usual.
 *
 * When no site that a route leads from holds a good copy, but the site where the package was
 * written still has all its files at SOURCE (nothing deletes them while the package lacks good
 * copies), that site writes the package again from them: the packager is deterministic (members
 * in their order, a fixed mtime), so the same files give the same bytes, and the result is kept
 * only when its checksum is the one recorded; a file that no longer matches its filed checksum is
 * recorded CORRUPT or MISSING at SOURCE, and nothing is sent.
 *
 * The files are wherever they were filed: at SOURCE for an instrument's package, at the PROCESSING
 * location a pipeline wrote them to for a product's. The site holding them also writes the
 * package again for itself, when its own archive copies are the bad ones and it holds no good copy
 * (a product filed and archived at one site): the result goes into its buffer, and the same job
 * then repairs the archive copies from it as from any buffer copy.
 *
 * A package that is not archived yet is sent again the same way when its buffer copy at the site
 * that is to archive it went bad before it was archived there, or at a relay without an archive
 * before the relay sent it on (the sending site still holds its good buffer copy, since nothing
 * deletes it before the package is archived): arrival replaces the bad copy, and archiving, or
 * the relay's bundling, goes on from the new one.
 *
 * One forward per finding: once a bundle holding the package has left a site after the bad copy
 * was found, that site does not send it again for the same finding; the forwarded copy arriving
 * ends the need, since the site then holds a good (buffer) copy.
 */
import { EventLog, Ids } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as ArchiveRecord from "./ArchiveRecord.js"
import type { PackageRow } from "./Archiving.js"
import * as BufferWrite from "./BufferWrite.js"
import * as CopyFindings from "./CopyFindings.js"
import * as Packager from "./Packager.js"
import * as SentFrom from "./SentFrom.js"
import * as Sites from "./Sites.js"
import { Storages } from "./Storages.js"

/**
 * SQL: the package `pkg` (a `raw_data_package` row alias) has a CORRUPT or MISSING archive copy at
 * a site other than `here` (a `site.id` expression), or, while it is not archived yet, a CORRUPT
 * or MISSING buffer copy there (it arrived, and went bad before that site archived it or sent it
 * on), and that site holds no good copy of it at all (archive or buffer), and either has a
 * writable archive and is the destination of a route leaving from or through `here`, or is a
 * relay without an archive that a route from `here` passes through and that has not sent the
 * package on yet.
 */
export const neededFrom = (sql: SqlClient.SqlClient, pkg: Fragment, here: Fragment) => sql`
  exists (
    select 1 from physical_copy b join data_location bl on bl.id = b.data_location_id
    where b.raw_data_package_id = ${pkg}.id and b.status in ('CORRUPT', 'MISSING')
      and (bl.type = 'LONG_TERM_ARCHIVE' or (bl.type = 'BUFFER' and ${pkg}.status = 'in_progress'))
      and bl.site_id <> ${here}
      and not exists (
        select 1 from physical_copy g join data_location gl on gl.id = g.data_location_id
        where g.raw_data_package_id = ${pkg}.id and gl.site_id = bl.site_id and gl.type in ('LONG_TERM_ARCHIVE', 'BUFFER')
          and g.status = 'PRESENT' and g.verified_at is not null and g.checksum = ${pkg}.checksum)
      and ((exists (select 1 from data_location w where w.site_id = bl.site_id and w.type = 'LONG_TERM_ARCHIVE' and w.writable)
          and exists (select 1 from route r where r.to_site_id = bl.site_id and (r.from_site_id = ${here} or r.via_site_id = ${here})))
        or (bl.type = 'BUFFER'
          and not exists (select 1 from data_location a where a.site_id = bl.site_id and a.type = 'LONG_TERM_ARCHIVE')
          and exists (select 1 from route r where r.via_site_id = bl.site_id and r.from_site_id = ${here})
          and not ${SentFrom.inBundleFrom(sql, pkg, sql`bl.site_id`)})))`

/**
 * SQL: a bundle holding `pkg` is on its way from the site `here`, or left it after the package's
 * latest bad copy was found (an archive copy anywhere, or a buffer copy at another site), so this
 * finding was answered already, or failed (an operator retries it).
 */
export const forwardedFrom = (sql: SqlClient.SqlClient, pkg: Fragment, here: Fragment) => sql`
  exists (
    select 1 from data_transfer_package_member m join data_transfer_package d on d.id = m.data_transfer_package_id
    where m.raw_data_package_id = ${pkg}.id
      and (d.status <> 'completed' or (
        exists (select 1 from data_transfer t join data_location fl on fl.id = t.from_location_id
                where t.data_transfer_package_id = d.id and fl.site_id = ${here})
        and d.updated_at > (
          select max(b.updated_at) from physical_copy b join data_location bl on bl.id = b.data_location_id
          where b.raw_data_package_id = ${pkg}.id and b.status in ('CORRUPT', 'MISSING')
            and (bl.type = 'LONG_TERM_ARCHIVE' or (bl.type = 'BUFFER' and bl.site_id <> ${here}))))))`

/** SQL: `pkg` has a good copy (PRESENT, verified, with its checksum) at a readable location of `type` of the site `here`. */
export const goodAt = (sql: SqlClient.SqlClient, pkg: Fragment, here: Fragment, type: "BUFFER" | "LONG_TERM_ARCHIVE") => sql`
  exists (
    select 1 from physical_copy g join data_location gl on gl.id = g.data_location_id
    where g.raw_data_package_id = ${pkg}.id and gl.site_id = ${here} and gl.type = ${type} and gl.readable
      and g.status = 'PRESENT' and g.verified_at is not null and g.checksum = ${pkg}.checksum)`

/** SQL: `pkg` has a live copy in a BUFFER of the site `here` (a good one, or one a reader is still settling). */
const inBufferAt = (sql: SqlClient.SqlClient, pkg: Fragment, here: Fragment) => sql`
  exists (
    select 1 from physical_copy c join data_location cl on cl.id = c.data_location_id
    where c.raw_data_package_id = ${pkg}.id and cl.site_id = ${here} and cl.type = 'BUFFER' and c.status <> 'DELETED')`

/** The ARCHIVED packages `site` is to send on for this finding and that match `also` (on `p`, the package, and `s`, the site). */
const candidates = (site: string, also: (sql: SqlClient.SqlClient) => Fragment, packageId?: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: Ids.RawDataPackageId }>`
      select p.id from raw_data_package p, site s
      where s.name = ${site} and p.status = 'completed' and p.checksum is not null
        and (${packageId ?? null}::uuid is null or p.id = ${packageId ?? null}::uuid)
        -- the few packages with a bad copy somewhere, by their own index, rather than every archived one
        and p.id in (select b.raw_data_package_id from physical_copy b where b.status in ('CORRUPT', 'MISSING') and b.raw_data_package_id is not null)
        and ${neededFrom(sql, sql`p`, sql`s.id`)}
        and not ${forwardedFrom(sql, sql`p`, sql`s.id`)}
        and ${also(sql)}
      limit 1000`)

/** The repair queue's job that brings a package from the site's archive into its buffer, to be sent on. */
export const Job = Schema.Struct({ packageId: Ids.RawDataPackageId, forward: Schema.Literal(true) })

/** The repair queue's job that writes a package again from its files at SOURCE, to be sent on. */
export const RepackJob = Schema.Struct({ packageId: Ids.RawDataPackageId, repack: Schema.Literal(true) })

/**
 * ARCHIVED packages another site needs from here that have a good archive copy here but no good
 * copy in a buffer here, and no bundle on its way or sent for this finding.
 */
export const toBuffer = (site: string, packageId?: string) =>
  candidates(
    site,
    (sql) => sql`${goodAt(sql, sql`p`, sql`s.id`, "LONG_TERM_ARCHIVE")} and not ${inBufferAt(sql, sql`p`, sql`s.id`)}`,
    packageId
  )

/**
 * Copies an ARCHIVED package from a good archive copy of the site into the first of its BUFFERs
 * with room, verified there, and records the buffer copy: bundling then sends it to the site that
 * needs it. A job for a package no longer needed, or already in a buffer here, does nothing.
 */
export const work = (site: string, packageId: Ids.RawDataPackageId) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const storages = yield* Storages
    if ((yield* toBuffer(site, packageId)).length === 0) return
    const [pkg] = yield* sql<PackageRow>`
      select id, status::text as status, relative_path, size_bytes, checksum from raw_data_package where id = ${packageId}`
    const sizeBytes = Number(pkg.sizeBytes)
    const sources = yield* sql<{ locationId: string; path: string; location: string }>`
      select c.data_location_id as location_id, c.path, l.name as location from physical_copy c
      join data_location l on l.id = c.data_location_id join site s on s.id = l.site_id
      where c.raw_data_package_id = ${packageId} and s.name = ${site} and l.type = 'LONG_TERM_ARCHIVE' and l.readable
        and c.status = 'PRESENT' and c.verified_at is not null and c.checksum = ${pkg.checksum}
      order by l.technology = 'tape', l.priority, l.name`
    const buffers = yield* BufferWrite.withRoom(site, sizeBytes)
    if (buffers.length === 0) {
      return yield* Effect.fail(new Error(`no BUFFER at ${site} is writable with room to send package ${packageId} on for a repair`))
    }
    let lastError: unknown
    for (const source of sources) {
      const from = yield* storages.of(yield* Sites.location(source.locationId))
      const buffer = buffers[0]
      const to = yield* storages.of(buffer)
      const copied = yield* Effect.gen(function* () {
        if (from.capabilities.nearline) yield* from.recall([source.path])
        yield* to.put(pkg.relativePath, from.get(source.path), { checksum: pkg.checksum as never, overwrite: true, sizeHint: sizeBytes })
        return yield* to.verify(pkg.relativePath, pkg.checksum as never)
      }).pipe(Effect.either)
      if (copied._tag === "Left") {
        lastError = copied.left
        yield* Effect.logWarning(
          `package ${packageId}: copying from ${source.location} into ${buffer.name} to send it on failed`,
          copied.left
        )
        // A source whose bytes are wrong is the audit's to find and mark: the next one is tried.
        continue
      }
      const identity = yield* ArchiveRecord.identityOf(buffer, pkg.relativePath)
      yield* sql`
        with copy as (
          insert into physical_copy (raw_data_package_id, data_location_id, path, size_bytes, checksum, status, verified_at, identity)
          values (${packageId}, ${buffer.id}, ${pkg.relativePath}, ${sizeBytes}, ${pkg.checksum}, 'PRESENT', now(), ${identity})
          returning id, status),
        created as (${
          EventLog.appendFrom(sql, {
            kind: "PhysicalCopy",
            rows: "copy",
            from: null,
            to: { column: "status" },
            actor: `worker:${site}`,
            details: { action: "copied to send on", from: source.location }
          })
        })
        select id from copy`
      return yield* Effect.logInfo(
        `package ${packageId}: copied from ${source.location} into ${buffer.name}, to be sent to the site whose copies went bad`
      )
    }
    return yield* Effect.fail(lastError ?? new Error(`package ${packageId} has no good archive copy at ${site} to send on`))
  })

/**
 * SQL: every file of `pkg` is PRESENT where it was filed (SOURCE, or PROCESSING for a product's),
 * at a readable location of the site `here`.
 */
const allAtSource = (sql: SqlClient.SqlClient, pkg: Fragment, here: Fragment) => sql`
  (exists (select 1 from raw_data_file f where f.raw_data_package_id = ${pkg}.id)
    and not exists (
      select 1 from raw_data_file f
      where f.raw_data_package_id = ${pkg}.id and not exists (
        select 1 from physical_copy sc join data_location sl on sl.id = sc.data_location_id
        where sc.raw_data_file_id = f.id and sc.data_location_id = f.source_location_id and sc.status = 'PRESENT'
          and sl.site_id = ${here} and sl.readable)))`

/**
 * ARCHIVED packages another site needs from here that have no good copy here at all (archive or
 * buffer) and no bundle on its way or sent for this finding, but every file still PRESENT at a
 * readable SOURCE location here.
 */
export const toRepack = (site: string, packageId?: string) =>
  candidates(site, (sql) => sql`
    not ${goodAt(sql, sql`p`, sql`s.id`, "LONG_TERM_ARCHIVE")} and not ${inBufferAt(sql, sql`p`, sql`s.id`)}
    and ${allAtSource(sql, sql`p`, sql`s.id`)}`, packageId)

/**
 * SQL: `pkg` has a CORRUPT or MISSING archive copy at the site `here`, which has a writable archive
 * and holds no good copy of it at all (archive or buffer) to repair from.
 */
const neededAt = (sql: SqlClient.SqlClient, pkg: Fragment, here: Fragment) => sql`
  (exists (
    select 1 from physical_copy b join data_location bl on bl.id = b.data_location_id
    where b.raw_data_package_id = ${pkg}.id and bl.site_id = ${here} and bl.type = 'LONG_TERM_ARCHIVE' and b.status in ('CORRUPT', 'MISSING'))
  and exists (select 1 from data_location w where w.site_id = ${here} and w.type = 'LONG_TERM_ARCHIVE' and w.writable)
  and not ${goodAt(sql, pkg, here, "LONG_TERM_ARCHIVE")} and not ${goodAt(sql, pkg, here, "BUFFER")})`

/**
 * ARCHIVED packages whose archive copies here went bad with no good copy here (archive or buffer),
 * no live buffer copy here, and every file still PRESENT where it was filed here: written again
 * from those files for this site's own repair (a product's package, filed at a PROCESSING
 * location of the site that archives it), with the location they were filed at.
 */
export const toRepackHere = (site: string, packageId?: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: Ids.RawDataPackageId; filedAt: string }>`
      select p.id, (select l.name from raw_data_file f join data_location l on l.id = f.source_location_id
                    where f.raw_data_package_id = p.id limit 1) as filed_at
      from raw_data_package p, site s
      where s.name = ${site} and p.status = 'completed' and p.checksum is not null
        and (${packageId ?? null}::uuid is null or p.id = ${packageId ?? null}::uuid)
        and p.id in (select b.raw_data_package_id from physical_copy b where b.status in ('CORRUPT', 'MISSING') and b.raw_data_package_id is not null)
        and ${neededAt(sql, sql`p`, sql`s.id`)}
        and not ${inBufferAt(sql, sql`p`, sql`s.id`)}
        and ${allAtSource(sql, sql`p`, sql`s.id`)}
      limit 1000`)

interface FileRow {
  readonly id: Ids.RawDataFileId
  readonly relativePath: Packager.FileToPackage["relativePath"]
  readonly sizeBytes: number
  readonly checksum: Packager.FileToPackage["checksum"]
  readonly sourceLocationId: string
  readonly sourceCopyId: string
}

/**
 * Writes an ARCHIVED package again from its files where they were filed (SOURCE, or PROCESSING
 * for a product) into a buffer of the site, as packaging wrote it, and records the buffer copy
 * only when the result has the recorded checksum: to be sent to a site in need, or repaired from
 * here when this site's own copies are the bad ones. A file found changed or gone is recorded so
 * where it was filed; a result that differs anyway is removed. Returns whether a buffer copy was
 * recorded.
 */
export const repack = (site: string, packageId: Ids.RawDataPackageId) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const storages = yield* Storages
    const here = (yield* toRepackHere(site, packageId)).length > 0
    if (!here && (yield* toRepack(site, packageId)).length === 0) return false
    const [pkg] = yield* sql<PackageRow & { executedObsUnitId: Ids.ExecutedObsUnitId; instrumentModuleId: Ids.InstrumentModuleId }>`
      select id, status::text as status, relative_path, size_bytes, checksum, executed_obs_unit_id, instrument_module_id
      from raw_data_package where id = ${packageId}`
    const files = yield* sql<FileRow>`
      select f.id, f.relative_path, f.size_bytes, f.checksum, f.source_location_id, c.id as source_copy_id
      from raw_data_file f join physical_copy c on c.raw_data_file_id = f.id and c.data_location_id = f.source_location_id and c.status = 'PRESENT'
      where f.raw_data_package_id = ${packageId} order by f.relative_path, f.id`
    const sizeBytes = Number(pkg.sizeBytes)
    const filedAt = yield* Sites.location(files[0].sourceLocationId)
    // SOURCE, or PROCESSING for a product: said in the events and logs, where an operator looks
    const where = filedAt.type
    const purpose = here ? "to repair from here" : "to send on"
    const source = yield* storages.of(filedAt)
    const buffers = yield* BufferWrite.withRoom(site, sizeBytes)
    if (buffers.length === 0) {
      return yield* Effect.fail(new Error(`no BUFFER at ${site} is writable with room to write package ${packageId} again`))
    }
    const buffer = buffers[0]
    const destination = yield* storages.of(buffer)
    const written = yield* Packager.pack({
      packageId,
      executedObsUnitId: pkg.executedObsUnitId,
      instrumentModuleId: pkg.instrumentModuleId,
      files,
      source,
      destination,
      key: pkg.relativePath,
      overwrite: true
    }).pipe(
      Effect.catchIf(
        (e): e is Packager.PackagingError => e instanceof Packager.PackagingError && e.reason !== "Invalid",
        (e) =>
          Effect.gen(function* () {
            for (const m of e.members) {
              const file = files.find((f) => f.id === m.id)
              if (file === undefined) continue
              yield* CopyFindings.mark(file.sourceCopyId, m.problem === "Corrupt" ? "CORRUPT" : "MISSING", {
                actor: `worker:${site}`,
                by: "repair",
                detail: `read to write package ${packageId} again: ${m.detail}`,
                expectedChecksum: m.expectedChecksum,
                actualChecksum: m.actualChecksum
              })
            }
            return yield* Effect.logError(`package ${packageId} cannot be written again from ${where}: ${e.message}`).pipe(
              Effect.as(undefined)
            )
          })
      )
    )
    if (written === undefined) return false
    if (written.checksum !== pkg.checksum || written.sizeBytes !== sizeBytes) {
      yield* destination.delete(written.key).pipe(Effect.ignore)
      yield* Effect.logError(
        `package ${packageId} written again from ${where} came out ${written.sizeBytes} bytes ${written.checksum}, not the recorded ${sizeBytes} bytes ${pkg.checksum}: removed, ${
          here ? "nothing repaired" : "nothing sent"
        }`
      )
      return false
    }
    const identity = yield* ArchiveRecord.identityOf(buffer, written.key)
    yield* sql`
      with copy as (
        insert into physical_copy (raw_data_package_id, data_location_id, path, size_bytes, checksum, status, verified_at, identity)
        values (${packageId}, ${buffer.id}, ${written.key}, ${sizeBytes}, ${pkg.checksum}, 'PRESENT', now(), ${identity})
        returning id, status),
      created as (${
        EventLog.appendFrom(sql, {
          kind: "PhysicalCopy",
          rows: "copy",
          from: null,
          to: { column: "status" },
          actor: `worker:${site}`,
          details: { action: `written again from ${where} ${purpose}` }
        })
      })
      select id from copy`
    yield* Effect.logInfo(
      `package ${packageId}: written again from its files at ${where} (${filedAt.name}) into ${buffer.name} with its recorded checksum, ${
        here ? "to repair this site's bad archive copies from" : "to be sent to the site whose copies went bad"
      }`
    )
    return true
  })

/** A site that will send a package to a site in need, and what from. */
export interface Sender {
  readonly site: string
  readonly from: "buffer" | "archive" | "source"
}

/**
 * The sites that will send the package on to a site that needs it (this module's rule): from a
 * good buffer copy (bundling sends it), an archive copy (repair brings it into a buffer first) or
 * its files at SOURCE (repair writes it again first).
 */
export const senders = (packageId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<Sender>`
      select s.name as site,
        case when ${goodAt(sql, sql`p`, sql`s.id`, "BUFFER")} then 'buffer'
             when ${goodAt(sql, sql`p`, sql`s.id`, "LONG_TERM_ARCHIVE")} then 'archive'
             else 'source' end as from
      from raw_data_package p, site s
      where p.id = ${packageId} and p.status = 'completed' and p.checksum is not null
        and ${neededFrom(sql, sql`p`, sql`s.id`)}
        and not ${forwardedFrom(sql, sql`p`, sql`s.id`)}
        and (${goodAt(sql, sql`p`, sql`s.id`, "BUFFER")} or ${goodAt(sql, sql`p`, sql`s.id`, "LONG_TERM_ARCHIVE")}
          or ${allAtSource(sql, sql`p`, sql`s.id`)})
      order by s.name`)
