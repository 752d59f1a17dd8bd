/**
 * The bundling worker: writes one DataTransferPackage (a tar of its package tars) into a BUFFER
 * of the site, each member verified against its recorded checksum on the way, then records its
 * PhysicalCopy and enqueues its transfer together. A member that reads badly is read again
 * through its own copy: one shown bad is marked and dropped and the rest bundled again; one that
 * re-reads good leaves the bundle to be written again later.
 */
import { EventLog, Ids, type StorageDriver, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { JobQueue } from "../engine/JobQueue.js"
import * as ArchiveRecord from "./ArchiveRecord.js"
import { name } from "./BundlePlanner.js"
import { deleteSetAside, fail } from "./BundleRecovery.js"
import * as BufferWrite from "./BufferWrite.js"
import * as CopyCheck from "./CopyCheck.js"
import * as CopyFindings from "./CopyFindings.js"
import * as Packager from "./Packager.js"
import * as Routes from "./Routes.js"
import * as Sites from "./Sites.js"
import { queueName } from "./Stage.js"
import { Storages } from "./Storages.js"

/** The stage whose job the bundle enables (Transfer.name; a literal to keep the modules acyclic). */
const transferQueue = "transfer"

const Job = Schema.Struct({ bundleId: Ids.DataTransferPackageId })

interface Member {
  readonly id: Ids.RawDataPackageId
  readonly relativePath: Packager.PackageToBundle["relativePath"]
  readonly sizeBytes: number
  readonly checksum: Packager.PackageToBundle["checksum"]
  readonly path: string
  readonly locationId: string
  /** The buffer that holds it, read with it (no lookup of its own). */
  readonly location: Sites.Location
}

/** The bundle's members with their copies in the site's buffers, in archive order. */
const members = (site: string, bundleId: Ids.DataTransferPackageId) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<Member>`
      select p.id, p.relative_path, p.size_bytes, p.checksum, c.path, c.data_location_id as location_id, ${
        Sites.locationJson(sql)
      } as location
      from data_transfer_package_member m join raw_data_package p on p.id = m.raw_data_package_id
      join physical_copy c on c.raw_data_package_id = p.id and c.status = 'PRESENT'
      join data_location l on l.id = c.data_location_id and l.type = 'BUFFER'
      join site s on s.id = l.site_id and s.name = ${site}
      where m.data_transfer_package_id = ${bundleId}
      order by p.relative_path, p.id`)

/** Records the written bundle and enqueues its transfer, in one statement. */
const commit = (site: string, bundleId: Ids.DataTransferPackageId, buffer: Sites.Location, written: Packager.Written) =>
  Effect.gen(function* () {
    const jobs = yield* JobQueue
    yield* jobs.ensureQueue(queueName(site, transferQueue), Routes.queues.transfer)
    const identity = yield* ArchiveRecord.identityOf(buffer, written.key)
    yield* ArchiveRecord.record({ kind: "DataTransferPackage", id: bundleId }, buffer, written, identity, {
      queue: queueName(site, transferQueue),
      data: { bundleId },
      singletonKey: bundleId
    })
  })

/**
 * Bundling read a member whose bytes disagreed with its record (or were gone), and nothing the
 * re-read showed was wrong with the copy itself: the bundle's write fails and its job is tried
 * again later, with every member kept.
 */
export class UnconfirmedRead extends Schema.TaggedError<UnconfirmedRead>()("UnconfirmedRead", {
  bundleId: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `bundle ${this.bundleId}: a member read badly but its buffer copy re-read good or could not be re-read (${this.detail}); the bundle is written again later`
  }
}

/**
 * Members whose read failed are read once more through their copy's own storage (CopyCheck): one
 * read may fail for reasons that are not the copy's. A copy the re-read shows bad is recorded
 * CORRUPT or MISSING (it counts nowhere from now on), its package marked failed with the reason
 * (an operator repairs it) and dropped from the bundle, and the rest is bundled again. When no
 * member is shown bad, nothing is marked and the bundle's job fails, to be tried again.
 */
