/**
 * The disk driver: a DataLocation on a local or mounted filesystem (SOURCE and BUFFER disks,
 * PROCESSING scratch). A write goes to a hidden temporary file beside its final name, is
 * fsynced, and becomes visible by `rename` (overwrite) or `link` (create only, which fails
 * atomically when the name exists), then the directory is fsynced. No key can reach outside
 * the root: keys are checked relative paths, and a symlink that resolves outside is refused
 * (`internal/DiskPaths.ts`).
 * Temporary files a killed writer left are removed by `sweepTemporary` once they are old
 * (`internal/DiskSweep.ts`).
 */
import { type RelativePath, StorageDriver, StorageError, TemporaryNames } from "@ccat/core"
import * as HashRing from "@ccat/core/node/HashRing"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import { constants as fsConstants } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { makePaths } from "./internal/DiskPaths.js"
import * as DiskSweep from "./internal/DiskSweep.js"
import * as FileIo from "./internal/FileIo.js"
import { errnoError } from "./internal/streams.js"

/** Where the location lives and how carefully it writes. */
export interface Options {
  /** The location's root folder; created if missing. */
  readonly root: string
  /** Driver name in errors and spans. Default "disk". */
  readonly name?: string | undefined
  /** fsync files and directories before a write counts as done. Default true (turn off only for scratch). */
  readonly fsync?: boolean | undefined
  /** Retry policy of the lifted service. */
  readonly retry?: StorageDriver.RetryPolicy | undefined
  /**
   * Write the bulk of large objects with direct I/O (`O_DIRECT`), past the page cache. Default
   * true; a filesystem that refuses direct I/O is written through the page cache as before.
   * See `internal/BodyWriter.ts` for why and the measurements.
   */
  readonly directIo?: boolean | undefined
}

/** Temporary files carry this prefix; listing hides them and keys may not use it. */
export const temporaryPrefix = TemporaryNames.diskPrefix

