/**
 * The disk driver's byte paths, written against Node's callback file API on a raw descriptor.
 * Profiles of the first version (FileHandle.writev per chunk behind `Stream.buffer`, and a read
 * stream per object) put most of a large write's time in per-chunk promise and queue machinery
 * and most of a small read's in stream set-up; these loops keep Effect at the edges and do the
 * per-chunk work in plain code.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as BodyWriter from "./BodyWriter.js"

const MiB = 1024 * 1024

/** Objects up to this size are read with one `read` into one buffer, instead of a loop. */
export const wholeReadBytes = 4 * MiB

/** Size of each buffer a large read fills (a fresh one per read: the consumer may keep it). */
export const readChunkBytes = MiB

export { directAfterBytes, syncEveryBytes, writeBatchBytes } from "./BodyWriter.js"

/** What `writeBody` is asked to do beside writing. */
export interface WriteOptions<F> extends BodyWriter.Options {
  /** The error a failed write or flush becomes. */
  readonly onError: (cause: unknown) => F
}

/**
 * Writes the whole body to `fd` from offset 0 and returns the byte count (see `BodyWriter` for
 * the page cache and direct paths). Reading the body, and hashing it in the lifted service,
 * overlap the writes on the thread pool. A failed write fails the effect with
 * `onError(cause)`; the body's own failure passes through. Either way no write or flush is left
 * running when the effect ends, so the caller may close and unlink the file at once.
 */
export const writeBody = <E, F>(fd: number, body: Stream.Stream<Uint8Array, E>, options: WriteOptions<F>): Effect.Effect<number, E | F> =>
  Effect.suspend(() => {
    const writer = new BodyWriter.BodyWriter(fd, options)
    return Stream.runForEachChunk(body, (chunk) => {
      const wait = writer.accept(Chunk.toReadonlyArray(chunk))
      return wait === undefined ? Effect.void : Effect.tryPromise({ try: () => wait, catch: options.onError })
    }).pipe(
      Effect.zipRight(Effect.tryPromise({ try: () => writer.finish(), catch: options.onError })),
      // the body failed or the fiber was interrupted with a write running: wait for it, so the
      // descriptor is not closed (and maybe reused) under a thread-pool write
      Effect.onExit(() => Effect.zipRight(Effect.promise(() => writer.settled()), logRefusal(writer.refusal)))
    )
  })

/** Reasons already logged in this process: each is logged once, then only counted. */
const refusalsLogged = new Set<BodyWriter.Refusal>()

/**
 * Tells the operator, once per reason and process, that writes wanting direct I/O go through
 * the page cache: correct, but with the kernel's copy and writeback on the CPU (see
 * `BodyWriter`). The metric `ccat_disk_direct_io_refusals_total` counts every one.
 */
const logRefusal = (refusal: BodyWriter.BodyWriter["refusal"]): Effect.Effect<void> => {
  if (refusal === undefined || refusalsLogged.has(refusal.reason)) return Effect.void
  refusalsLogged.add(refusal.reason)
  const detail = refusal.cause instanceof Error ? `: ${refusal.cause.message}` : ""
  return Effect.logWarning(
    `disk: a write that wanted direct I/O went through the page cache (${refusal.reason}${detail}); ` +
      "it is stored all the same. Later writes for this reason are only counted in ccat_disk_direct_io_refusals_total."
  )
}

/**
 * Bytes `start` to `end` of an open file. A range up to `wholeReadBytes` is one read into one
 * buffer: with many small objects, set-up per object is what costs. A larger range is read in
 * `readChunkBytes` reads, `readAheadChunks` of them running at once (see `readLoop`). The
 * caller owns the descriptor and closes it after the stream ended; no read is running then. A
 * file that shrinks while read ends early (the caller's size check reports it); one that grows
 * is read only to `end`.
 */
