/**
 * Benchmark: how long concurrent disk puts hold up the event loop. The disk driver hashes on a
 * worker thread fed through a shared ring (core's `node/HashRing.ts`); when the ring is full, a
 * put's `update` waits in `Atomics.wait`, and the event loop (HTTP requests, timers) waits with
 * it. This measures that wait beside the alternative, the same puts hashed on the main thread.
 *
 *   npx tsx bench/eventLoop.ts                          # 1, 4 and 8 puts of 256 MiB at once
 *   BENCH_PUTS=1,16 BENCH_BYTES=536870912 npx tsx bench/eventLoop.ts
 *
 * Side by side, in rotating order, for each number of puts at once:
 *   worker   the disk driver as `Disk.make` lifts it (hashing worker)
 *   main     the same minimal driver lifted with the runtime's hasher (SHA-256 on this thread)
 *   idle     no puts: the event loop delay of this process at rest, for scale
 * It prints the event loop delay (`perf_hooks.monitorEventLoopDelay`, 1 ms resolution: p50,
 * p99, max), the longest gap between two 1 ms timer callbacks, and the puts' throughput.
 */
import { StorageDriver, StorageHasher } from "@ccat/core"
import { GcTuning } from "@ccat/core/node"
import { Disk } from "@ccat/storage-drivers"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { bodyOf } from "../packages/core/src/testing/StorageTestBodies.js"

GcTuning.tuneForStreaming()

const MiB = 1024 * 1024
const bytes = Number(process.env.BENCH_BYTES ?? 256 * MiB)
const counts = (process.env.BENCH_PUTS ?? "1,4,8").split(",").map(Number)
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)

interface Figures {
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly longestGap: number
  readonly mbPerSecond: number
}

/** Runs `work` while sampling the event loop; delays in milliseconds. */
const sampled = async (work: () => Promise<number>): Promise<Figures> => {
  const h = monitorEventLoopDelay({ resolution: 1 })
  let last = performance.now()
  let longestGap = 0
  const tick = setInterval(() => {
    const now = performance.now()
    longestGap = Math.max(longestGap, now - last)
    last = now
  }, 1)
  h.enable()
  const started = performance.now()
  const moved = await work()
  const seconds = (performance.now() - started) / 1000
  h.disable()
  clearInterval(tick)
  return {
    p50: h.percentile(50) / 1e6,
    p99: h.percentile(99) / 1e6,
    max: h.max / 1e6,
    longestGap,
    mbPerSecond: moved / seconds / 1e6
  }
}

const main = async () => {
  console.log(
    `bench/eventLoop.ts: ${bytes} bytes per put, puts at once ${
      counts.join(", ")
    }, ${rounds} rounds, node ${process.version}, ${os.cpus().length} cores`
  )
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ccat-bench-eventloop-"))
  try {
    const worker = await Effect.runPromise(Disk.make({ root }))
    const minimal = await Effect.runPromise(Disk.makeMinimal({ root }))
    const onMainThread = StorageDriver.make(minimal, { hasher: StorageHasher.runtimeHasher })
    const puts = (d: StorageDriver.Service, n: number, round: number) => async () => {
      await Effect.runPromise(
        Effect.forEach(
          Array.from({ length: n }, (_, i) => i),
          (i) => d.put(`r${round}/p${i}.bin`, bodyOf(bytes, i + 1), { overwrite: true }),
          { concurrency: "unbounded" }
        )
      )
      return n * bytes
    }
    const idle = (ms: number) => () => new Promise<number>((r) => setTimeout(() => r(0), ms))
    // warm both paths (the worker's start, JIT) outside the figures
    await puts(worker, 1, -1)()
    await puts(onMainThread, 1, -1)()
    for (const n of counts) {
      const results = new Map<string, Array<Figures>>()
      for (let round = 0; round < rounds; round++) {
        const order: ReadonlyArray<readonly [string, () => Promise<number>]> = [
          ["worker", puts(worker, n, round)],
          ["main", puts(onMainThread, n, round)],
          ["idle", idle(1000)]
        ]
        for (let k = 0; k < order.length; k++) {
          const [what, work] = order[(k + round) % order.length]
          const f = await sampled(work)
          results.set(what, [...(results.get(what) ?? []), f])
          fs.rmSync(path.join(root, `r${round}`), { recursive: true, force: true })
        }
      }
      console.log(`\n${n} put(s) of ${bytes / MiB} MiB at once (median of ${rounds} rounds; event loop delay in ms):`)
      for (const [what, figures] of results) {
        const med = (pick: (f: Figures) => number) => {
          const s = figures.map(pick).sort((a, b) => a - b)
          return s[Math.floor(s.length / 2)]
        }
        console.log(
          `  ${what.padEnd(7)} p50 ${med((f) => f.p50).toFixed(2).padStart(6)}  p99 ${med((f) => f.p99).toFixed(2).padStart(6)}  ` +
            `max ${med((f) => f.max).toFixed(2).padStart(7)}  longest 1 ms timer gap ${med((f) => f.longestGap).toFixed(1).padStart(6)}` +
            (what === "idle" ? "" : `  ${med((f) => f.mbPerSecond).toFixed(0).padStart(5)} MB/s`)
        )
      }
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true })
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