const dropFaulty = (
  site: string,
  bundleId: Ids.DataTransferPackageId,
  error: Packager.PackagingError,
  list: ReadonlyArray<Member>,
  sources: ReadonlyMap<string, StorageDriver.Service>
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const jobs = yield* JobQueue
    const shown = yield* Effect.forEach(error.members, (m) => {
      const member = list.find((x) => x.id === m.id)
      if (member === undefined) return Effect.succeed(undefined)
      return CopyCheck.confirm(sources.get(member.locationId)!, member.path, member.checksum).pipe(
        Effect.map((found) => (found === undefined ? undefined : { id: member.id, found }))
      )
    })
    const bad = shown.filter((b): b is NonNullable<typeof b> => b !== undefined)
    const cleared = error.members.filter((m) => !bad.some((b) => b.id === m.id))
    if (cleared.length > 0) {
      yield* Effect.logWarning(
        `bundle ${bundleId}: ${
          cleared.map((m) => `${m.relativePath} ${m.problem}`).join("; ")
        } on the bundle's read, but the copy re-read good or could not be re-read: not marked`
      )
    }
    if (bad.length === 0) return yield* new UnconfirmedRead({ bundleId, detail: error.message })
    yield* sql.withTransaction(
      Effect.gen(function* () {
        for (const { found, id } of bad) {
          const problem = found.finding === "CORRUPT" ? "Corrupt" : "Missing"
          // The copy the bundle read: the package's one PRESENT copy in a buffer of this site.
          const read = yield* sql<{ id: string }>`
            select c.id from physical_copy c join data_location l on l.id = c.data_location_id and l.type = 'BUFFER'
            join site s on s.id = l.site_id and s.name = ${site}
            where c.raw_data_package_id = ${id} and c.status = 'PRESENT'`
          if (read.length === 1) {
            yield* CopyFindings.mark(read[0].id, found.finding, {
              actor: `worker:${site}`,
              by: "bundling",
              detail: found.detail,
              expectedChecksum: found.expectedChecksum,
              actualChecksum: found.actualChecksum
            })
          }
          yield* sql`delete from data_transfer_package_member where data_transfer_package_id = ${bundleId} and raw_data_package_id = ${id}`
          // An ARCHIVED package sent on for a repair elsewhere stays ARCHIVED: only this copy was bad.
          const [pkg] = yield* sql<{ status: string }>`select status::text as status from raw_data_package where id = ${id}`
          if (pkg?.status !== "in_progress") continue
          yield* Transitions.transition({
            entity: "RawDataPackage",
            id,
            from: "in_progress",
            to: "failed",
            actor: `worker:${site}`,
            details: { bundleId, problem, detail: found.detail },
            set: { errorMessage: `buffer copy ${problem}: ${found.detail}` }
          })
        }
        if (bad.length === list.length) {
          yield* fail(site, bundleId, error.message)
        } else {
          yield* Transitions.transition({
            entity: "DataTransferPackage",
            id: bundleId,
            from: "in_progress",
            to: "scheduled",
            actor: `worker:${site}`,
            details: { retry: "without faulty packages", faulty: bad.map((b) => b.id) }
          })
          yield* jobs.send(queueName(site, name), { bundleId }, { singletonKey: `${bundleId}:${Date.now()}` })
        }
      })
    )
    yield* Effect.logError(`bundle ${bundleId}: ${bad.map((b) => b.found.detail).join("; ")}`)
  })

