/**
 * Stage 2 of issue 6, bundling: RawDataPackages waiting in a site's BUFFER for a route towards a
 * LONG_TERM_ARCHIVE site become DataTransferPackages (a tar of package tars). The planner fills
 * bundles oldest package first up to `bundleTargetBytes` and flushes a partial one once its
 * oldest package waited `bundleMaxWait`, claiming the packages and enqueuing the job in one
 * transaction under a per-site lock, so two planners never bundle a package twice. The worker
 * writes the bundle into the same BUFFER (each member verified against its recorded checksum),
 * records its PhysicalCopy and enqueues the transfer, together.
 *
 * A bundle that ends FAILED takes its member packages with it (their journey shows FAILED and
 * the bundle's reason, not TRANSFERRING forever); when an operator retries the bundle (failed →
 * pending), the planner brings the members back and sends the bundle again.
 */
import { Ids, Repositories, type StorageDriver, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { randomUUID } from "node:crypto"
import { JobQueue, noJobOf } from "../engine/JobQueue.js"
import * as ArchiveRecord from "./ArchiveRecord.js"
import * as BufferWrite from "./BufferWrite.js"
import * as CopyCheck from "./CopyCheck.js"
import * as CopyFindings from "./CopyFindings.js"
import * as Packager from "./Packager.js"
import * as RepairForward from "./RepairForward.js"
import { LifecyclePolicy } from "./Packaging.js"
import * as Routes from "./Routes.js"
import * as Sites from "./Sites.js"
import { queueName, type Stage } from "./Stage.js"
import { Storages } from "./Storages.js"

/** The stage's name and queue suffix. */
export const name = "bundle"

/** The stage whose job the bundle enables (Transfer.name; a literal to keep the modules acyclic). */
const transferQueue = "transfer"

const Job = Schema.Struct({ bundleId: Ids.DataTransferPackageId })

interface Waiting {
  readonly id: Ids.RawDataPackageId
  readonly sizeBytes: number
  readonly locationId: string
  readonly waitedMs: number
}

/**
 * Packages waiting at a site: written (in_progress, with size and checksum), PRESENT in one of
 * its BUFFERs, in no bundle that is open or failed, and not sent from this site before (a bundle
 * that left from here holds them). At a relay the packages arrived in a completed bundle sent from
 * the previous site, so they wait here again for the next hop. At a site with archives, a package
 * waits once it is archived here but still lacks copies or sites (`archiveCopies`,
 * `archiveSites`): it moves on to the next archive site. An ARCHIVED package waits here when
 * another site reachable from here has nothing left to repair its bad copies from
 * (RepairForward), once per finding.
 */
const waiting = (site: string, target: { readonly copies: number; readonly sites: number }) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<Waiting>`
      select p.id, p.size_bytes, c.data_location_id as location_id,
             (extract(epoch from (now() - c.created_at)) * 1000)::float8 as waited_ms
      from raw_data_package p
      join physical_copy c on c.raw_data_package_id = p.id and c.status = 'PRESENT'
      join data_location l on l.id = c.data_location_id and l.type = 'BUFFER'
      join site s on s.id = l.site_id
      where s.name = ${site} and p.size_bytes is not null and p.checksum is not null
        and ((p.status = 'in_progress'
          and (not exists (select 1 from data_location a where a.site_id = s.id and a.type = 'LONG_TERM_ARCHIVE')
            or exists (
              select 1 from (
                select count(*) as good, count(distinct al.site_id) as sites, bool_or(al.site_id = s.id) as here
                from physical_copy ac join data_location al on al.id = ac.data_location_id
                where ac.raw_data_package_id = p.id and al.type = 'LONG_TERM_ARCHIVE' and ac.status = 'PRESENT'
                  and ac.verified_at is not null and ac.checksum = p.checksum) g
              where g.here and (g.good < ${target.copies} or g.sites < ${target.sites})))
          and not exists (
            select 1 from data_transfer_package_member m join data_transfer_package d on d.id = m.data_transfer_package_id
            where m.raw_data_package_id = p.id
              and (d.status <> 'completed' or exists (
                select 1 from data_transfer t join data_location fl on fl.id = t.from_location_id
                where t.data_transfer_package_id = d.id and fl.site_id = s.id))))
        or (p.status = 'completed' and c.verified_at is not null and c.checksum = p.checksum
          and ${RepairForward.neededFrom(sql, sql`p`, sql`s.id`)}
          and not ${RepairForward.forwardedFrom(sql, sql`p`, sql`s.id`)}))
      order by c.created_at, p.id`
  )

