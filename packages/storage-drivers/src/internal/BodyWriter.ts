/**
 * The disk driver's write path: a body's bytes into an open file, from offset 0.
 *
 * The first `directAfterBytes` of an object, and every object written without durability, go
 * through the page cache in 1 MiB `writev` batches, one in flight while the next is gathered.
 * Past that offset a durable write goes out with direct I/O (`O_DIRECT`, a second descriptor
 * on the same file) from a ring of aligned 1 MiB slots, several writes in flight, and the last
 * partial slot through the page cache again. Measured on this project's 2-core machine with a
 * 2 GiB object (bench/storage.ts, and `dd` beside it): writes through the page cache cost the
 * kernel about twice the CPU of the copy itself (allocating, copying into and writing back page
 * cache folios, 0.7 to 5 s of system time for the same 2 GiB from run to run), and on two cores
 * that CPU competes with the SHA-256 of the same bytes; `dd oflag=direct` took 1.2 to 1.4 s
 * with 0.5 s of system time every run. A large object's bytes are not read again soon (they go
 * on to a transfer or an archive, minutes later), so the page cache gains nothing from them.
 *
 * Everything here is plain code over promises: the caller (`FileIo.writeBody`) keeps Effect at
 * the edges, because per-chunk Effect machinery cost more than the copying in profiles. The
 * rings and the direct path's figures are `DirectRings`'; the system calls, `WriteCalls`'.
 */
import { LentBytes } from "@ccat/core"
import * as MetricLabel from "effect/MetricLabel"
import * as fs from "node:fs"
import { directBlocks, directRefusals, directSlotBytes, directSlots, directStats, giveRing, type Refusal, takeRing } from "./DirectRings.js"
import { fdatasync, isEinval, openDirect, writeAll, writevAll } from "./WriteCalls.js"

export { directBlocks, directRefusals, directSlotBytes, directStats, type Refusal } from "./DirectRings.js"

const MiB = 1024 * 1024

/**
 * Bytes gathered before one `writev` through the page cache. A piece of this size or more is
 * written as it arrives, while it is still in the CPU's cache: measured on a 2 GiB file, 1 MiB
 * batches wrote in 2.7 s with 1.6 s of system time, 2 and 8 MiB batches in 11-13 s with 5 s.
 */
export const writeBatchBytes = MiB

/**
 * Through the page cache, written data is handed to the device every this many bytes while
 * writing goes on (an `fdatasync` beside the writes), so the fsync that ends a durable write
 * flushes only the tail: otherwise the kernel holds the object in dirty pages and the final
 * fsync takes as long as the device needs for all of it.
 */
export const syncEveryBytes = 128 * MiB

/**
 * Objects are written through the page cache up to this offset and directly past it: small
 * objects (most files of an observation) never pay direct I/O's device round trip per write.
 */
export const directAfterBytes = 8 * MiB

/** Direct writes in flight at once per object. */
const directInFlight = 4

/** What a writer is asked to do beside writing. */
export interface Options {
  /** Flush to the device while writing (see `syncEveryBytes`) and use direct I/O past `directAfterBytes`. */
  readonly durable: boolean
  /** Write past `directAfterBytes` with direct I/O (with `durable` only); default false. */
  readonly direct?: boolean | undefined
}

/**
 * Writes a body's pieces, in order, to `fd` from offset 0. `accept` takes pieces and returns a
 * promise only when the caller must wait (a batch or slot still being written); `finish`
 * writes what is left and resolves with the byte count; `settled` waits for every write still
 * running, whatever happened, and releases the direct descriptor and ring, so the caller may
 * close and unlink the file at once. The first failed write fails the next `accept` or
 * `finish`.
 */
