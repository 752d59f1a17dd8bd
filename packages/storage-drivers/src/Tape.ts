/**
 * The tape driver: a nearline LONG_TERM_ARCHIVE. A put lands in a disk cache (atomically, via
 * the disk driver) and is then written sequentially onto the first volume with room, as one
 * tape file; the catalog (volume, file number, offset, size, checksum) is updated only after
 * that, so an object is visible only once it is on tape. A read of an object that is no longer
 * in the cache is a recall: it waits for a drive, a mount and positioning. Pending recalls are
 * grouped by volume and read in file order, so a batch mounts each volume once.
 *
 * Several processes (workers of one site) may open the same root and library. They share the
 * catalog file and take cross-process locks under `<root>/locks`: `write` while choosing where to
 * append, appending and committing; `drive-<n>` while using drive n; `catalog` for each change.
 * Every decision (where the next tape file goes, whether a key exists) reads the catalog that is
 * committed now, never a copy from when the process started.
 */
import { Backoff, type Checksum, type RelativePath, StorageDriver, StorageError } from "@ccat/core"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import * as path from "node:path"
import * as Disk from "./Disk.js"
import { pollBackoff } from "./internal/FileLock.js"
import * as TapeCatalog from "./internal/TapeCatalog.js"
import type { TapeLibrary } from "./TapeLibrary.js"

/** Where the catalog and cache live and which library holds the volumes. */
export interface Options {
  /** Folder of the catalog and the disk cache. */
  readonly root: string
  readonly library: TapeLibrary
  /** Keep a written or recalled object in the cache. Default true; false makes every read a recall. */
  readonly keepOnline?: boolean | undefined
  readonly name?: string | undefined
  readonly retry?: StorageDriver.RetryPolicy | undefined
}

/** Where an object is on tape: the catalog row. */
export interface CatalogEntry {
  readonly volume: string
  /** The tape file (0-based) on the volume; positioning is by file number, as with `mt asf`. */
  readonly fileNumber: number
  readonly size: number
  readonly checksum: Checksum.Checksum | undefined
  readonly cacheId: string
  readonly writtenAt: string
}

/** The tape service: the storage port plus what only tape has. */
export interface Service extends StorageDriver.Service {
  /** Drops cache copies; the objects stay on tape and the next read recalls them. */
  readonly evict: (keys: ReadonlyArray<string>) => Effect.Effect<void, StorageError.StorageError>
  /** Where each object is on tape, as committed by any process sharing the root. */
  readonly catalog: Effect.Effect<Readonly<Record<string, CatalogEntry>>, StorageError.StorageError>
}

interface Recall {
  readonly key: string
  readonly entry: CatalogEntry
  readonly done: Deferred.Deferred<void, StorageError.StorageError>
}

