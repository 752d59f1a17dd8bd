/**
 * The shape of a synthetic catalog, decided before a row is written: observations (in groups
 * of eight, one bundle per group), their packages and how many files each holds, and the stage
 * of the lifecycle each group has reached. Everything derives from a seed through a hash, so
 * the same options give the same catalog, row for row, and any row can be recomputed alone.
 *
 * The live work is a fixed number of groups at the newest end (by default 24: about 19,000
 * files on their way), the rest is a decade of history: archived at Cologne, cleaned up at
 * Chile. A site's live work depends on its rate and its latency, not on how much it archived
 * before, so the tail does not grow with the catalog.
 */

/** Stages a group of observations can be in, newest first. */
export const stages = ["open", "filed", "packaging", "buffered", "bundling", "transferring", "arrived", "deleting", "archived"] as const
/** A stage of the lifecycle a group reached. */
export type Stage = (typeof stages)[number]

// How the live tail is shared among the stages (newest first), out of 24 groups.
const tailWeights: ReadonlyArray<readonly [Stage, number]> = [
  ["open", 1],
  ["filed", 2],
  ["packaging", 2],
  ["buffered", 4],
  ["bundling", 3],
  ["transferring", 3],
  ["arrived", 4],
  ["deleting", 5]
]
const tailPattern: ReadonlyArray<Stage> = tailWeights.flatMap(([s, n]) => Array.from({ length: n }, () => s))

/** The options of a catalog. */
export interface PlanOptions {
  /** RawDataFiles in the catalog, exactly. */
  readonly files: number
  /** The seed of every identifier, size, checksum and sprinkled failure. Default 1. */
  readonly seed?: number
  /** Groups of eight observations on their way (not archived and cleaned up). Default 24. */
  readonly liveGroups?: number
  /** The catalog's "now" (ms): the live tail is in the two days before it. Default: the start of the current UTC hour. */
  readonly now?: number
}

/** Instruments and their modules; an observation takes all modules of its instrument. */
export const instruments = [
  { name: "Prime-Cam", modules: ["280GHz", "350GHz", "850GHz"] },
  { name: "CHAI", modules: ["LFA", "HFA"] }
] as const
/** Every module, numbered across instruments (Prime-Cam's first). */
export const modules = instruments.flatMap((i, k) => i.modules.map((m) => ({ instrument: k, name: m })))

/** Observations per group (one bundle carries a group's packages). */
export const groupSize = 8

/** One RawDataPackage of the plan (for an open observation, the files it will hold). */
export interface PlannedPackage {
  readonly index: number
  readonly eou: number
  readonly module: number
  readonly firstFile: number
  readonly files: number
}

/** The whole plan. */
export interface Plan {
  readonly seed: number
  readonly now: number
  readonly files: number
  readonly eous: number
  readonly packages: ReadonlyArray<PlannedPackage>
  /** The first package of each observation, and one past the last (`eouPackages[eous]`). */
  readonly eouPackages: Int32Array
  readonly groups: number
  /** Groups at the newest end that are on their way (not archived). */
  readonly live: number
  /** Each group's stage. */
  readonly stageOf: (group: number) => Stage
}

/** A 32-bit mix (splitmix-like): good enough spread for ids and sprinkles. */
const mix = (a: number): number => {
  a = Math.imul(a ^ (a >>> 16), 0x7feb352d)
  a = Math.imul(a ^ (a >>> 15), 0x846ca68b)
  return (a ^ (a >>> 16)) >>> 0
}

/** A deterministic hash of the seed, a kind and up to two indexes. */
export const hash = (seed: number, kind: number, i: number, j = 0): number =>
  mix((mix((mix(seed ^ Math.imul(kind, 0x9e3779b9)) + i) >>> 0) + Math.imul(j, 0x85ebca6b)) >>> 0)

// Hex digits of every byte, so an id or a checksum is a few lookups and concatenations
// (`toString(16)` and `padStart` per word were a third of the generator's time).
const byteHex: ReadonlyArray<string> = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"))
const hex8 = (n: number) => byteHex[n >>> 24]! + byteHex[(n >>> 16) & 255]! + byteHex[(n >>> 8) & 255]! + byteHex[n & 255]!

/**
 * A UUID (version 4 layout) whose first 48 bits are the kind and the index, so each table's
 * rows arrive in key order (as a time-ordered UUIDv7 would) and loading is append-only in the
 * primary key; the rest comes from the seed.
 */