export class BodyWriter {
  /** File offset of the next byte accepted. */
  private position = 0
  private failure: { readonly error: unknown } | undefined
  // page cache path
  private batch: Array<Uint8Array> = []
  private batchBytes = 0
  private batchAt = 0
  private inFlight: Promise<void> | undefined
  private flushing: Promise<void> | undefined
  private flushedUpTo = 0
  // direct path: `direct` once the descriptor is open and the ring taken
  private direct = false
  /** The offset the direct path took over at: pieces starting here or later went only into the ring. */
  private directFrom = Infinity
  private directFd: number | undefined
  private directRefused = false
  private ring: Uint8Array | undefined
  private slot = 0
  private used = 0
  /** Direct writes not yet waited for, oldest first; every write that left it has ended. */
  private readonly slotWrites: Array<Promise<void>> = []
  private readonly pending = new Set<Promise<unknown>>()
  /** Set by `settled`: a continuation of an abandoned `accept` must start no new write. */
  private closing = false
  /** Why this write took the page cache where it wanted direct I/O, if it did (for the caller to log). */
  refusal: { readonly reason: Refusal; readonly cause?: unknown } | undefined

  constructor(private readonly fd: number, private readonly options: Options) {}

  private get wantsDirect() {
    return this.options.durable && this.options.direct === true && !this.directRefused
  }

  /** Tracks a running operation: its failure is kept for the next call, never unhandled. */
  private track(p: Promise<void>): Promise<void> {
    const observed = p.catch((error) => {
      this.failure ??= { error }
    })
    this.pending.add(observed)
    void observed.finally(() => this.pending.delete(observed))
    return observed
  }

  private failed(): Promise<never> | undefined {
    if (this.closing) return Promise.reject(new Error("the write was abandoned"))
    return this.failure === undefined ? undefined : Promise.reject(this.failure.error)
  }

  /** Starts the gathered batch's write; a promise when the previous one must end first. */
  private writeBatch(): Promise<void> | undefined {
    if (this.batchBytes === 0) return undefined
    if (this.inFlight !== undefined) {
      const previous = this.inFlight
      this.inFlight = undefined
      return previous.then(() => this.failed() ?? this.writeBatch())
    }
    const parts = this.batch
    const bytes = this.batchBytes
    const at = this.batchAt
    this.batch = []
    this.batchBytes = 0
    this.batchAt = at + bytes
    this.inFlight = this.track(writevAll(this.fd, parts, at, bytes))
    // everything before this batch is in the page cache: start its trip to the device
    if (!this.options.durable || at - this.flushedUpTo < syncEveryBytes) return undefined
    if (this.flushing !== undefined) {
      const previous = this.flushing
      this.flushing = undefined
      return previous.then(() => this.failed() ?? this.startFlush(at))
    }
    return this.startFlush(at)
  }

  private startFlush(upTo: number): undefined {
    this.flushedUpTo = upTo
    this.flushing = this.track(fdatasync(this.fd))
    return undefined
  }

  /**
   * Leaves the page cache path at `directAfterBytes`: takes a ring and opens the direct
   * descriptor. A filesystem that refuses `O_DIRECT` (EINVAL), any other failure to open, or no
   * free ring, keeps the page cache for the rest: it is always correct, only slower.
   */
  private refuse(reason: Refusal, cause?: unknown) {
    this.directRefused = true
    directStats.refused++
    directRefusals.unsafeUpdate(1, [MetricLabel.make("reason", reason)])
    this.refusal ??= { reason, cause }
  }

  private startDirect(): Promise<void> {
    const ring = takeRing()
    if (!(ring instanceof Uint8Array)) {
      this.refuse(ring.refused, ring.cause)
      return Promise.resolve()
    }
    this.ring = ring
    const opened = openDirect(this.fd).then(
      (fd) => {
        this.directFd = fd
        this.direct = true
        this.directFrom = this.position
      },
      (cause) => {
        this.refuse("open refused", cause)
        this.ring = undefined
        giveRing(ring)
      }
    )
    this.pending.add(opened)
    void opened.finally(() => this.pending.delete(opened))
    return opened
  }

  /** Writes slot `slot`'s first `length` bytes at `at`: directly, or through the page cache once refused or for a partial slot. */
  private writeSlot(slot: number, length: number, at: number): Promise<void> {
    const bytes = this.ring!.subarray(slot * directSlotBytes, slot * directSlotBytes + length)
    if (this.directRefused || this.directFd === undefined || length !== directSlotBytes) return writeAll(this.fd, bytes, at)
    return writeAll(this.directFd, bytes, at).then(() => {
      directStats.blocksWritten++
      directBlocks.unsafeUpdate(1, [])
    }, (e) => {
      if (!isEinval(e)) throw e
      // the device wants another alignment than this one: the rest goes through the page cache
      if (!this.directRefused) this.refuse("EINVAL", e)
      return writeAll(this.fd, bytes, at)
    })
  }

