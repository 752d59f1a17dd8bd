/**
 * Bundles that went wrong and the packages in them. A bundle that ends FAILED takes its member
 * packages with it (their journey shows FAILED and the bundle's reason, not TRANSFERRING for
 * ever); when an operator retries the bundle, or one of those packages, the members come back and
 * the bundle is sent again, written anew when its last attempt found its own tar bad. Packages
 * retried after bundling found their buffer copy faulty go back to waiting for a bundle, and a
 * retried bundle with no packages left is closed saying why. The planner runs these before it
 * claims new bundles.
 */
import { Ids, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import { JobQueue } from "../engine/JobQueue.js"
import { name } from "./BundlePlanner.js"
import * as CopyFindings from "./CopyFindings.js"
import * as Sites from "./Sites.js"
import { queueName } from "./Stage.js"
import { Storages } from "./Storages.js"

/** Which of the recoveries below have anything to do at a site. */
export interface Needed {
  readonly settleFailed: boolean
  readonly retried: boolean
  readonly revived: boolean
  readonly closeEmpty: boolean
}

/**
 * Whether each recovery has work at the site, in one statement (the same conditions as each
 * one's own query, which then runs only when it has work): most rounds have none, and a planner
 * far from the ops-db pays every statement as a round trip.
 */
export const needed = (site: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const mine = `bundles/${site}/%`
    const [row] = yield* sql<Needed>`
      select
        exists (select 1 from data_transfer_package d
                join data_transfer_package_member m on m.data_transfer_package_id = d.id
                join raw_data_package p on p.id = m.raw_data_package_id
                where d.status = 'failed' and d.relative_path like ${mine} and p.status = 'in_progress') as settle_failed,
        exists (select 1 from data_transfer_package d
                join data_transfer_package_member m on m.data_transfer_package_id = d.id
                join raw_data_package p on p.id = m.raw_data_package_id
                where d.relative_path like ${mine}
                  and ((d.status = 'failed' and p.status = 'pending'
                        and exists (select 1 from event_log e where e.entity_kind = 'RawDataPackage' and e.entity_id = p.id
                                    and e.to_state = 'failed' and e.details->>'bundleId' = d.id::text))
                       or d.status = 'pending')) as retried,
        exists (select 1 from raw_data_package p
                where p.status = 'pending' and p.size_bytes is not null and p.checksum is not null
                  and exists (select 1 from physical_copy c join data_location l on l.id = c.data_location_id and l.type = 'BUFFER'
                              join site s on s.id = l.site_id
                              where c.raw_data_package_id = p.id and c.status in ('PRESENT', 'CORRUPT', 'MISSING') and s.name = ${site})
                  and not exists (select 1 from data_transfer_package_member m join data_transfer_package d on d.id = m.data_transfer_package_id
                                  where m.raw_data_package_id = p.id and d.status = 'failed')) as revived,
        exists (select 1 from data_transfer_package d
                where d.status = 'pending' and d.relative_path like ${mine}
                  and not exists (select 1 from data_transfer_package_member m where m.data_transfer_package_id = d.id)) as close_empty`
    return row!
  })

/**
 * Ends a bundle FAILED with its reason, and with it every member package still on its way, in
 * the caller's transaction: the packages cannot get anywhere while their bundle is failed, so
 * their journey says FAILED and why. Returns the packages it failed.
 */
export const fail = (site: string, bundleId: Ids.DataTransferPackageId, why: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* Transitions.transition({
      entity: "DataTransferPackage",
      id: bundleId,
      from: "in_progress",
      to: "failed",
      actor: `worker:${site}`,
      set: { errorMessage: why }
    })
    const members = yield* sql<{ id: Ids.RawDataPackageId }>`
      select p.id from data_transfer_package_member m join raw_data_package p on p.id = m.raw_data_package_id
      where m.data_transfer_package_id = ${bundleId} and p.status = 'in_progress'
      order by p.id
      for update of p`
    for (const m of members) {
      yield* Transitions.transition({
        entity: "RawDataPackage",
        id: m.id,
        from: "in_progress",
        to: "failed",
        actor: `worker:${site}`,
        details: { bundleId },
        set: { errorMessage: `its bundle ${bundleId} failed: ${why}` }
      })
    }
    return members.map((m) => m.id)
  })

/**
 * Packages still on their way in a bundle of this site that is FAILED (`fail` leaves none
 * behind, but rows written before it failed members may). Each gets the bundle's failure,
 * so its journey says FAILED and why, and a retry of the bundle brings it back like the others.
 */
