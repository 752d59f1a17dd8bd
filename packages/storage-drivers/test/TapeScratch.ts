/**
 * A scratch folder for the tape tests' catalogs, caches and volumes. The driver replaces its
 * catalog whole and syncs it (file and folder) on every change, and takes file locks the same
 * way, so a thousand puts cost thousands of disk flushes on a real disk; on a memory-backed
 * file system (/dev/shm) the same calls run, in the same order, without waiting for the disk.
 * Falls back to the system's temporary folder where /dev/shm is missing or too small.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const shm = "/dev/shm"

/** A fresh folder under /dev/shm when it has `needBytes` free, else under the temporary folder. */
export const scratchDir = (prefix: string, needBytes: number): string => {
  const free = (() => {
    try {
      const s = fs.statfsSync(shm)
      return s.bavail * s.bsize
    } catch {
      return 0
    }
  })()
  return fs.mkdtempSync(path.join(free >= needBytes ? shm : os.tmpdir(), prefix))
}