  /**
   * Starts the current slot's write and moves to the next slot. A promise when `directInFlight`
   * writes are running: then the oldest must end first. Since fewer than `directSlots` writes
   * ever run, the next slot's last write has ended by the time it is filled again.
   */
  private nextSlot(): Promise<void> | undefined {
    this.slotWrites.push(this.track(this.writeSlot(this.slot, this.used, this.position - this.used)))
    this.slot = (this.slot + 1) % directSlots
    this.used = 0
    if (this.slotWrites.length < directInFlight) return undefined
    return this.slotWrites.shift()!.then(() => this.failed())
  }

  /**
   * Takes `parts` from piece `index`, byte `offset` on; returns a promise only when it must wait
   * before taking the rest (and then takes the rest itself).
   */
  accept(parts: ReadonlyArray<Uint8Array>, index = 0, offset = 0): Promise<void> | undefined {
    const failed = this.failed()
    if (failed !== undefined) return failed
    for (let i = index; i < parts.length; i++, offset = 0) {
      let part = offset > 0 ? parts[i].subarray(offset) : parts[i]
      while (part.length > 0) {
        if (this.direct) {
          const n = Math.min(directSlotBytes - this.used, part.length)
          this.ring!.set(n === part.length ? part : part.subarray(0, n), this.slot * directSlotBytes + this.used)
          this.used += n
          this.position += n
          part = part.subarray(n)
          const consumed = parts[i].length - part.length
          // a piece copied whole into the ring is not read again: its lender may fill it anew
          if (part.length === 0 && this.position - consumed >= this.directFrom) LentBytes.giveBack(parts[i])
          if (this.used === directSlotBytes) {
            const wait = this.nextSlot()
            // a finished piece may be given back (detached) by now: go on with the next one
            if (wait !== undefined) {
              return wait.then(() => part.length === 0 ? this.accept(parts, i + 1, 0) : this.accept(parts, i, consumed))
            }
          }
          continue
        }
        // through the page cache, up to where the direct path starts if it is wanted
        const room = this.wantsDirect ? directAfterBytes - this.position : Infinity
        const take = part.length <= room ? part : part.subarray(0, room)
        if (take.length > 0) {
          this.batch.push(take)
          this.batchBytes += take.length
          this.position += take.length
          part = part.subarray(take.length)
        }
        if (part.length > 0) {
          // at directAfterBytes: the batch goes out, then the direct descriptor opens
          const consumed = parts[i].length - part.length
          const wait = this.writeBatch()
          const opened = wait === undefined ? this.startDirect() : wait.then(() => this.failed() ?? this.startDirect())
          return opened.then(() => this.accept(parts, i, consumed))
        }
        if (this.batchBytes >= writeBatchBytes) {
          const wait = this.writeBatch()
          if (wait !== undefined) return wait.then(() => this.accept(parts, i + 1, 0))
        }
      }
    }
    return undefined
  }

  /** Writes what is gathered and waits for every write; resolves with the object's size. */
  async finish(): Promise<number> {
    const failed = this.failed()
    if (failed !== undefined) return failed
    if (this.direct && this.used > 0) {
      // the last partial slot: through the page cache (a direct write needs whole blocks)
      this.slotWrites.push(this.track(this.writeSlot(this.slot, this.used, this.position - this.used)))
      this.used = 0
    }
    await this.writeBatch()
    await Promise.all([this.inFlight, this.flushing, ...this.slotWrites])
    this.inFlight = undefined
    this.flushing = undefined
    this.slotWrites.length = 0
    const after = this.failed()
    if (after !== undefined) return after
    return this.position
  }

  /** Waits for every running write, closes the direct descriptor and gives the ring back. */
  async settled(): Promise<void> {
    this.closing = true
    while (this.pending.size > 0) await Promise.all([...this.pending])
    if (this.directFd !== undefined) {
      const fd = this.directFd
      this.directFd = undefined
      await new Promise<void>((resolve) => fs.close(fd, () => resolve()))
    }
    if (this.ring !== undefined) {
      giveRing(this.ring)
      this.ring = undefined
    }
  }
}
