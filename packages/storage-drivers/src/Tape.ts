/**
 * The tape driver: a nearline LONG_TERM_ARCHIVE. A put lands in a disk cache (atomically, via
 * the disk driver) and is then written sequentially onto the first volume with room, as one
 * tape file; the catalog (volume, file number, offset, size, checksum) is updated only after
 * that, so an object is visible only once it is on tape. A read of an object that is no longer
 * in the cache is a recall: it waits for a drive, a mount and positioning. Pending recalls are
 * grouped by volume and read in file order, so a batch mounts each volume once.
 */
import { type Checksum, type RelativePath, StorageDriver, StorageError } from "@ccat/core"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Disk from "./Disk.js"
import { errnoError } from "./internal/streams.js"
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

interface CatalogFile {
  readonly objects: Record<string, CatalogEntry>
  readonly volumes: Record<string, { files: number; usedBytes: number }>
}

/** The tape service: the storage port plus what only tape has. */
export interface Service extends StorageDriver.Service {
  /** Drops cache copies; the objects stay on tape and the next read recalls them. */
  readonly evict: (keys: ReadonlyArray<string>) => Effect.Effect<void, StorageError.StorageError>
  /** Where each object is on tape. */
  readonly catalog: Effect.Effect<Readonly<Record<string, CatalogEntry>>>
}

interface Recall {
  readonly key: string
  readonly entry: CatalogEntry
  readonly done: Deferred.Deferred<void, StorageError.StorageError>
}

