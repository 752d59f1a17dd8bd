// @ts-check
/** How numbers, sizes, times and durations read in the UI: the same way on every page. */

/**
 * Bytes with a decimal unit, as disk vendors and the operators' dashboards count them.
 * @param {number | null | undefined} n
 */
export const bytes = (n) => {
  if (n === null || n === undefined) return "-"
  const units = ["B", "kB", "MB", "GB", "TB", "PB"]
  let v = n
  let u = 0
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000
    u++
  }
  return `${u === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${units[u]}`
}

/**
 * A rate in bytes per second.
 * @param {number | null | undefined} n
 */
export const rate = (n) => (n === null || n === undefined ? "-" : `${bytes(n)}/s`)

/**
 * An instant in UTC, to the second: the observatory and the archives are in different time zones.
 * @param {string | null | undefined} iso
 */
export const time = (iso) => {
  if (iso === null || iso === undefined) return "-"
  const d = new Date(iso)
  return Number.isNaN(d.getTime()) ? String(iso) : `${d.toISOString().slice(0, 19).replace("T", " ")} UTC`
}

/**
 * A duration in milliseconds, in the largest sensible unit.
 * @param {number | null | undefined} ms
 */
export const duration = (ms) => {
  if (ms === null || ms === undefined) return "-"
  if (ms < 1000) return `${ms} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`
  return `${(ms / 3_600_000).toFixed(1)} h`
}

/**
 * The first characters of a UUID: enough to tell rows apart on screen; the full id is in the title.
 * @param {string | null | undefined} id
 */
export const short = (id) => (id === null || id === undefined ? "-" : String(id).slice(0, 8))

/**
 * A count with thousands separators.
 * @param {number | null | undefined} n
 */
export const count = (n) => (n === null || n === undefined ? "-" : n.toLocaleString("en-US"))
