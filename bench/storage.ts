/**
 * Storage driver benchmark: streaming write and read throughput of one large object through the
 * disk and S3 drivers, and the process's peak memory, beside the same copy done in the same run
 * by `cp` (disk) and by a plain SDK upload (`@aws-sdk/lib-storage` Upload, S3).
 *
 *   npx tsx bench/storage.ts                      # 2 GiB, disk and S3 (starts a throwaway radosgw)
 *   CCAT_BENCH_BYTES=268435456 npx tsx bench/storage.ts disk
 *
 * Targets (issue 4): peak memory independent of object size; throughput at least 80% of the
 * baseline. Memory is shown for a small object too, so its independence from size is visible.
 *
 * Each phase that runs in Node runs in a fresh process of its own by default (started before
 * the clock starts, with its first-use warm-up done): in one long-lived process, a phase that
 * streams fresh buffers can leave V8 collecting continuously for the phases after it (see
 * bench/README.md), so a phase would measure its neighbours. `CCAT_BENCH_PROCESS=shared` runs
 * every phase in this one process instead, to show that effect.
 */
import { S3Client, GetObjectCommand } from "@aws-sdk/client-s3"
import { Upload } from "@aws-sdk/lib-storage"
import { Disk, S3 } from "@ccat/storage-drivers"
import type { StorageDriver } from "@ccat/core"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import * as Radosgw from "../scripts/radosgw.js"
import { bodyOf } from "../packages/core/src/testing/StorageTestBodies.js"
import { GcTuning } from "@ccat/core/node"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"

// the same V8 setting the `ccat` command starts with (see GcTuning): measure the driver as the server runs it
GcTuning.tuneForStreaming()

const MiB = 1024 * 1024
const size = Number(process.env.CCAT_BENCH_BYTES ?? 2 * 1024 * MiB)
const small = 64 * MiB
const which = process.argv[2] ?? "all"
const rounds = Math.max(1, Number(process.env.CCAT_BENCH_RUNS ?? 3))
/** An uncounted warm-up round first; `CCAT_BENCH_WARMUP=0` leaves it out. */
const warmUp = process.env.CCAT_BENCH_WARMUP !== "0"
/** Where the phases that run in Node run: each in a fresh process (default), or all in this one. */
const processMode = process.env.CCAT_BENCH_PROCESS === "shared" ? "shared" : "fresh"
/** Set in a child started to run one phase: the phase's name. */
const childPhase = process.argv[2] === "--phase" ? process.argv[3] : undefined

interface Row {
  readonly what: string
  readonly bytes: number
  readonly seconds: number
  readonly peakRssMiB: number | undefined
}
const rows: Array<Row> = []
/** Every round's seconds per phase, in round order, for per-round ratios. */
const perRound = new Map<string, Array<number>>()

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

interface Phase {
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
interface Measured {
  readonly seconds: number
  readonly peak: number
  readonly cost: { readonly user: number; readonly system: number; readonly minorFaults: number }
}

/** What a child needs to rebuild the phases: the files and, for S3, the server. */
interface BenchContext {
  readonly work: string
  readonly source: string
  readonly smallSource: string
  readonly s3?: {
    readonly endpoint: string
    readonly region: string
    readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string }
  } | undefined
}

const resultMarker = "CCAT_BENCH_PHASE_RESULT "

/**
 * Runs one phase in a fresh Node process (this script with `--phase`, the same flags and
 * loader): the child rebuilds the phases, warms the one asked for, times it and prints what it
 * measured. Its start-up is not timed.
 */
