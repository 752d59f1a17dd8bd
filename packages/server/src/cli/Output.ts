/**
 * How the operator commands print for people: aligned tables, byte sizes and rates in SI units
 * (what disk vendors and link budgets quote), instants in ISO UTC. Machine output is `--json`,
 * never parsed from these.
 */
import * as DateTime from "effect/DateTime"

/** Rows under a header, each column as wide as its widest cell; a row per line. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>, indent = "  "): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    indent + cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join("  ").trimEnd()
  return [line(header), ...rows.map(line)].join("\n")
}

const units = ["B", "kB", "MB", "GB", "TB", "PB"]

/** A byte count in SI units: `512 B`, `4.1 kB`, `1.23 GB`. */
export const bytes = (n: number | null | undefined): string => {
  if (n === null || n === undefined) return "-"
  let v = n
  let u = 0
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000
    u++
  }
  return u === 0 ? `${v} B` : `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[u]}`
}

/** A rate in bytes per second, or `-` when nothing moved. */
export const rate = (n: number | null | undefined): string => (n === null || n === undefined ? "-" : `${bytes(n)}/s`)

/** A fraction as a percentage with one decimal. */
export const percent = (f: number | null | undefined): string => (f === null || f === undefined ? "-" : `${(f * 100).toFixed(1)}%`)

/** An instant as ISO UTC to the second, or `-`. */
export const instant = (d: DateTime.Utc | Date | null | undefined): string => {
  if (d === null || d === undefined) return "-"
  const iso = d instanceof Date ? d.toISOString() : DateTime.formatIso(d)
  return iso.replace(/\.\d{3}Z$/, "Z")
}

/** A duration in milliseconds, readable: `850 ms`, `42 s`, `3 min 5 s`, `2 h 10 min`. */
export const duration = (ms: number | null | undefined): string => {
  if (ms === null || ms === undefined) return "-"
  if (ms < 1000) return `${Math.round(ms)} ms`
  const s = Math.round(ms / 1000)
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
}

/** `key value` pairs, for counts by state; zeros are left out unless every value is zero. */
export const pairs = (record: Readonly<Record<string, number>>): string => {
  const nonZero = Object.entries(record).filter(([, n]) => n > 0)
  return nonZero.length === 0 ? "none" : nonZero.map(([k, n]) => `${k} ${n}`).join("  ")
}

/** Cuts long text (error messages in a table) to a width, marking the cut. */
export const cut = (text: string | null | undefined, width: number): string => {
  if (text === null || text === undefined) return "-"
  const one = text.replace(/\s+/g, " ").trim()
  return one.length <= width ? one : `${one.slice(0, width - 1)}…`
}

/** A line under a listing that says more items exist than were printed. */
export const moreNote = (more: boolean, shown: number): string | undefined =>
  more ? `  … more than ${shown}; raise --limit to see them` : undefined