/** Writes one bundle into the buffer that holds its first member (or another with room). */
export const work = Effect.fn("Bundling.work")(function* (site: string, data: unknown) {
  const { bundleId } = yield* Schema.decodeUnknown(Job)(data)
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobQueue
  const storages = yield* Storages
  // The bundle read and, when scheduled, moved to in_progress with its event, in one statement.
  const rows = yield* sql<{ status: string; relativePath: string; hasCopy: boolean; moved: boolean }>`
    with dtp as (
      select d.id, d.status::text as status, d.relative_path,
        exists (select 1 from physical_copy c where c.data_transfer_package_id = d.id and c.status not in ('DELETION_IN_PROGRESS', 'DELETED')) as has_copy
      from data_transfer_package d where d.id = ${bundleId}),
    moved as (
      update data_transfer_package d set status = 'in_progress', updated_at = now()
      from dtp where d.id = dtp.id and dtp.status = 'scheduled' and d.status = 'scheduled'
      returning d.id),
    logged as (${
      EventLog.appendFrom(sql, {
        kind: "DataTransferPackage",
        rows: "moved",
        from: "scheduled",
        to: "in_progress",
        actor: `worker:${site}`
      })
    })
    select status, relative_path, has_copy, exists (select 1 from moved) as moved from dtp`
  if (rows.length === 0) return yield* Effect.logWarning(`bundle ${bundleId} does not exist; job dropped`)
  const dtp = rows[0]
  if (dtp.status === "scheduled" && !dtp.moved) {
    const [now] = yield* sql<{ status: string }>`select status::text as status from data_transfer_package where id = ${bundleId}`
    return yield* new Transitions.TransitionError({
      reason: now === undefined ? "NotFound" : "StateConflict",
      entity: "DataTransferPackage",
      id: bundleId,
      from: "scheduled",
      to: "in_progress",
      ...(now === undefined ? {} : { actual: now.status })
    })
  }
  if (dtp.hasCopy) {
    // Written already (a retry after the commit, or an operator's retry of the bundle): make sure its transfer is queued.
    if (dtp.status === "scheduled" || dtp.status === "in_progress") {
      yield* jobs.ensureQueue(queueName(site, transferQueue), Routes.queues.transfer)
      yield* jobs.send(queueName(site, transferQueue), { bundleId }, { singletonKey: bundleId })
    }
    return
  }
  if (dtp.status !== "scheduled" && dtp.status !== "in_progress") return
  // Independent steps go out together: each is a round trip from a site far from the ops-db.
  const [, list, buffersHere] = yield* Effect.all([
    deleteSetAside(site, bundleId),
    members(site, bundleId),
    Sites.locationsOf(site, "BUFFER")
  ], { concurrency: 3 })
  if (list.length === 0) return yield* Effect.dieMessage(`bundle ${bundleId} has no member in a buffer at ${site}`)
  const sources = new Map<string, StorageDriver.Service>()
  for (const m of list) if (!sources.has(m.locationId)) sources.set(m.locationId, yield* storages.of(m.location))
  const first = list[0].location
  const estimate = list.reduce((n, m) => n + m.sizeBytes + 1536, 1024 * 1024)
  return yield* BufferWrite.toFirst(
    `bundle ${bundleId}`,
    yield* BufferWrite.withRoomAmong(buffersHere, estimate, first),
    (buffer) =>
      Effect.flatMap(storages.of(buffer), (destination) =>
        Packager.bundle({
          bundleId,
          packages: list.map((m) => ({ ...m, sourceKey: `${m.locationId}/${m.path}` })),
          // A member is read from whichever buffer holds it: its key is "<location id>/<path>".
          source: (key: string) => {
            const slash = key.indexOf("/")
            return Packager.read(sources.get(key.slice(0, slash))!, key.slice(slash + 1))
          },
          destination,
          key: dtp.relativePath,
          overwrite: true
        })),
    {
      written: (buffer, written) => commit(site, bundleId, buffer, written),
      faulty: (error) => dropFaulty(site, bundleId, error, list, sources),
      invalid: (error) =>
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql.withTransaction(fail(site, bundleId, error.message))).pipe(
          Effect.zipRight(Effect.logError(`bundle ${bundleId} cannot be written: ${error.message}`))
        )
    }
  )
})
