/**
 * The on-disk framing of the outbox: an append-only file of self-checking records, written
 * with fsync, so a crash at any instant leaves a file whose valid prefix can be read back and
 * whose torn tail (a record cut short by the crash) can be recognised and dropped.
 *
 * A record is `MAGIC (4) | length (u32 BE) | crc32(length bytes + payload) (u32 BE) | payload`.
 * The magic starts with 0xFF, a byte that never occurs in UTF-8, so a scan can resynchronise
 * after damage in the middle of the file without mistaking JSON text for a record start.
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"

const MAGIC = Buffer.from([0xff, 0x43, 0x4f, 0x42])
const HEADER = 12
/** A record larger than this is damage, not data. */
const MAX_RECORD = 64 * 1024 * 1024

const table = new Uint32Array(256).map((_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})

const crc32 = (...parts: ReadonlyArray<Uint8Array>): number => {
  let c = 0xffffffff
  for (const part of parts) for (const b of part) c = table[(c ^ b) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

/** Frames one payload as a record. */
export const frame = (payload: Uint8Array): Buffer => {
  const header = Buffer.alloc(HEADER)
  MAGIC.copy(header, 0)
  header.writeUInt32BE(payload.length, 4)
  header.writeUInt32BE(crc32(header.subarray(4, 8), payload), 8)
  return Buffer.concat([header, payload])
}

/** What a scan found: the good records, damaged ranges inside the file, and the torn tail. */
export interface Scan {
  readonly records: ReadonlyArray<Buffer>
  /** Byte ranges between good records that failed their checks (damage, not a crash). */
  readonly corrupt: ReadonlyArray<readonly [start: number, end: number]>
  /** Where the last good record ends; bytes after it are a torn tail. */
  readonly validEnd: number
}

const validAt = (buf: Buffer, pos: number): number | undefined => {
  if (pos + HEADER > buf.length || buf.compare(MAGIC, 0, 4, pos, pos + 4) !== 0) return undefined
  const length = buf.readUInt32BE(pos + 4)
  if (length > MAX_RECORD || pos + HEADER + length > buf.length) return undefined
  const payload = buf.subarray(pos + HEADER, pos + HEADER + length)
  return crc32(buf.subarray(pos + 4, pos + 8), payload) === buf.readUInt32BE(pos + 8) ? length : undefined
}

/** Reads every good record of a buffer, resynchronising on the magic after damage. */
export const scan = (buf: Buffer): Scan => {
  const records: Array<Buffer> = []
  const corrupt: Array<readonly [number, number]> = []
  let pos = 0
  let validEnd = 0
  let badStart: number | undefined
  while (pos < buf.length) {
    const length = validAt(buf, pos)
    if (length !== undefined) {
      if (badStart !== undefined) corrupt.push([badStart, pos])
      badStart = undefined
      records.push(buf.subarray(pos + HEADER, pos + HEADER + length))
      pos += HEADER + length
      validEnd = pos
      continue
    }
    badStart ??= pos
    const next = buf.indexOf(MAGIC, pos + 1)
    if (next === -1) break
    pos = next
  }
  return { records, corrupt, validEnd }
}

/** Makes a directory entry change (create, rename, unlink) durable. */
export const syncDirectory = async (dir: string): Promise<void> => {
  const handle = await fs.open(dir, "r")
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/**
 * Appends records and returns once they are on disk. The directory is synced too when the file
 * was just created: appending to an existing file changes no directory entry, and the file's
 * fsync covers its data and size.
 */
export const append = async (file: string, payloads: ReadonlyArray<Uint8Array>): Promise<void> => {
  let created = false
  let handle: fs.FileHandle
  try {
    handle = await fs.open(file, "ax") // O_EXCL tells us whether we made it
    created = true
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
    handle = await fs.open(file, "a")
  }
  try {
    await handle.write(Buffer.concat(payloads.map(frame)))
    await handle.sync()
  } finally {
    await handle.close()
  }
  if (created) await syncDirectory(path.dirname(file))
}

/**
 * Replaces a file's whole content atomically: a temporary file is written and synced, renamed
 * over the target, and the directory synced, so a crash leaves either the old or the new file.
 */
export const replace = async (file: string, payloads: ReadonlyArray<Uint8Array>): Promise<void> => {
  const tmp = `${file}.tmp`
  const handle = await fs.open(tmp, "w")
  try {
    await handle.write(Buffer.concat(payloads.map(frame)))
    await handle.sync()
  } finally {
    await handle.close()
  }
  await fs.rename(tmp, file)
  await syncDirectory(path.dirname(file))
}

/** Reads a record file; a missing file has no records. */
export const read = async (file: string): Promise<{ readonly scan: Scan; readonly size: number }> => {
  try {
    const buf = await fs.readFile(file)
    return { scan: scan(buf), size: buf.length }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { scan: { records: [], corrupt: [], validEnd: 0 }, size: 0 }
    throw e
  }
}

/** Cuts a torn tail off, durably, so the next append starts on a record boundary. */
export const truncate = async (file: string, length: number): Promise<void> => {
  const handle = await fs.open(file, "r+")
  try {
    await handle.truncate(length)
    await handle.sync()
  } finally {
    await handle.close()
  }
}