/** One bundle the plan asks for: packages of one buffer, oldest first. */
export interface PlannedBundle {
  readonly locationId: string
  readonly packages: ReadonlyArray<Ids.RawDataPackageId>
  readonly sizeBytes: number
}

/**
 * Fills bundles per buffer in waiting order up to `targetBytes` (a larger package goes alone).
 * Full bundles go now; the last, partial one only once its oldest package waited `maxWaitMs`.
 */
export const planBundles = (packages: ReadonlyArray<Waiting>, targetBytes: number, maxWaitMs: number): ReadonlyArray<PlannedBundle> => {
  const out: Array<PlannedBundle> = []
  const byLocation = new Map<string, Array<Waiting>>()
  for (const p of packages) byLocation.set(p.locationId, [...(byLocation.get(p.locationId) ?? []), p])
  for (const [locationId, list] of byLocation) {
    let current: Array<Waiting> = []
    let bytes = 0
    const close = () => {
      out.push({ locationId, packages: current.map((p) => p.id), sizeBytes: bytes })
      current = []
      bytes = 0
    }
    for (const p of list) {
      if (current.length > 0 && bytes + p.sizeBytes > targetBytes) close()
      current.push(p)
      bytes += p.sizeBytes
      if (bytes >= targetBytes) close()
    }
    if (current.length > 0 && Math.max(...current.map((p) => p.waitedMs)) >= maxWaitMs) close()
  }
  return out
}

/**
 * Ends a bundle FAILED with its reason, and with it every member package still on its way, in
 * the caller's transaction: the packages cannot get anywhere while their bundle is failed, so
 * their journey says FAILED and why. Returns the packages it failed.
 */
export const fail = (site: string, bundleId: Ids.DataTransferPackageId, why: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* Transitions.transition({
      entity: "DataTransferPackage", id: bundleId, from: "in_progress", to: "failed", actor: `worker:${site}`,
      set: { errorMessage: why }
    })
    const members = yield* sql<{ id: Ids.RawDataPackageId }>`
      select p.id from data_transfer_package_member m join raw_data_package p on p.id = m.raw_data_package_id
      where m.data_transfer_package_id = ${bundleId} and p.status = 'in_progress'
      order by p.id
      for update of p`
    for (const m of members) {
      yield* Transitions.transition({
        entity: "RawDataPackage", id: m.id, from: "in_progress", to: "failed", actor: `worker:${site}`,
        details: { bundleId }, set: { errorMessage: `its bundle ${bundleId} failed: ${why}` }
      })
    }
    return members.map((m) => m.id)
  })

/**
 * Packages still on their way in a bundle of this site that is FAILED: rows from before bundles
 * failed their packages with them (`fail` leaves none behind). Each gets the bundle's failure,
 * so its journey says FAILED and why, and a retry of the bundle brings it back like the others.
 */
const settleFailed = (site: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const stranded = yield* sql<{ id: Ids.RawDataPackageId; bundleId: Ids.DataTransferPackageId; why: string | null }>`
      select p.id, d.id as bundle_id, d.error_message as why from data_transfer_package d
      join data_transfer_package_member m on m.data_transfer_package_id = d.id
      join raw_data_package p on p.id = m.raw_data_package_id
      where d.status = 'failed' and d.relative_path like ${`bundles/${site}/%`} and p.status = 'in_progress'
      order by p.id`
    for (const p of stranded) {
      yield* Transitions.transition({
        entity: "RawDataPackage", id: p.id, from: "in_progress", to: "failed", actor: `planner:${site}`,
        details: { bundleId: p.bundleId }, set: { errorMessage: `its bundle ${p.bundleId} failed: ${p.why ?? "no reason recorded"}` }
      }).pipe(Effect.catchIf((e) => e._tag === "TransitionError" && e.reason === "StateConflict", () => Effect.void))
    }
    return stranded.length
  })

/**
 * A retried bundle whose last attempt found its own tar bad (`SourceCorrupt`, `SourceMissing`):
 * sending the same tar again cannot help, so it is written again from its packages (verified
 * against their records on the way) under a new name. Its tar here moves to
 * DELETION_IN_PROGRESS, saying why, and the bundle's job deletes it before writing; the new name
 * keeps the new tar clear of anything still deleting the old one. Returns the reason, if any.
 */
