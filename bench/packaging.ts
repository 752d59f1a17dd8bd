/**
 * Benchmark: our Packager (disk → disk: read, verify every file's SHA-256, write the tar, SHA-256
 * of the tar) against GNU tar piped into a hash, on the same data in the same run.
 *
 *   npx tsx bench/packaging.ts                       # 2 GiB, 3 rounds
 *   BENCH_BYTES=536870912 BENCH_ROUNDS=1 npx tsx bench/packaging.ts
 *   BENCH_DIR=/some/disk npx tsx bench/packaging.ts  # where the data and packages go
 *   BENCH_MIX=large npx tsx bench/packaging.ts       # 256 MiB files only
 *   BENCH_MIX=small npx tsx bench/packaging.ts       # 8-256 KiB files only
 *   BENCH_COMPARE=/tmp/old npx tsx bench/packaging.ts # also another checkout's packager (e.g. a
 *                                                      # `git worktree` of an older commit), interleaved
 *
 * The data: ~40% in 256 MiB files, ~30% in 4-16 MiB files, ~30% in 8-256 KiB files, in nested
 * directories, read once to warm the page cache. Each round runs, in rotating order:
 *   tar|sha256sum      tar -cf - DIR | sha256sum           (the issue's baseline; coreutils has no SHA-NI here)
 *   tar|openssl        tar -cf - DIR | openssl dgst -sha256 (the fairer baseline: SHA-NI like Node)
 *   tar|tee|openssl    tar -cf - DIR | tee OUT | openssl dgst -sha256 (also writes the tar, like us)
 *   packager           Packager.pack disk → disk through the disk driver (every file verified
 *                      against its filed checksum, the package fsynced before it is linked)
 * (an untimed `sync` before each, so no run pays for the previous one's writeback; the two
 * packagers take turns at going first) and prints median throughputs, our ratio to each baseline (median of per-round ratios), CPU
 * per byte, the packager's RSS growth and the load average.
 */
import type { Checksum, Ids, RelativePath } from "@ccat/core"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Disk } from "@ccat/storage-drivers"
import * as Packager from "../packages/server/src/lifecycle/Packager.js"
import { GcTuning } from "@ccat/core/node"

// the same V8 setting the `ccat` command starts with (see GcTuning): measure the driver as the server runs it
GcTuning.tuneForStreaming()

const bytes = Number(process.env.BENCH_BYTES ?? 2 * 1024 ** 3)
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)
const baseDir = process.env.BENCH_DIR ?? os.tmpdir()
/**
 * `mixed` (default), `large` (256 MiB files only: isolates the byte path from per-file costs) or
 * `small` (8-256 KiB files only: the cost per file).
 */
const mix = process.env.BENCH_MIX ?? "mixed"
/**
 * Another checkout of this repository whose packager runs as one more variant in the same rounds
 * (its `packages/server/src`, with this checkout's installed packages): a before/after figure
 * under the same load, whatever the machine is doing meanwhile.
 */
const compare = process.env.BENCH_COMPARE

/** Runs a shell pipeline; resolves with the CPU seconds (user + system) of all its processes. */
const shell = (command: string, cwd?: string) =>
  new Promise<number>((resolve, reject) => {
    const p = spawn("/usr/bin/time", ["-f", "%U %S", "bash", "-o", "pipefail", "-c", command], { stdio: ["ignore", "ignore", "pipe"], cwd })
    let err = ""
    p.stderr.on("data", (c) => (err += c))
    p.on("error", reject)
    p.on("close", (code) => {
      if (code !== 0) return reject(new Error(`${command} exited ${code}: ${err}`))
      const [user, system] = err.trim().split("\n").at(-1)!.split(" ").map(Number)
      resolve(user + system)
    })
  })

/** Wall seconds and CPU seconds of one run. */
const timed = async (f: () => Promise<number>) => {
  const t = process.hrtime.bigint()
  const cpu = await f()
  return { wall: Number(process.hrtime.bigint() - t) / 1e9, cpu }
}

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

const block = randomBytes(4 * 1024 * 1024)

