/**
 * The StorageDriver port (DESIGN §6): how every DataLocation stores bytes, whatever the
 * technology behind it (disk, S3, tape, an integrator's). An integrator implements the few
 * primitives of `Minimal`; `make` lifts them into the full `Service` with exists, copy, checksum
 * verification and retries of transient failures, so that behaviour is written once (STYLE §1).
 *
 * Failure rules, shared by every driver and checked by the conformance suite:
 * - keys are safe relative paths (`RelativePath`); anything else fails with PermissionDenied;
 * - `put` is atomic: until it succeeds, nothing (or the previous object) is visible under the
 *   key; with `overwrite: false` (the default) an existing key fails with AlreadyExists;
 * - `get` and `stat` of a missing object fail with NotFound; `delete` of one succeeds;
 * - an operation the driver does not declare in its capabilities fails with Unsupported;
 * - a checksum mismatch fails with Corrupt and leaves nothing under the key;
 * - `sweepTemporary` removes only the driver's own temporary names, never a committed object.
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Backoff from "./Backoff.js"
import * as Checksum from "./Checksum.js"
import * as RelativePath from "./RelativePath.js"
import { type Hasher, type HasherFactory, runtimeHasher } from "./StorageHasher.js"
import { isRetryable, StorageError } from "./StorageError.js"

/** What a driver can do, declared up front so callers plan instead of discovering by failure. */
export interface Capabilities {
  /** `get` accepts a byte range (and interrupted reads resume where they stopped). */
  readonly rangeRead: boolean
  /** `list` enumerates keys. */
  readonly list: boolean
  /** The backend copies server-side, without the bytes passing through this process. */
  readonly nativeCopy: boolean
  /** Reads may first need a recall from offline media (tape): slow, and worth batching. */
  readonly nearline: boolean
  /** `presign` hands out time-limited URLs. */
  readonly presign: boolean
  /**
   * `sweepTemporary` removes what killed writers left under temporary names. Drivers whose writes
   * leave nothing behind when cut off (or whose backend expires it) leave it off.
   */
  readonly sweepTemporary: boolean
}

/** What a location knows about one stored object. */
export interface ObjectInfo {
  readonly key: RelativePath.RelativePath
  readonly size: number
  /** Our checksum of the bytes, where the driver stored one or just computed it. */
  readonly checksum?: Checksum.Checksum | undefined
  readonly modifiedAt?: Date | undefined
  /** For nearline drivers: false while the object sits only on offline media. */
  readonly online?: boolean | undefined
  /**
   * From `stat`, where the driver can tell: an opaque token that changes whenever the object is
   * replaced or written again (a disk's device, inode, size and times; an S3 ETag). Recorded
   * when the platform reads or writes an object, so cleanup can refuse to delete bytes that
   * changed since. Equal tokens from one driver mean the same unchanged object.
   */
  readonly identity?: string | undefined
}

/** Bytes `start` (inclusive) to `end` (exclusive, default: the end of the object). */
export interface ByteRange {
  readonly start: number
  readonly end?: number | undefined
}

/** How `put` treats the object and an existing key. */
export interface PutOptions {
  /** Replace an existing object (atomically). Default false: AlreadyExists. */
  readonly overwrite?: boolean | undefined
  /** The checksum the bytes must have; a mismatch fails with Corrupt and stores nothing. */
  readonly checksum?: Checksum.Checksum | undefined
  /** Algorithm of the computed checksum when `checksum` is not given. Default sha256. */
  readonly algorithm?: Checksum.Algorithm | undefined
  /** The expected size, when known: lets drivers pick part sizes or a tape volume. */
  readonly sizeHint?: number | undefined
}

/** A page of a listing. */
export interface ListOptions {
  /** Only keys starting with this string. */
  readonly prefix?: string | undefined
  /** Resume after this cursor (from the previous page). */
  readonly cursor?: string | undefined
  /** Page size, 1 to 1000, default 1000. */
  readonly limit?: number | undefined
}

/** One page of keys in lexicographic order, and the cursor of the next page if there is one. */
export interface ListPage {
  readonly items: ReadonlyArray<ObjectInfo>
  readonly cursor: string | undefined
}

/** Free and total bytes of a location, for retention and placement decisions. */
export interface Space {
  readonly freeBytes: number
  readonly totalBytes: number
}