const setAsideBadTar = (site: string, bundleId: Ids.DataTransferPackageId) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [last] = yield* sql<{ errorReason: string | null }>`
      select error_reason from data_transfer where data_transfer_package_id = ${bundleId} and status in ('completed', 'failed')
      order by attempt desc, created_at desc limit 1`
    const reason = last?.errorReason
    if (reason !== "SourceCorrupt" && reason !== "SourceMissing") return undefined
    const copies = yield* sql<{ id: Ids.PhysicalCopyId }>`
      select c.id from physical_copy c join data_location l on l.id = c.data_location_id join site s on s.id = l.site_id
      where c.data_transfer_package_id = ${bundleId} and c.status = 'PRESENT' and s.name = ${site}
      for update of c`
    const actor = `planner:${site}`
    const details = { reason: `written again: the last attempt found it ${reason}` }
    for (const c of copies) {
      yield* Transitions.transition({ entity: "PhysicalCopy", id: c.id, from: "PRESENT", to: "DELETION_SCHEDULED", actor, details })
      yield* Transitions.transition({ entity: "PhysicalCopy", id: c.id, from: "DELETION_SCHEDULED", to: "DELETION_IN_PROGRESS", actor, details })
    }
    yield* sql`
      update data_transfer_package set relative_path = ${`bundles/${site}/${randomUUID()}.tar`}, size_bytes = null, checksum = null, updated_at = now()
      where id = ${bundleId}`
    return reason
  })

/**
 * Deletes the tars of this bundle a retry set aside as bad (`setAsideBadTar`) before the bundle
 * is written again; a deletion someone else finished meanwhile counts as done.
 */
const deleteSetAside = (site: string, bundleId: Ids.DataTransferPackageId) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const storages = yield* Storages
    const rows = yield* sql<{ id: Ids.PhysicalCopyId; path: string; locationId: string }>`
      select c.id, c.path, c.data_location_id as location_id from physical_copy c
      join data_location l on l.id = c.data_location_id join site s on s.id = l.site_id
      where c.data_transfer_package_id = ${bundleId} and c.status = 'DELETION_IN_PROGRESS' and s.name = ${site}`
    for (const r of rows) {
      yield* (yield* storages.of(yield* Sites.location(r.locationId))).delete(r.path)
      yield* Transitions.transition({ entity: "PhysicalCopy", id: r.id, from: "DELETION_IN_PROGRESS", to: "DELETED", actor: `worker:${site}` }).pipe(
        Effect.catchIf((e) => e._tag === "TransitionError" && e.reason === "StateConflict", () => Effect.void)
      )
    }
  })

/**
 * Bundles of this site an operator retried (failed → pending), directly or by retrying one of
 * the packages the bundle's failure failed (a package cannot move without its bundle, so that
 * retries the bundle): the members the failure failed come back (failed → pending → scheduled →
 * in_progress, each step in the event log) and the bundle is scheduled again, in one
 * transaction; its job then sends it again (or writes it, if it was never written).
 */
