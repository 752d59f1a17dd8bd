/**
 * The ops-db backup file: what `ccat db backup` writes and `ccat db restore` reads. It is gzip of
 * lines, so it streams in both directions and can be inspected with `zcat | less`:
 *
 *   CCAT-OPS-DB-BACKUP 1
 *   HEADER {"createdAt":...,"migration":{"id":3,"name":"..."},"tables":["site",...],...}
 *   TABLE {"name":"site","columns":["id","name",...]}
 *   <rows in PostgreSQL's COPY text format, one a line>
 *   \.
 *   END {"name":"site","rows":2,"bytes":301,"sha256":"..."}
 *   ...
 *   BACKUP-END {"tables":24,"rows":1234,"sha256":"<of every byte above this line>"}
 *
 * COPY's text format escapes newlines and backslashes inside values, so a row is exactly one line
 * and no row can read `\.`. Every table carries its row count and SHA-256, and the trailer the
 * SHA-256 of the whole content, so truncation and corruption are found before a restore touches
 * a database.
 */
import * as Data from "effect/Data"
import { createHash, type Hash } from "node:crypto"
import { createReadStream } from "node:fs"
import { createGunzip } from "node:zlib"

/** The first line of every backup; the number is the format's version. */
export const magic = "CCAT-OPS-DB-BACKUP 1"

/** Why a backup or restore did not happen; nothing was changed when it fails. */
export class BackupError extends Data.TaggedError("BackupError")<{
  readonly reason:
    /** the file ends early: a copy or a write was cut off */
    | "Truncated"
    /** the bytes are not what was written: checksum or count mismatch, damaged gzip */
    | "Corrupt"
    /** not a ccat backup, a format this version does not read, or a newer schema */
    | "Unsupported"
    /** the target database already holds ops-db rows */
    | "NotEmpty"
    /** the output file exists */
    | "Exists"
    /** the database or the file system refused */
    | "Failed"
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `backup: ${this.reason}: ${this.detail}`
  }
}

/** The migration the ops-db was at when the backup was taken. */
export interface MigrationMark {
  readonly id: number
  readonly name: string
}

/** What the backup says about itself, written before any row. */
export interface Header {
  readonly createdAt: string
  readonly migration: MigrationMark
  /** The tables in the order they are written and restored (referenced before referencing). */
  readonly tables: ReadonlyArray<string>
  /** `ccat` version that wrote it. */
  readonly ccat: string
  /** `select version()` of the server it was taken from. */
  readonly postgres: string
}

/** One table's columns, as written by COPY. */
export interface TableStart {
  readonly name: string
  readonly columns: ReadonlyArray<string>
}

/** One table's totals, checked when reading. */
export interface TableEnd {
  readonly name: string
  readonly rows: number
  readonly bytes: number
  readonly sha256: string
}

/** The whole file's totals. */
export interface Trailer {
  readonly tables: number
  readonly rows: number
  readonly sha256: string
}

/** What reading a backup yields, in file order; a `TableEnd` is yielded only once it was verified. */
export type Event =
  | { readonly _tag: "Header"; readonly header: Header }
  | { readonly _tag: "TableStart"; readonly table: TableStart }
  | { readonly _tag: "Rows"; readonly bytes: Buffer }
  | { readonly _tag: "TableEnd"; readonly end: TableEnd }
  | { readonly _tag: "Trailer"; readonly trailer: Trailer }

/** The end-of-table line of COPY's text format. */
export const endOfData = "\\."

/** Counts lines and hashes bytes as they go into (or come out of) the file. */
export class Tally {
  private readonly hash: Hash = createHash("sha256")
  /** Lines (rows) seen. */
  rows = 0
  /** Bytes seen. */
  bytes = 0
  /** Adds bytes that hold whole lines. */
  add(bytes: Uint8Array): void {
    this.hash.update(bytes)
    this.bytes += bytes.length
    let i = -1
    const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
    while ((i = b.indexOf(10, i + 1)) !== -1) this.rows++
  }
  /** The hex SHA-256 of everything added. */
  digest(): string {
    return this.hash.digest("hex")
  }
}

const corrupt = (detail: string, cause?: unknown) => new BackupError({ reason: "Corrupt", detail, cause })

const parseJson = <A>(line: string, prefix: string, lineNo: number): A => {
  try {
    return JSON.parse(line.slice(prefix.length)) as A
  } catch (cause) {
    throw corrupt(`line ${lineNo}: unreadable ${prefix.trim()} record`, cause)
  }
}

const isString = (u: unknown): u is string => typeof u === "string"
const isCount = (u: unknown): u is number => typeof u === "number" && Number.isSafeInteger(u) && u >= 0

const checkHeader = (h: Header, lineNo: number): Header => {
  if (
    !isString(h?.createdAt) || !isCount(h?.migration?.id) || !isString(h?.migration?.name) ||
    !Array.isArray(h?.tables) || !h.tables.every(isString)
  ) throw corrupt(`line ${lineNo}: the header lacks its migration or table list`)
  return h
}

/** Rows are handed on in batches of about this many bytes, so COPY gets large writes. */
const batchBytes = 1024 * 1024

/**
 * Reads and verifies a backup file as a stream of events. Every table's rows are checked against
 * its recorded count and SHA-256 before its `TableEnd` is yielded, and the whole content against
 * the trailer before `Trailer`; a file that ends before its trailer fails with Truncated. A
 * consumer that must not act on unverified data reads the file twice (see Restore).
 */
