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
 * The built `ccat` command starts Node with the flag (its `#!` line) and also sets it first
 * thing at run time (for `tsx`). Node warns that changing V8 flags after start-up may behave
 * unpredictably; this flag is read afresh at each collection and only switches a heuristic off,
 * but starting Node with `--no-allocation-site-pretenuring` is the safer way for a process that
 * embeds the SDK, and calling this first thing is the fallback.
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
