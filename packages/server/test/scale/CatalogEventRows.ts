/** The synthetic catalog's event log, as an iterator for `COPY`. */
import { groupSize, type Plan, uuid } from "./CatalogPlan.js"
import * as S from "./CatalogState.js"
import { Kind, type Row, times } from "./CatalogRowBasics.js"

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