export async function* read(file: string): AsyncGenerator<Event, void, undefined> {
  const whole = createHash("sha256")
  const gunzip = createGunzip()
  const source = createReadStream(file)
  source.on("error", (e) => gunzip.destroy(e))
  source.pipe(gunzip)
  let pending: Buffer = Buffer.alloc(0)
  let lineNo = 0
  let header: Header | undefined
  let table: TableStart | undefined
  let tableIndex = 0
  let tally: Tally | undefined
  let batch: Array<Buffer> = []
  let batched = 0
  let totalRows = 0
  let trailer: Trailer | undefined

  const flush = (): Event | undefined => {
    if (batch.length === 0) return undefined
    const bytes = batch.length === 1 ? batch[0]! : Buffer.concat(batch)
    batch = []
    batched = 0
    tally!.add(bytes)
    return { _tag: "Rows", bytes }
  }

  // Handles one complete line (with its newline); returns the events it produced.
  const line = (raw: Buffer): Array<Event> => {
    lineNo++
    if (trailer !== undefined) throw corrupt(`line ${lineNo}: content after the trailer`)
    if (table !== undefined) {
      if (!(raw.length === 3 && raw[0] === 92 && raw[1] === 46)) {
        whole.update(raw)
        batch.push(raw)
        batched += raw.length
        if (batched < batchBytes) return []
        const e = flush()
        return e === undefined ? [] : [e]
      }
      // `\.`: the table's rows are over; its END line follows
      whole.update(raw)
      const e = flush()
      table = undefined
      return e === undefined ? [] : [e]
    }
    const text = raw.toString("utf8", 0, raw.length - 1)
    if (lineNo === 1) {
      if (text !== magic) {
        throw new BackupError({
          reason: "Unsupported",
          detail: `${file} is not a ccat ops-db backup of format 1 (first line ${JSON.stringify(text.slice(0, 40))})`
        })
      }
      whole.update(raw)
      return []
    }
    if (text.startsWith("BACKUP-END ")) {
      const t = parseJson<Trailer>(text, "BACKUP-END ", lineNo)
      const digest = whole.digest("hex")
      if (header === undefined || tableIndex !== header.tables.length) {
        throw corrupt(`the trailer comes after ${tableIndex} of ${header?.tables.length ?? "?"} tables`)
      }
      if (t.sha256 !== digest || t.rows !== totalRows || t.tables !== tableIndex) {
        throw corrupt(
          `the content does not match the trailer (sha256 ${digest}, ${totalRows} rows in ${tableIndex} tables; trailer says ${t.sha256}, ${t.rows} rows in ${t.tables} tables)`
        )
      }
      trailer = t
      return [{ _tag: "Trailer", trailer: t }]
    }
    whole.update(raw)
    if (text.startsWith("HEADER ")) {
      if (header !== undefined) throw corrupt(`line ${lineNo}: a second header`)
      header = checkHeader(parseJson<Header>(text, "HEADER ", lineNo), lineNo)
      return [{ _tag: "Header", header }]
    }
    if (header === undefined) throw corrupt(`line ${lineNo}: no header before the data`)
    if (text.startsWith("TABLE ")) {
      const t = parseJson<TableStart>(text, "TABLE ", lineNo)
      if (t?.name !== header.tables[tableIndex] || !Array.isArray(t.columns) || !t.columns.every(isString) || t.columns.length === 0) {
        throw corrupt(
          `line ${lineNo}: table ${JSON.stringify(t?.name)} where the header lists ${JSON.stringify(header.tables[tableIndex])}`
        )
      }
      table = t
      tally = new Tally()
      return [{ _tag: "TableStart", table: t }]
    }
    if (text.startsWith("END ")) {
      const end = parseJson<TableEnd>(text, "END ", lineNo)
      const name = header.tables[tableIndex]
      if (tally === undefined || end?.name !== name) throw corrupt(`line ${lineNo}: an END record out of place`)
      const sha256 = tally.digest()
      if (end.rows !== tally.rows || end.bytes !== tally.bytes || end.sha256 !== sha256) {
        throw corrupt(
          `table ${name}: ${tally.rows} rows (${tally.bytes} bytes, sha256 ${sha256}) where the backup recorded ${end.rows} rows (${end.bytes} bytes, sha256 ${end.sha256})`
        )
      }
      tally = undefined
      tableIndex++
      totalRows += end.rows
      return [{ _tag: "TableEnd", end }]
    }
    throw corrupt(`line ${lineNo}: unexpected ${JSON.stringify(text.slice(0, 40))}`)
  }

  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      let start = 0
      let nl: number
      while ((nl = chunk.indexOf(10, start)) !== -1) {
        const piece = chunk.subarray(start, nl + 1)
        const raw = pending.length === 0 ? piece : Buffer.concat([pending, piece])
        pending = Buffer.alloc(0)
        start = nl + 1
        for (const e of line(raw)) yield e
      }
      if (start < chunk.length) pending = Buffer.concat([pending, chunk.subarray(start)])
    }
  } catch (cause) {
    if (cause instanceof BackupError) throw cause
    const code = (cause as { code?: string })?.code
    if (code === "Z_BUF_ERROR") {
      throw new BackupError({ reason: "Truncated", detail: `${file} ends in the middle of its compressed data`, cause })
    }
    if (code === "ENOENT" || code === "EACCES" || code === "EISDIR") {
      throw new BackupError({ reason: "Failed", detail: `cannot read ${file}: ${code}`, cause })
    }
    throw corrupt(`${file} is damaged: ${cause instanceof Error ? cause.message : String(cause)}`, cause)
  } finally {
    // a consumer that stopped early (or a failure) must not leave the file open
    source.destroy()
    gunzip.destroy()
  }
  if (pending.length > 0 || trailer === undefined) {
    throw new BackupError({ reason: "Truncated", detail: `${file} ends after ${lineNo} lines, before its trailer` })
  }
}
