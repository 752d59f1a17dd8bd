/**
 * The local-copy transfer adapter: both ends on this machine (the embedded default, and
 * locations that share a host). It streams each file through a hash, so the source's checksum
 * comes from the same pass that copies it (DESIGN §9), writes under a temporary name in the
 * destination directory, fsyncs, and renames: a crash never leaves partial data under a final
 * name (DESIGN §4.3); what a killed copy leaves under its temporary name is removed by the disk
 * driver's `sweepTemporary` once old. It does not resume: a copy on one machine restarts faster than it verifies
 * a partial file.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { randomBytes } from "node:crypto"
import { createReadStream } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { pipeline } from "node:stream/promises"
import * as Checksum from "../Checksum.js"
import * as TemporaryNames from "../TemporaryNames.js"
import * as TransferAdapter from "../TransferAdapter.js"
import * as TransferAdapterRegistry from "../TransferAdapterRegistry.js"
import * as TransferError from "../TransferError.js"
import { HashingStream } from "./Hashing.js"
import * as TransferHost from "./TransferHost.js"

/** The adapter's name in results, errors and DataTransfer rows. */
export const name = "local"

/** Options of the local adapter, on top of the service's. */
export interface Options extends TransferAdapter.Options {
  /** fsync each file before the rename, so a crash cannot expose an empty final file (default true). */
  readonly fsync?: boolean
  /** Files copied at once in a tree (default 4: small files are latency-bound). */
  readonly concurrency?: number
  /** How often progress is reported (default 1000 ms). */
  readonly progressIntervalMs?: number
}

/**
 * Makes the destination's folder and creates the temporary file in it. A delete at the same
 * destination (the disk driver's, once an object is gone) removes the folders it leaves empty, so
 * the folder can vanish between the two steps, or while it is made: that is made again before
 * any byte is read, up to `createAttempts` times (two system calls each: a tidy-up that keeps
 * winning that often is a fault, not a race). The file, once created, keeps its folder.
 */
/** How often a destination folder pruned under a copy is made again before the copy fails. */
const createAttempts = 100

const createTemporary = async (dir: string, tmp: string) => {
  for (let attempt = 1;; attempt++) {
    try {
      await fs.mkdir(dir, { recursive: true })
      return await fs.open(tmp, "wx", 0o644)
    } catch (e) {
      if (attempt >= createAttempts || (e as { code?: string }).code !== "ENOENT") throw e
    }
  }
}

const copyOne = async (
  src: string,
  dst: string,
  algorithm: Checksum.Algorithm,
  fsync: boolean,
  hasher: HashingStream,
  signal: AbortSignal
) => {
  const dir = path.dirname(dst)
  // a name the disk driver's sweep recognises: a copy killed here leaves nothing for good
  const tmp = path.join(dir, TemporaryNames.part(path.basename(dst), randomBytes(6).toString("hex")))
  const created = await createTemporary(dir, tmp)
  try {
    await pipeline(createReadStream(src, { highWaterMark: 1024 * 1024, signal }), hasher, created.createWriteStream(), { signal })
    if (fsync) {
      const handle = await fs.open(tmp, "r+")
      try {
        await handle.sync()
      } finally {
        await handle.close()
      }
    }
    await fs.rename(tmp, dst)
  } catch (e) {
    // the stream closes the file when it ends or fails; this covers one that never started
    await created.close().catch(() => undefined)
    await fs.rm(tmp, { force: true })
    throw e
  }
  return { size: hasher.bytes, checksum: hasher.checksum() }
}

/**
 * Runs an abortable promise; on interruption aborts it and waits until it settled, so the
 * temporary file its failure path removes is gone before the interruption completes.
 */
const untilSettled = <A>(
  options: { readonly try: (signal: AbortSignal) => Promise<A>; readonly catch: (e: unknown) => TransferError.TransferError }
) =>
  Effect.async<A, TransferError.TransferError>((resume) => {
    const controller = new AbortController()
    const promise = options.try(controller.signal)
    promise.then(
      (a) => resume(Effect.succeed(a)),
      (e) => resume(Effect.fail(options.catch(e)))
    )
    return Effect.promise(() => {
      controller.abort()
      return promise.then(
        () => undefined,
        () => undefined
      )
    })
  })