/** What a sweep of temporary files did. */
export interface Swept {
  /** Temporary files removed. */
  readonly files: number
  /** Their bytes. */
  readonly bytes: number
  /** Old enough temporary files that could not be removed (each logged); the next sweep tries again. */
  readonly failed: number
}

/**
 * The youngest temporary files a sweep may remove. A live write moves its temporary file's
 * modification time with every write, so only a write whose body stalled this long can lose its
 * file to a sweep, and it then fails instead of committing (see `Minimal.sweepTemporary`).
 */
export const minimumSweepAge: Duration.Duration = Duration.hours(1)

/** The age `sweepTemporary` removes temporary files at when the caller does not say. */
export const defaultSweepAge: Duration.Duration = Duration.hours(24)

/** What the lifted service hands a driver's `put` besides the key and the body. */
export interface MinimalPutOptions {
  readonly overwrite: boolean
  /** The expected checksum if the caller gave one (drivers may store it up front). */
  readonly checksum: Checksum.Checksum | undefined
  readonly sizeHint: number | undefined
  /**
   * The checksum of the body, available once the body stream has ended (the lifted service
   * hashes it in the same pass and fails the stream with Corrupt before it ends on a mismatch).
   */
  readonly digest: () => Checksum.Checksum | undefined
}

/**
 * The primitives an integrator implements. Each is called with a validated key; retries, key
 * checks, checksums and capability checks are done by `make`, not here.
 */
export interface Minimal {
  readonly name: string
  readonly capabilities: Capabilities
  /**
   * Stores the body under the key atomically: write to a temporary name (or an uncompleted
   * multipart upload) and make it visible only after the body ended without failure. If the body
   * fails or the fiber is interrupted, nothing may remain under the key.
   */
  readonly put: <E>(
    key: RelativePath.RelativePath,
    body: Stream.Stream<Uint8Array, E>,
    options: MinimalPutOptions
  ) => Effect.Effect<ObjectInfo, StorageError | E>
  /** Streams the object (or a range of it, clipped to its size). Missing: NotFound. */
  readonly get: (key: RelativePath.RelativePath, range: ByteRange | undefined) => Stream.Stream<Uint8Array, StorageError>
  /** Size and metadata. Missing: NotFound. */
  readonly stat: (key: RelativePath.RelativePath) => Effect.Effect<ObjectInfo, StorageError>
  /**
   * Optional: a small object's bytes in one call, without a stream (see `Service.readAtMost`):
   * the whole object if it has at most `limit` bytes, else its first `limit + 1`. Missing:
   * NotFound. Without it, the lifted service derives it from `get`.
   */
  readonly readAtMost?: (key: RelativePath.RelativePath, limit: number) => Effect.Effect<Uint8Array, StorageError>
  /**
   * Optional: reads the object (or a range of it, clipped to its size) into buffers the driver
   * reuses, calling `consume` with each filled part in order and waiting for it before that
   * buffer is filled again; returns the bytes read. A part's bytes are valid only until its
   * `consume` effect ends. A consumer's failure ends the read with that failure. Missing:
   * NotFound. Without it, the lifted service derives it from `get` (see `Service.readEach`).
   */
  readonly readEach?: <E>(
    key: RelativePath.RelativePath,
    range: ByteRange | undefined,
    consume: (part: Uint8Array) => Effect.Effect<void, E>
  ) => Effect.Effect<number, StorageError | E>
  /** Removes the object; a missing object is success. */
  readonly delete: (key: RelativePath.RelativePath) => Effect.Effect<void, StorageError>
  /**
   * Required when `capabilities.list`. Keys come in ascending order (by code point, as S3 lists
   * them), which the conformance suite checks: an inventory pass tells from a page's first and
   * last key which recorded objects that page should have shown.
   */
  readonly list?: (options: {
    readonly prefix: string
    readonly cursor: string | undefined
    readonly limit: number
  }) => Effect.Effect<ListPage, StorageError>
  /** Server-side copy, when `capabilities.nativeCopy`; may fail Unsupported for a case it cannot do. */
  readonly copy?: (
    from: RelativePath.RelativePath,
    to: RelativePath.RelativePath,
    options: { readonly overwrite: boolean }
  ) => Effect.Effect<ObjectInfo, StorageError>
  /** Free space, where the backend can tell. */
  readonly space?: () => Effect.Effect<Space, StorageError>
  /**
   * Required when `capabilities.presign`: a URL that lets its holder GET (or PUT) the object
   * without credentials until `expiresIn` has passed. GET of a missing object fails NotFound; an
   * expiry the backend cannot sign fails PermissionDenied. A PUT URL bypasses our checksum.
   */
  readonly presign?: (
    key: RelativePath.RelativePath,
    options: { readonly method: "GET" | "PUT"; readonly expiresIn: Duration.Duration }
  ) => Effect.Effect<string, StorageError>
  /** Nearline drivers: bring objects online in one batch, ordered to mount each volume once. */
  readonly recall?: (keys: ReadonlyArray<RelativePath.RelativePath>) => Effect.Effect<void, StorageError>
  /**
   * Nearline drivers: drop the online copies of objects (a disk cache in front of tape), so the
   * next read recalls them from the medium itself; the objects stay stored. A missing object, or
   * one not online, is success. What a fixity audit uses to read the medium, not a cache.
   */
  readonly release?: (keys: ReadonlyArray<RelativePath.RelativePath>) => Effect.Effect<void, StorageError>
  /**
   * Required when `capabilities.sweepTemporary`: removes the driver's own temporary files (what
   * writers killed mid-write left) last modified before `before`, anywhere in the location, and
   * reports what it removed. It walks the location without holding every name in memory and
   * removes a bounded number of files at once. It must never remove a committed object: keys
   * that look like the driver's temporary names are refused by every other method. A write whose
   * temporary file it removed must fail rather than commit (the file is gone, or its commit finds
   * nothing to make visible). A file it cannot remove is counted in `failed`, not an error; a
   * location it cannot walk at all fails.
   */
  readonly sweepTemporary?: (options: { readonly before: Date }) => Effect.Effect<Swept, StorageError>
}

