/**
 * The repair of one bad copy (an archive copy, or a buffer copy still to be sent on): where its
 * replacement goes (its own location if it can take it, else another location of the site of the
 * same type), the copy written there from a good source and verified, and the record that retires
 * the bad row and inserts the new one in one transaction.
 */
import { EventLog, type Ids, StorageError, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import type { PackageRow } from "../Archiving.js"
import * as CopyFindings from "../CopyFindings.js"
import type { BadCopy, GoodCopy } from "../Repair.js"
import * as Sites from "../Sites.js"
import { Storages } from "../Storages.js"

/** Where a bad copy's replacement goes: its own location if it can take it, else another location of its type at the site. */
const targetFor = (site: string, pkg: PackageRow, bad: BadCopy) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const storages = yield* Storages
    const holding = new Set(
      (yield* sql<{ locationId: string }>`
        select data_location_id as location_id from physical_copy where raw_data_package_id = ${pkg.id} and status <> 'DELETED'`).map((r) =>
        r.locationId
      )
    )
    const roomIn = (loc: Sites.Location, freed: number) =>
      Effect.gen(function* () {
        if (!loc.writable) return false
        if (loc.capacityBytes !== null && Number(yield* Sites.usedBytes(loc.id)) - freed + pkg.sizeBytes > loc.capacityBytes) return false
        // The put writes a whole temporary object before it replaces the bad one.
        const space = yield* Effect.flatMap(storages.of(loc), (s) => s.space()).pipe(Effect.option)
        return !(space._tag === "Some" && space.value.freeBytes < pkg.sizeBytes)
      })
    const own = yield* Sites.location(bad.locationId)
    if (yield* roomIn(own, bad.sizeBytes)) return own
    for (const loc of yield* Sites.locationsOf(site, own.type)) {
      if (loc.id === own.id || holding.has(loc.id)) continue
      if (yield* roomIn(loc, 0)) return loc
    }
    return undefined
  })

/**
 * Writes the package from `source` to `key` at `target` and verifies it there. At another archive
 * an object already stored with the package's size and checksum (a retry after a kill) is only
 * verified; at the bad copy's own place the object is always written again, since a stored
 * checksum (an S3 tag, a tape catalog entry) says what was written, not what the bytes are now.
 * A source found bad while it is read is recorded as such (CopyFindings) and the failure returned.
 */
const copyTo = (site: string, pkg: PackageRow, source: GoodCopy, target: Sites.Location, key: string, inPlace: boolean) =>
  Effect.gen(function* () {
    const storages = yield* Storages
    const from = yield* storages.of(yield* Sites.location(source.locationId))
    const to = yield* storages.of(target)
    const checksum = pkg.checksum as never
    const write = Effect.gen(function* () {
      if (from.capabilities.nearline) yield* from.recall([source.path])
      yield* to.put(key, from.get(source.path), { checksum, overwrite: true, sizeHint: pkg.sizeBytes }).pipe(
        Effect.tapError((e) => StorageError.isStorageError(e) ? judgeSource(site, pkg, source, e) : Effect.void)
      )
    })
    const verify = to.capabilities.nearline
      // Reading a tape back would be a recall of what was just written; the put verified the
      // stream it wrote and the catalog must agree on size and checksum.
      ? Effect.flatMap(
        to.stat(key),
        (info) =>
          info.size !== pkg.sizeBytes || (info.checksum !== undefined && info.checksum !== pkg.checksum)
            ? Effect.fail(new Error(`archive ${target.name} holds ${info.size} bytes ${info.checksum ?? ""} for ${key}`))
            : Effect.void
      )
      : Effect.asVoid(to.verify(key, checksum))
    const stored = inPlace ? undefined : yield* to.stat(key).pipe(Effect.option, Effect.map((o) => o._tag === "Some" ? o.value : undefined))
    const already = stored !== undefined && stored.size === pkg.sizeBytes && stored.checksum === pkg.checksum
    if (!already) {
      yield* write
      return yield* verify
    }
    // What an earlier attempt wrote: verified, else written again.
    yield* verify.pipe(Effect.catchAll(() => Effect.zipRight(write, verify)))
  })

/** After a failed copy: a source that is gone, or whose bytes are wrong, is recorded so. */
const judgeSource = (site: string, pkg: PackageRow, source: GoodCopy, e: StorageError.StorageError) =>
  Effect.gen(function* () {
    if (e.reason !== "NotFound" && e.reason !== "Corrupt") return
    const storages = yield* Storages
    const from = yield* storages.of(yield* Sites.location(source.locationId))
    const seen = yield* from.verify(source.path, pkg.checksum as never).pipe(Effect.either)
    if (seen._tag === "Right" || !StorageError.isStorageError(seen.left)) return
    const finding = seen.left.reason === "NotFound" ? "MISSING" : seen.left.reason === "Corrupt" ? "CORRUPT" : undefined
    if (finding === undefined) return
    yield* CopyFindings.mark(source.id, finding, {
      actor: `worker:${site}`,
      by: "repair",
      detail: `read as the source of a repair of package ${pkg.id}: ${seen.left.message}`,
      expectedChecksum: pkg.checksum
    })
  }).pipe(Effect.ignore)