/** Writes an incompressible file and returns it as filed (size and SHA-256). */
const writeFile = async (root: string, rel: string, size: number): Promise<Packager.FileToPackage> => {
  await fs.mkdir(path.dirname(path.join(root, rel)), { recursive: true })
  const hash = createHash("sha256")
  const fh = await fs.open(path.join(root, rel), "w")
  try {
    for (let off = 0, i = 0; off < size; off += block.length, i++) {
      block.writeUInt32LE(i, 0)
      block.writeUInt32LE(Math.floor(Math.random() * 0xffffffff), 4)
      const part = block.subarray(0, Math.min(block.length, size - off))
      hash.update(part)
      await fh.write(part)
    }
  } finally {
    await fh.close()
  }
  return {
    id: randomUUID() as Ids.RawDataFileId,
    relativePath: rel as RelativePath.RelativePath,
    sizeBytes: size,
    checksum: `sha256:${hash.digest("hex")}` as Checksum.Checksum
  }
}

/** The mixed data set: large, medium and small files in nested directories. */
const makeData = async (root: string) => {
  const files: Array<Packager.FileToPackage> = []
  let left = bytes
  const add = async (rel: string, size: number) => {
    size = Math.min(size, left)
    if (size <= 0) return
    files.push(await writeFile(root, rel, size))
    left -= size
  }
  if (mix === "large") {
    for (let i = 0; left > 0; i++) await add(`large/scan-${i}.fits`, 256 * 1024 ** 2)
    return files
  }
  if (mix === "small") {
    for (let i = 0; left > 0; i++) await add(`small/${i % 31}/${i % 5}/part-${i}.dat`, (8 + (i * 37) % 249) * 1024)
    return files
  }
  for (let i = 0; left > 0 && i < Math.floor((bytes * 0.4) / (256 * 1024 ** 2)); i++) await add(`large/scan-${i}.fits`, 256 * 1024 ** 2)
  for (let i = 0, budget = bytes * 0.3; budget > 0 && left > 0; i++) {
    const size = (4 + (i % 13)) * 1024 ** 2
    await add(`medium/${i % 7}/chunk-${i}.dat`, size)
    budget -= size
  }
  for (let i = 0; left > 0; i++) await add(`small/${i % 31}/${i % 5}/part-${i}.dat`, (8 + (i * 37) % 249) * 1024)
  return files
}