/** The disk primitives, for integrators who wrap or extend them before lifting. */
export const makeMinimal: (options: Options) => Effect.Effect<StorageDriver.Minimal, StorageError.StorageError> = Effect.fn(
  "Disk.makeMinimal"
)(function* (options: Options) {
  const name = options.name ?? "disk"
  const sync = options.fsync ?? true
  const direct = options.directIo ?? true
  const fail = (method: string, reason: StorageError.StorageErrorReason, description: string, key?: string) =>
    new StorageError.StorageError({ reason, driver: name, method, key, description })
  const io = <A>(method: string, key: string | undefined, f: () => Promise<A>) =>
    Effect.tryPromise({ try: f, catch: (cause) => errnoError(name, method, key, cause) })

  yield* io("open", undefined, () => fs.mkdir(options.root, { recursive: true }))
  const root = yield* io("open", undefined, () => fs.realpath(options.root))
  const { existing, inside, resolve } = makePaths(name, root, { fail, io })

  const syncDir = (dir: string) =>
    sync
      ? Effect.tryPromise(async () => {
        const h = await fs.open(dir, "r")
        try {
          await h.sync()
        } finally {
          await h.close()
        }
      }).pipe(Effect.ignore)
      : Effect.void

  /**
   * Makes a written temporary file visible under its final name, atomically. A temporary file
   * that is gone by now was swept (its write stalled past the sweep's age) or removed by someone
   * else: nothing is made visible, and the write fails as transient, so its caller writes again.
   */
  const commit = (method: string, key: string, tmp: string, file: string, dir: string, overwrite: boolean) =>
    Effect.gen(function* () {
      const vanished = (cause: unknown) =>
        (cause as { code?: unknown } | null)?.code === "ENOENT"
          ? fail(method, "Unavailable", "the temporary file was removed while the write ran (swept as stale); nothing was stored", key)
          : errnoError(name, method, key, cause)
      const step = (f: () => Promise<void>) => Effect.tryPromise({ try: f, catch: vanished })
      if (overwrite) {
        yield* step(() => fs.rename(tmp, file))
      } else {
        yield* step(() => fs.link(tmp, file))
        yield* Effect.promise(() => fs.unlink(tmp).catch(() => undefined))
      }
      yield* syncDir(dir)
    })

  const tempName = (dir: string, base: string) => path.join(dir, TemporaryNames.disk(base, randomBytes(6).toString("hex")))

  const infoOf = (key: RelativePath.RelativePath, st: { size: number; mtime: Date }): StorageDriver.ObjectInfo => ({
    key,
    size: st.size,
    modifiedAt: st.mtime
  })

  const put = <E>(key: RelativePath.RelativePath, body: Stream.Stream<Uint8Array, E>, opts: StorageDriver.MinimalPutOptions) =>
    Effect.gen(function* () {
      let committed = false
      let tmp: string | undefined
      const onError = (cause: unknown) => errnoError(name, "put", key, cause)
      // a delete of another object (in this process or another) tidies away folders it leaves
      // empty, possibly between our making a folder and creating the file in it: then again
      const opened = Effect.gen(function* () {
        const where = yield* resolve("put", key, true)
        if (!opts.overwrite && where.exists) return yield* fail("put", "AlreadyExists", "an object exists under this key", key)
        const temp = tempName(where.dir, where.base)
        const fd = yield* io("put", key, () => FileIo.openFd(temp, "wx", 0o644))
        tmp = temp
        return { ...where, tmp: temp, fd }
      }).pipe(Effect.retry({ times: 5, while: (e) => e.reason === "NotFound" }))
      const write = Effect.acquireUseRelease(
        opened,
        (at) =>
          FileIo.writeBody(at.fd, body, { durable: sync, onError, direct }).pipe(
            // one fsync for the whole object, after the last write
            Effect.zipRight(sync ? io("put", key, () => FileIo.fsync(at.fd)) : Effect.void),
            Effect.zipRight(io("put", key, () => FileIo.fstat(at.fd))),
            Effect.map((st) => ({ at, st }))
          ),
        (at) => FileIo.closeFd(at.fd)
      )
      return yield* write.pipe(
        Effect.tap(({ at }) =>
          commit("put", key, at.tmp, at.file, at.dir, opts.overwrite).pipe(Effect.tap(() => {
            committed = true
          }))
        ),
        Effect.map(({ st }) => infoOf(key, st)),
        Effect.ensuring(
          Effect.suspend(() => committed || tmp === undefined ? Effect.void : Effect.promise(() => fs.unlink(tmp!).catch(() => undefined)))
        )
      )
    })

  /**
   * The object's file open for reading, in the scope (closed when it ends: every read issued has
   * ended by then), and the byte range to read, clipped to its size.
   */
  const openRange = (method: string, key: RelativePath.RelativePath, range: StorageDriver.ByteRange | undefined) =>
    Effect.gen(function* () {
      const file = yield* existing(method, key)
      const fd = yield* Effect.acquireRelease(io(method, key, () => FileIo.openFd(file, "r")), FileIo.closeFd)
      const st = yield* io(method, key, () => FileIo.fstat(fd))
      if (!st.isFile()) return yield* fail(method, "NotFound", "not a file", key)
      return { fd, start: range?.start ?? 0, end: Math.min(range?.end ?? st.size, st.size) }
    })

  const get = (key: RelativePath.RelativePath, range: StorageDriver.ByteRange | undefined) =>
    Stream.unwrapScoped(
      Effect.map(
        openRange("get", key, range),
        ({ end, fd, start }) =>
          start >= end ? Stream.empty : FileIo.readRange(fd, start, end, (cause) => errnoError(name, "get", key, cause))
      )
    )

  const readEach = <E>(
    key: RelativePath.RelativePath,
    range: StorageDriver.ByteRange | undefined,
    consume: (part: Uint8Array) => Effect.Effect<void, E>
  ) =>
    Effect.scoped(
      Effect.flatMap(
        openRange("readEach", key, range),
        ({ end, fd, start }) => FileIo.readEach(fd, start, end, consume, (cause) => errnoError(name, "readEach", key, cause))
      )
    )

  const readAtMost = (key: RelativePath.RelativePath, limit: number) =>
    Effect.flatMap(
      existing("readAtMost", key),
      (file) =>
        Effect.flatMap(
          io("readAtMost", key, () => FileIo.readAtMost(file, limit)),
          (bytes) => bytes === "notAFile" ? fail("readAtMost", "NotFound", "not a file", key) : Effect.succeed(bytes)
        )
    )

  const stat = (key: RelativePath.RelativePath) =>
    Effect.gen(function* () {
      const file = yield* existing("stat", key)
      const st = yield* io("stat", key, () => fs.stat(file, { bigint: true }))
      if (!st.isFile()) return yield* fail("stat", "NotFound", "not a file", key)
      // The change time moves on every write, rename or chmod and cannot be set back by a
      // program, so with the inode it tells a file written again in place from the one recorded.
      return {
        key,
        size: Number(st.size),
        modifiedAt: st.mtime,
        identity: `disk:${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
      } satisfies StorageDriver.ObjectInfo
    })

  const remove = (key: RelativePath.RelativePath) =>
    Effect.gen(function* () {
      const found = yield* resolve("delete", key, false).pipe(
        Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed(undefined))
      )
      if (found === undefined) return
      yield* io(
        "delete",
        key,
        () => fs.unlink(found.file).catch((e) => (e?.code === "ENOENT" || e?.code === "EISDIR") ? undefined : Promise.reject(e))
      )
      yield* syncDir(found.dir)
      // tidy up folders the object leaves empty (best effort, never above the root)
      let dir = found.dir
      while (dir !== root && inside(dir)) {
        const ok = yield* Effect.promise(() => fs.rmdir(dir).then(() => true, () => false))
        if (!ok) break
        dir = path.dirname(dir)
      }
    })

  const list = ({ prefix, cursor, limit }: { prefix: string; cursor: string | undefined; limit: number }) =>
    Effect.gen(function* () {
      const items: Array<StorageDriver.ObjectInfo> = []
      let more = false
      const relevant = (dirKey: string) => {
        const p = dirKey + "/"
        if (!(p.startsWith(prefix) || prefix.startsWith(p))) return false
        return cursor === undefined || !(p < cursor && !cursor.startsWith(p))
      }
      const walk = (dirAbs: string, dirKey: string): Effect.Effect<void, StorageError.StorageError> =>
        Effect.gen(function* () {
          const entries = yield* Effect.promise(() =>
            fs.readdir(dirAbs, { withFileTypes: true }).catch(() => [] as Array<import("node:fs").Dirent>)
          )
          const sorted = entries
            .filter((e) => (e.isFile() || e.isDirectory()) && !TemporaryNames.isTemporary(e.name))
            .map((e) => ({ e, sortKey: e.name + (e.isDirectory() ? "/" : "") }))
            .sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0))
          for (const { e } of sorted) {
            if (more) return
            const k = dirKey === "" ? e.name : `${dirKey}/${e.name}`
            if (e.isDirectory()) {
              if (relevant(k)) yield* walk(path.join(dirAbs, e.name), k)
              continue
            }
            if (!k.startsWith(prefix) || (cursor !== undefined && k <= cursor)) continue
            if (items.length === limit) {
              more = true
              return
            }
            const st = yield* Effect.promise(() => fs.stat(path.join(dirAbs, e.name)).catch(() => undefined))
            if (st !== undefined) items.push(infoOf(k as RelativePath.RelativePath, st))
          }
        })
      yield* walk(root, "")
      return { items, cursor: more ? items[items.length - 1]!.key : undefined }
    })

  const copy = (from: RelativePath.RelativePath, to: RelativePath.RelativePath, opts: { readonly overwrite: boolean }) =>
    Effect.gen(function* () {
      const src = yield* resolve("copy", from, false)
      const dst = yield* resolve("copy", to, true)
      if (!opts.overwrite && dst.exists) return yield* fail("copy", "AlreadyExists", "an object exists under this key", to)
      const tmp = tempName(dst.dir, dst.base)
      let committed = false
      return yield* io("copy", from, () => fs.copyFile(src.file, tmp, fsConstants.COPYFILE_FICLONE | fsConstants.COPYFILE_EXCL)).pipe(
        Effect.zipRight(
          sync ?
            io("copy", to, async () => {
              const h = await fs.open(tmp, "r+")
              try {
                await h.sync()
              } finally {
                await h.close()
              }
            }) :
            Effect.void
        ),
        Effect.zipRight(io("copy", to, () => fs.stat(tmp))),
        Effect.tap(() => commit("copy", to, tmp, dst.file, dst.dir, opts.overwrite).pipe(Effect.tap(() => {
          committed = true
        }))),
        Effect.map((st) => infoOf(to, st)),
        Effect.ensuring(Effect.suspend(() => committed ? Effect.void : Effect.promise(() => fs.unlink(tmp).catch(() => undefined))))
      )
    })

  const space = () =>
    io("space", undefined, () => fs.statfs(root)).pipe(Effect.map((s) => ({
      freeBytes: s.bavail * s.bsize,
      totalBytes: s.blocks * s.bsize
    })))

  const sweepTemporary = DiskSweep.sweeper(name, root)

  // the same rules as `existing`, followed by a packager's reading thread (core's FolderArchive)
  const localFolder: StorageDriver.LocalFolder = {
    root,
    failure: (method, key, problem) =>
      problem.reason !== undefined
        ? fail(method, problem.reason, problem.description, key)
        : errnoError(name, method, key, Object.assign(new Error(problem.description), { code: problem.code }))
  }

  const minimal: StorageDriver.Minimal = {
    name,
    capabilities: { ...StorageDriver.noCapabilities, rangeRead: true, list: true, nativeCopy: true, sweepTemporary: true },
    put,
    get,
    stat,
    readEach,
    readAtMost,
    delete: remove,
    list,
    copy,
    space,
    sweepTemporary
  }
  return StorageDriver.declareLocalFolder(minimal, localFolder)
})

/**
 * The full disk storage service on a folder. A put's checksum is computed on core's shared
 * hashing ring (`HashRing.hasher`), so hashing overlaps the writes instead of taking turns with
 * them on this thread.
 */
export const make = (options: Options): Effect.Effect<StorageDriver.Service, StorageError.StorageError> =>
  Effect.map(makeMinimal(options), (minimal) => StorageDriver.make(minimal, { retry: options.retry, hasher: HashRing.hasher }))

/** A layer providing the generic StorageDriver port backed by a folder. */
export const layer = (options: Options): Layer.Layer<StorageDriver.StorageDriver, StorageError.StorageError> =>
  Layer.effect(StorageDriver.StorageDriver, make(options))