export const readRange = <F>(fd: number, start: number, end: number, onError: (cause: unknown) => F): Stream.Stream<Uint8Array, F> => {
  if (end - start > wholeReadBytes) return readLoop(fd, start, end, onError)
  return Stream.fromEffect(Effect.async<Uint8Array, F>((resume) => {
    const buffer = Buffer.allocUnsafe(end - start)
    let finished: () => void = () => undefined
    const done = new Promise<void>((resolve) => (finished = resolve))
    fs.read(fd, buffer, 0, buffer.length, start, (error, n) => {
      finished()
      if (error !== null) resume(Effect.fail(onError(error)))
      else resume(Effect.succeed(n === buffer.length ? buffer : buffer.subarray(0, n)))
    })
    // interrupted: wait for the read, so the caller's close cannot race a read on the thread pool
    return Effect.promise(() => done)
  })).pipe(Stream.filter((b) => b.length > 0))
}

/**
 * Reads running at once in a large read. Measured on a 2 GiB file here (four runs each, against
 * `cat` of the same file): Node's read stream (one read at a time) reached 24-39% of `cat` from
 * the page cache and 70-116% from the device; three 1 MiB reads at once 52-56% and 84-94%; 4 MiB
 * reads, which glibc serves from fresh zeroed pages each time, 14-15% and 43-63%.
 */
export const readAheadChunks = 3

/**
 * Bytes `start` to `end` of an open file in `readChunkBytes` reads, `readAheadChunks` of them
 * running at once, so the device and the thread pool work while the consumer does. Each chunk is
 * a fresh buffer the consumer may keep. A short read is followed by a read of the rest of its
 * range, so no byte is ever skipped; a read at the end of the file (it shrank) ends the stream.
 * Every read issued has ended when the stream ends, however it ends (done, failed, interrupted
 * while a read runs), so the caller may close the descriptor then.
 *
 * The loop is an async generator under `Stream.fromAsyncIterable`, not an Effect pulled per
 * chunk: measured on a 2 GiB read from the page cache, the same loop pulled through
 * `Stream.repeatEffectOption`, `unfoldEffect` or `repeatEffectChunkOption` ran at 1.0-1.9 GB/s
 * with 1.5-3 s of CPU (V8 collecting continuously: 35 full collections) in a fresh process,
 * and as a generator at 3.5-5.7 GB/s with 0.1-0.3 s, like Node's own read stream.
 */
const readLoop = <F>(fd: number, start: number, end: number, onError: (cause: unknown) => F): Stream.Stream<Uint8Array, F> =>
  Stream.suspend(() => Stream.fromAsyncIterable(readChunks(fd, start, end), onError))

/** One read issued by `ReadAhead`: its range, its buffer, and the byte count it resolves with. */
interface Issued {
  readonly at: number
  readonly length: number
  readonly buffer: Buffer
  readonly result: Promise<number>
}

/**
 * The reads of bytes `start` to `end` of an open file, in order, `readAheadChunks` of them
 * running ahead of their consumer: what a large `get` and `readEach` share. Buffers come from
 * `take` (fresh ones, or a free one of a few reused; undefined: none free now). A short read is
 * followed by a read of the rest of its range before anything after it, so no byte is ever
 * skipped; after a read at the file's end (it shrank) no more are issued. `settled` waits for
 * every read issued, however the reader ended, so the caller may close the descriptor then.
 */
class ReadAhead {
  private position: number
  private readonly queue: Array<Issued> = []
  private readonly running = new Set<Promise<unknown>>()

  constructor(
    private readonly fd: number,
    start: number,
    private readonly end: number,
    private readonly take: (length: number, rest: boolean) => Buffer | undefined
  ) {
    this.position = start
  }

  private issue(at: number, length: number, buffer: Buffer): Issued {
    const result = new Promise<number>((resolve, reject) => {
      fs.read(this.fd, buffer, 0, length, at, (error, n) => (error !== null ? reject(error) : resolve(n)))
    })
    // observed here, so a read whose result is never asked for (the reader ended) is no unhandled rejection
    const settled = result.then(() => undefined, () => undefined)
    this.running.add(settled)
    void settled.then(() => this.running.delete(settled))
    return { at, length, buffer, result }
  }

