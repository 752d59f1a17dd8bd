/**
 * The disk driver's sweep of temporary files a killed writer left: a depth-first walk of the
 * location that holds one folder handle per level, and the removal of each temporary file no
 * writer touched since the cutoff. A live write moves its file's modification time with every
 * write, so it never loses its file to a sweep.
 */
import { type StorageDriver, type StorageError, TemporaryNames } from "@ccat/core"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { errnoError } from "./streams.js"

/** Stale temporary files a sweep examines and removes at once: enough to hide each call's latency. */
const sweepConcurrency = 8

/** What the walk of a sweep finds: a temporary file, or a folder below the root it cannot read. */
type Found = { readonly file: string } | { readonly unreadable: string; readonly error: unknown }

/**
 * Every regular file under `dir` whose name is one of our writers' temporary names, depth first.
 * One directory handle per level is open at a time and entries are read in small batches, so a
 * location with millions of files is walked without its names in memory. Symlinks are not
 * followed (a sweep must never reach outside the root); a folder that vanishes meanwhile (a
 * delete tidying up) is skipped; a folder below the root that cannot be read is reported and
 * skipped, so one bad folder does not stop every sweep. The root itself must be readable.
 */
async function* temporaryFiles(dir: string, isRoot = true): AsyncGenerator<Found> {
  let handle: import("node:fs").Dir
  try {
    handle = await fs.opendir(dir, { bufferSize: 64 })
  } catch (e) {
    const code = (e as { code?: unknown } | null)?.code
    if (code === "ENOENT" || code === "ENOTDIR") return
    if (isRoot) throw e
    yield { unreadable: dir, error: e }
    return
  }
  for await (const entry of handle) {
    const file = path.join(dir, entry.name)
    // some filesystems do not tell an entry's type while listing: ask for it then
    const known = entry.isFile() || entry.isDirectory() || entry.isSymbolicLink()
    const st = known ? entry : await fs.lstat(file).catch(() => undefined)
    if (st === undefined) continue
    if (st.isDirectory()) yield* temporaryFiles(file, false)
    else if (st.isFile() && TemporaryNames.isTemporary(entry.name)) yield { file }
  }
}

/** The `sweepTemporary` primitive of the disk driver `name` on the folder `root` (a real path). */
export const sweeper = (
  name: string,
  root: string
): (options: { readonly before: Date }) => Effect.Effect<StorageDriver.Swept, StorageError.StorageError> => {
  const none: StorageDriver.Swept = { files: 0, bytes: 0, failed: 0 }
  /**
   * Removes one temporary file if it was last modified before the cutoff. Its size and age are
   * read just before the unlink: a live write moves the modification time with every write, so
   * only a file no writer touched since the cutoff goes.
   */
  const sweepOne = (file: string, cutoff: number) =>
    Effect.tryPromise(async (): Promise<StorageDriver.Swept> => {
      const st = await fs.lstat(file).catch((e) => (e?.code === "ENOENT" ? undefined : Promise.reject(e)))
      if (st === undefined || !st.isFile() || st.mtimeMs >= cutoff) return none
      // a file that vanished since (its write committed or failed) was not removed by the sweep
      const removed = await fs.unlink(file).then(() => true, (e) => (e?.code === "ENOENT" ? false : Promise.reject(e)))
      return removed ? { files: 1, bytes: st.size, failed: 0 } : none
    }).pipe(
      Effect.catchAll((error) =>
        Effect.as(
          Effect.logWarning(
            `${name}: cannot remove the stale temporary file ${path.relative(root, file)}; the next sweep tries again`,
            error.error
          ),
          { files: 0, bytes: 0, failed: 1 }
        )
      )
    )

  const sweepTemporary = ({ before }: { readonly before: Date }) =>
    // a fresh walk each time the effect runs (a retry walks again from the root)
    Stream.suspend(() => Stream.fromAsyncIterable(temporaryFiles(root), (cause) => errnoError(name, "sweepTemporary", undefined, cause)))
      .pipe(
        Stream.mapEffect((found) =>
          "file" in found
            ? sweepOne(found.file, before.getTime())
            : Effect.as(
              Effect.logWarning(
                `${name}: cannot read ${path.relative(root, found.unreadable)} to sweep it; the next sweep tries again`,
                found.error
              ),
              { files: 0, bytes: 0, failed: 1 }
            ), { concurrency: sweepConcurrency }),
        Stream.runFold({ files: 0, bytes: 0, failed: 0 } as StorageDriver.Swept, (sum, one) => ({
          files: sum.files + one.files,
          bytes: sum.bytes + one.bytes,
          failed: sum.failed + one.failed
        }))
      )
  return sweepTemporary
}