/** The full storage service every location is used through. Keys are relative paths. */
export interface Service {
  readonly name: string
  readonly capabilities: Capabilities
  /** Streams the body into the key atomically and returns its size and checksum. */
  readonly put: <E>(key: string, body: Stream.Stream<Uint8Array, E>, options?: PutOptions) => Effect.Effect<ObjectInfo, StorageError | E>
  /** Streams the object or a range; transient failures are retried (resuming by range where possible). */
  readonly get: (key: string, options?: { readonly range?: ByteRange | undefined }) => Stream.Stream<Uint8Array, StorageError>
  /** Size and metadata; NotFound when missing. */
  readonly stat: (key: string) => Effect.Effect<ObjectInfo, StorageError>
  /**
   * A small object's bytes as one array: the whole object if it has at most `limit` bytes,
   * else its first `limit + 1` (enough to tell it is larger than expected). For callers that
   * read thousands of small objects (packaging), where a stream per object costs more than the
   * read; drivers that can do it in one call say so with `Minimal.readAtMost`. Missing:
   * NotFound; transient failures are retried.
   */
  readonly readAtMost: (key: string, limit: number) => Effect.Effect<Uint8Array, StorageError>
  /**
   * Reads the object (or a range) part by part for a consumer that is done with each part when
   * its effect ends (it hashes, copies or sends the bytes): `consume` gets the parts in order and
   * a part's bytes are valid only until its effect ends, since a driver may read the next bytes
   * into the same buffer. Returns the bytes read. `checksum` and `verify` read this way.
   *
   * Why beside `get`: a stream must hand out a fresh buffer per chunk (its consumer may keep
   * it). In a long-lived Node process, V8 counts those buffers as external memory, and at
   * gigabytes per second that count can set off one full collection after another (measured
   * with bench/storage.ts: Node's own read stream then read 2 GiB from the page cache at
   * 1.1-1.5 GB/s with 2-2.8 s of CPU, the disk driver's `readEach` at 8-16 GB/s with under
   * 0.2 s). Drivers that cannot reuse buffers need not: without `Minimal.readEach` this runs
   * over `get`. Transient failures are retried, resuming after the last part consumed where the
   * driver reads ranges; the consumer's own failures are not.
   */
  readonly readEach: <E>(
    key: string,
    consume: (part: Uint8Array) => Effect.Effect<void, E>,
    options?: { readonly range?: ByteRange | undefined }
  ) => Effect.Effect<number, StorageError | E>
  /** Whether the key holds an object. */
  readonly exists: (key: string) => Effect.Effect<boolean, StorageError>
  /** Idempotent delete. */
  readonly delete: (key: string) => Effect.Effect<void, StorageError>
  /** One page of keys in ascending order; Unsupported without `capabilities.list`. */
  readonly list: (options?: ListOptions) => Effect.Effect<ListPage, StorageError>
  /** Every key under a prefix, paging as it goes. */
  readonly listAll: (options?: { readonly prefix?: string | undefined }) => Stream.Stream<ObjectInfo, StorageError>
  /** Copies within the location: server-side where the driver can, streamed otherwise; verified. */
  readonly copy: (from: string, to: string, options?: { readonly overwrite?: boolean | undefined }) => Effect.Effect<ObjectInfo, StorageError>
  /** The object's checksum: the stored one if it has that algorithm, else computed by reading it. */
  readonly checksum: (key: string, algorithm?: Checksum.Algorithm) => Effect.Effect<Checksum.Checksum, StorageError>
  /** Reads the whole object and fails with Corrupt unless it has the expected checksum. */
  readonly verify: (key: string, expected: Checksum.Checksum) => Effect.Effect<ObjectInfo, StorageError>
  /** Free and total bytes; Unsupported where the backend cannot tell. */
  readonly space: () => Effect.Effect<Space, StorageError>
  /** A time-limited URL (default GET, 1 hour) for clients without credentials; Unsupported without `capabilities.presign`. */
  readonly presign: (
    key: string,
    options?: { readonly method?: "GET" | "PUT"; readonly expiresIn?: Duration.DurationInput }
  ) => Effect.Effect<string, StorageError>
  /** Brings objects online before they are read; a no-op for online storage. */
  readonly recall: (keys: ReadonlyArray<string>) => Effect.Effect<void, StorageError>
  /**
   * Takes objects offline again, keeping them stored, so the next read comes from the medium;
   * a no-op for online storage (nothing is kept in front of it), and for missing objects.
   */
  readonly release: (keys: ReadonlyArray<string>) => Effect.Effect<void, StorageError>
  /**
   * Removes temporary files killed writers left that were last modified more than `olderThan`
   * ago (default `defaultSweepAge`, at least `minimumSweepAge`: a shorter age fails with
   * PermissionDenied and removes nothing); Unsupported without `capabilities.sweepTemporary`.
   * Idempotent; committed objects are never touched.
   */
  readonly sweepTemporary: (options?: { readonly olderThan?: Duration.DurationInput | undefined }) => Effect.Effect<Swept, StorageError>
}

