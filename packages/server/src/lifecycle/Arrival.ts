/**
 * Stage 4 of issue 6, verify and unpack: a bundle delivered to a site's BUFFER is read once,
 * checking its checksum and size and every RawDataPackage in it against its recorded checksum
 * while the packages are written beside it (Unpacker), then each package gets a PRESENT,
 * verified PhysicalCopy in that buffer, the bundle is completed and its tar there deleted. A
 * corrupt delivery is recorded as found (its copy CORRUPT, or MISSING when its tar is gone), then
 * deleted (its copy DELETED, no bad package left behind) and sent again from the site it came
 * from, as a new attempt; a bundle that arrives corrupt too often ends FAILED with its reason.
 */
import { type Checksum, Ids, Repositories, StorageError, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as JobBatch from "../engine/JobBatch.js"
import { JobQueue, noJobOf } from "../engine/JobQueue.js"
import * as Bundling from "./Bundling.js"
import * as CopyCheck from "./CopyCheck.js"
import * as CopyFindings from "./CopyFindings.js"
import * as Routes from "./Routes.js"
import * as Sites from "./Sites.js"
import { queueName, type Stage } from "./Stage.js"
import { Storages } from "./Storages.js"
import * as Unpacker from "./Unpacker.js"

/** The stage's name and queue suffix. */
export const name = "arrive"

/** The stage a corrupt delivery goes back to (Transfer.name; a literal keeps modules acyclic). */
const transferQueue = "transfer"

const Job = Schema.Struct({ bundleId: Ids.DataTransferPackageId })

interface Bundle {
  readonly status: string
  readonly sizeBytes: number | null
  readonly checksum: Checksum.Checksum | null
}

interface Delivered {
  readonly id: Ids.PhysicalCopyId
  /** CORRUPT or MISSING: found bad while unpacking, its removal not finished yet. */
  readonly status: "PRESENT" | "DELETION_IN_PROGRESS" | "CORRUPT" | "MISSING"
  readonly path: string
  readonly locationId: string
}

/** The bundle's delivered copy in a buffer of this site (one a completed attempt brought here). */
const deliveredCopy = (site: string, bundleId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<Delivered>`
      select c.id, c.status::text as status, c.path, c.data_location_id as location_id
      from physical_copy c join data_location l on l.id = c.data_location_id and l.type = 'BUFFER'
      join site s on s.id = l.site_id and s.name = ${site}
      where c.data_transfer_package_id = ${bundleId} and c.status in ('PRESENT', 'DELETION_IN_PROGRESS', 'CORRUPT', 'MISSING')
        and exists (select 1 from data_transfer t where t.data_transfer_package_id = c.data_transfer_package_id
                    and t.to_location_id = c.data_location_id and t.status = 'completed')
      limit 1`).pipe(Effect.map((rows) => rows[0]))

/** Moves a copy PRESENT → DELETION_IN_PROGRESS, saying why, before its bytes are removed. */
const startDeletion = (site: string, copyId: Ids.PhysicalCopyId, details: Record<string, string>) =>
  Effect.gen(function* () {
    const actor = `worker:${site}`
    yield* Transitions.transition({ entity: "PhysicalCopy", id: copyId, from: "PRESENT", to: "DELETION_SCHEDULED", actor, details })
    yield* Transitions.transition({
      entity: "PhysicalCopy",
      id: copyId,
      from: "DELETION_SCHEDULED",
      to: "DELETION_IN_PROGRESS",
      actor,
      details
    })
  })

/**
 * Finishes deleting the delivered tar (the key is gone or removed now). After a corrupt
 * delivery it also sends the bundle again from where it came, or fails it after too many.
 */
const finishDeletion = (site: string, bundleId: Ids.DataTransferPackageId, copy: Delivered, reason: string | undefined) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const jobs = yield* JobQueue
    const storages = yield* Storages
    const policy = yield* Routes.transferPolicy
    const location = yield* Sites.location(copy.locationId)
    yield* (yield* storages.of(location)).delete(copy.path)
    const [bundle] = yield* sql<{ status: string }>`select status::text as status from data_transfer_package where id = ${bundleId}`
    const resend = bundle?.status === "in_progress"
    const deliveries = yield* sql<{ n: number; origin: string }>`
      select count(*) over ()::int as n, s.name as origin from data_transfer t
      join data_location fl on fl.id = t.from_location_id join site s on s.id = fl.site_id
      join data_location tl on tl.id = t.to_location_id join site ts on ts.id = tl.site_id
      where t.data_transfer_package_id = ${bundleId} and t.status = 'completed' and ts.name = ${site}
        -- deliveries before an operator's retry of the failed bundle are answered already (an
        -- attempt the retry made has the retry's timestamp, and counts)
        and t.created_at >= coalesce((
          select max(e.at) from event_log e where e.entity_kind = 'DataTransferPackage' and e.entity_id = ${bundleId}
            and e.from_state = 'failed' and e.to_state = 'pending'), '-infinity')
      order by t.attempt desc limit 1`
    const origin = deliveries[0]?.origin
    if (resend && origin !== undefined) yield* jobs.ensureQueue(queueName(origin, transferQueue), Routes.queues.transfer)
    yield* sql.withTransaction(
      Effect.gen(function* () {
        yield* Transitions.transition({
          entity: "PhysicalCopy",
          id: copy.id,
          from: copy.status === "PRESENT" ? "DELETION_IN_PROGRESS" : copy.status,
          to: "DELETED",
          actor: `worker:${site}`,
          ...(copy.status === "CORRUPT" || copy.status === "MISSING"
            ? { details: { reason: copy.status === "CORRUPT" ? "corrupt" : "missing" } }
            : {})
        })
        if (!resend || origin === undefined) return
        const n = deliveries[0].n
        if (n >= policy.maxDeliveries) {
          yield* Bundling.fail(site, bundleId, `arrived corrupt at ${site} ${n} times; the last: ${reason ?? "checksum mismatch"}`)
          yield* Effect.logError(`bundle ${bundleId} FAILED: arrived corrupt at ${site} ${n} times`)
        } else {
          yield* jobs.send(queueName(origin, transferQueue), { bundleId }, { singletonKey: bundleId })
          yield* Effect.logWarning(`bundle ${bundleId} arrived corrupt at ${site} (delivery ${n}); sent again from ${origin}`)
        }
      })
    )
  })