/** Builds the tape driver; its recall workers live as long as the scope. */
export const make = (options: Options): Effect.Effect<Service, StorageError.StorageError, Scope.Scope> =>
  Effect.gen(function* () {
    const name = options.name ?? "tape"
    const library = options.library
    const keepOnline = options.keepOnline ?? true
    const fail = (method: string, reason: StorageError.StorageErrorReason, description: string, key?: string) =>
      new StorageError.StorageError({ reason, driver: name, method, key, description })
    const cache = yield* Disk.makeMinimal({ root: path.join(options.root, "cache"), name: `${name}-cache` })
    const catalog = yield* TapeCatalog.make(options.root, name)
    const verifyingCache = StorageDriver.make(cache)
    const cacheKey = (id: string) => `objects/${id.slice(0, 2)}/${id}` as RelativePath.RelativePath
    const online = (entry: CatalogEntry) =>
      cache.stat(cacheKey(entry.cacheId)).pipe(Effect.as(true), Effect.catchAll(() => Effect.succeed(false)))

    // drives: a pool that prefers a drive already holding the wanted volume
    const mounted: Array<string | undefined> = Array.from({ length: library.drives }, () => undefined)
    const busy: Array<boolean> = Array.from({ length: library.drives }, () => false)
    const drivePermits = yield* Effect.makeSemaphore(library.drives)
    // a free drive of this process may still be in use by another one: take its lock first
    const claimDrive = (volume: string | undefined): Effect.Effect<number, StorageError.StorageError, Scope.Scope> =>
      Effect.gen(function* () {
        for (let polls = 1;; polls++) {
          const free = busy.flatMap((b, i) => b ? [] : [i])
          const order = [
            ...free.filter((i) => volume !== undefined && mounted[i] === volume),
            ...free.filter((i) => volume === undefined || mounted[i] !== volume)
          ]
          for (const drive of order) {
            if (busy[drive] || !(yield* catalog.tryLock(`drive-${drive}`))) continue
            busy[drive] = true
            yield* Effect.addFinalizer(() =>
              Effect.sync(() => {
                busy[drive] = false
              })
            )
            return drive
          }
          yield* Effect.sleep(Backoff.delayFor(pollBackoff, polls, 0))
        }
      })
    const withDrive = <A, E>(volume: string | undefined, use: (drive: number) => Effect.Effect<A, E>) =>
      drivePermits.withPermits(1)(Effect.scoped(Effect.flatMap(claimDrive(volume), use)))
    const mount = (drive: number, volume: string) =>
      library.mount(drive, volume).pipe(Effect.tap(() =>
        Effect.sync(() => {
          for (let i = 0; i < mounted.length; i++) if (mounted[i] === volume) mounted[i] = undefined
          mounted[drive] = volume
        })
      ))

    // recalls: grouped per volume, each group read in file order by whichever drive is free
    const pending = new Map<string, Array<Recall>>()
    const inFlight = new Map<string, Deferred.Deferred<void, StorageError.StorageError>>()
    const signal = yield* Queue.unbounded<string>()
    const recallGroup = (volume: string, group: ReadonlyArray<Recall>) =>
      withDrive(volume, (drive) =>
        Effect.gen(function* () {
          yield* mount(drive, volume)
          for (const r of [...group].sort((a, b) => a.entry.fileNumber - b.entry.fileNumber)) {
            const result = yield* Effect.exit(Effect.gen(function* () {
              yield* library.seek(drive, r.entry.fileNumber)
              // the lifted put checks the recalled bytes against the catalog's checksum
              yield* verifyingCache.put(cacheKey(r.entry.cacheId), library.read(drive), {
                overwrite: true,
                checksum: r.entry.checksum
              })
            }))
            inFlight.delete(r.entry.cacheId)
            yield* Deferred.done(r.done, result)
          }
        }))
    const worker = Effect.forever(Effect.gen(function* () {
      const volume = yield* Queue.take(signal)
      const group = pending.get(volume)
      if (group === undefined) return
      pending.delete(volume)
      yield* recallGroup(volume, group).pipe(
        Effect.catchAllCause((cause) => Effect.forEach(group, (r) => Deferred.failCause(r.done, cause)))
      )
    }))
    yield* Effect.forEach(Array.from({ length: library.drives }), () => Effect.forkScoped(worker), { discard: true })
    const recallEntries = (items: ReadonlyArray<{ key: string; entry: CatalogEntry }>) =>
      Effect.gen(function* () {
        const waits: Array<Deferred.Deferred<void, StorageError.StorageError>> = []
        const fresh = new Set<string>()
        for (const { key, entry } of items) {
          if (yield* online(entry)) continue
          const existing = inFlight.get(entry.cacheId)
          if (existing !== undefined) {
            waits.push(existing)
            continue
          }
          const done = yield* Deferred.make<void, StorageError.StorageError>()
          inFlight.set(entry.cacheId, done)
          const group = pending.get(entry.volume)
          if (group === undefined) {
            pending.set(entry.volume, [{ key, entry, done }])
            fresh.add(entry.volume)
          } else group.push({ key, entry, done })
          waits.push(done)
        }
        yield* Queue.offerAll(signal, fresh)
        yield* Effect.forEach(waits, Deferred.await, { discard: true })
      })

    const entryOf = (method: string, key: string) =>
      Effect.flatMap(catalog.read, (c) => {
        const entry = c.objects[key]
        return entry === undefined ? Effect.fail(fail(method, "NotFound", "no such object", key)) : Effect.succeed(entry)
      })

    /**
     * Writes a cached object onto the first volume with room, as the next tape file, and commits
     * the volume's usage and the object's entry together. The write lock spans all three, so no
     * other process appends to the volume between reading its usage and committing it; a writer
     * killed before the commit leaves an uncommitted tape file, which the next append overwrites.
     */
    const migrate = (key: string, cacheId: string, size: number, checksum: Checksum.Checksum | undefined, overwrite: boolean) =>
      catalog.withLock("write")(Effect.gen(function* () {
        const volumes = yield* library.volumes
        const usage = (yield* catalog.read).volumes
        const target = volumes.find((v) => (usage[v.label]?.usedBytes ?? 0) + size <= v.capacityBytes)
        if (target === undefined) return yield* fail("put", "Unavailable", `no volume has ${size} bytes free`, key)
        const files = usage[target.label]?.files ?? 0
        const written = yield* withDrive(target.label, (drive) =>
          Effect.gen(function* () {
            yield* mount(drive, target.label)
            return yield* library.append(drive, files, cache.get(cacheKey(cacheId), undefined))
          }))
        const entry: CatalogEntry = {
          volume: target.label,
          fileNumber: written.fileNumber,
          size,
          checksum,
          cacheId,
          writtenAt: new Date().toISOString()
        }
        const outcome = yield* catalog.update("put", (c) => {
          const used = c.volumes[target.label]?.usedBytes ?? 0
          c.volumes[target.label] = { files: written.fileNumber + 1, usedBytes: used + written.bytes }
          const before = c.objects[key]
          if (!overwrite && before !== undefined) return { committed: false, before } as const
          c.objects[key] = entry
          return { committed: true, before } as const
        })
        if (!outcome.committed) return yield* fail("put", "AlreadyExists", "an object exists under this key", key)
        return { entry, previous: outcome.before }
      }))

    const put = <E>(key: RelativePath.RelativePath, body: Stream.Stream<Uint8Array, E>, opts: StorageDriver.MinimalPutOptions) =>
      Effect.gen(function* () {
        if (!opts.overwrite && (yield* catalog.read).objects[key] !== undefined) {
          return yield* fail("put", "AlreadyExists", "an object exists under this key", key)
        }
        const cacheId = randomBytes(12).toString("hex")
        let committed = false
        return yield* Effect.gen(function* () {
          const cached = yield* cache.put(cacheKey(cacheId), body, { ...opts, overwrite: true })
          const { entry, previous } = yield* migrate(key, cacheId, cached.size, opts.digest(), opts.overwrite)
          committed = true
          if (previous !== undefined) yield* Effect.ignore(cache.delete(cacheKey(previous.cacheId)))
          if (!keepOnline) yield* Effect.ignore(cache.delete(cacheKey(cacheId)))
          return { key, size: entry.size, checksum: entry.checksum, modifiedAt: new Date(entry.writtenAt), online: keepOnline }
        }).pipe(Effect.ensuring(Effect.suspend(() => committed ? Effect.void : Effect.ignore(cache.delete(cacheKey(cacheId))))))
      })

    const get = (key: RelativePath.RelativePath, range: StorageDriver.ByteRange | undefined) =>
      Stream.unwrap(Effect.gen(function* () {
        const entry = yield* entryOf("get", key)
        yield* recallEntries([{ key, entry }])
        return cache.get(cacheKey(entry.cacheId), range)
      }))

    // recalled first like `get`, then read from the cache into the disk driver's reused buffers
    // (audits and `verify` read this way: no fresh buffer per part for the collector)
    const readEach = <E>(
      key: RelativePath.RelativePath,
      range: StorageDriver.ByteRange | undefined,
      consume: (part: Uint8Array) => Effect.Effect<void, E>
    ) =>
      Effect.gen(function* () {
        const entry = yield* entryOf("readEach", key)
        yield* recallEntries([{ key, entry }])
        return yield* cache.readEach!(cacheKey(entry.cacheId), range, consume)
      })

    const stat = (key: RelativePath.RelativePath) =>
      Effect.gen(function* () {
        const entry = yield* entryOf("stat", key)
        return {
          key,
          size: entry.size,
          checksum: entry.checksum,
          modifiedAt: new Date(entry.writtenAt),
          online: yield* online(entry)
        } satisfies StorageDriver.ObjectInfo
      })

    const remove = (key: RelativePath.RelativePath) =>
      Effect.gen(function* () {
        const entry = yield* catalog.update("delete", (c) => {
          const entry = c.objects[key]
          delete c.objects[key]
          return entry
        })
        // the bytes stay on tape as dead space until the volume is repacked
        if (entry !== undefined) yield* Effect.ignore(cache.delete(cacheKey(entry.cacheId)))
      })

    const list = ({ prefix, cursor, limit }: { prefix: string; cursor: string | undefined; limit: number }) =>
      Effect.map(catalog.read, ({ objects }) => {
        const keys = Object.keys(objects).filter((k) => k.startsWith(prefix) && (cursor === undefined || k > cursor)).sort()
        const page = keys.slice(0, limit)
        const items = page.map((k): StorageDriver.ObjectInfo => {
          const e = objects[k]!
          return { key: k as RelativePath.RelativePath, size: e.size, checksum: e.checksum, modifiedAt: new Date(e.writtenAt) }
        })
        return { items, cursor: keys.length > limit ? page[page.length - 1] : undefined }
      })

    const recall = (keys: ReadonlyArray<RelativePath.RelativePath>) =>
      Effect.forEach(keys, (k) => Effect.map(entryOf("recall", k), (entry) => ({ key: k, entry }))).pipe(
        Effect.flatMap(recallEntries)
      )

    const evict = (keys: ReadonlyArray<string>) =>
      Effect.forEach(keys, (k) => Effect.flatMap(entryOf("evict", k), (entry) => cache.delete(cacheKey(entry.cacheId))), { discard: true })
    // the port's release: as evict, but a key with no catalog entry has nothing online to drop
    const release = (keys: ReadonlyArray<RelativePath.RelativePath>) =>
      Effect.forEach(keys, (k) => evict([k]).pipe(Effect.catchIf((e) => e.reason === "NotFound", () => Effect.void)), { discard: true })
    const minimal: StorageDriver.Minimal = {
      name,
      capabilities: { ...StorageDriver.noCapabilities, rangeRead: true, list: true, nearline: true },
      put,
      get,
      readEach,
      stat,
      delete: remove,
      list,
      recall,
      release
    }
    const service = StorageDriver.make(minimal, { retry: options.retry })
    const tape: Service = { ...service, evict, catalog: Effect.map(catalog.read, (c) => ({ ...c.objects })) }
    return tape
  })

/** A layer providing the generic StorageDriver port backed by a tape library. */
export const layer = (options: Options): Layer.Layer<StorageDriver.StorageDriver, StorageError.StorageError> =>
  Layer.scoped(StorageDriver.StorageDriver, make(options))
