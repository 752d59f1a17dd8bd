/**
 * The write system calls of the disk writer, as promises over Node's callback `fs`: plain code,
 * no Effect, since they run once per batch or slot on the write path.
 */
import * as fs from "node:fs"

/** Why a write stopped short when writing the rest gave no error either (the device refused). */
const shortWrite = (written: number, total: number) =>
  Object.assign(new Error(`short write: ${written} of ${total} bytes`), { code: "EIO" })

/** One `write` at `position`: how many bytes it took. */
const writeOnce = (fd: number, bytes: Uint8Array, position: number): Promise<number> =>
  new Promise((resolve, reject) =>
    fs.write(fd, bytes, 0, bytes.length, position, (error, written) => (error !== null ? reject(error) : resolve(written)))
  )

/**
 * Writes all of `bytes` at `position`. libuv loops over partial writes itself but drops the
 * error of the write that stopped it, so after a short count the rest is written once more:
 * that write fails with the real reason (ENOSPC, EDQUOT, EIO), which then reaches the operator.
 */
export const writeAll = async (fd: number, bytes: Uint8Array, position: number): Promise<void> => {
  const written = await writeOnce(fd, bytes, position)
  if (written === bytes.length) return
  const rest = await writeOnce(fd, bytes.subarray(written), position + written)
  if (written + rest !== bytes.length) throw shortWrite(written + rest, bytes.length)
}

/** Writes `parts` (`total` bytes) at `position`, the rest after a short count through `writeAll`. */
export const writevAll = (fd: number, parts: ReadonlyArray<Uint8Array>, position: number, total: number): Promise<void> =>
  new Promise<number>((resolve, reject) => {
    fs.writev(fd, parts as Array<Uint8Array>, position, (error, written) => (error !== null ? reject(error) : resolve(written)))
  }).then(async (written) => {
    if (written === total) return
    // the rest, as one buffer, through `writeAll`: its failure carries the real reason
    const rest = Buffer.concat(parts as Array<Uint8Array>).subarray(written)
    await writeAll(fd, rest, position + written)
  })

/** Flushes the file's data to the device. */
export const fdatasync = (fd: number): Promise<void> =>
  new Promise((resolve, reject) => fs.fdatasync(fd, (error) => (error !== null ? reject(error) : resolve())))

/**
 * A second, direct-I/O descriptor on the file `fd` is open on, through `/proc/self/fd`: the very
 * same file whatever happened to its name meanwhile (renamed, swept, replaced), so direct writes
 * can never land in another file. Without `/proc` the open fails and the page cache is used.
 */
export const openDirect = (fd: number): Promise<number> =>
  new Promise((resolve, reject) =>
    fs.open(
      `/proc/self/fd/${fd}`,
      fs.constants.O_WRONLY | fs.constants.O_DIRECT,
      (error, direct) => (error !== null ? reject(error) : resolve(direct))
    )
  )

/** Whether a write failed because the device wants another alignment. */
export const isEinval = (e: unknown) => (e as { code?: unknown } | null)?.code === "EINVAL"
