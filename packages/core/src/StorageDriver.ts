/**
 * The StorageDriver port (DESIGN §6): how every DataLocation stores bytes, whatever the
 * technology behind it (disk, S3, tape, an integrator's). An integrator implements the few
 * primitives of `Minimal`; `make` lifts them into the full `Service` with exists, copy, checksum
 * verification and retries of transient failures, so that behaviour is written once (STYLE §1;
 * the lift itself is `internal/StorageDriverLift.ts`, this module the contract).
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
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Backoff from "./Backoff.js"
import * as Checksum from "./Checksum.js"
import * as RelativePath from "./RelativePath.js"
import * as LocalFolders from "./internal/LocalFolders.js"
import * as Lift from "./internal/StorageDriverLift.js"
import { type HasherFactory, runtimeHasher } from "./StorageHasher.js"
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
export const minimumSweepAge: Duration.Duration = Lift.minimumSweepAge

/** The age `sweepTemporary` removes temporary files at when the caller does not say. */
export const defaultSweepAge: Duration.Duration = Lift.defaultSweepAge

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

export type { FolderProblem, LocalFolder } from "./internal/LocalFolders.js"

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
  readonly copy: (
    from: string,
    to: string,
    options?: { readonly overwrite?: boolean | undefined }
  ) => Effect.Effect<ObjectInfo, StorageError>
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

/** Options of `make`. */
export interface MakeOptions {
  readonly retry?: RetryPolicy | undefined
  /** Where the runtime has no built-in crypto, the hash implementation to use. */
  readonly hasher?: HasherFactory | undefined
}

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
export const maxListLimit: number = Lift.maxListLimit

/**
 * Lifts a minimal driver into the full service: validated keys, capability checks, checksums
 * computed in the same pass as the write, verification, derived exists/copy/listAll, and
 * retries of transient failures. `put` is not retried: its body may be a stream that can be read
 * only once, so the caller (who owns the source) retries it.
 */
export const make = (driver: Minimal, options: MakeOptions = {}): Service => {
  const service = Lift.lift(driver, retrySchedule(options.retry ?? defaultRetryPolicy), options.hasher ?? runtimeHasher)
  LocalFolders.carry(driver, service)
  return service
}

/**
 * Declares that `driver`'s objects are files in `folder` on this machine (see `LocalFolder`);
 * `make` passes it on to the service it lifts from this very object. A copy of the driver
 * (`{ ...driver, get }`) or of its service has no folder: whatever the copy changed, its reads
 * go through its own calls. Returns `driver`.
 */
export const declareLocalFolder = <D extends Minimal>(driver: D, folder: LocalFolders.LocalFolder): D =>
  LocalFolders.declare(driver, folder)

/**
 * The folder on this machine whose files are the service's objects, for a service `make` lifted
 * from a driver that has one (see `LocalFolder`). A copy of a service (`{ ...service, get }`,
 * a wrapper injecting faults or counting reads) has none: whatever it changed, its reads go
 * through its own calls.
 */
export const localFolder = (service: Service): LocalFolders.LocalFolder | undefined => LocalFolders.of(service)