const retried = (site: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const jobs = yield* JobQueue
    const failedBy = (bundleId: string) => sql`
      exists (select 1 from event_log e where e.entity_kind = 'RawDataPackage' and e.entity_id = p.id
              and e.to_state = 'failed' and e.details->>'bundleId' = ${bundleId})`
    const viaPackage = yield* sql<{ id: Ids.DataTransferPackageId; packageId: Ids.RawDataPackageId }>`
      select distinct on (d.id) d.id, p.id as package_id from data_transfer_package d
      join data_transfer_package_member m on m.data_transfer_package_id = d.id
      join raw_data_package p on p.id = m.raw_data_package_id
      where d.status = 'failed' and d.relative_path like ${`bundles/${site}/%`} and p.status = 'pending'
        and exists (select 1 from event_log e where e.entity_kind = 'RawDataPackage' and e.entity_id = p.id
                    and e.to_state = 'failed' and e.details->>'bundleId' = d.id::text)
      order by d.id, p.id`
    for (const b of viaPackage) {
      yield* Transitions.transition({
        entity: "DataTransferPackage", id: b.id, from: "failed", to: "pending", actor: `planner:${site}`,
        details: { retry: true, retriedPackage: b.packageId }, set: { errorMessage: null }
      }).pipe(Effect.catchIf((e) => e._tag === "TransitionError" && e.reason === "StateConflict", () => Effect.void))
    }
    const bundles = yield* sql<{ id: Ids.DataTransferPackageId }>`
      select d.id from data_transfer_package d
      where d.status = 'pending' and d.relative_path like ${`bundles/${site}/%`}
        and exists (select 1 from data_transfer_package_member m where m.data_transfer_package_id = d.id)`
    let n = 0
    for (const b of bundles) {
      const taken = yield* sql.withTransaction(
        Effect.gen(function* () {
          const actor = `planner:${site}`
          // Failed by this bundle: still failed, or pending when the operator retried the package itself.
          const members = yield* sql<{ id: Ids.RawDataPackageId; status: "failed" | "pending" }>`
            select p.id, p.status::text as status from data_transfer_package_member m join raw_data_package p on p.id = m.raw_data_package_id
            where m.data_transfer_package_id = ${b.id} and p.status in ('failed', 'pending') and ${failedBy(b.id)}
            order by p.id
            for update of p`
          for (const m of members) {
            const details = { bundleId: b.id, retry: "bundle retried" }
            if (m.status === "failed") {
              yield* Transitions.transition({ entity: "RawDataPackage", id: m.id, from: "failed", to: "pending", actor, details, set: { errorMessage: null } })
            }
            yield* Transitions.transition({ entity: "RawDataPackage", id: m.id, from: "pending", to: "scheduled", actor, details })
            yield* Transitions.transition({ entity: "RawDataPackage", id: m.id, from: "scheduled", to: "in_progress", actor, details })
          }
          const rewritten = yield* setAsideBadTar(site, b.id)
          yield* Transitions.transition({
            entity: "DataTransferPackage", id: b.id, from: "pending", to: "scheduled", actor,
            details: { retry: true, packages: members.length, ...(rewritten === undefined ? {} : { rewritten }) }
          })
          yield* jobs.send(queueName(site, name), { bundleId: b.id }, { singletonKey: b.id })
          return true
        })
      ).pipe(
        // Another planner took it first.
        Effect.catchIf((e) => e._tag === "TransitionError" && e.reason === "StateConflict", () => Effect.succeed(false))
      )
      if (taken) n++
    }
    return n
  })

/**
 * Packages of this site an operator retried after bundling found their own buffer copy faulty
 * (failed → pending; they are in no bundle any more): the copy bundling marked CORRUPT or
 * MISSING is given back unverified (`CopyFindings.recheck`), and the package goes back on its
 * way (pending → scheduled → in_progress, each step in the event log), so it waits for a bundle
 * again, and writing that bundle checks the copy again (one still bad fails the package again
 * with what was found). Packages of a failed bundle are not taken here: they come back with
 * their bundle (`retried`).
 */
const revived = (site: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ id: Ids.RawDataPackageId }>`
      select p.id from raw_data_package p
      where p.status = 'pending' and p.size_bytes is not null and p.checksum is not null
        and exists (select 1 from physical_copy c join data_location l on l.id = c.data_location_id and l.type = 'BUFFER'
                    join site s on s.id = l.site_id
                    where c.raw_data_package_id = p.id and c.status in ('PRESENT', 'CORRUPT', 'MISSING') and s.name = ${site})
        and not exists (select 1 from data_transfer_package_member m join data_transfer_package d on d.id = m.data_transfer_package_id
                        where m.raw_data_package_id = p.id and d.status = 'failed')
      order by p.id`
    let n = 0
    for (const p of rows) {
      const actor = `planner:${site}`
      const details = { retry: "back to bundling" }
      n += yield* sql.withTransaction(
        Effect.gen(function* () {
          const bad = yield* sql<{ id: string }>`
            select c.id from physical_copy c join data_location l on l.id = c.data_location_id and l.type = 'BUFFER'
            join site s on s.id = l.site_id
            where c.raw_data_package_id = ${p.id} and c.status in ('CORRUPT', 'MISSING') and s.name = ${site}`
          for (const c of bad) {
            yield* CopyFindings.recheck(c.id, { actor, by: "retry", detail: "an operator retried the package: bundling checks this copy again" })
          }
          yield* Transitions.transition({ entity: "RawDataPackage", id: p.id, from: "pending", to: "scheduled", actor, details })
          yield* Transitions.transition({ entity: "RawDataPackage", id: p.id, from: "scheduled", to: "in_progress", actor, details })
          return 1
        })
      ).pipe(Effect.catchIf((e) => e._tag === "TransitionError" && e.reason === "StateConflict", () => Effect.succeed(0)))
    }
    return n
  })

