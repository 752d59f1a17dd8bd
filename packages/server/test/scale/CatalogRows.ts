/**
 * The rows of a synthetic catalog, table by table, as iterators for `COPY`: each table is one
 * pass over the plan, in key order, computing every value from the plan and the seed.
 */
import { checksum, eouStart, fileSize, groupSize, modules, type Plan, type PlannedPackage, uuid } from "./CatalogPlan.js"
import * as S from "./CatalogState.js"
import type { Value } from "./CopyIn.js"

/** Identifier kinds (the first byte of a generated UUID). */
export const Kind = {
  eou: 1,
  package: 2,
  file: 3,
  bundle: 4,
  transfer: 5,
  fileCopy: 6,
  packageCopy: 7,
  bundleCopy: 8,
  stagingRequest: 9,
  stagingItem: 10,
  stagedCopy: 11
} as const

/** The topology rows the catalog refers to, by name. */
export interface Refs {
  readonly locations: Readonly<Record<"chileSource" | "chileBuffer" | "cologneBuffer" | "cologneArchive" | "processing", string>>
  readonly routeId: string
  readonly adapter: string
  /** One id per module of `CatalogPlan.modules`. */
  readonly moduleIds: ReadonlyArray<string>
  /** Obs units per instrument. */
  readonly obsUnitIds: ReadonlyArray<ReadonlyArray<string>>
  readonly scientistId: string
}

type Row = ReadonlyArray<Value>
const minute = 60_000
const hour = 60 * minute
const day = 24 * hour
const pad2: ReadonlyArray<string> = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, "0"))
const pad3: ReadonlyArray<string> = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, "0"))
const dayText = new Map<number, string>()
/**
 * `new Date(ms).toISOString()`, from a cache of each day's date and the time of day by
 * arithmetic: formatting a Date was a fifth of the generator's time. Same text, also for
 * fractional ms (truncated, as a Date does).
 */
export const iso = (ms: number): string => {
  const t = Math.trunc(ms)
  const d = Math.floor(t / day)
  let date = dayText.get(d)
  if (date === undefined) {
    date = new Date(d * day).toISOString().slice(0, 11)
    dayText.set(d, date)
  }
  const r = t - d * day
  const s = Math.floor(r / 1000)
  return `${date}${pad2[Math.floor(s / 3600)]}:${pad2[Math.floor(s / 60) % 60]}:${pad2[s % 60]}.${pad3[r % 1000]}Z`
}

/** Milestones of an observation's data, capped at the catalog's now. */
const times = (plan: Plan, e: number) => {
  const start = eouStart(plan, e)
  const at = (offset: number) => iso(Math.min(plan.now, start + offset))
  return {
    start: iso(start),
    end: at(10 * minute),
    filed: (i: number) => iso(start + 5 * minute + i * 100),
    packaged: at(30 * minute),
    bundled: at(2 * hour),
    sent: at(3 * hour),
    arrived: at(4 * hour),
    archived: at(6 * hour),
    deleted: at(9 * day),
    audited: at((e % 300) * day + 10 * hour)
  }
}

const pkgPath = (p: PlannedPackage) => `packages/eou-${p.eou}/${modules[p.module]!.name}.tar`
const filePath = (e: number, module: number, i: number) => `eou-${e}/${modules[module]!.name}/scan-${String(i).padStart(4, "0")}.fits`
const bundlePath = (g: number) => `bundles/chile/group-${g}.tar`

/** executed_obs_unit */
export const eouColumns = ["id", "obs_unit_id", "start_at", "end_at", "status", "quality", "created_at", "updated_at"]
export function* eouRows(plan: Plan, refs: Refs): Generator<Row> {
  for (let e = 0; e < plan.eous; e++) {
    const t = times(plan, e)
    const open = S.eouStage(plan, e) === "open"
    const units = refs.obsUnitIds[e % 4 === 3 ? 1 : 0]!
    yield [
      uuid(plan.seed, Kind.eou, e),
      units[(e >>> 2) % units.length]!,
      t.start,
      open ? null : t.end,
      open ? "in_progress" : "completed",
      ["good", "good", "questionable", "unassessed", "bad"][e % 5]!,
      t.start,
      open ? t.start : t.end
    ]
  }
}

