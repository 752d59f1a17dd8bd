/**
 * How the storage benchmark times its phases: a phase is timed in a fresh Node process of its own
 * (or in this one), in interleaved rounds with its baseline, keeping each phase's best time and
 * highest memory; the report prints them and the per-round ratios of ours to a baseline.
 */
import { spawn } from "node:child_process"
import { sh } from "./io.js"
import { MiB, processMode, rounds, warmUp } from "./settings.js"

/** A phase's result: its best time and, for phases in Node, its highest memory. */
interface Row {
  readonly what: string
  readonly bytes: number
  readonly seconds: number
  readonly peakRssMiB: number | undefined
}
/** Every phase's result so far, in the order measured. */
const rows: Array<Row> = []
/** Every round's seconds per phase, in round order, for per-round ratios. */
const perRound = new Map<string, Array<number>>()

/** The median of some numbers. */
const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** One thing to time: a run of ours or of a baseline. */
export interface Phase {
  readonly what: string
  readonly bytes: number
  readonly run: () => Promise<unknown>
  /** Whether the work runs in Node (ours or Node's own), not in a command like `cp`. */
  readonly ownMemory: boolean
  /** Untimed preparation right before the run (warming or dropping a file's pages). */
  readonly before?: (() => Promise<unknown>) | undefined
  /**
   * Untimed first use in the process that runs the phase (starting hashing workers, compiling):
   * what a server does once, not per object. Round 0 does it in shared mode.
   */
  readonly warm?: (() => Promise<unknown>) | undefined
}

/** What one timed run of a phase measured. */
export interface Measured {
  readonly seconds: number
  readonly peak: number
  readonly cost: { readonly user: number; readonly system: number; readonly minorFaults: number }
}

/** What a child needs to rebuild the phases: the files and, for S3, the server. */
export interface BenchContext {
  readonly work: string
  readonly source: string
  readonly smallSource: string
  readonly s3?: {
    readonly endpoint: string
    readonly region: string
    readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string }
  } | undefined
}

/** The prefix of the line a child prints its measurement on. */
export const resultMarker = "CCAT_BENCH_PHASE_RESULT "

/**
 * Runs one phase in a fresh Node process (this script with `--phase`, the same flags and
 * loader): the child rebuilds the phases, warms the one asked for, times it and prints what it
 * measured. Its start-up is not timed.
 */
export const inChild = (what: string, context: BenchContext): Promise<Measured> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1], "--phase", what], {
      env: { ...process.env, CCAT_BENCH_CONTEXT: JSON.stringify(context) },
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    child.stdout.on("data", (d: Buffer) => (out += d.toString()))
    child.on("exit", (code) => {
      const line = out.split("\n").find((l) => l.startsWith(resultMarker))
      if (code !== 0 || line === undefined) reject(new Error(`phase ${what} in a child exited ${code}: ${out}`))
      else resolve(JSON.parse(line.slice(resultMarker.length)) as Measured)
    })
  })

/** Times one run of a phase, sampling this process's resident memory every 10 ms. */
const once = async (p: Phase): Promise<Measured> => {
  let peak = process.memoryUsage.rss()
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss())
  }, 10)
  const usage = process.resourceUsage()
  const started = process.hrtime.bigint()
  await p.run()
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  clearInterval(timer)
  const after = process.resourceUsage()
  // this process's CPU and first touches of fresh pages during the run: the signature of a slow
  // round (a child's are not ours, so they show only for phases that run here)
  const cost = {
    user: (after.userCPUTime - usage.userCPUTime) / 1e6,
    system: (after.systemCPUTime - usage.systemCPUTime) / 1e6,
    minorFaults: after.minorPageFault - usage.minorPageFault
  }
  return { seconds, peak: Math.max(peak, process.memoryUsage.rss()), cost }
}

/** The untimed preparation of a phase, then one timed run. */
export const prepareAndTime = async (p: Phase) => {
  await p.before?.()
  return once(p)
}