/**
 * Bundles of this site pending with no packages: an earlier release accepted an operator's retry
 * of a bundle whose every package had been taken out as faulty, and nothing can send it. Each is
 * closed for good (pending → failed) saying so, instead of waiting for ever; the API now refuses
 * such a retry.
 */
const closeEmpty = (site: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const empty = yield* sql<{ id: Ids.DataTransferPackageId }>`
      select d.id from data_transfer_package d
      where d.status = 'pending' and d.relative_path like ${`bundles/${site}/%`}
        and not exists (select 1 from data_transfer_package_member m where m.data_transfer_package_id = d.id)`
    for (const d of empty) {
      yield* Transitions.transition({
        entity: "DataTransferPackage", id: d.id, from: "pending", to: "failed", actor: `planner:${site}`,
        set: { errorMessage: "no packages left to send: every package in it was found faulty when it was bundled; retry those packages" }
      }).pipe(Effect.catchIf((e) => e._tag === "TransitionError" && e.reason === "StateConflict", () => Effect.void))
    }
    return empty.length
  })

/** Plans and claims the site's bundles in one transaction under the site's bundling lock. */
export const plan = Effect.fn("Bundling.plan")(function* (site: string) {
  const policy = yield* LifecyclePolicy
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobQueue
  if ((yield* Routes.leaving(site)).length === 0) return 0
  yield* settleFailed(site)
  const again = yield* retried(site)
  yield* revived(site)
  yield* closeEmpty(site)
  const claimed = yield* sql.withTransaction(
    Effect.gen(function* () {
      yield* sql`select pg_advisory_xact_lock(hashtext(${`ccat.bundle:${site}`}))`
      const bundles = planBundles(yield* waiting(site, { copies: policy.archiveCopies, sites: policy.archiveSites }), policy.bundleTargetBytes, policy.bundleMaxWait)
      for (const b of bundles) {
        const dtp = yield* Repositories.dataTransferPackages.insert({
          relativePath: `bundles/${site}/${randomUUID()}.tar`,
          sizeBytes: null,
          checksum: null
        } as never)
        for (const p of b.packages) {
          yield* Repositories.dataTransferPackageMembers.insert({ dataTransferPackageId: dtp.id, rawDataPackageId: p })
        }
        yield* Transitions.transition({
          entity: "DataTransferPackage", id: dtp.id, from: "pending", to: "scheduled", actor: `planner:${site}`,
          details: { packages: b.packages.length, bytes: b.sizeBytes }
        })
        yield* jobs.send(queueName(site, name), { bundleId: dtp.id }, { singletonKey: dtp.id })
      }
      return bundles.length
    })
  )
  // Re-derive jobs a lost queue would have dropped: bundles claimed here but not written for a while,
  // or at once when the queue holds no job of theirs at all (a restored ops-db, a wiped queue).
  const stale = yield* sql<{ id: Ids.DataTransferPackageId }>`
    select d.id from data_transfer_package d
    where d.status in ('scheduled', 'in_progress')
      and (d.updated_at < now() - interval '10 minutes' or ${noJobOf(sql, queueName(site, name), sql`d.id`)})
      and not exists (select 1 from physical_copy c where c.data_transfer_package_id = d.id and c.status not in ('DELETION_IN_PROGRESS', 'DELETED'))
      and d.relative_path like ${`bundles/${site}/%`}`
  let resent = 0
  for (const d of stale) if ((yield* jobs.send(queueName(site, name), { bundleId: d.id }, { singletonKey: d.id })) !== null) resent++
  return again + claimed + resent
})

interface Member {
  readonly id: Ids.RawDataPackageId
  readonly relativePath: Packager.PackageToBundle["relativePath"]
  readonly sizeBytes: number
  readonly checksum: Packager.PackageToBundle["checksum"]
  readonly path: string
  readonly locationId: string
}

/** The bundle's members with their copies in the site's buffers, in archive order. */
const members = (site: string, bundleId: Ids.DataTransferPackageId) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<Member>`
      select p.id, p.relative_path, p.size_bytes, p.checksum, c.path, c.data_location_id as location_id
      from data_transfer_package_member m join raw_data_package p on p.id = m.raw_data_package_id
      join physical_copy c on c.raw_data_package_id = p.id and c.status = 'PRESENT'
      join data_location l on l.id = c.data_location_id and l.type = 'BUFFER'
      join site s on s.id = l.site_id and s.name = ${site}
      where m.data_transfer_package_id = ${bundleId}
      order by p.relative_path, p.id`
  )