/**
 * Records the repair in one transaction: the bad row (still CORRUPT or MISSING, locked) goes to
 * DELETED naming its replacement, then the replacement is inserted PRESENT and verified. A bad
 * copy replaced at another archive has its object deleted while its row is locked, so an audit
 * cannot find it good again in between; a crash after that delete leaves the row bad, and the
 * retry records it. A bad row that moved on meanwhile (an audit found it good again) is left
 * alone; a replacement at another archive is recorded anyway, being a good copy.
 */
const record = (site: string, pkg: PackageRow, bad: BadCopy, source: GoodCopy, target: Sites.Location, key: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const replacement = randomUUID()
    const inPlace = target.id === bad.locationId
    return yield* sql.withTransaction(
      Effect.gen(function* () {
        const [row] = yield* sql<{ status: string }>`select status::text as status from physical_copy where id = ${bad.id} for update`
        const stillBad = row !== undefined && (row.status === "CORRUPT" || row.status === "MISSING")
        if (!stillBad && inPlace) return false
        if (stillBad) {
          const removed = inPlace || (yield* removeBadObject(bad))
          yield* Transitions.transition({
            entity: "PhysicalCopy",
            id: bad.id as Ids.PhysicalCopyId,
            from: row.status as "CORRUPT",
            to: "DELETED",
            actor: `worker:${site}`,
            details: {
              action: "repaired",
              replacement,
              source: source.location,
              ...(inPlace ? {} : { repairedAt: target.name, badObjectRemoved: removed })
            }
          })
        }
        const inserted = yield* sql`
          with copy as (
            insert into physical_copy (id, raw_data_package_id, data_location_id, path, size_bytes, checksum, status, verified_at)
            values (${replacement}, ${pkg.id}, ${target.id}, ${key}, ${pkg.sizeBytes}, ${pkg.checksum}, 'PRESENT', now())
            on conflict do nothing returning id, status),
          created as (${
            EventLog.appendFrom(sql, {
              kind: "PhysicalCopy",
              rows: "copy",
              from: null,
              to: { column: "status" },
              actor: `worker:${site}`,
              details: { action: "repair", replaces: bad.id, source: source.location }
            })
          })
          select id from copy`
        // Another live row took the place meanwhile (archiving chose the same archive): the
        // transaction rolls back and the retry chooses again.
        if (inserted.length === 0 && stillBad) {
          return yield* Effect.fail(
            new Error(`package ${pkg.id} got a live copy at ${target.name} while its copy ${bad.id} was repaired there; trying again`)
          )
        }
        return true
      })
    )
  })

/** Replaces one bad copy from the first source that works. */
export const repairOne = (site: string, pkg: PackageRow, bad: BadCopy, sources: ReadonlyArray<GoodCopy>) =>
  Effect.gen(function* () {
    const target = yield* targetFor(site, pkg, bad)
    if (target === undefined) {
      const type = (yield* Sites.location(bad.locationId)).type
      return yield* Effect.fail(
        new Error(`no ${type} at ${site} is writable with room for the repair of package ${pkg.id} (copy ${bad.id} at ${bad.location})`)
      )
    }
    const inPlace = target.id === bad.locationId
    // In place the new object replaces the bad one under its own key.
    const key = inPlace ? bad.path : pkg.relativePath
    let lastError: unknown = new Error(`package ${pkg.id} has no good copy at ${site} to repair copy ${bad.id} from`)
    for (const source of sources) {
      const copied = yield* copyTo(site, pkg, source, target, key, inPlace).pipe(Effect.either)
      if (copied._tag === "Left") {
        lastError = copied.left
        yield* Effect.logWarning(
          `package ${pkg.id}: repair from ${source.location} to ${target.name} failed, trying the next source`,
          copied.left
        )
        continue
      }
      const recorded = yield* record(site, pkg, bad, source, target, key)
      if (recorded) {
        yield* Effect.logInfo(
          `package ${pkg.id}: ${bad.status} copy ${bad.id} at ${bad.location} repaired from ${source.location} at ${target.name}`
        )
      }
      return
    }
    return yield* Effect.fail(lastError)
  })

/** Deletes a bad object left at a location that did not take its replacement, where deletions are allowed. */
const removeBadObject = (bad: BadCopy) =>
  Effect.gen(function* () {
    const loc = yield* Sites.location(bad.locationId)
    if (!loc.deletable) return false
    const storage = yield* Effect.flatMap(Storages, (s) => s.of(loc))
    return yield* storage.delete(bad.path).pipe(
      Effect.as(true),
      Effect.catchAll((e) =>
        Effect.as(Effect.logWarning(`bad object ${bad.path} at ${bad.location} could not be removed; the inventory reports it`, e), false)
      )
    )
  })
