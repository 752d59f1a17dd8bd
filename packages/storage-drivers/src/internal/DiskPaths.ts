/**
 * Where a disk location's keys live: a key's absolute path, with its folders made when a write
 * needs them. No key reaches outside the root: a symlink may point anywhere inside it, never
 * outside, and a dangling one is refused like an escaping one, since where it leads cannot be
 * checked. Temporary names are reserved for writers and refused as keys.
 */
import { type RelativePath, type StorageError, TemporaryNames } from "@ccat/core"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { errnoError } from "./streams.js"

/** How the driver's calls fail, shared with the driver so both name the same driver. */
export interface Failures {
  /** A failure of the driver's own making. */
  readonly fail: (method: string, reason: StorageError.StorageErrorReason, description: string, key?: string) => StorageError.StorageError
  /** A filesystem call, its errno turned into a storage reason. */
  readonly io: <A>(method: string, key: string | undefined, f: () => Promise<A>) => Effect.Effect<A, StorageError.StorageError>
}

/** The paths of the location at `root` (already real, as `fs.realpath` returns it). */
export const makePaths = (name: string, root: string, { fail, io }: Failures) => {
  const inside = (p: string) => p === root || p.startsWith(root + path.sep)

  const reservedName = "reserved name: writers use it for files still being written, which sweeps remove"

  const notAFolder = (method: string, key: string, create: boolean, parts: ReadonlyArray<string>) =>
    fail(method, create ? "AlreadyExists" : "NotFound", `${parts.slice(0, -1).join("/")} is not a folder`, key)

  /**
   * Walks the key's folders one `lstat` at a time, making missing ones: the slow path of
   * `resolve`, taken only when a folder of the key does not exist yet.
   */
  const walk = (method: string, key: RelativePath.RelativePath, parts: ReadonlyArray<string>, create: boolean) =>
    Effect.gen(function* () {
      let dir = root
      for (const part of parts.slice(0, -1)) {
        const next = path.join(dir, part)
        const st = yield* Effect.promise(() => fs.lstat(next).catch(() => undefined))
        if (st === undefined) {
          if (!create) return yield* fail(method, "NotFound", "no such object", key)
          yield* io(method, key, () => fs.mkdir(next).catch((e) => e?.code === "EEXIST" ? undefined : Promise.reject(e)))
          dir = next
          continue
        }
        if (st.isSymbolicLink()) {
          const real = yield* io(method, key, () => fs.realpath(next))
          if (!inside(real)) return yield* fail(method, "PermissionDenied", "a symlink leads outside the location", key)
          dir = real
          continue
        }
        if (!st.isDirectory()) return yield* notAFolder(method, key, create, parts)
        dir = next
      }
      return dir
    })

  /**
   * The absolute path of a key. Its folder is resolved with one `realpath` (a symlink may point
   * anywhere inside the root, never outside) and the object itself with one `lstat`, so a read
   * of a deep key costs two calls rather than one per folder; `create` makes missing folders.
   */
  const resolve = (method: string, key: RelativePath.RelativePath, create: boolean) =>
    Effect.gen(function* () {
      const parts = key.split("/")
      const base = parts[parts.length - 1]!
      if (TemporaryNames.isTemporary(base)) return yield* fail(method, "PermissionDenied", reservedName, key)
      let dir = root
      if (parts.length > 1) {
        const real = yield* Effect.promise(() => fs.realpath(path.join(root, ...parts.slice(0, -1))).catch((e: unknown) => ({ error: e })))
        if (typeof real !== "string") {
          const code = (real.error as { code?: unknown } | null)?.code
          if (code !== "ENOENT" && code !== "ENOTDIR") return yield* errnoError(name, method, key, real.error)
          dir = yield* walk(method, key, parts, create)
        } else if (!inside(real)) {
          return yield* fail(method, "PermissionDenied", "a symlink leads outside the location", key)
        } else {
          dir = real
        }
      }
      const file = path.join(dir, base)
      const st = yield* Effect.promise(() => fs.lstat(file).then((s) => s, (e: { code?: string }) => e?.code ?? "EIO"))
      // the folder is a file: realpath succeeded on it, the lstat below it says so
      if (st === "ENOTDIR") return yield* notAFolder(method, key, create, parts)
      if (typeof st !== "string" && st.isSymbolicLink()) {
        const real = yield* Effect.promise(() => fs.realpath(file).catch(() => undefined))
        if (real === undefined || !inside(real)) {
          return yield* fail(method, "PermissionDenied", "a symlink leads outside the location", key)
        }
      }
      return { dir, file, base, exists: typeof st !== "string" }
    })

  // tryPromise, not promise: a folder a concurrent delete just tidied away must not be a defect
  /**
   * The real path of an existing object, for reading it: one `realpath` of the whole key (a
   * symlink anywhere on the way may point inside the root, never outside). With many small
   * objects read in a row, each call per object shows in the profile.
   */
  const existing = (method: string, key: RelativePath.RelativePath) =>
    Effect.gen(function* () {
      const base = key.slice(key.lastIndexOf("/") + 1)
      if (TemporaryNames.isTemporary(base)) return yield* fail(method, "PermissionDenied", reservedName, key)
      const real = yield* Effect.promise(() => fs.realpath(path.join(root, key)).catch((e: unknown) => ({ error: e })))
      if (typeof real !== "string") {
        const code = (real.error as { code?: unknown } | null)?.code
        // a dangling symlink is refused like an escaping one: where it leads cannot be checked
        if (code === "ENOENT" || code === "ENOTDIR") {
          const link = yield* Effect.promise(() => fs.lstat(path.join(root, key)).then((st) => st.isSymbolicLink(), () => false))
          if (link) return yield* fail(method, "PermissionDenied", "a symlink leads outside the location", key)
          return yield* fail(method, "NotFound", "no such object", key)
        }
        return yield* errnoError(name, method, key, real.error)
      }
      if (!inside(real)) return yield* fail(method, "PermissionDenied", "a symlink leads outside the location", key)
      return real
    })

  return { inside, resolve, existing }
}
