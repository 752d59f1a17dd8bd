/**
 * The tape catalog as several processes share it: one JSON file (`catalog.json`) that is only
 * ever replaced whole (temporary file, fsync, rename, fsync of the folder), so a reader sees one
 * committed version or the next and a writer killed at any instant leaves the last committed one.
 * Every change is a read-modify-write under a cross-process lock (`locks/catalog.lock`) that
 * reads the file again, so no process writes over another's entries from a stale copy.
 *
 * A journal of appended records would make a commit cheaper than rewriting the whole file, but
 * it needs its own compaction, and a catalog change already waits for a tape append; a whole-file
 * replace keeps the format one readable document.
 */
import { StorageError } from "@ccat/core"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import type { CatalogEntry } from "../Tape.js"
import * as FileLock from "./FileLock.js"
import { errnoError } from "./streams.js"

/** What the tape has written on a volume: complete tape files and their bytes. */
export interface VolumeUsage {
  readonly files: number
  readonly usedBytes: number
}

/** The catalog document. */
export interface CatalogFile {
  readonly objects: Record<string, CatalogEntry>
  readonly volumes: Record<string, VolumeUsage>
}

/** The shared catalog of one tape root, and the cross-process locks of that root. */
export interface TapeCatalog {
  /** The catalog as last committed by any process (re-read whenever the file changed). */
  readonly read: Effect.Effect<CatalogFile, StorageError.StorageError>
  /** Re-reads the catalog under the lock, lets `change` edit it, and commits it. */
  readonly update: <A>(method: string, change: (catalog: CatalogFile) => A) => Effect.Effect<A, StorageError.StorageError>
  /** Holds the named lock of this root, against other processes and other fibers alike. */
  readonly withLock: (lock: string) => <A, E, R>(use: Effect.Effect<A, E, R>) => Effect.Effect<A, E | StorageError.StorageError, R>
  /** Takes the named lock for the scope if no other process holds it; false otherwise. */
  readonly tryLock: (lock: string) => Effect.Effect<boolean, StorageError.StorageError, Scope.Scope>
}

const empty = (): CatalogFile => ({ objects: {}, volumes: {} })

/** Opens the catalog of a tape root; nothing is written until the first change. */
export const make = (root: string, driver: string): Effect.Effect<TapeCatalog, StorageError.StorageError> =>
  Effect.gen(function* () {
    const file = path.join(root, "catalog.json")
    const lockDir = path.join(root, "locks")
    const io = <A>(method: string, f: () => Promise<A>) =>
      Effect.tryPromise({ try: f, catch: (cause) => errnoError(driver, method, undefined, cause) })
    yield* io("open", () => fs.mkdir(lockDir, { recursive: true }))

    const parse = (method: string, text: string) =>
      Effect.try({
        try: () => JSON.parse(text) as CatalogFile,
        catch: (cause) =>
          new StorageError.StorageError({ reason: "Corrupt", driver, method, description: `${file} is not a catalog`, cause })
      })

    // a parsed copy, valid while the file is the same one: a commit always makes a new inode
    let cached: { readonly identity: string; readonly catalog: CatalogFile } | undefined
    const readFile = (method: string, reuse: boolean) =>
      Effect.gen(function* () {
        const got = yield* io(method, async () => {
          const handle = await fs.open(file, "r").catch((e) => e?.code === "ENOENT" ? undefined : Promise.reject(e))
          if (handle === undefined) return undefined
          try {
            const st = await handle.stat({ bigint: true })
            const identity = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`
            if (reuse && cached?.identity === identity) return { identity, text: undefined }
            return { identity, text: await handle.readFile("utf8") }
          } finally {
            await handle.close()
          }
        })
        if (got === undefined) return empty()
        if (got.text === undefined) return cached!.catalog
        const catalog = yield* parse(method, got.text)
        if (reuse) cached = { identity: got.identity, catalog }
        return catalog
      })

    const write = (method: string, catalog: CatalogFile) =>
      io(method, async () => {
        // only the lock holder writes temporary catalogs, so any found now are a killed writer's
        for (const name of await fs.readdir(root)) {
          if (name.startsWith("catalog.json.") && name.endsWith(".tmp")) await fs.unlink(path.join(root, name)).catch(() => undefined)
        }
        const tmp = `${file}.${randomBytes(6).toString("hex")}.tmp`
        const handle = await fs.open(tmp, "wx")
        try {
          await handle.writeFile(JSON.stringify(catalog))
          await handle.sync()
        } finally {
          await handle.close()
        }
        await fs.rename(tmp, file)
        const dir = await fs.open(root, "r")
        try {
          await dir.sync()
        } finally {
          await dir.close()
        }
      })

    const semaphores = new Map<string, Effect.Semaphore>()
    const semaphore = (lock: string) => {
      let s = semaphores.get(lock)
      if (s === undefined) semaphores.set(lock, s = Effect.unsafeMakeSemaphore(1))
      return s
    }
    const lockFile = (lock: string) => path.join(lockDir, `${lock}.lock`)
    const lockError = (lock: string) => (cause: Error) => errnoError(driver, `lock ${lock}`, undefined, cause)
    const withLock = (lock: string) => <A, E, R>(use: Effect.Effect<A, E, R>) =>
      semaphore(lock).withPermits(1)(Effect.scoped(Effect.zipRight(
        Effect.mapError(FileLock.acquire(lockFile(lock)), lockError(lock)),
        use
      )))
    // a fiber of this process holding the file is as busy as another process holding it
    const tryLock = (lock: string) =>
      Effect.map(Effect.mapError(FileLock.attempt(lockFile(lock)), lockError(lock)), (held) => held !== undefined)

    const catalog: TapeCatalog = {
      read: readFile("catalog", true),
      update: (method, change) =>
        withLock("catalog")(Effect.gen(function* () {
          const current = yield* readFile(method, false)
          const result = change(current)
          yield* write(method, current)
          return result
        })),
      withLock,
      tryLock
    }
    return catalog
  })