/** A phase's CPU and page faults in this process, shown for phases whose work runs here. */
const costOf = (p: Phase, c: { user: number; system: number; minorFaults: number }) =>
  p.ownMemory ? ` (user ${c.user.toFixed(2)} s, sys ${c.system.toFixed(2)} s, ${c.minorFaults} minor faults)` : ""

/**
 * Runs the phases in interleaved rounds (baseline and ours alternate, so a busy machine slows
 * both alike) and keeps each phase's best time and highest memory.
 */
export const measure = async (
  phases: ReadonlyArray<Phase>,
  context: BenchContext,
  afterRound: () => Promise<unknown> = async () => undefined
) => {
  const best = new Map<string, { seconds: number; peak: number }>()
  // round 0 warms up every phase alike (JIT, the hashing worker's start, first allocations) and
  // is not counted: a server does this once, not per object
  for (let round = warmUp ? 0 : 1; round <= rounds; round++) {
    for (const p of phases) {
      // start every phase with no dirty pages left by the one before, or a later writer pays
      // for an earlier writer's writeback
      await sh("sync", [])
      const r = processMode === "fresh" && p.ownMemory ? await inChild(p.what, context) : await prepareAndTime(p)
      if (round === 0) {
        process.stdout.write(`  warm-up: ${p.what}: ${(p.bytes / r.seconds / 1e6).toFixed(0)} MB/s${costOf(p, r.cost)} (not counted)\n`)
        continue
      }
      perRound.set(p.what, [...(perRound.get(p.what) ?? []), r.seconds])
      const prev = best.get(p.what)
      best.set(p.what, { seconds: Math.min(prev?.seconds ?? Infinity, r.seconds), peak: Math.max(prev?.peak ?? 0, r.peak) })
      process.stdout.write(`  round ${round}: ${p.what}: ${(p.bytes / r.seconds / 1e6).toFixed(0)} MB/s${costOf(p, r.cost)}\n`)
    }
    await afterRound()
  }
  for (const p of phases) {
    const b = best.get(p.what)!
    const row = { what: p.what, bytes: p.bytes, seconds: b.seconds, peakRssMiB: p.ownMemory ? b.peak / MiB : undefined }
    rows.push(row)
  }
}

/** Prints the best of each phase whose name starts with `prefix`. */
export const report = (prefix: string) => {
  console.log(`\n  best of ${rounds} runs:`)
  for (const row of rows.filter((r) => r.what.startsWith(prefix))) {
    console.log(
      `  ${row.what.padEnd(44)} ${(row.bytes / row.seconds / 1e6).toFixed(0).padStart(6)} MB/s  ${row.seconds.toFixed(2).padStart(7)} s` +
        (row.peakRssMiB === undefined ? "" : `  peak RSS ${row.peakRssMiB.toFixed(0)} MiB`)
    )
  }
}

/** Prints how fast ours ran beside a baseline: the median of per-round ratios and the best-of ratio. */
export const ratio = (ours: string, baseline: string) => {
  const a = rows.find((r) => r.what === ours)
  const b = rows.find((r) => r.what === baseline)
  if (a === undefined || b === undefined) return
  // each round's baseline time over the same round's time of ours (run back to back, so load
  // from other processes hits both), then the median; the best-of ratio beside it
  const ratios = (perRound.get(baseline) ?? []).map((t, i) => t / perRound.get(ours)![i])
  console.log(
    `  ratio ${ours} / ${baseline}: median ${(median(ratios) * 100).toFixed(0)}% of baseline throughput ` +
      `(rounds ${ratios.map((r) => `${(r * 100).toFixed(0)}%`).join(" ")}; best of each ${(b.seconds / a.seconds * 100).toFixed(0)}%)`
  )
}

/** A phase whose work runs in Node (ours or Node's own): its memory is measured. */
export const inNode = (
  what: string,
  bytes: number,
  f: () => Promise<unknown>,
  before?: () => Promise<unknown>,
  warmUp?: () => Promise<unknown>
): Phase => ({
  what,
  bytes,
  run: f,
  ownMemory: true,
  before,
  warm: warmUp
})
