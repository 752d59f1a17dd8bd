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

// One scan of a string for what COPY's text format would misread (tab, newline, carriage
// return, backslash): no regular expression, no copy, per value.
const unsafe = (s: string): boolean => {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 9 || c === 10 || c === 13 || c === 92) return true
  }
  return false
}

/** One row as a line of COPY text. */
const line = (table: string, row: ReadonlyArray<Value>, parts: Array<string>): string => {
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!
    if (v === null) parts[i] = "\\N"
    else if (typeof v === "string") {
      if (unsafe(v)) throw new Error(`${table}: a generated value holds a tab, newline or backslash: ${JSON.stringify(v)}`)
      parts[i] = v
    } else parts[i] = String(v)
  }
  return parts.join("\t")
}

/**
 * The COPY text of `rows` in chunks of about 256 KiB (few stream writes, little memory);
 * `onRow` is called once per row.
 */
export function* copyText(table: string, columns: ReadonlyArray<string>, rows: Iterable<ReadonlyArray<Value>>, onRow: () => void): Generator<string> {
  let buffer: Array<string> = []
  let size = 0
  const parts = new Array<string>(columns.length)
  for (const row of rows) {
    if (row.length !== columns.length) throw new Error(`${table}: a row of ${row.length} values for ${columns.length} columns`)
    const text = line(table, row, parts)
    buffer.push(text)
    size += text.length + 1
    onRow()
    if (size >= 256 * 1024) {
      buffer.push("")
      yield buffer.join("\n")
      buffer = []
      size = 0
    }
  }
  if (buffer.length > 0) {
    buffer.push("")
    yield buffer.join("\n")
  }
}

/** Streams `rows` into `table (columns)`; returns how many rows went in. */
export const copyRows = async (
  client: pg.Client,
  table: string,
  columns: ReadonlyArray<string>,
  rows: Iterable<ReadonlyArray<Value>>
): Promise<number> => {
  let n = 0
  await pipeline(Readable.from(copyText(table, columns, rows, () => n++)), client.query(copyFrom(`copy ${table} (${columns.join(", ")}) from stdin`)))
  return n
}
