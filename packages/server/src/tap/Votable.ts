/**
 * Query results as VOTable 1.4 (TABLEDATA, written by xmlbuilder2's streaming writer, so a
 * large result is never a document tree in memory) or as CSV (RFC 4180 with a header line),
 * and the DALI error document: a VOTable whose QUERY_STATUS is ERROR and whose INFO says why.
 */
import { createCB } from "xmlbuilder2"
import type { Field } from "./AdqlTranslate.js"

/** The VOTable namespace (1.4 keeps 1.3's). */
export const namespace = "http://www.ivoa.net/xml/VOTable/v1.3"

/** The media type of a VOTable. */
export const contentType = "application/x-votable+xml"

/** The media type of a CSV result. */
export const csvContentType = "text/csv;header=present"

// Characters XML 1.0 cannot carry, even escaped; a database string may hold them.

const invalidXml =
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g
const clean = (s: string) => s.replace(invalidXml, "\uFFFD")

const cell = (value: unknown): string => {
  if (value === null || value === undefined) return ""
  if (typeof value === "number") {
    return Number.isNaN(value) ? "NaN" : value === Infinity ? "+Inf" : value === -Infinity ? "-Inf" : String(value)
  }
  if (value instanceof Date) return value.toISOString()
  return clean(String(value))
}

const open = (write: (chunk: string) => void) => {
  const xml = createCB({ data: write, prettyPrint: false })
  xml.dec({ version: "1.0", encoding: "UTF-8" })
  return xml.ele("VOTABLE", { version: "1.4", xmlns: namespace, "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance" })
}

/** A result table: QUERY_STATUS OK (then OVERFLOW after the table when MAXREC cut it). */
export const results = (
  fields: ReadonlyArray<Field>,
  rows: ReadonlyArray<ReadonlyArray<unknown>>,
  options: { readonly overflow: boolean; readonly query?: string }
): string => {
  const chunks: Array<string> = []
  const xml = open((c) => chunks.push(c))
  xml.ele("RESOURCE", { type: "results" })
  xml.ele("INFO", { name: "QUERY_STATUS", value: "OK" }).up()
  if (options.query !== undefined) xml.ele("INFO", { name: "QUERY", value: clean(options.query) }).up()
  xml.ele("TABLE")
  for (const f of fields) {
    const attributes: Record<string, string> = { name: f.name, datatype: f.datatype }
    if (f.arraysize !== undefined) attributes.arraysize = f.arraysize
    if (f.xtype !== undefined) attributes.xtype = f.xtype
    if (f.unit !== undefined) attributes.unit = f.unit
    if (f.ucd !== undefined) attributes.ucd = f.ucd
    if (f.utype !== undefined) attributes.utype = f.utype
    xml.ele("FIELD", attributes)
    if (f.description !== undefined) xml.ele("DESCRIPTION").txt(f.description).up()
    xml.up()
  }
  xml.ele("DATA").ele("TABLEDATA")
  for (const row of rows) {
    xml.ele("TR")
    for (const value of row) xml.ele("TD").txt(cell(value)).up()
    xml.up()
  }
  xml.up().up().up()
  if (options.overflow) xml.ele("INFO", { name: "QUERY_STATUS", value: "OVERFLOW" }).up()
  xml.up().up()
  xml.end()
  return chunks.join("")
}

/** The DALI error document. */
export const error = (message: string): string => {
  const chunks: Array<string> = []
  const xml = open((c) => chunks.push(c))
  xml.ele("RESOURCE", { type: "results" }).ele("INFO", { name: "QUERY_STATUS", value: "ERROR" }).txt(clean(message)).up().up().up()
  xml.end()
  return chunks.join("")
}

const csvCell = (value: unknown): string => {
  const s = value === null || value === undefined ? "" : value instanceof Date ? value.toISOString() : String(value)
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s
}

/** A result as CSV: a header of the field names, then one line per row. */
export const csv = (fields: ReadonlyArray<Field>, rows: ReadonlyArray<ReadonlyArray<unknown>>): string =>
  [fields.map((f) => csvCell(f.name)), ...rows.map((r) => r.map(csvCell))].map((line) => line.join(",")).join("\r\n") + "\r\n"
