/**
 * The rows of a synthetic catalog, table by table, as iterators for `COPY`: each table is one
 * pass over the plan, in key order, computing every value from the plan and the seed. The copies
 * and staging requests are in `CatalogCopyRows.ts`, the event log in `CatalogEventRows.ts`.
 */
import { checksum, eouStart, fileSize, groupSize, type Plan, uuid } from "./CatalogPlan.js"
import * as S from "./CatalogState.js"
import { bundlePath, filePath, hour, iso, Kind, minute, pkgPath, type Refs, type Row, times } from "./CatalogRowBasics.js"

export { iso, Kind, type Refs } from "./CatalogRowBasics.js"
export * from "./CatalogCopyRows.js"
export * from "./CatalogEventRows.js"

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