/** Records the unpacked packages, completes the bundle, and removes its tar here. */
const unpacked = (site: string, bundleId: Ids.DataTransferPackageId, copy: Delivered, result: Unpacker.Unpacked) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql.withTransaction(
      Effect.gen(function* () {
        for (const m of result.members) {
          const live = yield* sql<{ id: string; status: string }>`
            select id, status::text as status from physical_copy
            where raw_data_package_id = ${m.id} and data_location_id = ${copy.locationId} and status <> 'DELETED'
            for update`
          if (live.some((r) => r.status !== "CORRUPT" && r.status !== "MISSING")) continue
          // A copy here found bad before: the delivery just wrote good bytes over it, so it is replaced.
          for (const r of live) {
            yield* Transitions.transition({
              entity: "PhysicalCopy",
              id: r.id as Ids.PhysicalCopyId,
              from: r.status as "CORRUPT",
              to: "DELETED",
              actor: `worker:${site}`,
              details: { action: "replaced", by: "unpack", bundleId }
            })
          }
          yield* Repositories.physicalCopies.insert({
            rawDataFileId: null,
            rawDataPackageId: m.id as Ids.RawDataPackageId,
            dataTransferPackageId: null,
            dataLocationId: copy.locationId,
            path: m.key,
            sizeBytes: m.sizeBytes,
            checksum: m.checksum,
            status: "PRESENT",
            verifiedAt: DateTime.unsafeNow()
          } as never, { actor: `worker:${site}`, details: { action: "unpacked", bundleId } })
        }
        yield* Transitions.transition({
          entity: "DataTransferPackage",
          id: bundleId,
          from: "in_progress",
          to: "completed",
          actor: `worker:${site}`,
          details: { packages: result.members.length, bytes: result.sizeBytes }
        })
        yield* startDeletion(site, copy.id, { reason: "unpacked" })
      })
    )
    yield* finishDeletion(site, bundleId, { ...copy, status: "DELETION_IN_PROGRESS" }, undefined)
    yield* Effect.logInfo(`bundle ${bundleId} unpacked at ${site}: ${result.members.length} packages verified`)
  })