const main = async () => {
  const root = await fs.mkdtemp(path.join(baseDir, "ccat-bench-packaging-"))
  const data = path.join(root, "data")
  const out = path.join(root, "out")
  await fs.mkdir(out)
  try {
    console.log(`writing ${(bytes / 1024 ** 3).toFixed(2)} GiB of test data under ${data} (V8 ${GcTuning.streamingFlag}, as ccat runs) ...`)
    const files = Packager.plan(
      (await makeData(data)).map((f) => ({
        ...f,
        executedObsUnitId: randomUUID() as Ids.ExecutedObsUnitId,
        instrumentModuleId: randomUUID() as Ids.InstrumentModuleId
      })),
      { maxPackageBytes: Number.MAX_SAFE_INTEGER }
    ).flatMap((p) => p.files)
    console.log(`${files.length} files; warming the page cache`)
    await shell(`tar -cf - data > /dev/null`, root)
    await shell(`tar -cf - data > /dev/null`, root)

    // the disk driver a site's SOURCE and BUFFER locations use, with its production settings
    // (the package is fsynced before it is linked into place)
    const source = await Effect.runPromise(Disk.make({ root: data, name: "source" }))
    const destination = await Effect.runPromise(Disk.make({ root: out, name: "buffer" }))
    let rssGrowth = 0
    const packager = (pack: typeof Packager.pack, measureRss: boolean) => async () => {
      await fs.rm(path.join(out, "p.tar"), { force: true })
      const cpu = process.cpuUsage()
      const before = process.memoryUsage.rss()
      let peak = before
      const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20)
      try {
        await Effect.runPromise(pack({
          packageId: randomUUID() as Ids.RawDataPackageId,
          executedObsUnitId: randomUUID() as Ids.ExecutedObsUnitId,
          instrumentModuleId: randomUUID() as Ids.InstrumentModuleId,
          files,
          source,
          destination,
          key: "p.tar"
        }))
      } finally {
        clearInterval(timer)
      }
      if (measureRss) rssGrowth = Math.max(rssGrowth, peak - before)
      const used = process.cpuUsage(cpu)
      return (used.user + used.system) / 1e6
    }
    const runs: Record<
      string,
      { readonly command: string; readonly run: () => Promise<number>; times: Array<number>; cpu: Array<number> }
    > = {
      // the issue's baseline, word for word (DIR is the data folder, run from its parent)
      "tar|sha256sum": { command: `tar -cf - DIR | sha256sum`, run: () => shell(`tar -cf - data | sha256sum`, root), times: [], cpu: [] },
      "tar|openssl": {
        command: `tar -cf - DIR | openssl dgst -sha256`,
        run: () => shell(`tar -cf - data | openssl dgst -sha256`, root),
        times: [],
        cpu: []
      },
      "tar|tee|openssl": {
        command: `tar -cf - DIR | tee OUT.tar | openssl dgst -sha256`,
        run: () => shell(`rm -f out/t.tar; tar -cf - data | tee out/t.tar | openssl dgst -sha256`, root),
        times: [],
        cpu: []
      },
      packager: { command: "Packager.pack (disk → disk, every file verified)", run: packager(Packager.pack, true), times: [], cpu: [] }
    }
    if (compare !== undefined) {
      const other = (await import(path.resolve(compare, "packages/server/src/lifecycle/Packager.ts"))) as typeof Packager
      runs["packager@compare"] = { command: `Packager.pack of ${compare}`, run: packager(other.pack, false), times: [], cpu: [] }
    }
    const names = Object.keys(runs)
    for (let r = 0; r < rounds; r++) {
      const order = names.map((_, i) => names[(i + r) % names.length])
      // the two packagers sit side by side in the rotation: take turns at going first
      const [a, b] = [order.indexOf("packager"), order.indexOf("packager@compare")]
      if (b >= 0 && r % 2 === 1) [order[a], order[b]] = [order[b], order[a]]
      for (const name of order) {
        // untimed: the previous run's writes (tee's tar is not fsynced) reach the disk now, not
        // during the next run
        await shell("sync")
        const t = await timed(runs[name].run)
        runs[name].times.push(t.wall)
        runs[name].cpu.push(t.cpu)
        console.log(
          `round ${r + 1} ${name.padEnd(16)} ${t.wall.toFixed(2)} s  ${(bytes / t.wall / 1e9).toFixed(2)} GB/s  cpu ${t.cpu.toFixed(2)} s`
        )
      }
    }
    const gbps = (name: string) => bytes / median(runs[name].times) / 1e9
    console.log(
      `\n${
        (bytes / 1024 ** 3).toFixed(2)
      } GiB (${mix}), ${files.length} files, median of ${rounds} rounds, ${os.cpus().length} cores, Node ${process.version}`
    )
    const cpuPerGiB = (name: string) => median(runs[name].cpu) / (bytes / 1024 ** 3)
    for (const name of names) {
      console.log(`${name.padEnd(16)} ${gbps(name).toFixed(2)} GB/s  ${cpuPerGiB(name).toFixed(2)} cpu-s/GiB   ${runs[name].command}`)
    }
    // each round's packager time against the same round's baseline (they ran back to back, so a
    // busy machine slows both), then the median of those ratios
    const roundRatios = (name: string) => runs[name].times.map((t, r) => t / runs.packager.times[r])
    for (const name of names.filter((n) => n !== "packager")) {
      const ratios = roundRatios(name)
      console.log(
        `packager / ${name.padEnd(16)} throughput ${(100 * median(ratios)).toFixed(0)}% (median of per-round ratios ${
          ratios.map((x) => `${(100 * x).toFixed(0)}%`).join(" ")
        }), cpu per byte ${(100 * cpuPerGiB("packager") / cpuPerGiB(name)).toFixed(0)}%`
      )
    }
    console.log(
      `packager RSS growth (peak) ${(rssGrowth / 1024 ** 2).toFixed(0)} MiB; process max RSS ${
        (process.resourceUsage().maxRSS / 1024).toFixed(0)
      } MiB`
    )
    const load = os.loadavg()
    console.log(
      `load average during the run: ${
        load.map((l) => l.toFixed(1)).join(" ")
      } on ${os.cpus().length} cores (other work on the machine slows every line alike)`
    )
  } finally {
    await fs.rm(root, { recursive: true, force: true })
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
