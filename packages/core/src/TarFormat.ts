/**
 * The bytes of POSIX tar (ustar headers, pax extended headers for what ustar cannot hold). We
 * write the headers ourselves rather than through a Node-stream tar library: the packager is a
 * pull-based Effect Stream end to end, so backpressure reaches the source disk, and a header is
 * only 512 bytes of arithmetic. GNU tar reads what this writes, and the reader reads what GNU
 * tar writes (the tests run the real binary).
 */

/** Every tar header and every member's data is a multiple of this. */
export const blockSize = 512

/** The largest size the ustar header's 11 octal digits can hold (8 GiB - 1). */
const maxOctalSize = 0o77777777777

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: false })

/** Zero bytes that pad a member of `size` bytes to the next block boundary. */
export const padding = (size: number): Uint8Array => {
  const rest = size % blockSize
  return rest === 0 ? new Uint8Array(0) : new Uint8Array(blockSize - rest)
}

/** The two zero blocks that end an archive. */
export const trailer = (): Uint8Array => new Uint8Array(blockSize * 2)

/** What a member is: a regular file or a directory (the only kinds we write or extract). */
export type EntryType = "file" | "directory"

/** One member header as written. */
export interface Header {
  readonly name: string
  readonly type: EntryType
  readonly size: number
  readonly mode: number
  /** Seconds since the epoch. */
  readonly mtime: number
}

/**
 * Writes an ASCII string's characters, at most `length` of them. Every header field we write is
 * ASCII (a name that is not goes into a pax record), and a loop over character codes costs far
 * less than encoding: with thousands of small members, headers showed in profiles.
 */
const writeString = (block: Uint8Array, offset: number, length: number, value: string) => {
  const n = Math.min(length, value.length)
  for (let i = 0; i < n; i++) block[offset + i] = value.charCodeAt(i)
}

const writeOctal = (block: Uint8Array, offset: number, length: number, value: number) => {
  // length - 1 zero-padded octal digits, then NUL, as GNU tar writes them.
  writeString(block, offset, length - 1, Math.floor(value).toString(8).padStart(length - 1, "0"))
}

const isAscii = (s: string) => /^[\x20-\x7e]*$/.test(s)

const ustarHeader = (name: string, type: "file" | "directory" | "pax", size: number, mode: number, mtime: number) => {
  const block = new Uint8Array(blockSize)
  writeString(block, 0, 100, name)
  writeOctal(block, 100, 8, mode)
  writeOctal(block, 108, 8, 0)
  writeOctal(block, 116, 8, 0)
  writeOctal(block, 124, 12, size)
  writeOctal(block, 136, 12, mtime)
  block[156] = (type === "file" ? "0" : type === "directory" ? "5" : "x").charCodeAt(0)
  writeString(block, 257, 6, "ustar\0")
  writeString(block, 263, 2, "00")
  writeString(block, 265, 32, "root")
  writeString(block, 297, 32, "root")
  // The checksum is computed with its own field read as eight spaces.
  block.fill(0x20, 148, 156)
  let sum = 0
  for (let i = 0; i < blockSize; i++) sum += block[i]
  writeString(block, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ")
  return block
}

/** One pax record: `LEN key=value\n`, where LEN counts the whole record including itself. */
const paxRecord = (key: string, value: string): string => {
  const body = ` ${key}=${value}\n`
  const bodyLength = encoder.encode(body).length
  let length = bodyLength + 1
  while (String(length).length + bodyLength !== length) length++
  return `${length}${body}`
}

/**
 * The header bytes of one member: a pax extended header first when the name is longer than
 * ustar's 100-byte field or not plain ASCII, or the size exceeds 8 GiB - 1; then the ustar
 * header, whose fields are truncated placeholders that the pax records override.
 */
export const encodeHeader = (header: Header): Uint8Array => {
  const name = header.type === "directory" && !header.name.endsWith("/") ? `${header.name}/` : header.name
  const records: Array<string> = []
  const ascii = isAscii(name)
  if (!ascii || name.length > 100) records.push(paxRecord("path", name))
  if (header.size > maxOctalSize) records.push(paxRecord("size", String(header.size)))
  const placeholder = ascii ? name.slice(0, 100) : "ccat-pax-placeholder"
  const main = ustarHeader(placeholder, header.type, header.size > maxOctalSize ? 0 : header.size, header.mode, header.mtime)
  if (records.length === 0) return main
  const pax = encoder.encode(records.join(""))
  const out = new Uint8Array(blockSize + pax.length + padding(pax.length).length + blockSize)
  out.set(ustarHeader(`PaxHeaders/${placeholder}`.slice(0, 100), "pax", pax.length, 0o644, header.mtime), 0)
  out.set(pax, blockSize)
  out.set(main, out.length - blockSize)
  return out
}

/** Why a block is not a valid header, or undefined. */
const checksumProblem = (block: Uint8Array): string | undefined => {
  const stored = parseOctal(block, 148, 8)
  let sum = 0
  for (let i = 0; i < blockSize; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]
  return stored === sum ? undefined : `header checksum ${stored} does not match ${sum}`
}

const readString = (block: Uint8Array, offset: number, length: number): string => {
  let end = offset
  while (end < offset + length && block[end] !== 0) end++
  return decoder.decode(block.subarray(offset, end))
}

const parseOctal = (block: Uint8Array, offset: number, length: number): number => {
  if ((block[offset] & 0x80) !== 0) {
    // GNU base-256 for values octal cannot hold.
    let value = block[offset] & 0x7f
    for (let i = offset + 1; i < offset + length; i++) value = value * 256 + block[i]
    return value
  }
  const text = readString(block, offset, length).trim()
  return text === "" ? 0 : parseInt(text, 8)
}

/** True when a block is all zeros (the end-of-archive marker). */
export const isZeroBlock = (block: Uint8Array): boolean => {
  for (let i = 0; i < blockSize; i++) if (block[i] !== 0) return false
  return true
}

/** A raw header as stored, before pax or GNU long-name records are applied. */
export interface RawHeader {
  readonly name: string
  readonly typeflag: string
  readonly size: number
  readonly mode: number
  readonly mtime: number
}

/** Decodes one 512-byte header block, or returns why it is not one. */
export const decodeHeader = (block: Uint8Array): RawHeader | string => {
  const problem = checksumProblem(block)
  if (problem !== undefined) return problem
  const name = readString(block, 0, 100)
  const magic = readString(block, 257, 6)
  const prefix = magic.startsWith("ustar") ? readString(block, 345, 155) : ""
  const flag = block[156] === 0 ? "0" : String.fromCharCode(block[156])
  return {
    name: prefix === "" ? name : `${prefix}/${name}`,
    typeflag: flag,
    size: parseOctal(block, 124, 12),
    mode: parseOctal(block, 100, 8),
    mtime: parseOctal(block, 136, 12)
  }
}

/** The records of a pax extended header body (`LEN key=value\n` ...). */
export const decodePax = (body: Uint8Array): Record<string, string> => {
  const out: Record<string, string> = {}
  let i = 0
  while (i < body.length) {
    let j = i
    while (j < body.length && body[j] !== 0x20) j++
    const length = parseInt(decoder.decode(body.subarray(i, j)), 10)
    if (!Number.isFinite(length) || length <= 0) break
    const record = decoder.decode(body.subarray(j + 1, i + length - 1))
    const eq = record.indexOf("=")
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1)
    i += length
  }
  return out
}

/** The kind of entry a typeflag stands for. */
export const entryType = (typeflag: string): EntryType | "other" =>
  typeflag === "0" || typeflag === "7" ? "file" : typeflag === "5" ? "directory" : "other"