export const uuid = (seed: number, kind: number, index: number): string => {
  // The 48-bit head `kind * 2^40 + index` as its high 16 and low 32 bits (index < 2^40).
  const high = kind * 256 + Math.floor(index / 2 ** 32)
  const low = index >>> 0
  const a = hex8(hash(seed, kind, index, 1))
  return `${byteHex[(high >>> 8) & 255]}${byteHex[high & 255]}${byteHex[low >>> 24]}${byteHex[(low >>> 16) & 255]}-${
    byteHex[(low >>> 8) & 255]
  }${byteHex[low & 255]}-4${a.slice(0, 3)}-8${a.slice(3, 6)}-${hex8(hash(seed, kind, index, 2))}${a.slice(6, 8)}${
    byteHex[hash(seed, kind, index, 3) >>> 24]
  }`
}

/** A well-formed SHA-256 checksum derived from the seed, a kind and an index. */
export const checksum = (seed: number, kind: number, index: number): string => {
  // Four hashed words and the same words scrambled: well-formed and distinct, at half the hashing.
  const w = [hash(seed, kind, index, 10), hash(seed, kind, index, 11), hash(seed, kind, index, 12), hash(seed, kind, index, 13)]
  const scrambled = (x: number) => hex8(Math.imul(x ^ 0x5bd1e995, 0x27d4eb2d) >>> 0)
  return `sha256:${hex8(w[0]!)}${hex8(w[1]!)}${hex8(w[2]!)}${hex8(w[3]!)}${scrambled(w[0]!)}${scrambled(w[1]!)}${scrambled(w[2]!)}${
    scrambled(w[3]!)
  }`
}

/** Size of file `f`: mostly small (1 KiB to 1 MiB), one in 16 large (16 to 256 MiB). */
export const fileSize = (seed: number, f: number): number => {
  const h = hash(seed, 100, f)
  return h % 16 === 0 ? 2 ** (24 + (h >>> 4) % 5) + (h >>> 8) % 4096 : 2 ** (10 + (h >>> 4) % 11) + (h >>> 8) % 1024
}

/** Builds the plan: observations until the files are there, each split into one package per module. */
export const make = (options: PlanOptions): Plan => {
  if (!Number.isInteger(options.files) || options.files < 1) throw new Error(`files must be a positive integer, got ${options.files}`)
  const seed = options.seed ?? 1
  const now = options.now ?? Math.floor(Date.now() / 3_600_000) * 3_600_000
  const packages: Array<PlannedPackage> = []
  const starts: Array<number> = []
  let file = 0
  let eou = 0
  while (file < options.files) {
    starts.push(packages.length)
    const instrument = eou % 4 === 3 ? 1 : 0
    const first = instrument === 0 ? 0 : instruments[0].modules.length
    for (let m = 0; m < instruments[instrument].modules.length && file < options.files; m++) {
      const n = Math.min(20 + (hash(seed, 1, eou, m) % 41), options.files - file)
      packages.push({ index: packages.length, eou, module: first + m, firstFile: file, files: n })
      file += n
    }
    eou++
  }
  starts.push(packages.length)
  const groups = Math.ceil(eou / groupSize)
  const live = Math.min(options.liveGroups ?? 24, Math.floor(groups / 2))
  const stageOf = (g: number): Stage => {
    const fromNewest = groups - 1 - g
    return fromNewest >= live ? "archived" : tailPattern[Math.floor((fromNewest * tailPattern.length) / live)]!
  }
  return { seed, now, files: options.files, eous: eou, packages, eouPackages: Int32Array.from(starts), groups, live, stageOf }
}

const day = 86_400_000
const decade = 3652 * day

/**
 * When observation `e` started: the history spread over the decade before the last two days,
 * the live groups over those two days (an observation every few minutes, as at the telescope).
 */
export const eouStart = (plan: Plan, e: number): number => {
  const group = Math.floor(e / groupSize)
  const live = plan.groups - 1 - group < plan.live
  if (live) {
    const firstLive = (plan.groups - plan.live) * groupSize
    const span = Math.max(1, plan.eous - firstLive)
    return plan.now - 2 * day + ((e - firstLive) / span) * (2 * day - 3_600_000)
  }
  const historic = Math.max(1, (plan.groups - plan.live) * groupSize)
  return plan.now - decade + (e / historic) * (decade - 2 * day)
}
