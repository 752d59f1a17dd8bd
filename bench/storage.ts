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
 *
 * This file is the runner; the phases, their timing and the helpers are in bench/storage/.
 */
import { GcTuning } from "@ccat/core/node"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { benchDisk, diskPhases } from "./storage/diskPhases.js"
import { makeSource, sh } from "./storage/io.js"
import { type BenchContext, prepareAndTime, resultMarker } from "./storage/measure.js"
import { benchS3, s3Phases } from "./storage/s3Phases.js"
import { processMode, size, small } from "./storage/settings.js"

// the same V8 setting the `ccat` command starts with (see GcTuning): measure the driver as the server runs it
GcTuning.tuneForStreaming()

const which = process.argv[2] ?? "all"
/** Set in a child started to run one phase: the phase's name. */
const childPhase = process.argv[2] === "--phase" ? process.argv[3] : undefined

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
