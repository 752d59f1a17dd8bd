/**
 * What each planned package, bundle and file has become at the catalog's "now": statuses of
 * the rows and of their PhysicalCopies, by the stage of their group, with the failures a decade
 * leaves behind sprinkled over the history (a corrupt or missing file in 20,000, a failed
 * package in 5,000, a retried transfer in 20 bundles, a bad archive copy in 10,000 packages,
 * a staged package in 1,000). The rules are the lifecycle's (docs/lifecycle.md), so every
 * row satisfies the schema's constraints and the planners' invariants.
 */
import { fileSize, groupSize, hash, type Plan, type PlannedPackage, type Stage } from "./CatalogPlan.js"

type OpStatus = "pending" | "scheduled" | "in_progress" | "completed" | "failed"
type CopyStatus =
  | "PRESENT"
  | "STAGED"
  | "DELETION_SCHEDULED"
  | "DELETION_IN_PROGRESS"
  | "DELETION_POSSIBLE"
  | "DELETED"
  | "DELETION_FAILED"
  | "CORRUPT"
  | "MISSING"

/** The stage of the group an observation belongs to. */
export const eouStage = (plan: Plan, e: number): Stage => plan.stageOf(Math.floor(e / groupSize))

/** Whether package rows exist yet for an observation at this stage. */
export const packaged = (s: Stage) => s !== "open" && s !== "filed"

/** A package that failed in the history (its files wait, filed, for a retry). */
export const packageFailed = (plan: Plan, p: PlannedPackage) =>
  eouStage(plan, p.eou) === "archived" && hash(plan.seed, 20, p.index) % 5000 === 1

/** The package's status, or null when no package row exists yet. */
export const packageStatus = (plan: Plan, p: PlannedPackage): OpStatus | null => {
  const s = eouStage(plan, p.eou)
  if (!packaged(s)) return null
  if (packageFailed(plan, p)) return "failed"
  if (s === "packaging") return p.index % 2 === 0 ? "pending" : "scheduled"
  if (s === "deleting" || s === "archived") return "completed"
  return "in_progress"
}

/** Whether the package was written (it has a size, a checksum and copies). */
export const packageWritten = (status: OpStatus | null) => status === "in_progress" || status === "completed"

/** A file found corrupt (even) or missing (odd) in the history, taken out of its package. */
export const fileDamage = (plan: Plan, p: PlannedPackage, f: number): "corrupt" | "missing" | null =>
  eouStage(plan, p.eou) === "archived" && !packageFailed(plan, p) && hash(plan.seed, 21, f) % 20000 === 0
    ? (f % 2 === 0 ? "corrupt" : "missing")
    : null

/** Bytes of every package (its undamaged files), computed once per plan. */
export const packageBytes = (plan: Plan): Float64Array => {
  const out = new Float64Array(plan.packages.length)
  for (const p of plan.packages) {
    let sum = 0
    for (let f = p.firstFile; f < p.firstFile + p.files; f++) if (fileDamage(plan, p, f) === null) sum += fileSize(plan.seed, f)
    out[p.index] = sum
  }
  return out
}

/** The status of the group's bundle, or null before bundling. */
export const bundleStatus = (plan: Plan, g: number): OpStatus | null => {
  switch (plan.stageOf(g)) {
    case "bundling":
      return g % 2 === 0 ? "pending" : "scheduled"
    case "transferring":
      return "in_progress"
    case "arrived":
    case "deleting":
    case "archived":
      return "completed"
    default:
      return null
  }
}

/** The packages a group's bundle carries: written, not failed. */
export const bundleMembers = (plan: Plan, g: number): ReadonlyArray<PlannedPackage> => {
  const first = plan.eouPackages[Math.min(plan.eous, g * groupSize)]!
  const last = plan.eouPackages[Math.min(plan.eous, (g + 1) * groupSize)]!
  return plan.packages.slice(first, last).filter((p) => !packageFailed(plan, p))
}

const deletionCycle: ReadonlyArray<CopyStatus> = ["DELETION_POSSIBLE", "DELETION_SCHEDULED", "DELETION_IN_PROGRESS"]

