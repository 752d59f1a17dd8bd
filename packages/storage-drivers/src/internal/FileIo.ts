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
import { fromReadable } from "./streams.js"

const MiB = 1024 * 1024

/** Objects up to this size are read with one `read` into one buffer, instead of a loop. */
export const wholeReadBytes = 4 * MiB

/** Size of each buffer a large read fills (Node's read stream allocates a fresh one per read). */
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
      Effect.onExit(() => Effect.promise(() => writer.settled()))
    )
  })

/**
 * Bytes `start` to `end` of an open file. A range up to `wholeReadBytes` is one read into one
 * buffer: with many small objects, set-up per object is what costs; the caller still owns the
 * descriptor and closes it when the stream ends. A larger range goes through Node's own read
 * stream, which in measurements here kept V8's external-memory accounting calm (a hand-written
 * read loop over fresh buffers set off a full collection every few dozen MiB); that stream takes
 * over the descriptor and closes it itself, and `adopted` is called at that moment (inside the
 * stream's uninterruptible acquire), so the caller knows not to close it too: a second close
 * could hit a number the process has since reused. A file that shrinks while read ends early
 * (the caller's size check reports it); one that grows is read only to `end`.
 */
export const readRange = <F>(
  fd: number,
  start: number,
  end: number,
  onError: (cause: unknown) => F,
  adopted: () => void
): Stream.Stream<Uint8Array, F> => {
  if (end - start > wholeReadBytes) {
    return fromReadable(
      Effect.sync(() => {
        const readable = fs.createReadStream("", { fd, start, end: end - 1, highWaterMark: readChunkBytes, autoClose: true })
        adopted()
        return readable
      }),
      onError
    )
  }
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
