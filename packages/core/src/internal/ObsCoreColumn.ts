/**
 * What one column of `ivoa.obscore` is described by, and the shorthands the column lists use:
 * `std` for ObsCore's own columns (published), `hidden` for ours (the TAP service's access
 * rules, never published).
 */

/** How a column is stored in the view. */
export type SqlType = "text" | "smallint" | "bigint" | "double precision" | "uuid" | "timestamptz"

/** A column's VOTable datatype (what TAP_SCHEMA.columns.datatype holds). */
export type VotableDatatype = "char" | "short" | "int" | "long" | "double"

/** One column of the table. */
export interface Column {
  readonly name: string
  readonly sqlType: SqlType
  readonly datatype: VotableDatatype
  /** `*` for variable-length strings. */
  readonly arraysize?: "*"
  /** A DALI/ADQL extended type (`adql:REGION`, `timestamp`). */
  readonly xtype?: string
  readonly unit?: string
  readonly ucd?: string
  readonly utype?: string
  readonly description: string
  /** ObsCore's mandatory set (TAP_SCHEMA `std` = 1). */
  readonly std: boolean
  /** Shown by default in clients (TAP_SCHEMA `principal`). */
  readonly principal: boolean
  /** Whether a query constrained by this column uses an index of the ops-db. */
  readonly indexed: boolean
  /** Not ObsCore and not published: for the TAP service's access rules and links only. */
  readonly hidden: boolean
}

/** A column as the lists write it: the flags left out default to false. */
export type Spec = Omit<Column, "std" | "principal" | "indexed" | "hidden"> & Partial<Pick<Column, "principal" | "indexed">>

/** A variable-length string column. */
export const text = { sqlType: "text", datatype: "char", arraysize: "*" } as const
/** A double-precision column. */
export const double = { sqlType: "double precision", datatype: "double" } as const
/** A 64-bit integer column. */
export const long = { sqlType: "bigint", datatype: "long" } as const

/** One of ObsCore's columns: published. */
export const std = (spec: Spec): Column => ({ principal: false, indexed: false, ...spec, std: true, hidden: false })
/** One of our columns: for the access rules and links, never published. */
export const hidden = (spec: Spec): Column => ({ principal: false, indexed: false, ...spec, std: false, hidden: true })
