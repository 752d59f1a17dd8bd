/**
 * The VOSI documents of the TAP service: availability, capabilities (TAPRegExt: ADQL and its
 * geometry features, output formats, limits) and the tableset generated from `TapSchema`, the
 * same description TAP_SCHEMA answers with.
 */
import { ObsCore } from "@ccat/core"
import * as Duration from "effect/Duration"
import { create } from "xmlbuilder2"
import type { TapLimits } from "./TapQuery.js"
import * as TapSchema from "./TapSchema.js"

const xsi = "http://www.w3.org/2001/XMLSchema-instance"

/** `/availability`: whether the ops-db answers, and a note saying so. */
export const availability = (available: boolean, note: string): string =>
  create({ version: "1.0", encoding: "UTF-8" })
    .ele("http://www.ivoa.net/xml/VOSIAvailability/v1.0", "vosi:availability")
    .ele("vosi:available").txt(String(available)).up()
    .ele("vosi:note").txt(note).up()
    .end()

/** `/capabilities`: TAP 1.1, with the ADQL features and limits of this service, and the VOSI endpoints. */
export const capabilities = (base: string, limits: TapLimits, retention: Duration.Duration): string => {
  const doc = create({ version: "1.0", encoding: "UTF-8" }).ele("http://www.ivoa.net/xml/VOSICapabilities/v1.0", "cap:capabilities", {
    "xmlns:tr": "http://www.ivoa.net/xml/TAPRegExt/v1.0",
    "xmlns:vr": "http://www.ivoa.net/xml/VOResource/v1.0",
    "xmlns:vs": "http://www.ivoa.net/xml/VODataService/v1.1",
    "xmlns:xsi": xsi
  })
  const tap = doc.ele("capability", { standardID: "ivo://ivoa.net/std/TAP", "xsi:type": "tr:TableAccess" })
  tap.ele("interface", { role: "std", "xsi:type": "vs:ParamHTTP", version: "1.1" }).ele("accessURL", { use: "base" }).txt(base)
  tap.ele("dataModel", { "ivo-id": ObsCore.dataModel }).txt("ObsCore-1.1")
  const language = tap.ele("language")
  language.ele("name").txt("ADQL")
  language.ele("version", { "ivo-id": "ivo://ivoa.net/std/ADQL#v2.0" }).txt("2.0")
  language.ele("version", { "ivo-id": "ivo://ivoa.net/std/ADQL#v2.1" }).txt("2.1")
  language.ele("description").txt(
    "ADQL: one SELECT over one table (ivoa.obscore or TAP_SCHEMA), with TOP, DISTINCT, WHERE, GROUP BY, HAVING, ORDER BY and OFFSET."
  )
  const geometry = language.ele("languageFeatures", { type: "ivo://ivoa.net/std/TAPRegExt#features-adqlgeo" })
  for (const [form, description] of [
    ["POINT", "a position, ICRS degrees"],
    ["CIRCLE", "a circle, ICRS degrees: CIRCLE(ra, dec, radius) or CIRCLE(POINT, radius)"],
    ["BOX", "STC's box (great-circle sides, a rectangle in the tangent plane at its centre), numbers written in the query"],
    [
      "POLYGON",
      "great-circle edges between vertices given in order, numbers written in the query; at most 100 vertices, simple, within a hemisphere"
    ],
    [
      "CONTAINS",
      "CONTAINS(a, b) = 1: a lies within b; a POINT, CIRCLE or s_region in a CIRCLE, BOX, POLYGON or s_region, a POLYGON or BOX in a CIRCLE or s_region"
    ],
    ["INTERSECTS", "INTERSECTS(a, b) = 1: CIRCLEs, s_region, BOXes and POLYGONs (not two polygons), or a POINT (as CONTAINS)"],
    ["DISTANCE", "great-circle distance in degrees"],
    ["CENTROID", "a region's centroid as a POINT: a CIRCLE's centre, a POLYGON's or BOX's centre of area on the sphere"],
    ["AREA", "area in square degrees"],
    ["COORD1", "a POINT's right ascension"],
    ["COORD2", "a POINT's declination"],
    ["COORDSYS", "'ICRS'"]
  ]) {
    geometry.ele("feature").ele("form").txt(form!).up().ele("description").txt(description!)
  }
  const features = language.ele("languageFeatures", { type: "ivo://ivoa.net/std/TAPRegExt#features-adql-string" })
  features.ele("feature").ele("form").txt("LOWER").up().ele("description").txt("lower case")
  features.ele("feature").ele("form").txt("UPPER").up().ele("description").txt("upper case")
  features.ele("feature").ele("form").txt("ILIKE").up().ele("description").txt("LIKE regardless of case")
  const sets = language.ele("languageFeatures", { type: "ivo://ivoa.net/std/TAPRegExt#features-adql-common-table" })
  sets.ele("feature").ele("form").txt("OFFSET").up().ele("description").txt("skip rows of the ordered result")
  const vot = tap.ele("outputFormat", { "ivo-id": "ivo://ivoa.net/std/TAPRegExt#output-votable-td" })
  vot.ele("mime").txt("application/x-votable+xml")
  vot.ele("alias").txt("votable")
  const csv = tap.ele("outputFormat")
  csv.ele("mime").txt("text/csv;header=present")
  csv.ele("alias").txt("csv")
  const seconds = (d: Duration.Duration) => String(Math.round(Duration.toSeconds(d)))
  const retentionPeriod = tap.ele("retentionPeriod")
  retentionPeriod.ele("default").txt(seconds(retention))
  retentionPeriod.ele("hard").txt(seconds(retention))
  const executionDuration = tap.ele("executionDuration")
  executionDuration.ele("default").txt(seconds(limits.asyncTimeout))
  executionDuration.ele("hard").txt(seconds(limits.asyncTimeout))
  const outputLimit = tap.ele("outputLimit")
  outputLimit.ele("default", { unit: "row" }).txt(String(limits.defaultMaxrec))
  outputLimit.ele("hard", { unit: "row" }).txt(String(limits.hardMaxrec))
  for (const [id, path] of [["capabilities", "capabilities"], ["availability", "availability"], ["tables", "tables"]] as const) {
    doc.ele("capability", { standardID: `ivo://ivoa.net/std/VOSI#${id}` })
      .ele("interface", { "xsi:type": "vs:ParamHTTP" }).ele("accessURL", { use: "full" }).txt(`${base}/${path}`)
  }
  return doc.end()
}