/** Records the written bundle and enqueues its transfer, in one transaction. */
const commit = (site: string, bundleId: Ids.DataTransferPackageId, buffer: Sites.Location, written: Packager.Written) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const jobs = yield* JobQueue
    yield* jobs.ensureQueue(queueName(site, transferQueue), Routes.queues.transfer)
    const identity = yield* ArchiveRecord.identityOf(buffer, written.key)
    yield* sql.withTransaction(
      Effect.gen(function* () {
        yield* ArchiveRecord.record({ kind: "DataTransferPackage", id: bundleId }, buffer, written, identity)
        yield* jobs.send(queueName(site, transferQueue), { bundleId }, { singletonKey: bundleId })
      })
    )
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
      yield* Effect.logWarning(`bundle ${bundleId}: ${cleared.map((m) => `${m.relativePath} ${m.problem}`).join("; ")} on the bundle's read, but the copy re-read good or could not be re-read: not marked`)
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
              actor: `worker:${site}`, by: "bundling", detail: found.detail, expectedChecksum: found.expectedChecksum, actualChecksum: found.actualChecksum
            })
          }
          yield* sql`delete from data_transfer_package_member where data_transfer_package_id = ${bundleId} and raw_data_package_id = ${id}`
          // An ARCHIVED package sent on for a repair elsewhere stays ARCHIVED: only this copy was bad.
          const [pkg] = yield* sql<{ status: string }>`select status::text as status from raw_data_package where id = ${id}`
          if (pkg?.status !== "in_progress") continue
          yield* Transitions.transition({
            entity: "RawDataPackage", id, from: "in_progress", to: "failed", actor: `worker:${site}`,
            details: { bundleId, problem, detail: found.detail }, set: { errorMessage: `buffer copy ${problem}: ${found.detail}` }
          })
        }
        if (bad.length === list.length) {
          yield* fail(site, bundleId, error.message)
        } else {
          yield* Transitions.transition({
            entity: "DataTransferPackage", id: bundleId, from: "in_progress", to: "scheduled", actor: `worker:${site}`,
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
  const rows = yield* sql<{ status: string; relativePath: string; hasCopy: boolean }>`
    select status::text as status, relative_path,
      exists (select 1 from physical_copy c where c.data_transfer_package_id = d.id and c.status not in ('DELETION_IN_PROGRESS', 'DELETED')) as has_copy
    from data_transfer_package d where id = ${bundleId}`
  if (rows.length === 0) return yield* Effect.logWarning(`bundle ${bundleId} does not exist; job dropped`)
  const dtp = rows[0]
  if (dtp.hasCopy) {
    // Written already (a retry after the commit, or an operator's retry of the bundle): make sure its transfer is queued.
    if (dtp.status === "scheduled") {
      yield* Transitions.transition({ entity: "DataTransferPackage", id: bundleId, from: "scheduled", to: "in_progress", actor: `worker:${site}` })
    }
    if (dtp.status === "scheduled" || dtp.status === "in_progress") {
      yield* jobs.ensureQueue(queueName(site, transferQueue), Routes.queues.transfer)
      yield* jobs.send(queueName(site, transferQueue), { bundleId }, { singletonKey: bundleId })
    }
    return
  }
  if (dtp.status !== "scheduled" && dtp.status !== "in_progress") return
  if (dtp.status === "scheduled") {
    yield* Transitions.transition({ entity: "DataTransferPackage", id: bundleId, from: "scheduled", to: "in_progress", actor: `worker:${site}` })
  }
  yield* deleteSetAside(site, bundleId)
  const list = yield* members(site, bundleId)
  if (list.length === 0) return yield* Effect.dieMessage(`bundle ${bundleId} has no member in a buffer at ${site}`)
  const sources = new Map<string, StorageDriver.Service>()
  for (const m of list) if (!sources.has(m.locationId)) sources.set(m.locationId, yield* storages.of(yield* Sites.location(m.locationId)))
  const first = yield* Sites.location(list[0].locationId)
  const estimate = list.reduce((n, m) => n + m.sizeBytes + 1536, 1024 * 1024)
  return yield* BufferWrite.toFirst(
    `bundle ${bundleId}`,
    yield* BufferWrite.withRoom(site, estimate, first),
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
        })
      ),
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

/** The bundling stage. */
export const stage: Stage<SqlClient.SqlClient | JobQueue | Storages | LifecyclePolicy> = {
  name,
  plan,
  work,
  queue: Routes.queues.bundle,
  concurrency: 1
}
