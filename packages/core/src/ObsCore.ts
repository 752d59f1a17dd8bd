/**
 * The IVOA ObsCore 1.1 table of the archive, `ivoa.obscore`, described column by column: name,
 * SQL type, VOTable datatype, unit, UCD, utype and meaning. The view itself is migration
 * 0020's (0024 adds the product rows); this description is what a TAP service publishes in `/tables` and `TAP_SCHEMA`, and a
 * test holds the two together. Columns marked `hidden` are not ObsCore: a TAP service uses them
 * for its access rules (which program a row belongs to, when it becomes public) and must not
 * publish them.
 *
 * A raw row is one observation (ExecutedObsUnit) and one instrument module whose raw data is
 * archived: the observation completed, every package of the module ARCHIVED, no file left
 * unpackaged. A product row (migration 0024) is one DataProduct a pipeline filed, at its
 * calib_level (2 or 3), once every package of it is ARCHIVED; its `obs_publisher_did` is
 * `<authority>?product/<product id>`. `access_url` is a DataLink links URL
 * (`/api/v1/datalink?ID=<obs_publisher_did>`) under the publisher's base URL, which the server
 * sets from its `publicUrl`.
 *
 * The column lists live in internal modules, ObsCore's own (`ObsCoreStandardColumns`) and then
 * ours (`ObsCoreAccessColumns`), both written with the shorthands of `ObsCoreColumn`.
 */
import * as Schema from "effect/Schema"
import { accessColumns } from "./internal/ObsCoreAccessColumns.js"
import type { Column } from "./internal/ObsCoreColumn.js"
import { standardColumns } from "./internal/ObsCoreStandardColumns.js"

export type { Column, SqlType, VotableDatatype } from "./internal/ObsCoreColumn.js"

/** The schema the table lives in, as TAP names it. */
export const schemaName = "ivoa"

/** The table's qualified name, as ADQL queries name it. */
export const tableName = "ivoa.obscore"

/** The ObsCore data model this table implements (TAP `dataModel` in capabilities). */
export const dataModel = "ivo://ivoa.net/std/ObsCore#core-1.1"

/** The utype TAP_SCHEMA gives the table. */
export const tableUtype = "ivo://ivoa.net/std/ObsCore#table-1.1"

/** The table's description, as published. */
export const tableDescription =
  "CCAT data in the archive (IVOA ObsCore 1.1): one row per observation and instrument module whose raw packages are all ARCHIVED, and one per processed data product whose packages are all ARCHIVED."

/** Every column of `ivoa.obscore`, in the view's order. */
export const columns: ReadonlyArray<Column> = [...standardColumns, ...accessColumns]

/** The columns a TAP service publishes (ObsCore's), in order. */
export const publishedColumns: ReadonlyArray<Column> = columns.filter((c) => !c.hidden)

/** The column of this name, if the table has one. */
export const column = (name: string): Column | undefined => columns.find((c) => c.name === name)

/**
 * The publisher settings a TAP/DataLink service and the view share: the IVOA authority that
 * prefixes `obs_publisher_did`, the public base URL (no trailing slash) `access_url` starts
 * with, and the collection name.
 */
export const Publisher = Schema.Struct({
  authority: Schema.String.pipe(
    Schema.pattern(/^ivo:\/\/[A-Za-z0-9][A-Za-z0-9._~-]*(\/[A-Za-z0-9._~-]+)*$/, {
      message: () => "an IVOA authority like ivo://ccat.example.org/archive (letters, digits, . _ ~ -)"
    })
  ),
  baseUrl: Schema.String.pipe(
    Schema.pattern(/^https?:\/\/[^\s?#]+[^/\s?#]$/, { message: () => "an http(s) URL without query, fragment or trailing slash" })
  ),
  collection: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200))
}).annotations({ identifier: "ObsCorePublisher" })
/** The publisher settings. */
export type Publisher = typeof Publisher.Type

/** The `obs_publisher_did` of an observation's module, as the view makes it. */
export const publisherDid = (authority: string, observationId: string, moduleId: string): string =>
  `${authority}?${observationId}/${moduleId}`

/** The `obs_publisher_did` of a processed data product, as the view makes it. */
export const productDid = (authority: string, productId: string): string => `${authority}?product/${productId}`

/** The DataLink URL of a dataset, as the view's `access_url` makes it. */
export const datalinkUrl = (baseUrl: string, did: string): string =>
  `${baseUrl}/api/v1/datalink?ID=${did.replaceAll(":", "%3A").replaceAll("/", "%2F").replaceAll("?", "%3F")}`

/** Modified Julian Date of an instant (ObsCore's t_min and t_max). */
export const mjd = (date: Date): number => date.getTime() / 86_400_000 + 40_587
