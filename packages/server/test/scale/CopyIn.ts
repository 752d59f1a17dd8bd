/**
 * Streams generated rows into a table with `COPY ... FROM STDIN` (text format) through
 * `pg-copy-streams`: the fastest way PostgreSQL takes rows, with every constraint, index and
 * trigger of the table still in force. Values are written as COPY text: `null` becomes `\N`;
 * the generator's strings hold no tab, newline or backslash, which is checked, not assumed.
 */
import type pg from "pg"
import { from as copyFrom } from "pg-copy-streams"
import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"

/** One value of a row: what COPY's text format can carry for our columns. */
export type Value = string | number | boolean | null

/** One row as a line of COPY text (`\\N` for null); a string `\\N` would read back as null, so it is refused. */
const line = (table: string, row: ReadonlyArray<Value>, parts: Array<string>): string => {
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!
    if (v === null) parts[i] = "\\N"
    else if (typeof v === "string") {
      if (v.length === 2 && v === "\\N") throw new Error(`${table}: a generated value is the text \\N, which COPY reads as null`)
      parts[i] = v
    } else parts[i] = String(v)
  }
  return parts.join("\t")
}

const count = (text: string, c: string): number => {
  let n = 0
  for (let i = text.indexOf(c); i !== -1; i = text.indexOf(c, i + 1)) n++
  return n
}

/**
 * Whether a chunk of `rows` lines of `columns` values reads back as exactly those values: as many
 * tabs and newlines as the fields need (a value holding either adds one), no carriage return,
 * and every backslash a whole `\\N` field. One pass of `indexOf` per chunk over flat text
 * instead of a scan of every value (a fifth of the generator when it was per value).
 */
const wellFormed = (chunk: string, rows: number, columns: number): boolean => {
  if (count(chunk, "\n") !== rows || count(chunk, "\t") !== rows * (columns - 1) || chunk.includes("\r")) return false
  for (let i = chunk.indexOf("\\"); i !== -1; i = chunk.indexOf("\\", i + 1)) {
    const before = i === 0 ? "\n" : chunk[i - 1]
    const after = chunk[i + 2]
    if (chunk[i + 1] !== "N" || (before !== "\t" && before !== "\n") || (after !== "\t" && after !== "\n")) return false
  }
  return true
}

/** The first line of a refused chunk that does not have its fields, for the error. */
const culprit = (chunk: string, columns: number): string =>
  chunk.split("\n").find((l) => l.split("\t").length !== columns || /\r|\\(?!N(?:\t|$))|[^\t]\\N|\\N[^\t]/.test(l)) ?? chunk.slice(0, 200)

/**
 * The COPY text of `rows` in chunks of about 256 KiB (few stream writes, little memory);
 * `onRow` is called once per row. A value holding a tab, newline, carriage return or backslash
 * (which COPY would misread) fails the load with its line.
 */
export function* copyText(
  table: string,
  columns: ReadonlyArray<string>,
  rows: Iterable<ReadonlyArray<Value>>,
  onRow: () => void
): Generator<string> {
  let buffer: Array<string> = []
  let size = 0
  const parts = new Array<string>(columns.length)
  const flush = () => {
    const lines = buffer.length
    buffer.push("")
    const chunk = buffer.join("\n")
    if (!wellFormed(chunk, lines, columns.length)) {
      throw new Error(
        `${table}: a generated value holds a tab, newline, carriage return or backslash: ${JSON.stringify(culprit(chunk, columns.length))}`
      )
    }
    buffer = []
    size = 0
    return chunk
  }
  for (const row of rows) {
    if (row.length !== columns.length) throw new Error(`${table}: a row of ${row.length} values for ${columns.length} columns`)
    const text = line(table, row, parts)
    buffer.push(text)
    size += text.length + 1
    onRow()
    if (size >= 256 * 1024) yield flush()
  }
  if (buffer.length > 0) yield flush()
}

/** Streams `rows` into `table (columns)`; returns how many rows went in. */
export const copyRows = async (
  client: pg.Client,
  table: string,
  columns: ReadonlyArray<string>,
  rows: Iterable<ReadonlyArray<Value>>
): Promise<number> => {
  let n = 0
  await pipeline(
    Readable.from(copyText(table, columns, rows, () => n++)),
    client.query(copyFrom(`copy ${table} (${columns.join(", ")}) from stdin`))
  )
  return n
}
