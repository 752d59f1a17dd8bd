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

const text = (v: Value): string => {
  if (v === null) return "\\N"
  const s = String(v)
  if (/[\t\n\r\\]/.test(s)) throw new Error(`a generated value holds a tab, newline or backslash: ${JSON.stringify(s)}`)
  return s
}

/** Streams `rows` into `table (columns)`; returns how many rows went in. */
export const copyRows = async (
  client: pg.Client,
  table: string,
  columns: ReadonlyArray<string>,
  rows: Iterable<ReadonlyArray<Value>>
): Promise<number> => {
  let n = 0
  // Chunks of ~256 KiB: few stream writes, little memory.
  function* chunks(): Generator<string> {
    let buffer: Array<string> = []
    let size = 0
    for (const row of rows) {
      if (row.length !== columns.length) throw new Error(`${table}: a row of ${row.length} values for ${columns.length} columns`)
      const line = `${row.map(text).join("\t")}\n`
      buffer.push(line)
      size += line.length
      n++
      if (size >= 256 * 1024) {
        yield buffer.join("")
        buffer = []
        size = 0
      }
    }
    if (buffer.length > 0) yield buffer.join("")
  }
  await pipeline(Readable.from(chunks()), client.query(copyFrom(`copy ${table} (${columns.join(", ")}) from stdin`)))
  return n
}
