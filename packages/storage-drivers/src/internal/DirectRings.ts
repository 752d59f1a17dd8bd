/**
 * The disk writer's direct-I/O rings, and what the direct path did in this process. A ring is
 * `directSlots` aligned slots of `directSlotBytes`, a direct write's whole memory whatever the
 * object's size; a few are kept for reuse and at most `maxRings` are in use at once, so a burst
 * of large writes takes the page cache instead of reserving ever more address space.
 */
import * as Metric from "effect/Metric"

const MiB = 1024 * 1024

/** Size of one direct write and of one ring slot; a multiple of every logical block size. */
export const directSlotBytes = MiB
/** Slots in a ring: a direct write's memory, whatever the object's size. */
export const directSlots = 8
/** Rings kept for reuse when no write holds them (each is `directSlots` MiB). */
const keptRings = 2
/** Rings in use at once in this process; a write that finds none free goes through the page cache. */
const maxRings = 16

/** WebAssembly's memory constructor (this project's TypeScript lib has no WebAssembly values). */
const WasmMemory = (globalThis as unknown as {
  readonly WebAssembly: { readonly Memory: new(descriptor: { readonly initial: number }) => { readonly buffer: ArrayBuffer } }
}).WebAssembly.Memory

/**
 * What the direct path did in this process, for tests and diagnosis: 1 MiB blocks written
 * directly, and objects that wanted direct I/O and got the page cache instead (no free ring, a
 * ring that could not be reserved, a descriptor `O_DIRECT` was refused for, or EINVAL from a
 * direct write). Each ring is a WebAssembly memory, for which V8 reserves about 10 GiB of
 * virtual address space (not memory): under a low `ulimit -v` rings cannot be made and every
 * write takes the page cache.
 */
export const directStats = { blocksWritten: 0, refused: 0 }

/** Why a write that wanted direct I/O took the page cache. */
export type Refusal = "no free ring" | "ring not reserved" | "open refused" | "EINVAL"

/** The same figures for operators (`/metrics`): direct blocks written, in this process. */
export const directBlocks = Metric.counter("ccat_disk_direct_io_blocks_total", {
  description: "1 MiB blocks the disk drivers of this process wrote with direct I/O (O_DIRECT).",
  incremental: true
})

/** Writes that wanted direct I/O and went through the page cache instead, by reason. */
export const directRefusals = Metric.counter("ccat_disk_direct_io_refusals_total", {
  description: "Disk writes that wanted direct I/O and went through the page cache, by reason: no free ring " +
    "(more large writes at once than rings), ring not reserved (address space), open refused (the filesystem " +
    "refuses O_DIRECT), EINVAL (the device wants another alignment).",
  incremental: true
})

const keptFree: Array<Uint8Array> = []
let ringsInUse = 0

/**
 * An aligned ring, or none. `O_DIRECT` needs the buffer's address aligned to the device's
 * logical block; Node has no aligned allocation, but WebAssembly memory is reserved in whole
 * pages by V8's page allocator, so its start is page-aligned.
 */
export const takeRing = (): Uint8Array | { readonly refused: Refusal; readonly cause?: unknown } => {
  if (ringsInUse >= maxRings) return { refused: "no free ring" }
  let ring = keptFree.pop()
  if (ring === undefined) {
    try {
      ring = new Uint8Array(new WasmMemory({ initial: (directSlots * directSlotBytes) / 65536 }).buffer)
    } catch (cause) {
      return { refused: "ring not reserved", cause }
    }
  }
  ringsInUse++
  return ring
}

/** Gives a ring back: kept for the next write while fewer than `keptRings` are. */
export const giveRing = (ring: Uint8Array) => {
  ringsInUse--
  if (keptFree.length < keptRings) keptFree.push(ring)
}
