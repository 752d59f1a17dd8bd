/**
 * The `{links}` response of IVOA DataLink 1.1 as a VOTable 1.4 document (written with
 * xmlbuilder2): one row per link with the standard columns, and the DALI error document for a
 * request refused as a whole. Small on purpose, so other services can reuse it.
 */
import { create } from "xmlbuilder2"

/** The media type of a DataLink response. */
export const contentType = "application/x-votable+xml;content=datalink"

/** The VOTable namespace (1.4 keeps 1.3's). */
export const namespace = "http://www.ivoa.net/xml/VOTable/v1.3"

/** One row of a `{links}` response; exactly one of accessUrl, serviceDef, errorMessage is set. */
export interface Link {
  readonly id: string
  readonly accessUrl?: string | undefined
  readonly serviceDef?: string | undefined
  readonly errorMessage?: string | undefined
  /** A term of the IVOA datalink vocabulary (`#this`, `#package`, `#progenitor`, ...). */
  readonly semantics: string
  readonly description?: string | undefined
  readonly contentType?: string | undefined
  readonly contentLength?: number | undefined
  readonly contentQualifier?: string | undefined
  readonly localSemantics?: string | undefined
  /** Whether following the link needs credentials: "false", "optional" or "true". */
  readonly linkAuth?: "false" | "optional" | "true" | undefined
  /** Whether the caller's credentials (or none) may follow it. */
  readonly linkAuthorized?: boolean | undefined
  /**
   * The ID names nothing this caller may read, or nothing at all (the same answer, so that an
   * ID's existence is not confirmed): an anonymous caller is challenged for credentials instead.
   */
  readonly hidden?: true | undefined
}

/** The one row answering an ID that names nothing the caller may read, or nothing at all. */
export const notFound = (id: string): Link => ({
  id,
  semantics: "#this",
  errorMessage: `NotFoundFault: ${id} does not exist or is not visible to this caller`,
  hidden: true
})

interface Column {
  readonly name: string
  readonly datatype: "char" | "long" | "boolean"
  readonly ucd: string
  readonly unit?: string
  readonly value: (link: Link) => string
}

const text = (v: string | undefined) => v ?? ""

/** The columns DataLink 1.1 defines, in its order. */
const columns: ReadonlyArray<Column> = [
  { name: "ID", datatype: "char", ucd: "meta.id;meta.main", value: (l) => l.id },
  { name: "access_url", datatype: "char", ucd: "meta.ref.url", value: (l) => text(l.accessUrl) },
  { name: "service_def", datatype: "char", ucd: "meta.ref", value: (l) => text(l.serviceDef) },
  { name: "error_message", datatype: "char", ucd: "meta.code.error", value: (l) => text(l.errorMessage) },
  { name: "semantics", datatype: "char", ucd: "meta.code", value: (l) => l.semantics },
  { name: "description", datatype: "char", ucd: "meta.note", value: (l) => text(l.description) },
  { name: "content_type", datatype: "char", ucd: "meta.code.mime", value: (l) => text(l.contentType) },
  {
    name: "content_length",
    datatype: "long",
    ucd: "phys.size;meta.file",
    unit: "byte",
    value: (l) => (l.contentLength === undefined ? "" : String(l.contentLength))
  },
  { name: "content_qualifier", datatype: "char", ucd: "meta.code.class", value: (l) => text(l.contentQualifier) },
  { name: "local_semantics", datatype: "char", ucd: "meta.code", value: (l) => text(l.localSemantics) },
  { name: "link_auth", datatype: "char", ucd: "meta.code", value: (l) => text(l.linkAuth) },
  {
    name: "link_authorized",
    datatype: "boolean",
    ucd: "meta.code",
    value: (l) => (l.linkAuthorized === undefined ? "" : l.linkAuthorized ? "T" : "F")
  }
]

// Characters XML 1.0 cannot carry, even escaped.

const invalidXml = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g
const clean = (s: string) => s.replace(invalidXml, "\uFFFD")

const document = () =>
  create({ version: "1.0", encoding: "UTF-8" })
    .ele(namespace, "VOTABLE", { version: "1.4" })

/** The `{links}` document of the given rows. */
export const links = (rows: ReadonlyArray<Link>): string => {
  const resource = document().ele("RESOURCE", { type: "results" })
  resource.ele("INFO", { name: "standardID", value: "ivo://ivoa.net/std/DataLink#links-1.1" }).up()
  const table = resource.ele("TABLE")
  for (const c of columns) {
    const attributes: Record<string, string> = { name: c.name, datatype: c.datatype, ucd: c.ucd }
    if (c.datatype === "char") attributes.arraysize = "*"
    if (c.unit !== undefined) attributes.unit = c.unit
    table.ele("FIELD", attributes).up()
  }
  const data = table.ele("DATA").ele("TABLEDATA")
  for (const row of rows) {
    const tr = data.ele("TR")
    // DataLink 1.1 §3.2.3: an error row carries only its ID, semantics and message
    const shown = row.errorMessage === undefined ? row : { id: row.id, semantics: row.semantics, errorMessage: row.errorMessage }
    for (const c of columns) tr.ele("TD").txt(clean(c.value(shown))).up()
  }
  return resource.end({ prettyPrint: false })
}

/** The DALI error document: QUERY_STATUS ERROR, with why. */
export const error = (message: string): string =>
  document()
    .ele("RESOURCE", { type: "results" })
    .ele("INFO", { name: "QUERY_STATUS", value: "ERROR" }).txt(clean(message)).up()
    .up()
    .end({ prettyPrint: false })