/** raw_data_package */
export const packageColumns = [
  "id",
  "executed_obs_unit_id",
  "instrument_module_id",
  "relative_path",
  "size_bytes",
  "checksum",
  "status",
  "error_message",
  "created_at",
  "updated_at"
]
export function* packageRows(plan: Plan, refs: Refs, bytes: Float64Array): Generator<Row> {
  for (const p of plan.packages) {
    const status = S.packageStatus(plan, p)
    if (status === null) continue
    const t = times(plan, p.eou)
    const written = S.packageWritten(status)
    yield [
      uuid(plan.seed, Kind.package, p.index),
      uuid(plan.seed, Kind.eou, p.eou),
      refs.moduleIds[p.module]!,
      pkgPath(p),
      written ? bytes[p.index]! : null,
      written ? checksum(plan.seed, Kind.package, p.index) : null,
      status,
      status === "failed" ? "writing the package failed: the buffer answered No space left on device" : null,
      t.end,
      status === "completed" ? t.archived : written ? t.packaged : t.end
    ]
  }
}

/** raw_data_file */
export const fileColumns = [
  "id",
  "executed_obs_unit_id",
  "instrument_module_id",
  "relative_path",
  "size_bytes",
  "checksum",
  "source_location_id",
  "raw_data_package_id",
  "state",
  "filed_at",
  "updated_at",
  "source_released_at"
]
export function* fileRows(plan: Plan, refs: Refs): Generator<Row> {
  for (const p of plan.packages) {
    const t = times(plan, p.eou)
    const status = S.packageStatus(plan, p)
    const pkg = status === null ? null : uuid(plan.seed, Kind.package, p.index)
    const eou = uuid(plan.seed, Kind.eou, p.eou)
    const stage = S.eouStage(plan, p.eou)
    const written = S.packageWritten(status)
    const mayDamage = stage === "archived" && status !== "failed"
    for (let i = 0; i < p.files; i++) {
      const f = p.firstFile + i
      const damage = mayDamage ? S.fileDamage(plan, p, f) : null
      const copy = S.sourceCopyOf(stage, written, damage, f)
      const state = damage ?? (written ? "packaged" : "filed")
      const filed = t.filed(i)
      yield [
        uuid(plan.seed, Kind.file, f),
        eou,
        refs.moduleIds[p.module]!,
        filePath(p.eou, p.module, i),
        fileSize(plan.seed, f),
        checksum(plan.seed, Kind.file, f),
        refs.locations.chileSource,
        damage === null ? pkg : null,
        state,
        filed,
        state === "filed" ? filed : t.packaged,
        copy === "DELETED" ? t.deleted : null
      ]
    }
  }
}

/** data_transfer_package */
export const bundleColumns = ["id", "relative_path", "size_bytes", "checksum", "status", "created_at", "updated_at"]
export function* bundleRows(plan: Plan, bytes: Float64Array): Generator<Row> {
  for (let g = 0; g < plan.groups; g++) {
    const status = S.bundleStatus(plan, g)
    const members = S.bundleMembers(plan, g)
    if (status === null || members.length === 0) continue
    const t = times(plan, g * groupSize)
    const written = status === "in_progress" || status === "completed"
    const size = members.reduce((a, p) => a + bytes[p.index]!, 0)
    yield [
      uuid(plan.seed, Kind.bundle, g),
      bundlePath(g),
      written ? size : null,
      written ? checksum(plan.seed, Kind.bundle, g) : null,
      status,
      t.bundled,
      status === "completed" ? t.arrived : t.bundled
    ]
  }
}

/** data_transfer_package_member */
export const memberColumns = ["data_transfer_package_id", "raw_data_package_id"]
export function* memberRows(plan: Plan): Generator<Row> {
  for (let g = 0; g < plan.groups; g++) {
    if (S.bundleStatus(plan, g) === null) continue
    for (const p of S.bundleMembers(plan, g)) yield [uuid(plan.seed, Kind.bundle, g), uuid(plan.seed, Kind.package, p.index)]
  }
}

