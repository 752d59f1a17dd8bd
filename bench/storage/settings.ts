/**
 * The storage benchmark's settings, read from the environment once: the object size, the rounds,
 * the warm-up round and where the phases that run in Node run.
 */

/** One mebibyte. */
export const MiB = 1024 * 1024
/** The large object's size (`CCAT_BENCH_BYTES`, 2 GiB by default). */
export const size = Number(process.env.CCAT_BENCH_BYTES ?? 2 * 1024 * MiB)
/** The small object's size: memory shown beside the large one's makes its independence from size visible. */
export const small = 64 * MiB
/** Counted rounds per phase (`CCAT_BENCH_RUNS`, 3 by default). */
export const rounds = Math.max(1, Number(process.env.CCAT_BENCH_RUNS ?? 3))
/** An uncounted warm-up round first; `CCAT_BENCH_WARMUP=0` leaves it out. */
export const warmUp = process.env.CCAT_BENCH_WARMUP !== "0"
/** Where the phases that run in Node run: each in a fresh process (default), or all in this one. */
export const processMode = process.env.CCAT_BENCH_PROCESS === "shared" ? "shared" : "fresh"
