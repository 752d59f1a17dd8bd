/**
 * One V8 setting for processes that stream large objects: allocation-site pretenuring off.
 *
 * Streaming a large object hands fresh 1 MiB buffers from stage to stage (a file read, a hash,
 * a write). When the next buffer's allocation sets off a young-generation collection, the few
 * buffers still in flight survive it, and V8's allocation-site pretenuring concludes that
 * buffers live long: from then on it allocates them in the old generation, where only a full
 * mark-compact frees them, and the 64 MiB external-memory limit starts one every 64 MiB read.
 * Measured on this project's 2-core machine (three reads of a 2 GiB file through `Disk.get`):
 * 285-321 mark-compacts, 7.4-8.4 s and 13 s of CPU; with pretenuring off, 12-19 mark-compacts,
 * 1.6-2.2 s and 2.2-2.8 s of CPU. It happens in some runs and not in others (whichever way the
 * first decisions fall), which is why disk and packaging throughput varied 2-5x between runs.
 *
 * Pretenuring only moves allocations between generations: turning it off changes no result.
 * The `ccat` command sets it first thing, before its modules are evaluated; a process that
 * embeds the SDK can do the same by calling this first, or start Node with the flag itself.
 */
import * as v8 from "node:v8"

/** The V8 flag `tuneForStreaming` sets (for `node` command lines). */
export const streamingFlag = "--no-allocation-site-pretenuring"

let applied = false

/**
 * Turns V8's allocation-site pretenuring off for this process (once; later calls do nothing).
 * Call it before heavy work starts: decisions V8 already made stay as they are.
 */
export const tuneForStreaming = (): void => {
  if (applied) return
  applied = true
  v8.setFlagsFromString(streamingFlag)
}