/** Errors of a local copy: anything failing on the read side is the source's. */
const classify = (cause: unknown, readingSource: boolean): TransferError.TransferError => {
  const reason = TransferHost.reasonOfErrno(cause, readingSource ? "source" : "destination")
  const message = cause instanceof Error ? cause.message : String(cause)
  return TransferError.make(name, readingSource && reason === "SourceNotFound" ? "SourceVanished" : reason, message, { cause })
}

/** The minimal local adapter, for composing or wrapping (e.g. fault injection in tests). */
export const minimal = (options: Options = {}): TransferAdapter.Minimal => ({
  name,
  capabilities: { resume: false, remote: false, directories: true, bandwidthLimit: false },
  size: (endpoint, kind) => TransferHost.size(name, endpoint, kind),
  manifest: (endpoint, kind, algorithm) => TransferHost.manifest(name, endpoint, kind, algorithm),
  remove: (endpoint) => TransferHost.remove(name, endpoint),
  copy: Effect.fn("LocalTransfer.copy")(function* (request, report) {
    const algorithm = request.algorithm ?? Checksum.defaultAlgorithm
    const started = Date.now()
    const done = { bytes: 0 }
    const active = new Set<HashingStream>()
    const current = () => done.bytes + [...active].reduce((n, h) => n + h.bytes, 0)
    const tick = Effect.suspend(() => report(TransferAdapter.progressOf(current(), request.totalBytes, Date.now() - started)))
    const files = yield* Effect.tryPromise({
      try: () => TransferHost.walk(request.source.path),
      catch: (e) => classify(e, true)
    })
    const one = (rel: string) =>
      untilSettled({
        try: async (signal) => {
          const src = rel === "." ? request.source.path : path.join(request.source.path, rel)
          const dst = rel === "." ? request.destination.path : path.join(request.destination.path, rel)
          const hasher = new HashingStream(algorithm)
          active.add(hasher)
          try {
            const entry = await copyOne(src, dst, algorithm, options.fsync ?? true, hasher, signal)
            done.bytes += entry.size
            return [rel, entry] as const
          } finally {
            active.delete(hasher)
          }
        },
        catch: (e) =>
          classify(
            e,
            (e as { syscall?: string; path?: string }).path === (rel === "." ? request.source.path : path.join(request.source.path, rel))
          )
      })
    if (request.kind === "directory") {
      yield* Effect.tryPromise({ try: () => fs.mkdir(request.destination.path, { recursive: true }), catch: (e) => classify(e, false) })
    }
    const entries = yield* Effect.forEach(
      files.map((f) => f.rel),
      one,
      { concurrency: options.concurrency ?? 4 }
    ).pipe(
      Effect.raceFirst(tick.pipe(Effect.repeat(Schedule.spaced(options.progressIntervalMs ?? 1000)), Effect.zipRight(Effect.never)))
    )
    yield* tick
    return { bytesSent: done.bytes, sourceManifest: Object.fromEntries(entries) }
  })
})

/** The full local adapter: verification and retries from the core on top of `minimal`. */
export const make = (options: Options = {}): TransferAdapter.Service => TransferAdapter.make(minimal(options), options)

/** Provides the generic TransferAdapter tag with the local adapter. */
export const layer = (options: Options = {}): Layer.Layer<TransferAdapter.TransferAdapter> =>
  Layer.succeed(TransferAdapter.TransferAdapter, make(options))

/**
 * A local route's options: none, since both buffers are folders of this machine. Any key is
 * refused by name (an empty Struct would let any key through).
 */
export const RouteOptions = Schema.Record({
  key: Schema.String,
  value: Schema.Never.annotations({ message: () => "is unexpected: a local route takes no options" })
})

/** The local adapter, registered as `local`; it never retries by itself (the lifecycle records each attempt). */
export const adapter: TransferAdapterRegistry.Adapter = TransferAdapterRegistry.define({
  name,
  options: RouteOptions,
  make: () => make({ retry: TransferAdapter.noRetry })
})
