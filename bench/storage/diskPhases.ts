/**
 * The storage benchmark's disk phases: `Disk.put`, `Disk.get` and `Disk.readEach` of one large
 * object beside `cp`, `cp` + `sync`, `dd` with fsync, `cat` and Node's own streams, from the page
 * cache and from the device, and a small object's put for memory.
 */
import { Disk } from "@ccat/storage-drivers"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as path from "node:path"
import { pipeline } from "node:stream/promises"
import { dropCache, drain, fileStream, firstPuts, run, sh, warm } from "./io.js"
import { type BenchContext, inNode, measure, type Phase, ratio, report } from "./measure.js"
import { MiB, size, small } from "./settings.js"

/** The disk phases, with a driver on `work/disk` made in this process. */
export const diskPhases = async (context: BenchContext) => {
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

/** Runs and reports the disk phases, then removes what they wrote. */
export const benchDisk = async (context: BenchContext) => {
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