/** A file's SOURCE copy status (null: none recorded yet, which happens at packaging). */
export const sourceCopyStatus = (plan: Plan, p: PlannedPackage, f: number): CopyStatus | null =>
  sourceCopyOf(eouStage(plan, p.eou), packageWritten(packageStatus(plan, p)), fileDamage(plan, p, f), f)

/** The same from what the caller computed once per package (the loader's inner loop). */
export const sourceCopyOf = (s: Stage, written: boolean, damage: "corrupt" | "missing" | null, f: number): CopyStatus | null => {
  if (damage !== null) return damage === "corrupt" ? "CORRUPT" : "MISSING"
  if (!written) return null
  if (s === "archived") return "DELETED"
  if (s === "deleting") return f % 2 === 0 ? "DELETION_POSSIBLE" : "DELETION_SCHEDULED"
  return "PRESENT"
}

/** Where a written package has copies: Chile's buffer, Cologne's buffer, Cologne's archive. */
export const packageCopyStatuses = (
  plan: Plan,
  p: PlannedPackage
): { chile: CopyStatus | null; cologne: CopyStatus | null; archive: CopyStatus | null } => {
  const s = eouStage(plan, p.eou)
  if (!packageWritten(packageStatus(plan, p))) return { chile: null, cologne: null, archive: null }
  const deleting = p.index % 50 === 7 ? "DELETION_FAILED" : deletionCycle[p.index % 3]!
  switch (s) {
    case "buffered":
    case "bundling":
    case "transferring":
      return { chile: "PRESENT", cologne: null, archive: null }
    case "arrived":
      return { chile: "PRESENT", cologne: "PRESENT", archive: null }
    case "deleting":
      return { chile: deleting, cologne: deletionCycle[(p.index + 1) % 3]!, archive: "PRESENT" }
    default: {
      const bad = hash(plan.seed, 22, p.index) % 10000 === 2
      return { chile: "DELETED", cologne: "DELETED", archive: bad ? (p.index % 2 === 0 ? "CORRUPT" : "MISSING") : "PRESENT" }
    }
  }
}

/** A written bundle's copies at Chile's and Cologne's buffers. */
export const bundleCopyStatuses = (plan: Plan, g: number): { chile: CopyStatus | null; cologne: CopyStatus | null } => {
  switch (plan.stageOf(g)) {
    case "transferring":
      return { chile: "PRESENT", cologne: null }
    case "arrived":
      return { chile: "PRESENT", cologne: "PRESENT" }
    case "deleting":
      return { chile: "DELETION_POSSIBLE", cologne: "DELETED" }
    case "archived":
      return { chile: "DELETED", cologne: "DELETED" }
    default:
      return { chile: null, cologne: null }
  }
}

/** The attempts of a bundle's transfer, oldest first (a failed one followed by its retry, sometimes). */
export const transferAttempts = (plan: Plan, g: number): ReadonlyArray<OpStatus> => {
  const s = plan.stageOf(g)
  if (s === "transferring") return g % 3 === 0 ? ["in_progress"] : g % 3 === 1 ? ["scheduled"] : ["failed", "pending"]
  if (s === "arrived" || s === "deleting" || s === "archived") {
    return hash(plan.seed, 23, g) % 20 === 3 ? ["failed", "completed"] : ["completed"]
  }
  return []
}

/** A staged package of the history: its request's status and its copy at the PROCESSING location. */
export const staging = (plan: Plan, p: PlannedPackage): { request: OpStatus; copy: CopyStatus | null; expired: boolean } | null => {
  if (packageStatus(plan, p) !== "completed" || eouStage(plan, p.eou) !== "archived" || hash(plan.seed, 24, p.index) % 1000 !== 4) {
    return null
  }
  if (p.index % 7 === 0) return { request: "pending", copy: null, expired: false }
  return p.index % 3 === 0
    ? { request: "completed", copy: "DELETED", expired: true }
    : { request: "completed", copy: "STAGED", expired: false }
}