export const settleFailed = (site: string) =>
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
        entity: "RawDataPackage",
        id: p.id,
        from: "in_progress",
        to: "failed",
        actor: `planner:${site}`,
        details: { bundleId: p.bundleId },
        set: { errorMessage: `its bundle ${p.bundleId} failed: ${p.why ?? "no reason recorded"}` }
      }).pipe(Effect.catchIf((e) => e._tag === "TransitionError" && e.reason === "StateConflict", () => Effect.void))
    }
    return stranded.length
  })

/**
 * Why an attempt found the bundle's own tar bad: what an adapter reports (gone before or during
 * the copy, or not matching its checksum) and what the transfer job records for a copy an audit
 * or an inventory found bad first.
 */
const badTarReasons: ReadonlySet<string> = new Set(["SourceCorrupt", "SourceMissing", "SourceNotFound", "SourceVanished"])

/**
 * A retried bundle whose last attempt found its own tar bad (`badTarReasons`): sending the same
 * tar again cannot help, so it is written again from its packages (verified against their
 * records on the way) under a new name. Its tar here moves to
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
    if (reason == null || !badTarReasons.has(reason)) return undefined
    const copies = yield* sql<{ id: Ids.PhysicalCopyId }>`
      select c.id from physical_copy c join data_location l on l.id = c.data_location_id join site s on s.id = l.site_id
      where c.data_transfer_package_id = ${bundleId} and c.status = 'PRESENT' and s.name = ${site}
      for update of c`
    const actor = `planner:${site}`
    const details = { reason: `written again: the last attempt found it ${reason}` }
    for (const c of copies) {
      yield* Transitions.transition({ entity: "PhysicalCopy", id: c.id, from: "PRESENT", to: "DELETION_SCHEDULED", actor, details })
      yield* Transitions.transition({
        entity: "PhysicalCopy",
        id: c.id,
        from: "DELETION_SCHEDULED",
        to: "DELETION_IN_PROGRESS",
        actor,
        details
      })
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
export const deleteSetAside = (site: string, bundleId: Ids.DataTransferPackageId) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const storages = yield* Storages
    const rows = yield* sql<{ id: Ids.PhysicalCopyId; path: string; locationId: string }>`
      select c.id, c.path, c.data_location_id as location_id from physical_copy c
      join data_location l on l.id = c.data_location_id join site s on s.id = l.site_id
      where c.data_transfer_package_id = ${bundleId} and c.status = 'DELETION_IN_PROGRESS' and s.name = ${site}`
    for (const r of rows) {
      yield* (yield* storages.of(yield* Sites.location(r.locationId))).delete(r.path)
      yield* Transitions.transition({
        entity: "PhysicalCopy",
        id: r.id,
        from: "DELETION_IN_PROGRESS",
        to: "DELETED",
        actor: `worker:${site}`
      }).pipe(
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
export const retried = (site: string) =>
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
        entity: "DataTransferPackage",
        id: b.id,
        from: "failed",
        to: "pending",
        actor: `planner:${site}`,
        details: { retry: true, retriedPackage: b.packageId },
        set: { errorMessage: null }
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
              yield* Transitions.transition({
                entity: "RawDataPackage",
                id: m.id,
                from: "failed",
                to: "pending",
                actor,
                details,
                set: { errorMessage: null }
              })
            }
            yield* Transitions.transition({ entity: "RawDataPackage", id: m.id, from: "pending", to: "scheduled", actor, details })
            yield* Transitions.transition({ entity: "RawDataPackage", id: m.id, from: "scheduled", to: "in_progress", actor, details })
          }
          const rewritten = yield* setAsideBadTar(site, b.id)
          yield* Transitions.transition({
            entity: "DataTransferPackage",
            id: b.id,
            from: "pending",
            to: "scheduled",
            actor,
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
export const revived = (site: string) =>
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
            yield* CopyFindings.recheck(c.id, {
              actor,
              by: "retry",
              detail: "an operator retried the package: bundling checks this copy again"
            })
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
 * Bundles of this site pending with no packages (a retry of a bundle whose every package had been
 * taken out as faulty, which the API refuses but older rows may hold): nothing can send one, so
 * each is closed for good (pending → failed) saying so, instead of waiting for ever.
 */
export const closeEmpty = (site: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const empty = yield* sql<{ id: Ids.DataTransferPackageId }>`
      select d.id from data_transfer_package d
      where d.status = 'pending' and d.relative_path like ${`bundles/${site}/%`}
        and not exists (select 1 from data_transfer_package_member m where m.data_transfer_package_id = d.id)`
    for (const d of empty) {
      yield* Transitions.transition({
        entity: "DataTransferPackage",
        id: d.id,
        from: "pending",
        to: "failed",
        actor: `planner:${site}`,
        set: { errorMessage: "no packages left to send: every package in it was found faulty when it was bundled; retry those packages" }
      }).pipe(Effect.catchIf((e) => e._tag === "TransitionError" && e.reason === "StateConflict", () => Effect.void))
    }
    return empty.length
  })