/** `/tables`: every schema, table and column, as TAP_SCHEMA holds them. */
export const tableset = (): string => {
  const doc = create({ version: "1.0", encoding: "UTF-8" }).ele("http://www.ivoa.net/xml/VOSITables/v1.0", "vosi:tableset", {
    "xmlns:vs": "http://www.ivoa.net/xml/VODataService/v1.1",
    "xmlns:xsi": xsi
  })
  for (const schema of TapSchema.schemas) {
    const s = doc.ele("schema")
    s.ele("name").txt(schema.name)
    s.ele("description").txt(schema.description)
    for (const table of TapSchema.tables.filter((t) => t.schema === schema.name)) {
      const t = s.ele("table", { type: table.type })
      t.ele("name").txt(table.name)
      t.ele("description").txt(table.description)
      if (table.utype !== undefined) t.ele("utype").txt(table.utype)
      for (const c of table.columns) {
        const col = t.ele("column")
        col.ele("name").txt(TapSchema.adqlName(c.name))
        col.ele("description").txt(c.description)
        if (c.unit !== undefined) col.ele("unit").txt(c.unit)
        if (c.ucd !== undefined) col.ele("ucd").txt(c.ucd)
        if (c.utype !== undefined) col.ele("utype").txt(c.utype)
        // VODataService 1.1 (what validators hold) has no xtype element; TAP_SCHEMA.columns carries it.
        col.ele("dataType", { "xsi:type": "vs:VOTableType", ...(c.arraysize === undefined ? {} : { arraysize: c.arraysize }) }).txt(
          c.datatype
        )
        if (c.indexed) col.ele("flag").txt("indexed")
        if (c.std) col.ele("flag").txt("std")
      }
      for (const key of TapSchema.keys.filter((k) => k.from === table.name)) {
        const fk = t.ele("foreignKey")
        fk.ele("targetTable").txt(key.target)
        for (const [from, target] of key.columns) fk.ele("fkColumn").ele("fromColumn").txt(from).up().ele("targetColumn").txt(target)
      }
    }
  }
  return doc.end()
}
