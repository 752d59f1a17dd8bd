/**
 * The synthetic catalog's physical copies (files' SOURCE copies, then packages', bundles' and
 * staged copies) and its staging requests, as iterators for `COPY`.
 */
import { checksum, fileSize, groupSize, type Plan, uuid } from "./CatalogPlan.js"
import * as S from "./CatalogState.js"
import { bundlePath, day, filePath, iso, Kind, pkgPath, type Refs, type Row, times } from "./CatalogRowBasics.js"

/** physical_copy (files' SOURCE copies, then packages', bundles' and staged copies) */
export const copyColumns = [
  "id",
  "raw_data_file_id",
  "raw_data_package_id",
  "data_transfer_package_id",
  "data_location_id",
  "path",
  "size_bytes",
  "checksum",
  "status",
  "verified_at",
  "created_at",
  "updated_at"
]
export function* copyRows(plan: Plan, refs: Refs, bytes: Float64Array): Generator<Row> {
  const L = refs.locations
  for (const p of plan.packages) {
    const t = times(plan, p.eou)
    const stage = S.eouStage(plan, p.eou)
    const pstatus = S.packageStatus(plan, p)
    const written = S.packageWritten(pstatus)
    const mayDamage = stage === "archived" && pstatus !== "failed"
    for (let i = 0; i < p.files; i++) {
      const f = p.firstFile + i
      const status = S.sourceCopyOf(stage, written, mayDamage ? S.fileDamage(plan, p, f) : null, f)
      if (status === null) continue
      yield [
        uuid(plan.seed, Kind.fileCopy, f),
        uuid(plan.seed, Kind.file, f),
        null,
        null,
        L.chileSource,
        filePath(p.eou, p.module, i),
        fileSize(plan.seed, f),
        checksum(plan.seed, Kind.file, f),
        status,
        t.packaged,
        t.packaged,
        status === "DELETED" ? t.deleted : status === "PRESENT" ? t.packaged : t.archived
      ]
    }
  }
  for (const p of plan.packages) {
    const t = times(plan, p.eou)
    const where = S.packageCopyStatuses(plan, p)
    const put = (k: number, location: string, status: string | null, created: string): Row | null =>
      status === null ?
        null :
        [
          uuid(plan.seed, Kind.packageCopy, p.index * 4 + k),
          null,
          uuid(plan.seed, Kind.package, p.index),
          null,
          location,
          pkgPath(p),
          bytes[p.index]!,
          checksum(plan.seed, Kind.package, p.index),
          status,
          status === "PRESENT" && k === 2 ? t.audited : created,
          created,
          status === "DELETED" ? t.deleted : status.startsWith("DELETION") ? t.archived : created
        ]
    for (const row of [
      put(0, L.chileBuffer, where.chile, t.packaged),
      put(1, L.cologneBuffer, where.cologne, t.arrived),
      put(2, L.cologneArchive, where.archive, t.archived)
    ]) {
      if (row !== null) yield row
    }
    const staged = S.staging(plan, p)
    if (staged?.copy != null) {
      yield [
        uuid(plan.seed, Kind.stagedCopy, p.index),
        null,
        uuid(plan.seed, Kind.package, p.index),
        null,
        L.processing,
        `staged/${pkgPath(p)}`,
        bytes[p.index]!,
        checksum(plan.seed, Kind.package, p.index),
        staged.copy,
        t.deleted,
        t.deleted,
        t.deleted
      ]
    }
  }
  for (let g = 0; g < plan.groups; g++) {
    const where = S.bundleCopyStatuses(plan, g)
    const members = S.bundleMembers(plan, g)
    if (members.length === 0) continue
    const t = times(plan, g * groupSize)
    const size = members.reduce((a, p) => a + bytes[p.index]!, 0)
    for (const [k, location, status] of [[0, L.chileBuffer, where.chile], [1, L.cologneBuffer, where.cologne]] as const) {
      if (status === null) continue
      yield [
        uuid(plan.seed, Kind.bundleCopy, g * 2 + k),
        null,
        null,
        uuid(plan.seed, Kind.bundle, g),
        location,
        bundlePath(g),
        size,
        checksum(plan.seed, Kind.bundle, g),
        status,
        t.sent,
        t.sent,
        status === "DELETED" ? t.deleted : t.sent
      ]
    }
  }
}

/** staging_request */
export const stagingColumns = [
  "id",
  "account_id",
  "data_location_id",
  "data_location_type",
  "status",
  "expires_at",
  "created_at",
  "updated_at"
]
export function* stagingRows(plan: Plan, refs: Refs): Generator<Row> {
  for (const p of plan.packages) {
    const s = S.staging(plan, p)
    if (s === null) continue
    const t = times(plan, p.eou)
    yield [
      uuid(plan.seed, Kind.stagingRequest, p.index),
      refs.scientistId,
      refs.locations.processing,
      "PROCESSING",
      s.request,
      s.request === "pending" ? null : s.expired ? t.deleted : iso(plan.now + 7 * day),
      t.archived,
      t.archived
    ]
  }
}

/** staging_request_item */
export const stagingItemColumns = ["id", "staging_request_id", "raw_data_package_id"]
export function* stagingItemRows(plan: Plan): Generator<Row> {
  for (const p of plan.packages) {
    if (S.staging(plan, p) === null) continue
    yield [
      uuid(plan.seed, Kind.stagingItem, p.index),
      uuid(plan.seed, Kind.stagingRequest, p.index),
      uuid(plan.seed, Kind.package, p.index)
    ]
  }
}
