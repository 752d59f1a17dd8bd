/**
 * What every table of the synthetic catalog shares: the kinds of generated ids, the topology rows
 * it refers to, the milestones of an observation's data and where its objects are.
 */
import { eouStart, modules, type Plan, type PlannedPackage } from "./CatalogPlan.js"
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

/** One row of a table, its values in the order of the table's columns. */
export type Row = ReadonlyArray<Value>
/** Milliseconds of a minute, an hour and a day. */
export const minute = 60_000
/** Milliseconds of an hour. */
export const hour = 60 * minute
/** Milliseconds of a day. */
export const day = 24 * hour
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
export const times = (plan: Plan, e: number) => {
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

/** The path of a package in a buffer or the archive. */
export const pkgPath = (p: PlannedPackage) => `packages/eou-${p.eou}/${modules[p.module]!.name}.tar`
/** The path of file `i` of an observation's module. */
export const filePath = (e: number, module: number, i: number) =>
  `eou-${e}/${modules[module]!.name}/scan-${String(i).padStart(4, "0")}.fits`
/** The path of bundle `g` in Chile's buffer. */
export const bundlePath = (g: number) => `bundles/chile/group-${g}.tar`