/** The port's tag: services and workers ask for "the storage of this location" by it. */
export class StorageDriver extends Context.Tag("@ccat/core/StorageDriver")<StorageDriver, Service>() {}

/** Exponential backoff with jitter and a cap for transient (Unavailable) failures (DESIGN §4.5). */
export interface RetryPolicy {
  readonly base: Duration.DurationInput
  readonly factor: number
  /** No single wait exceeds this. */
  readonly cap: Duration.DurationInput
  /** Retries after the first attempt; 0 disables retrying. */
  readonly times: number
}

/** 100 ms doubling, jittered, at most 5 s per wait, 6 retries: about 10 s before giving up. */
export const defaultRetryPolicy: RetryPolicy = { base: "100 millis", factor: 2, cap: "5 seconds", times: 6 }

/**
 * The schedule `make` retries with: the shared backoff jittered to 80-120 % (never above the
 * cap); only Unavailable is retried, so permanent errors fail fast.
 */
export const retrySchedule = (policy: RetryPolicy = defaultRetryPolicy): Schedule.Schedule<unknown, StorageError> =>
  Backoff.schedule({ ...policy, jitter: Backoff.around }).pipe(
    Schedule.whileInput((e: StorageError) => isRetryable(e))
  )

/** A `readEach` consumer's own failure, kept apart from the driver's so it is never retried. */
class ConsumerFailed<E> {
  constructor(readonly error: E) {}
}