  /** Issues reads until `readAheadChunks` run, the range is covered or no buffer is free. */
  fill(): void {
    while (this.queue.length < readAheadChunks && this.position < this.end) {
      const length = Math.min(readChunkBytes, this.end - this.position)
      const buffer = this.take(length, false)
      if (buffer === undefined) return
      this.queue.push(this.issue(this.position, length, buffer))
      this.position += length
    }
  }

  /** The next read in order (fills first), or undefined when the range is done. */
  next(): Issued | undefined {
    this.fill()
    return this.queue.shift()
  }

  /**
   * What `read` gave: a short count queues the rest of its range first; 0 (the file shrank)
   * stops issuing. Returns whether bytes came.
   */
  landed(read: Issued, got: number): boolean {
    if (got === 0) {
      this.position = this.end
      return false
    }
    if (got < read.length) this.queue.unshift(this.issue(read.at + got, read.length - got, this.take(read.length - got, true)!))
    this.fill()
    return true
  }

  /** Reads still queued (a shrunk file's, reading past its end). */
  get pending(): number {
    return this.queue.length
  }

  /** Waits for every read issued. */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running])
  }
}

async function* readChunks(fd: number, start: number, end: number): AsyncGenerator<Uint8Array> {
  const reads = new ReadAhead(fd, start, end, (length) => Buffer.allocUnsafeSlow(length))
  try {
    for (let current = reads.next(); current !== undefined; current = reads.next()) {
      const got = await current.result
      if (!reads.landed(current, got)) return
      yield got === current.length ? current.buffer : current.buffer.subarray(0, got)
    }
  } finally {
    // done, failed or stopped by the consumer: no read may outlive the stream
    await reads.settled()
  }
}

/** Buffers one `readEach` reads into: the reads ahead, the part being consumed, one spare for a short read's rest. */
export const readEachSlots = readAheadChunks + 2

/**
 * Slots of `readChunkBytes` that ended `readEach` calls gave back, for the next ones: at most
 * `spareSlotsKept` (two readers' worth, 10 MiB), so memory stays bounded however many objects
 * are read. Without them each call allocated its own slots, and an audit reading 64 MiB objects
 * one after another dropped 5 MiB of external memory per object: V8 then started a full
 * collection every object or two, marking a heap that had not grown (bench/audit.ts: 1.6-2.2 s
 * of CPU per GiB audited, 1.2-1.6 s with the slots kept; SHA-256 alone is about 1 s here).
 */
const spareSlots: Array<Buffer> = []

/** Spare slots kept between `readEach` calls; more than that are left to the collector. */
export const spareSlotsKept = 2 * readEachSlots

/** How many spare slots are kept now (for tests). */
export const spareSlotCount = (): number => spareSlots.length

const takeSlot = (): Buffer => spareSlots.pop() ?? Buffer.allocUnsafeSlow(readChunkBytes)

/**
 * Bytes `start` to `end` of an open file, read into at most `readEachSlots` buffers of
 * `readChunkBytes` that are reused: `consume` gets each filled part in order, and a buffer is
 * filled again only after its part's `consume` ended. Returns the bytes read. No buffer is
 * allocated per part, nor per call once a few calls ran (the slots go back to a bounded spare
 * list when every read issued has ended), so reading any number of objects of any size gives the
 * garbage collector nothing to do (a stream's fresh buffer per chunk does: see
 * `StorageDriver.Service.readEach`). Reads run ahead of the consumer as for a large `get`
 * (`ReadAhead`), and every read issued has ended when the effect ends, however it ends.
 */