const inChild = (what: string, context: BenchContext): Promise<Measured> =>
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
const prepareAndTime = async (p: Phase) => {
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
const measure = async (phases: ReadonlyArray<Phase>, context: BenchContext, afterRound: () => Promise<unknown> = async () => undefined) => {
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

const report = (prefix: string) => {
  console.log(`\n  best of ${rounds} runs:`)
  for (const row of rows.filter((r) => r.what.startsWith(prefix))) {
    console.log(
      `  ${row.what.padEnd(44)} ${(row.bytes / row.seconds / 1e6).toFixed(0).padStart(6)} MB/s  ${row.seconds.toFixed(2).padStart(7)} s` +
        (row.peakRssMiB === undefined ? "" : `  peak RSS ${row.peakRssMiB.toFixed(0)} MiB`)
    )
  }
}

const sh = (cmd: string, args: ReadonlyArray<string>) =>
  new Promise<void>((resolve, reject) => {
    const p = spawn(cmd, [...args], { stdio: ["ignore", "ignore", "inherit"] })
    p.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}`))))
  })

const drain = (readable: Readable) =>
  new Promise<void>((resolve, reject) => {
    readable.on("data", () => undefined)
    readable.on("end", resolve)
    readable.on("error", reject)
  })

const fileStream = (file: string): Stream.Stream<Uint8Array, Error> =>
  Stream.fromAsyncIterable(fs.createReadStream(file, { highWaterMark: MiB }) as AsyncIterable<Uint8Array>, (e) => e as Error)

const run = <A, E>(e: Effect.Effect<A, E>) => Effect.runPromise(e)

const ratio = (ours: string, baseline: string) => {
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

const makeSource = async (dir: string, bytes: number, name: string) => {
  const file = path.join(dir, name)
  const out = fs.createWriteStream(file)
  await run(Stream.runForEach(bodyOf(bytes, 42), (chunk) =>
    Effect.async<void>((resume) => {
      out.write(chunk, () => resume(Effect.void))
    })))
  await new Promise<void>((r) => out.end(r))
  return file
}

/**
 * Reads a file to nowhere, so its pages are in the page cache. Needed before every phase, not
 * once: this machine's kernel runs DAMON proactive reclaim (a `pageout` scheme for pages idle
 * for 60 s), so a file warmed at the start is partly on the device again minutes later, and a
 * phase would measure the device instead of the copy.
 */
const warm = (file: string) => sh("cat", [file])

/** Drops a file's pages from the page cache (posix_fadvise DONTNEED through GNU dd; no root needed). */
const dropCache = (file: string) => sh("dd", [`if=${file}`, "iflag=nocache", "count=0", "status=none"])

/** A phase whose work runs in Node (ours or Node's own): its memory is measured. */
const inNode = (
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

/**
 * Four puts of the small source under a scratch key, before a timed put in its process: they
 * start the hashing worker (and a disk driver's direct-I/O ring) and let V8 optimise the path.
 */
const firstPuts = (d: StorageDriver.Service, smallSource: string) => async () => {
  for (let i = 0; i < 4; i++) await run(d.put("warm-up.bin", fileStream(smallSource), { overwrite: true }))
}

/** The disk phases, with a driver on `work/disk` made in this process. */
const diskPhases = async (context: BenchContext) => {
  const { work, source, smallSource } = context
  const driver = await run(Disk.make({ root: path.join(work, "disk") }))
  const object = path.join(work, "disk", "big.bin")
  const own = inNode
  // commands as argument lists, never through a shell: a path may hold any character
  const child = (what: string, commands: ReadonlyArray<readonly [string, ...Array<string>]>, before?: () => Promise<unknown>): Phase => ({
    what,
    bytes: size,
    run: async () => {
      for (const [cmd, ...args] of commands) await sh(cmd, args)
    },
    ownMemory: false,
    before
  })
  const cpTarget = path.join(work, "cp.bin")
  const hotSource = () => warm(source)
  const firstPut = firstPuts(driver, smallSource)
  // the small source, stored once, read the same way the timed read will be
  const stored = () => run(driver.put("warm-up.bin", fileStream(smallSource), { overwrite: true }))
  // sixteen reads of it (1 GiB): enough for V8 to optimise the read path, as a server's is
  // (after four, the first 2 GiB stream read still ran at half speed, 2.6-2.8 GB/s)
  const sixteenTimes = (f: () => Promise<unknown>) => async () => {
    await stored()
    for (let i = 0; i < 16; i++) await f()
  }
  const firstRead = sixteenTimes(() => run(Stream.runDrain(driver.get("warm-up.bin"))))
  const firstReadEach = sixteenTimes(() => run(driver.readEach("warm-up.bin", () => Effect.void)))
  const phases: ReadonlyArray<Phase> = [
    child("disk write: cp", [["cp", source, cpTarget]], hotSource),
    child("disk write: cp + sync (same durability)", [["cp", source, `${cpTarget}.2`], ["sync", `${cpTarget}.2`]], hotSource),
    child(
      "disk write: dd bs=1M conv=fsync (streamed)",
      [["dd", `if=${source}`, `of=${cpTarget}.4`, "bs=1M", "conv=fsync", "status=none"]],
      hotSource
    ),
    own(
      "disk write: node stream pipeline (reference)",
      size,
      () => pipeline(fs.createReadStream(source, { highWaterMark: MiB }), fs.createWriteStream(`${cpTarget}.3`)),
      hotSource
    ),
    own(
      "disk write: Disk.put (fsync, sha256)",
      size,
      () => run(driver.put("big.bin", fileStream(source), { overwrite: true })),
      hotSource,
      firstPut
    ),
    child("disk read: cat > /dev/null", [["cat", object]], () => warm(object)),
    own(
      "disk read: node read stream (reference)",
      size,
      () => drain(fs.createReadStream(object, { highWaterMark: MiB })),
      () => warm(object)
    ),
    own("disk read: Disk.get", size, () => run(Stream.runDrain(driver.get("big.bin"))), () => warm(object), firstRead),
    own(
      "disk read: Disk.readEach (reused buffers)",
      size,
      () => run(driver.readEach("big.bin", () => Effect.void)),
      () => warm(object),
      firstReadEach
    ),
    child("disk read from the device: cat > /dev/null", [["cat", object]], () => dropCache(object)),
    own("disk read from the device: Disk.get", size, () => run(Stream.runDrain(driver.get("big.bin"))), () => dropCache(object), firstRead),
    own(
      "disk read from the device: Disk.readEach",
      size,
      () => run(driver.readEach("big.bin", () => Effect.void)),
      () => dropCache(object),
      firstReadEach
    ),
    own(
      `disk write: Disk.put of ${small / MiB} MiB`,
      small,
      () => run(driver.put("small.bin", fileStream(smallSource), { overwrite: true })),
      () => warm(smallSource),
      firstPut
    )
  ]
  return { driver, phases }
}

const benchDisk = async (context: BenchContext) => {
  const { work, source } = context
  console.log(`\ndisk: ${size} bytes, source ${source} (warmed into the page cache before each write), target on the same filesystem`)
  const { driver, phases } = await diskPhases(context)
  await measure(phases, context)
  report("disk")
  ratio("disk write: Disk.put (fsync, sha256)", "disk write: cp")
  ratio("disk write: Disk.put (fsync, sha256)", "disk write: cp + sync (same durability)")
  ratio("disk write: Disk.put (fsync, sha256)", "disk write: dd bs=1M conv=fsync (streamed)")
  ratio("disk write: Disk.put (fsync, sha256)", "disk write: node stream pipeline (reference)")
  ratio("disk read: Disk.get", "disk read: cat > /dev/null")
  ratio("disk read: Disk.get", "disk read: node read stream (reference)")
  ratio("disk read: Disk.readEach (reused buffers)", "disk read: cat > /dev/null")
  ratio("disk read from the device: Disk.get", "disk read from the device: cat > /dev/null")
  ratio("disk read from the device: Disk.readEach", "disk read from the device: cat > /dev/null")
  for (const f of ["cp.bin", "cp.bin.2", "cp.bin.3", "cp.bin.4"]) fs.rmSync(path.join(work, f), { force: true })
  for (const k of ["big.bin", "small.bin", "warm-up.bin"]) await run(driver.delete(k))
}

/** The S3 phases, with drivers and an SDK client made in this process; `close` releases them. */
const s3Phases = async (context: BenchContext) => {
  const { source, smallSource } = context
  const target = context.s3!
  const client = new S3Client({ ...target, forcePathStyle: true })
  const options: S3.Options = { ...target, bucket: "ccat-bench", createBucket: true, partSize: 16 * MiB, concurrency: 4 }
  const scope = await run(Scope.make())
  const driver: StorageDriver.Service = await run(Scope.extend(S3.make(options), scope))
  const fast: StorageDriver.Service = await run(Scope.extend(S3.make({ ...options, contentMd5: false }), scope))
  const firstPut = (d: StorageDriver.Service) => firstPuts(d, smallSource)
  const own = (what: string, bytes: number, f: () => Promise<unknown>, warmUp?: () => Promise<unknown>): Phase =>
    inNode(what, bytes, f, () => warm(source), warmUp)
  const phases: ReadonlyArray<Phase> = [
    own("s3 write: SDK Upload (lib-storage)", size, () =>
      new Upload({
        client,
        params: { Bucket: "ccat-bench", Key: "sdk.bin", Body: fs.createReadStream(source) },
        queueSize: 4,
        partSize: 16 * MiB
      }).done()),
    own(
      "s3 write: S3.put (sha256 + Content-MD5)",
      size,
      () => run(driver.put("ours.bin", fileStream(source), { overwrite: true })),
      firstPut(driver)
    ),
    own(
      "s3 write: S3.put (sha256, no Content-MD5)",
      size,
      () => run(fast.put("ours-fast.bin", fileStream(source), { overwrite: true })),
      firstPut(fast)
    ),
    own("s3 read: SDK GetObject", size, async () => {
      const res = await client.send(new GetObjectCommand({ Bucket: "ccat-bench", Key: "sdk.bin" }))
      await drain(res.Body as Readable)
    }),
    own("s3 read: S3.get", size, () => run(Stream.runDrain(driver.get("ours.bin")))),
    own(
      `s3 write: S3.put of ${small / MiB} MiB`,
      small,
      () => run(driver.put("small.bin", fileStream(smallSource), { overwrite: true })),
      firstPut(driver)
    )
  ]
  const close = async () => {
    client.destroy()
    await run(Scope.close(scope, Exit.void))
  }
  return { driver, phases, close }
}

const benchS3 = async (context: BenchContext) => {
  let gw: Radosgw.Radosgw | undefined
  const endpoint = process.env.CCAT_S3_ENDPOINT
  const creds = endpoint === undefined
    ? undefined
    : { accessKeyId: process.env.CCAT_S3_ACCESS_KEY_ID ?? "", secretAccessKey: process.env.CCAT_S3_SECRET_ACCESS_KEY ?? "" }
  if (endpoint === undefined) {
    process.stdout.write("\nstarting a throwaway radosgw ... ")
    gw = await Radosgw.start({ memoryBytes: 4 * size + 2 * 1024 * MiB })
    // everything the OSD holds is in this machine's memory: keep at most three objects at once
    console.log(`${gw.server} at ${gw.endpoint}`)
  }
  try {
    const s3 = {
      endpoint: endpoint ?? gw!.endpoint,
      region: "us-east-1",
      credentials: creds ?? { accessKeyId: gw!.accessKeyId, secretAccessKey: gw!.secretAccessKey }
    }
    console.log(`s3: ${size} bytes to ${s3.endpoint}, 16 MiB parts, 4 in parallel on both sides`)
    const withS3 = { ...context, s3 }
    const { driver, phases, close } = await s3Phases(withS3)
    const objects = ["sdk.bin", "ours.bin", "ours-fast.bin", "small.bin", "warm-up.bin"]
    // free the memory-backed OSD between rounds
    await measure(phases, withS3, () => run(Effect.forEach(objects, (k) => driver.delete(k))))
    report("s3")
    await run(Effect.forEach(objects, (k) => driver.delete(k)))
    await close()
    ratio("s3 write: S3.put (sha256 + Content-MD5)", "s3 write: SDK Upload (lib-storage)")
    ratio("s3 write: S3.put (sha256, no Content-MD5)", "s3 write: SDK Upload (lib-storage)")
    ratio("s3 read: S3.get", "s3 read: SDK GetObject")
  } finally {
    if (gw !== undefined) await Radosgw.stop(gw.dir)
  }
}

/** In a child started by `inChild`: rebuilds the phases, runs the one asked for, prints what it measured. */
const runChildPhase = async (what: string) => {
  const context = JSON.parse(process.env.CCAT_BENCH_CONTEXT ?? "{}") as BenchContext
  const built = what.startsWith("s3 ") ? await s3Phases(context) : { ...(await diskPhases(context)), close: async () => undefined }
  const phase = built.phases.find((p) => p.what === what)
  if (phase === undefined) throw new Error(`no phase named ${what}`)
  await phase.warm?.()
  await sh("sync", [])
  const measured = await prepareAndTime(phase)
  await built.close()
  process.stdout.write(`${resultMarker}${JSON.stringify(measured)}\n`)
}

const main = async () => {
  if (childPhase !== undefined) return runChildPhase(childPhase)
  console.log(
    `bench/storage.ts: ${size} bytes (CCAT_BENCH_BYTES), node ${process.version}, ${os.cpus().length} cores, load ${
      os.loadavg().map((l) => l.toFixed(1)).join(" ")
    }, V8 ${GcTuning.streamingFlag} (as ccat runs)`
  )
  console.log(
    processMode === "fresh"
      ? "each phase that runs in Node runs in a fresh process of its own (CCAT_BENCH_PROCESS=shared: all in this one)"
      : "every phase runs in this one long-lived process (CCAT_BENCH_PROCESS=shared)"
  )
  console.log(
    `command: ${process.env.CCAT_BENCH_BYTES === undefined ? "" : `CCAT_BENCH_BYTES=${size} `}npx tsx bench/storage.ts ${
      process.argv.slice(2).join(" ")
    }`.trimEnd()
  )
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "ccat-bench-storage-"))
  try {
    const source = await makeSource(work, size, "source.bin")
    const smallSource = await makeSource(work, small, "small-source.bin")
    const context: BenchContext = { work, source, smallSource }
    if (which === "all" || which === "disk") await benchDisk(context)
    if (which === "all" || which === "s3") await benchS3(context)
    console.log(`\nprocess peak RSS over the whole run: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`)
    console.log(`load average at the end: ${os.loadavg().map((l) => l.toFixed(1)).join(" ")} on ${os.cpus().length} cores`)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