/** Builds the tape driver; its recall workers live as long as the scope. */
export const make = (options: Options): Effect.Effect<Service, StorageError.StorageError, Scope.Scope> =>
  Effect.gen(function*() {
    const name = options.name ?? "tape"
    const library = options.library
    const keepOnline = options.keepOnline ?? true
    const fail = (method: string, reason: StorageError.StorageErrorReason, description: string, key?: string) =>
      new StorageError.StorageError({ reason, driver: name, method, key, description })
    const io = <A>(method: string, f: () => Promise<A>) =>
      Effect.tryPromise({ try: f, catch: (cause) => errnoError(name, method, undefined, cause) })
    const cache = yield* Disk.makeMinimal({ root: path.join(options.root, "cache"), name: `${name}-cache` })
    const catalogPath = path.join(options.root, "catalog.json")
    const initial = yield* io("open", () =>
      fs.readFile(catalogPath, "utf8").then((s) => JSON.parse(s) as CatalogFile, (e) =>
        e?.code === "ENOENT" ? { objects: {}, volumes: {} } : Promise.reject(e)))
    const objects = new Map(Object.entries(initial.objects))
    const usage = new Map(Object.entries(initial.volumes))
    const catalogLock = yield* Effect.makeSemaphore(1)
    const writeLock = yield* Effect.makeSemaphore(1)
    const persist = io("catalog", async () => {
      const file: CatalogFile = { objects: Object.fromEntries(objects), volumes: Object.fromEntries(usage) }
      const tmp = `${catalogPath}.${randomBytes(4).toString("hex")}.tmp`
      const handle = await fs.open(tmp, "w")
      try {
        await handle.writeFile(JSON.stringify(file))
        await handle.sync()
      } finally {
        await handle.close()
      }
      await fs.rename(tmp, catalogPath)
    })
    const verifyingCache = StorageDriver.make(cache)
    const cacheKey = (id: string) => `objects/${id.slice(0, 2)}/${id}` as RelativePath.RelativePath
    const online = (entry: CatalogEntry) =>
      cache.stat(cacheKey(entry.cacheId)).pipe(Effect.as(true), Effect.catchAll(() => Effect.succeed(false)))

    // drives: a pool that prefers a drive already holding the wanted volume
    const mounted: Array<string | undefined> = Array.from({ length: library.drives }, () => undefined)
    const busy: Array<boolean> = Array.from({ length: library.drives }, () => false)
    const drivePermits = yield* Effect.makeSemaphore(library.drives)
    const withDrive = <A, E>(volume: string | undefined, use: (drive: number) => Effect.Effect<A, E>) =>
      drivePermits.withPermits(1)(Effect.suspend(() => {
        let drive = busy.findIndex((b, i) => !b && volume !== undefined && mounted[i] === volume)
        if (drive < 0) drive = busy.findIndex((b) => !b)
        busy[drive] = true
        return use(drive).pipe(Effect.ensuring(Effect.sync(() => {
          busy[drive] = false
        })))
      }))
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
        Effect.gen(function*() {
          yield* mount(drive, volume)
          for (const r of [...group].sort((a, b) => a.entry.fileNumber - b.entry.fileNumber)) {
            const result = yield* Effect.exit(Effect.gen(function*() {
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
    const worker = Effect.forever(Effect.gen(function*() {
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
      Effect.gen(function*() {
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
      Effect.suspend(() => {
        const entry = objects.get(key)
        return entry === undefined ? Effect.fail(fail(method, "NotFound", "no such object", key)) : Effect.succeed(entry)
      })

    /** Writes a cached object onto the first volume with room, as the next tape file. */
    const migrate = (key: string, cacheId: string, size: number) =>
      writeLock.withPermits(1)(Effect.gen(function*() {
        const volumes = yield* library.volumes
        const target = volumes.find((v) => (usage.get(v.label)?.usedBytes ?? 0) + size <= v.capacityBytes)
        if (target === undefined) return yield* fail("put", "Unavailable", `no volume has ${size} bytes free`, key)
        const files = usage.get(target.label)?.files ?? 0
        const written = yield* withDrive(target.label, (drive) =>
          Effect.gen(function*() {
            yield* mount(drive, target.label)
            return yield* library.append(drive, files, cache.get(cacheKey(cacheId), undefined))
          }))
        yield* catalogLock.withPermits(1)(Effect.gen(function*() {
          const used = usage.get(target.label)?.usedBytes ?? 0
          usage.set(target.label, { files: written.fileNumber + 1, usedBytes: used + written.bytes })
          yield* persist
        }))
        return { volume: target.label, fileNumber: written.fileNumber }
      }))

    const put = <E>(key: RelativePath.RelativePath, body: Stream.Stream<Uint8Array, E>, opts: StorageDriver.MinimalPutOptions) =>
      Effect.gen(function*() {
        if (!opts.overwrite && objects.has(key)) return yield* fail("put", "AlreadyExists", "an object exists under this key", key)
        const cacheId = randomBytes(12).toString("hex")
        let committed = false
        return yield* Effect.gen(function*() {
          const cached = yield* cache.put(cacheKey(cacheId), body, { ...opts, overwrite: true })
          const where = yield* migrate(key, cacheId, cached.size)
          const entry: CatalogEntry = {
            volume: where.volume,
            fileNumber: where.fileNumber,
            size: cached.size,
            checksum: opts.digest(),
            cacheId,
            writtenAt: new Date().toISOString()
          }
          const previous = yield* catalogLock.withPermits(1)(Effect.gen(function*() {
            const before = objects.get(key)
            if (!opts.overwrite && before !== undefined) {
              return yield* fail("put", "AlreadyExists", "an object exists under this key", key)
            }
            objects.set(key, entry)
            yield* persist
            committed = true
            return before
          }))
          if (previous !== undefined) yield* Effect.ignore(cache.delete(cacheKey(previous.cacheId)))
          if (!keepOnline) yield* Effect.ignore(cache.delete(cacheKey(cacheId)))
          return { key, size: entry.size, checksum: entry.checksum, modifiedAt: new Date(entry.writtenAt), online: keepOnline }
        }).pipe(Effect.ensuring(Effect.suspend(() => committed ? Effect.void : Effect.ignore(cache.delete(cacheKey(cacheId))))))
      })

    const get = (key: RelativePath.RelativePath, range: StorageDriver.ByteRange | undefined) =>
      Stream.unwrap(Effect.gen(function*() {
        const entry = yield* entryOf("get", key)
        yield* recallEntries([{ key, entry }])
        return cache.get(cacheKey(entry.cacheId), range)
      }))

    const stat = (key: RelativePath.RelativePath) =>
      Effect.gen(function*() {
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
      catalogLock.withPermits(1)(Effect.gen(function*() {
        const entry = objects.get(key)
        if (entry === undefined) return
        objects.delete(key)
        yield* persist
        // the bytes stay on tape as dead space until the volume is repacked
        yield* Effect.ignore(cache.delete(cacheKey(entry.cacheId)))
      }))

    const list = ({ prefix, cursor, limit }: { prefix: string; cursor: string | undefined; limit: number }) =>
      Effect.sync(() => {
        const keys = [...objects.keys()].filter((k) => k.startsWith(prefix) && (cursor === undefined || k > cursor)).sort()
        const page = keys.slice(0, limit)
        const items = page.map((k): StorageDriver.ObjectInfo => {
          const e = objects.get(k)!
          return { key: k as RelativePath.RelativePath, size: e.size, checksum: e.checksum, modifiedAt: new Date(e.writtenAt) }
        })
        return { items, cursor: keys.length > limit ? page[page.length - 1] : undefined }
      })

    const recall = (keys: ReadonlyArray<RelativePath.RelativePath>) =>
      Effect.forEach(keys, (k) => Effect.map(entryOf("recall", k), (entry) => ({ key: k, entry }))).pipe(
        Effect.flatMap(recallEntries)
      )

    const minimal: StorageDriver.Minimal = {
      name,
      capabilities: { ...StorageDriver.noCapabilities, rangeRead: true, list: true, nearline: true },
      put,
      get,
      stat,
      delete: remove,
      list,
      recall
    }
    const service = StorageDriver.make(minimal, { retry: options.retry })
    const evict = (keys: ReadonlyArray<string>) =>
      Effect.forEach(keys, (k) =>
        Effect.flatMap(entryOf("evict", k), (entry) => cache.delete(cacheKey(entry.cacheId))), { discard: true })
    const tape: Service = { ...service, evict, catalog: Effect.sync(() => Object.fromEntries(objects)) }
    return tape
  })

/** A layer providing the generic StorageDriver port backed by a tape library. */
export const layer = (options: Options): Layer.Layer<StorageDriver.StorageDriver, StorageError.StorageError> =>
  Layer.scoped(StorageDriver.StorageDriver, make(options))