/** data_transfer */
export const transferColumns = [
  "id",
  "data_transfer_package_id",
  "route_id",
  "from_location_id",
  "to_location_id",
  "previous_attempt_id",
  "attempt",
  "adapter",
  "status",
  "bytes_transferred",
  "duration_ms",
  "throughput_bytes_per_second",
  "error_reason",
  "error_message",
  "retryable",
  "started_at",
  "finished_at",
  "created_at",
  "updated_at"
]
export function* transferRows(plan: Plan, refs: Refs, bytes: Float64Array): Generator<Row> {
  for (let g = 0; g < plan.groups; g++) {
    const attempts = S.transferAttempts(plan, g)
    const members = S.bundleMembers(plan, g)
    if (attempts.length === 0 || members.length === 0) continue
    const size = members.reduce((a, p) => a + bytes[p.index]!, 0)
    const start = eouStart(plan, g * groupSize) + 3 * hour
    for (let a = 0; a < attempts.length; a++) {
      const status = attempts[a]!
      const begun = start + a * 20 * minute
      const ms = 60_000 + (g % 600) * 1000
      const done = status === "completed" || status === "failed"
      const started = status === "in_progress" || done ? iso(Math.min(plan.now, begun)) : null
      const finished = done ? iso(Math.min(plan.now, begun + ms)) : null
      yield [
        uuid(plan.seed, Kind.transfer, g * 2 + a),
        uuid(plan.seed, Kind.bundle, g),
        refs.routeId,
        refs.locations.chileBuffer,
        refs.locations.cologneBuffer,
        a === 0 ? null : uuid(plan.seed, Kind.transfer, g * 2 + a - 1),
        a + 1,
        refs.adapter,
        status,
        status === "completed" ? size : status === "failed" ? Math.floor(size / 3) : 0,
        done ? ms : null,
        status === "completed" ? size / (ms / 1000) : null,
        status === "failed" ? "Timeout" : null,
        status === "failed" ? "the transfer stalled: no progress for 300 s" : null,
        status === "failed" ? true : null,
        started,
        finished,
        iso(Math.min(plan.now, begun)),
        finished ?? started ?? iso(Math.min(plan.now, begun))
      ]
    }
  }
}

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

/**
 * event_log: the history of packages, bundles and transfers; with `perFile`, every file's filing,
 * packaging and source deletion too. `share` [k, n] yields the k-th of n disjoint parts (the
 * files of every n-th package; the rest in part 0), so the biggest table loads on n connections.
 */
export const eventColumns = ["entity_kind", "entity_id", "from_state", "to_state", "at", "actor"]
export function* eventRows(plan: Plan, perFile: boolean, share: readonly [number, number] = [0, 1]): Generator<Row> {
  const [k, n] = share
  if (k === 0) yield* historyEvents(plan)
  if (!perFile) return
  for (const p of plan.packages) {
    if (p.index % n !== k) continue
    const t = times(plan, p.eou)
    const written = S.packageWritten(S.packageStatus(plan, p))
    for (let i = 0; i < p.files; i++) {
      const f = p.firstFile + i
      const id = uuid(plan.seed, Kind.file, f)
      yield ["RawDataFile", id, null, "filed", t.filed(i), "instrument"]
      const damage = S.fileDamage(plan, p, f)
      if (damage !== null) yield ["RawDataFile", id, "filed", damage, t.packaged, "worker:chile"]
      else if (written) yield ["RawDataFile", id, "filed", "packaged", t.packaged, "worker:chile"]
      if (S.sourceCopyStatus(plan, p, f) === "DELETED") {
        yield ["PhysicalCopy", uuid(plan.seed, Kind.fileCopy, f), "DELETION_IN_PROGRESS", "DELETED", t.deleted, "worker:chile"]
      }
    }
  }
}

function* historyEvents(plan: Plan): Generator<Row> {
  const chain = ["pending", "scheduled", "in_progress", "completed"]
  for (const p of plan.packages) {
    const status = S.packageStatus(plan, p)
    if (status === null) continue
    const t = times(plan, p.eou)
    const id = uuid(plan.seed, Kind.package, p.index)
    const reached = status === "failed" ? 3 : chain.indexOf(status) + 1
    for (let k = 0; k < reached; k++) {
      yield ["RawDataPackage", id, k === 0 ? null : chain[k - 1]!, chain[k]!, k < 3 ? t.end : t.archived, "worker:chile"]
    }
    if (status === "failed") yield ["RawDataPackage", id, "in_progress", "failed", t.packaged, "worker:chile"]
  }
  for (let g = 0; g < plan.groups; g++) {
    const status = S.bundleStatus(plan, g)
    if (status === null) continue
    const t = times(plan, g * groupSize)
    const id = uuid(plan.seed, Kind.bundle, g)
    const reached = chain.indexOf(status) + 1
    for (let k = 0; k < reached; k++) {
      yield ["DataTransferPackage", id, k === 0 ? null : chain[k - 1]!, chain[k]!, t.bundled, "worker:chile"]
    }
    const attempts = S.transferAttempts(plan, g)
    for (let a = 0; a < attempts.length; a++) {
      yield ["DataTransfer", uuid(plan.seed, Kind.transfer, g * 2 + a), a === 0 ? null : "failed", attempts[a]!, t.sent, "worker:chile"]
    }
  }
}