export const readEach = <E, F>(
  fd: number,
  start: number,
  end: number,
  consume: (part: Uint8Array) => Effect.Effect<void, E>,
  onError: (cause: unknown) => F
): Effect.Effect<number, E | F> =>
  Effect.suspend(() => {
    if (start >= end) return Effect.succeed(0)
    // a range of n chunks needs n slots and the spare, never more than readEachSlots
    const slots = Math.min(readEachSlots, Math.ceil((end - start) / readChunkBytes) + 1)
    const owned: Array<Buffer> = Array.from({ length: slots }, takeSlot)
    const free = [...owned]
    const reads = new ReadAhead(fd, start, end, (_, rest) => (rest || free.length > 1 ? free.pop() : undefined))
    let bytes = 0
    let more = true
    const step: Effect.Effect<boolean, E | F> = Effect.suspend(() => {
      const current = reads.next()
      if (current === undefined) return Effect.succeed(false)
      const outcome = current.result.then((got) => ({ got }), (error: unknown) => ({ error }))
      return Effect.flatMap(Effect.promise(() => outcome), (r): Effect.Effect<boolean, E | F> => {
        if ("error" in r) return Effect.fail(onError(r.error))
        if (!reads.landed(current, r.got)) {
          // the file shrank: what is still queued reads past its end and drains
          free.push(current.buffer)
          return Effect.succeed(reads.pending > 0)
        }
        bytes += r.got
        return Effect.as(Effect.ensuring(consume(current.buffer.subarray(0, r.got)), Effect.sync(() => free.push(current.buffer))), true)
      })
    })
    return Effect.whileLoop({ while: () => more, body: () => step, step: (next) => (more = next) }).pipe(
      Effect.zipRight(Effect.sync(() => bytes)),
      // failed or interrupted with reads running: wait for them, so the caller may close the
      // descriptor; only then are the slots free of every read and consumer, and given back
      Effect.ensuring(Effect.promise(() =>
        reads.settled().then(() => {
          for (const slot of owned) if (spareSlots.length < spareSlotsKept) spareSlots.push(slot)
        })
      ))
    )
  })

/** Opens a file with the callback API (a raw descriptor, no FileHandle to track). */
export const openFd = (file: string, flags: string, mode?: number): Promise<number> =>
  new Promise((resolve, reject) => fs.open(file, flags, mode, (error, fd) => (error !== null ? reject(error) : resolve(fd))))

/** Closes a descriptor; a failed close of a read-only descriptor changes nothing, so it is ignored. */
export const closeFd = (fd: number): Effect.Effect<void> => Effect.async<void>((resume) => fs.close(fd, () => resume(Effect.void)))

/** `fstat` of an open descriptor. */
export const fstat = (fd: number): Promise<fs.Stats> =>
  new Promise((resolve, reject) => fs.fstat(fd, (error, st) => (error !== null ? reject(error) : resolve(st))))

/** `fsync` of an open descriptor. */
export const fsync = (fd: number): Promise<void> =>
  new Promise((resolve, reject) => fs.fsync(fd, (error) => (error !== null ? reject(error) : resolve())))

/**
 * Up to `limit + 1` bytes of a file from its start, in one open, fstat, read and close run as one
 * promise (no stream, no step per call): how a package reads thousands of small files. Fails
 * with ENOENT-like errors as Node reports them; `notAFile` when the path is not a regular file.
 */
export const readAtMost = async (file: string, limit: number): Promise<Uint8Array | "notAFile"> => {
  const fd = await openFd(file, "r")
  try {
    const st = await fstat(fd)
    if (!st.isFile()) return "notAFile"
    const buffer = Buffer.allocUnsafe(Math.min(st.size, limit + 1))
    let filled = 0
    // a file that grew since fstat still gets its `limit + 1` bytes checked; one that shrank ends early
    while (filled < buffer.length) {
      const n = await new Promise<number>((resolve, reject) =>
        fs.read(fd, buffer, filled, buffer.length - filled, filled, (error, bytes) => (error !== null ? reject(error) : resolve(bytes)))
      )
      if (n === 0) break
      filled += n
    }
    return filled === buffer.length ? buffer : buffer.subarray(0, filled)
  } finally {
    await new Promise<void>((resolve) => fs.close(fd, () => resolve()))
  }
}