/** Options of `make`. */
export interface MakeOptions {
  readonly retry?: RetryPolicy | undefined
  /** Where the runtime has no built-in crypto, the hash implementation to use. */
  readonly hasher?: HasherFactory | undefined
}

/** Waits while a hasher that works off this thread asks for it (see `Hasher.ready`). */
const hasherReady = (h: Hasher, final: boolean): Effect.Effect<void> =>
  h.ready === undefined ? Effect.void : Effect.suspend(() => {
    const waiting = h.ready!(final)
    return waiting === undefined ? Effect.void : Effect.promise(() => waiting)
  })

/** All capabilities off: spread it and switch on what a driver has. */
export const noCapabilities: Capabilities = {
  rangeRead: false,
  list: false,
  nativeCopy: false,
  nearline: false,
  presign: false,
  sweepTemporary: false
}

/** The page size limit of `list`, the same as S3's. */
export const maxListLimit = 1000

/**
 * Lifts a minimal driver into the full service: validated keys, capability checks, checksums
 * computed in the same pass as the write, verification, derived exists/copy/listAll, and
 * retries of transient failures. `put` is not retried: its body may be a stream that can be read
 * only once, so the caller (who owns the source) retries it.
 */
export const make = (driver: Minimal, options: MakeOptions = {}): Service => {
  const name = driver.name
  const caps = driver.capabilities
  if (caps.list && driver.list === undefined) throw new Error(`driver ${name} declares list but has no list()`)
  if (caps.presign && driver.presign === undefined) throw new Error(`driver ${name} declares presign but has no presign()`)
  if (caps.sweepTemporary && driver.sweepTemporary === undefined) {
    throw new Error(`driver ${name} declares sweepTemporary but has no sweepTemporary()`)
  }
  const schedule = retrySchedule(options.retry ?? defaultRetryPolicy)
  const hasher = options.hasher ?? runtimeHasher
  const fail = (method: string, reason: StorageError["reason"], description: string, key?: string) =>
    new StorageError({ reason, driver: name, method, key, description })
  const retrying = <A>(effect: Effect.Effect<A, StorageError>) => Effect.retry(effect, schedule)

  const validKey = (method: string, key: string): Effect.Effect<RelativePath.RelativePath, StorageError> => {
    const problem = typeof key === "string" ? RelativePath.problem(key) : "a key must be a string"
    return problem === undefined
      ? Effect.succeed(key as RelativePath.RelativePath)
      : Effect.fail(fail(method, "PermissionDenied", `unsafe key: ${problem}`, String(key)))
  }
  const hasherFor = (method: string) =>
    hasher === undefined
      ? Effect.fail(fail(method, "Unsupported", "no hash implementation in this runtime; pass options.hasher to make"))
      : Effect.succeed(hasher)

  const put = Effect.fn("StorageDriver.put")(function*<E>(
    key: string,
    body: Stream.Stream<Uint8Array, E>,
    putOptions: PutOptions = {}
  ) {
    const k = yield* validKey("put", key)
    const expected = putOptions.checksum
    if (expected !== undefined && Checksum.problem(expected) !== undefined) {
      return yield* fail("put", "Corrupt", `invalid expected checksum: ${Checksum.problem(expected)}`, key)
    }
    const algorithm = expected === undefined ? putOptions.algorithm ?? Checksum.defaultAlgorithm : Checksum.parse(expected).algorithm
    const makeHasher = yield* hasherFor("put")
    let digest: Checksum.Checksum | undefined
    let bytes = 0
    const measured: Stream.Stream<Uint8Array, E | StorageError> = Stream.suspend(() => {
      const h = makeHasher(algorithm)
      digest = undefined
      bytes = 0
      return body.pipe(
        // a plain map, not an effect per chunk: with `mapChunksEffect` here the body's buffers
        // lived long enough to set off 17-104 full collections per 2 GiB (against 3); a hasher
        // off this thread therefore blocks in `update` when its buffer is full, and only the
        // digest is waited for
        Stream.mapChunks((chunk) => {
          for (const part of chunk) {
            h.update(part)
            bytes += part.length
          }
          return chunk
        }),
        Stream.concat(Stream.unwrap(Effect.map(hasherReady(h, true), () => {
          digest = Checksum.make(algorithm, h.digest())
          return expected !== undefined && digest !== expected
            ? Stream.fail(fail("put", "Corrupt", `checksum mismatch: expected ${expected}, got ${digest}`, key))
            : Stream.empty
        })))
      )
    })
    const info = yield* driver.put(k, measured, {
      overwrite: putOptions.overwrite ?? false,
      checksum: expected,
      sizeHint: putOptions.sizeHint,
      digest: () => digest
    })
    if (digest === undefined || info.size !== bytes) {
      // A driver that stopped reading early stored something other than the body: remove it.
      yield* Effect.ignore(driver.delete(k))
      return yield* fail("put", "Corrupt", `driver stored ${info.size} bytes of a ${bytes}-byte body`, key)
    }
    return { ...info, key: k, size: bytes, checksum: digest }
  })

  /** The range of a `get` or `readEach` checked against the capabilities; "empty" for a zero-length one. */
  const validRange = (method: string, key: string, range: ByteRange | undefined): Effect.Effect<ByteRange | undefined | "empty", StorageError> => {
    if (range === undefined) return Effect.succeed(undefined)
    if (!caps.rangeRead) return Effect.fail(fail(method, "Unsupported", "this driver does not read byte ranges", key))
    if (!(range.start >= 0) || (range.end !== undefined && !(range.end >= range.start))) {
      return Effect.fail(fail(method, "PermissionDenied", `invalid range ${range.start}-${range.end}`, key))
    }
    return Effect.succeed(range.end === range.start ? "empty" : range)
  }

  /** The range a read asks for again after `done` bytes of `range` arrived (the whole object first). */
  const resumedRange = (range: ByteRange | undefined, done: number): ByteRange | undefined =>
    range === undefined && done === 0 ? undefined : { start: (range?.start ?? 0) + done, end: range?.end }
  /** Retries a read only while nothing arrived, or when the driver can resume from an offset. */
  const resumable = (done: () => number) => Schedule.whileInput(schedule, () => done() === 0 || caps.rangeRead)

  const get = (key: string, getOptions: { readonly range?: ByteRange | undefined } = {}) =>
    Stream.unwrap(Effect.gen(function*() {
      const k = yield* validKey("get", key)
      const checked = yield* validRange("get", key, getOptions.range)
      if (checked === "empty") return Stream.empty
      const range = checked
      let emitted = 0
      const attempt = Stream.suspend(() =>
        driver.get(k, resumedRange(range, emitted)).pipe(Stream.mapChunks((chunk) => {
          for (const part of chunk) emitted += part.length
          return chunk
        }))
      )
      return Stream.retry(attempt, resumable(() => emitted))
    })).pipe(
      // one span per object read; without a captured stack trace, which costs more than the
      // rest of the span when a package reads thousands of small files
      Stream.withSpan("StorageDriver.get", { attributes: { driver: name, key }, captureStackTrace: false })
    )

  const readEach = <E>(
    key: string,
    consume: (part: Uint8Array) => Effect.Effect<void, E>,
    readOptions: { readonly range?: ByteRange | undefined } = {}
  ): Effect.Effect<number, StorageError | E> =>
    Effect.gen(function*() {
      const k = yield* validKey("readEach", key)
      const range = yield* validRange("readEach", key, readOptions.range)
      if (range === "empty") return 0
      const native = driver.readEach
      if (native === undefined) {
        let bytes = 0
        yield* Stream.runForEach(get(key, { range }), (part) => {
          bytes += part.length
          return consume(part)
        })
        return bytes
      }
      // the consumer's failures are set aside as a result, so only the driver's own are retried
      let consumed = 0
      const attempt = Effect.suspend(() =>
        native(k, resumedRange(range, consumed), (part) =>
          Effect.mapError(Effect.tap(consume(part), () => {
            consumed += part.length
          }), (error) => new ConsumerFailed(error)))
      ).pipe(
        Effect.as(undefined),
        Effect.catchIf((e): e is ConsumerFailed<E> => e instanceof ConsumerFailed, (e) => Effect.succeed(e))
      )
      const failed = yield* Effect.retry(attempt, resumable(() => consumed))
      if (failed !== undefined) return yield* Effect.fail(failed.error)
      return consumed
    }).pipe(Effect.withSpan("StorageDriver.readEach", { attributes: { driver: name, key }, captureStackTrace: false }))

  const stat = Effect.fn("StorageDriver.stat")(function*(key: string) {
    const k = yield* validKey("stat", key)
    return yield* retrying(driver.stat(k))
  })

  const readAtMost = Effect.fn("StorageDriver.readAtMost", { captureStackTrace: false })(function*(key: string, limit: number) {
    const k = yield* validKey("readAtMost", key)
    if (!Number.isSafeInteger(limit) || limit < 0) {
      return yield* fail("readAtMost", "PermissionDenied", `limit must be a non-negative integer, got ${limit}`, key)
    }
    if (driver.readAtMost !== undefined) return yield* retrying(driver.readAtMost(k, limit))
    const parts: Array<Uint8Array> = []
    let bytes = 0
    yield* get(key, caps.rangeRead ? { range: { start: 0, end: limit + 1 } } : {}).pipe(
      Stream.takeWhile(() => bytes <= limit),
      Stream.runForEach((part) =>
        Effect.sync(() => {
          parts.push(part)
          bytes += part.length
        })
      )
    )
    if (parts.length === 1) return parts[0].length <= limit + 1 ? parts[0] : parts[0].subarray(0, limit + 1)
    const out = new Uint8Array(Math.min(bytes, limit + 1))
    let at = 0
    for (const part of parts) {
      const piece = part.subarray(0, out.length - at)
      out.set(piece, at)
      at += piece.length
      if (at === out.length) break
    }
    return out
  })

  const exists = Effect.fn("StorageDriver.exists")(function*(key: string) {
    return yield* stat(key).pipe(
      Effect.as(true),
      Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed(false))
    )
  })

  const remove = Effect.fn("StorageDriver.delete")(function*(key: string) {
    const k = yield* validKey("delete", key)
    yield* retrying(driver.delete(k))
  })

  const list = Effect.fn("StorageDriver.list")(function*(listOptions: ListOptions = {}) {
    if (!caps.list || driver.list === undefined) return yield* fail("list", "Unsupported", "this driver cannot list keys")
    const limit = listOptions.limit ?? maxListLimit
    if (!Number.isInteger(limit) || limit < 1 || limit > maxListLimit) {
      return yield* fail("list", "PermissionDenied", `limit must be an integer from 1 to ${maxListLimit}`)
    }
    const prefix = listOptions.prefix ?? ""
    if (prefix.startsWith("/") || prefix.split("/").some((p) => p === "..") || prefix.includes("\0")) {
      return yield* fail("list", "PermissionDenied", `unsafe prefix ${JSON.stringify(prefix)}`)
    }
    return yield* retrying(driver.list({ prefix, cursor: listOptions.cursor, limit }))
  })

  const listAll = (listOptions: { readonly prefix?: string | undefined } = {}) =>
    Stream.paginateChunkEffect(undefined as string | undefined | null, (cursor) =>
      cursor === null
        ? Effect.succeed([Chunk.empty<ObjectInfo>(), Option.none()] as const)
        : list({ prefix: listOptions.prefix, cursor }).pipe(Effect.map((page) =>
          [Chunk.fromIterable(page.items), page.cursor === undefined ? Option.none() : Option.some(page.cursor)] as const
        ))
    )

  const checksum = Effect.fn("StorageDriver.checksum")(function*(key: string, algorithm: Checksum.Algorithm = Checksum.defaultAlgorithm) {
    const info = yield* stat(key)
    if (info.checksum !== undefined && Checksum.parse(info.checksum).algorithm === algorithm) return info.checksum
    return yield* hashObject("checksum", key, algorithm)
  })

  const hashObject = (method: string, key: string, algorithm: Checksum.Algorithm) =>
    Effect.flatMap(hasherFor(method), (makeHasher) =>
      Effect.suspend(() => {
        const h = makeHasher(algorithm)
        // `update` is done with the bytes when it returns, so the driver may reuse its buffers
        return readEach(key, (part) => Effect.zipRight(Effect.sync(() => h.update(part)), hasherReady(h, false))).pipe(
          Effect.zipRight(hasherReady(h, true)),
          Effect.map(() => Checksum.make(algorithm, h.digest()))
        )
      }))

  const verify = Effect.fn("StorageDriver.verify")(function*(key: string, expected: Checksum.Checksum) {
    const info = yield* stat(key)
    const actual = yield* hashObject("verify", key, Checksum.parse(expected).algorithm)
    if (actual !== expected) return yield* fail("verify", "Corrupt", `checksum mismatch: expected ${expected}, got ${actual}`, key)
    return { ...info, checksum: actual }
  })

  const copy = Effect.fn("StorageDriver.copy")(function*(
    from: string,
    to: string,
    copyOptions: { readonly overwrite?: boolean | undefined } = {}
  ) {
    const src = yield* validKey("copy", from)
    const dst = yield* validKey("copy", to)
    const overwrite = copyOptions.overwrite ?? false
    const source = yield* stat(src)
    if (caps.nativeCopy && driver.copy !== undefined) {
      const native = yield* retrying(driver.copy(src, dst, { overwrite })).pipe(
        Effect.map(Option.some),
        Effect.catchIf((e) => e.reason === "Unsupported", () => Effect.succeedNone)
      )
      if (Option.isSome(native)) {
        if (native.value.size !== source.size) {
          yield* Effect.ignore(driver.delete(dst))
          return yield* fail("copy", "Corrupt", `copy has ${native.value.size} bytes, source ${source.size}`, to)
        }
        return { ...native.value, checksum: native.value.checksum ?? source.checksum }
      }
    }
    return yield* put(dst, get(src), { overwrite, checksum: source.checksum, sizeHint: source.size })
  })

  const space = Effect.fn("StorageDriver.space")(function*() {
    if (driver.space === undefined) return yield* fail("space", "Unsupported", "this driver cannot report free space")
    return yield* retrying(driver.space())
  })

  const presign = Effect.fn("StorageDriver.presign")(function*(
    key: string,
    presignOptions: { readonly method?: "GET" | "PUT"; readonly expiresIn?: Duration.DurationInput } = {}
  ) {
    const k = yield* validKey("presign", key)
    if (!caps.presign || driver.presign === undefined) return yield* fail("presign", "Unsupported", "this driver cannot presign URLs", key)
    return yield* retrying(driver.presign(k, {
      method: presignOptions.method ?? "GET",
      expiresIn: Duration.decode(presignOptions.expiresIn ?? "1 hour")
    }))
  })

  const recall = Effect.fn("StorageDriver.recall")(function*(keys: ReadonlyArray<string>) {
    const valid = yield* Effect.forEach(keys, (k) => validKey("recall", k))
    if (driver.recall === undefined || valid.length === 0) return
    yield* retrying(driver.recall(valid))
  })

  const release = Effect.fn("StorageDriver.release")(function*(keys: ReadonlyArray<string>) {
    const valid = yield* Effect.forEach(keys, (k) => validKey("release", k))
    if (driver.release === undefined || valid.length === 0) return
    yield* retrying(driver.release(valid))
  })

  const sweepTemporary = Effect.fn("StorageDriver.sweepTemporary")(function*(
    sweepOptions: { readonly olderThan?: Duration.DurationInput | undefined } = {}
  ) {
    if (!caps.sweepTemporary || driver.sweepTemporary === undefined) {
      return yield* fail("sweepTemporary", "Unsupported", "this driver cannot sweep temporary files")
    }
    const age = Duration.decodeUnknown(sweepOptions.olderThan ?? defaultSweepAge)
    if (Option.isNone(age) || !Duration.isFinite(age.value) || Duration.lessThan(age.value, minimumSweepAge)) {
      return yield* fail(
        "sweepTemporary",
        "PermissionDenied",
        `olderThan must be a finite duration of at least ${Duration.format(minimumSweepAge)}, got ${String(sweepOptions.olderThan)}: ` +
          "a younger temporary file may belong to a write still running"
      )
    }
    const now = yield* Clock.currentTimeMillis
    const sweep = driver.sweepTemporary
    return yield* retrying(Effect.suspend(() => sweep({ before: new Date(now - Duration.toMillis(age.value)) })))
  })

  return {
    name,
    capabilities: caps,
    put,
    get,
    readEach,
    stat,
    readAtMost,
    exists,
    delete: remove,
    list,
    listAll,
    copy,
    checksum,
    verify,
    space,
    presign,
    recall,
    release,
    sweepTemporary
  }
}