/** Verifies and unpacks one delivered bundle, or deletes a corrupt delivery and asks for it again. */
export const work = Effect.fn("Arrival.work")(function* (site: string, data: unknown) {
  const { bundleId } = yield* Schema.decodeUnknown(Job)(data)
  const sql = yield* SqlClient.SqlClient
  const storages = yield* Storages
  const [bundle] = yield* sql<Bundle>`select status::text as status, size_bytes, checksum from data_transfer_package where id = ${bundleId}`
  const copy = yield* deliveredCopy(site, bundleId)
  if (bundle === undefined || copy === undefined) return
  // A crash between the decision and the removal: finish what was decided.
  if (copy.status !== "PRESENT") return yield* finishDeletion(site, bundleId, copy, undefined)
  if (bundle.status !== "in_progress" || bundle.checksum === null || bundle.sizeBytes === null) return
  const storage = yield* storages.of(yield* Sites.location(copy.locationId))
  const result = yield* Unpacker.unpackFrom(storage, copy.path, {
    destination: storage,
    checksum: bundle.checksum,
    sizeBytes: bundle.sizeBytes,
    overwrite: true
  }).pipe(Effect.either)
  if (result._tag === "Right") return yield* unpacked(site, bundleId, copy, result.right)
  const error = result.left
  const found = { actor: `worker:${site}`, by: "unpack" }
  if (error instanceof Unpacker.UnpackError) {
    // The delivered tar's own bytes disagree with the bundle's record: that is the finding.
    yield* CopyFindings.mark(copy.id, "CORRUPT", { ...found, detail: error.message, expectedChecksum: bundle.checksum })
    return yield* finishDeletion(site, bundleId, { ...copy, status: "CORRUPT" }, error.message)
  }
  // Gone since its delivery (removed behind the platform's back): recorded, and sent again.
  const gone = StorageError.isStorageError(error) && error.reason === "NotFound"
    ? yield* CopyCheck.confirm(storage, copy.path, bundle.checksum)
    : undefined
  if (gone?.finding !== "MISSING") return yield* Effect.fail(error)
  yield* CopyFindings.mark(copy.id, "MISSING", { ...found, detail: gone.detail })
  yield* finishDeletion(site, bundleId, { ...copy, status: "MISSING" }, gone.detail)
})

/** Re-derives lost arrival jobs: deliveries here untouched for two minutes, or with no job at all. */
export const plan = Effect.fn("Arrival.plan")(function* (site: string) {
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobQueue
  // The buffers' ids as values: PostgreSQL then reads their few live bundle copies by the
  // location's index, instead of merging every bundle copy with every completed transfer.
  const buffers = (yield* Sites.locationsOf(site, "BUFFER")).map((l) => l.id)
  if (buffers.length === 0) return 0
  const ready = yield* sql<{ id: string }>`
    select c.data_transfer_package_id as id from physical_copy c
    join data_transfer_package d on d.id = c.data_transfer_package_id
    where c.data_location_id in ${sql.in(buffers)} and c.data_transfer_package_id is not null
      and c.status in ('PRESENT', 'DELETION_IN_PROGRESS', 'CORRUPT', 'MISSING')
      and (c.updated_at < now() - interval '2 minutes' or ${noJobOf(sql, queueName(site, name), sql`d.id`)})
      and (d.status = 'in_progress' or c.status in ('DELETION_IN_PROGRESS', 'CORRUPT', 'MISSING'))
      and exists (select 1 from data_transfer t where t.data_transfer_package_id = d.id
                  and t.to_location_id = c.data_location_id and t.status = 'completed')`
  if (ready.length > 0) yield* jobs.ensureQueue(queueName(site, name), Routes.queues.arrive)
  return yield* JobBatch.sendMany(queueName(site, name), ready.map((r) => ({ data: { bundleId: r.id }, singletonKey: r.id })))
})

/** The arrival stage. */
export const stage: Stage<SqlClient.SqlClient | JobQueue | Storages> = {
  name,
  plan,
  work,
  queue: Routes.queues.arrive,
  concurrency: 2
}
