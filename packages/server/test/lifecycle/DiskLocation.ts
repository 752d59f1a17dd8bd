/**
 * A small real-disk StorageDriver for the packaging tests and benchmark, until the disk driver of
 * @ccat/storage-drivers lands: real files, writes to a temporary name in the same directory then
 * an atomic link or rename, so the tests exercise real I/O and real atomicity, not a fake.
 */
import { StorageDriver, StorageError } from "@ccat/core"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"

const readSize = 1024 * 1024

const reasonOf = (cause: unknown): StorageError.StorageErrorReason => {
  const code = (cause as { code?: string } | undefined)?.code
  return code === "ENOENT"
    ? "NotFound"
    : code === "EEXIST"
    ? "AlreadyExists"
    : code === "EACCES" || code === "EPERM"
    ? "PermissionDenied"
    : "Unavailable"
}

/** The storage service of a folder on a local disk. `fsync` makes each put durable before it is visible. */
export const make = (root: string, options: { readonly fsync?: boolean } = {}): StorageDriver.Service => {
  const error = (method: string, key: string, cause: unknown) =>
    new StorageError.StorageError({ reason: reasonOf(cause), driver: "test-disk", method, key, cause })
  const io = <A>(method: string, key: string, f: () => Promise<A>) =>
    Effect.tryPromise({ try: f, catch: (cause) => error(method, key, cause) })

  const minimal: StorageDriver.Minimal = {
    name: "test-disk",
    capabilities: { ...StorageDriver.noCapabilities, rangeRead: true },
    put: (key, body, putOptions) => {
      const final = path.join(root, key)
      const temp = path.join(path.dirname(final), `.${path.basename(final)}.tmp-${randomBytes(6).toString("hex")}`)
      return Effect.gen(function* () {
        yield* io("put", key, () => fs.mkdir(path.dirname(final), { recursive: true }))
        const size = yield* Effect.acquireUseRelease(
          io("put", key, () => fs.open(temp, "wx")),
          (fh) =>
            Effect.gen(function* () {
              let size = 0
              yield* Stream.runForEachChunk(body, (chunk) => {
                const parts = Chunk.toReadonlyArray(chunk).filter((p) => p.length > 0)
                for (const p of parts) size += p.length
                return parts.length === 0 ? Effect.void : io("put", key, () => fh.writev(parts as Array<Uint8Array>))
              })
              if (options.fsync === true) yield* io("put", key, () => fh.sync())
              return size
            }),
          (fh) => Effect.promise(() => fh.close())
        )
        if (putOptions.overwrite) yield* io("put", key, () => fs.rename(temp, final))
        else {
          yield* io("put", key, () => fs.link(temp, final))
          yield* io("put", key, () => fs.unlink(temp))
        }
        return { key, size, checksum: putOptions.digest() }
      }).pipe(Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Effect.promise(() => fs.rm(temp, { force: true }))))
    },
    get: (key, range) =>
      Stream.unwrapScoped(Effect.gen(function* () {
        const fh = yield* Effect.acquireRelease(
          io("get", key, () => fs.open(path.join(root, key), "r")),
          (fh) => Effect.promise(() => fh.close())
        )
        const size = (yield* io("get", key, () => fh.stat())).size
        let position = range?.start ?? 0
        const end = Math.min(range?.end ?? size, size)
        return Stream.repeatEffectChunkOption(Effect.suspend(() => {
          if (position >= end) return Effect.fail(Option.none())
          const buffer = Buffer.allocUnsafe(Math.min(readSize, end - position))
          return io("get", key, () => fh.read(buffer, 0, buffer.length, position)).pipe(
            Effect.mapError(Option.some),
            Effect.flatMap(({ bytesRead }) => {
              if (bytesRead === 0) return Effect.fail(Option.none())
              position += bytesRead
              return Effect.succeed(Chunk.of(new Uint8Array(buffer.buffer, buffer.byteOffset, bytesRead)))
            })
          )
        }))
      })),
    stat: (key) =>
      io("stat", key, () => fs.stat(path.join(root, key))).pipe(Effect.map((s) => ({ key, size: s.size, modifiedAt: s.mtime }))),
    delete: (key) => io("delete", key, () => fs.rm(path.join(root, key), { force: true }))
  }
  return StorageDriver.make(minimal)
}
