/**
 * The tables a TAP query may name, with their columns, all generated from `ObsCore.columns`:
 * `ivoa.obscore` (its published columns only; the hidden `ccat_*` ones are for the access rule
 * and never reachable from ADQL) and the five TAP 1.1 `TAP_SCHEMA` tables, which describe the
 * service itself. TAP_SCHEMA is not stored: its rows are made here and read by the translator
 * as a VALUES list of bind parameters, so it cannot drift from what `/tables` publishes.
 */
import { ObsCore } from "@ccat/core"

/** One column of a queryable table. */
export type Column = Pick<
  ObsCore.Column,
  "name" | "sqlType" | "datatype" | "arraysize" | "xtype" | "unit" | "ucd" | "utype" | "description" | "principal" | "indexed" | "std"
>

/** A table ADQL may name. */
export interface Table {
  readonly schema: string
  /** The qualified name, as TAP_SCHEMA and `/tables` publish it. */
  readonly name: string
  readonly description: string
  readonly utype?: string
  readonly type: "table" | "view"
  readonly columns: ReadonlyArray<Column>
  /** Whether rows are limited to what the caller may see (the access rule's columns). */
  readonly restricted: boolean
}

const meta = (name: string, sqlType: "text" | "integer", description: string): Column => ({
  name,
  sqlType: sqlType === "text" ? "text" : "bigint",
  datatype: sqlType === "text" ? "char" : "int",
  ...(sqlType === "text" ? { arraysize: "*" as const } : {}),
  description,
  principal: true,
  indexed: false,
  std: true
})

/** The ObsCore table, as published. */
export const obscore: Table = {
  schema: ObsCore.schemaName,
  name: ObsCore.tableName,
  description: ObsCore.tableDescription,
  utype: ObsCore.tableUtype,
  type: "view",
  columns: ObsCore.publishedColumns,
  restricted: true
}

/**
 * A TAP_SCHEMA table: in the TAP_SCHEMA schema, open to every caller, its columns written as
 * name, type and description.
 */
const tapSchemaTable = (
  name: string,
  description: string,
  columns: ReadonlyArray<readonly [name: string, sqlType: "text" | "integer", description: string]>
): Table => ({
  schema: "TAP_SCHEMA",
  name: `TAP_SCHEMA.${name}`,
  type: "table",
  restricted: false,
  description,
  columns: columns.map(([column, sqlType, about]) => meta(column, sqlType, about))
})

const tapSchemaTables: ReadonlyArray<Table> = [
  tapSchemaTable("schemas", "The schemas of this service.", [
    ["schema_name", "text", "schema name"],
    ["utype", "text", "schema utype"],
    ["description", "text", "what the schema holds"],
    ["schema_index", "integer", "order of the schema"]
  ]),
  tapSchemaTable("tables", "The tables of this service.", [
    ["schema_name", "text", "the table's schema"],
    ["table_name", "text", "qualified table name"],
    ["table_type", "text", "table or view"],
    ["utype", "text", "table utype"],
    ["description", "text", "what the table holds"],
    ["table_index", "integer", "order of the table"]
  ]),
  tapSchemaTable("columns", "The columns of this service's tables.", [
    ["table_name", "text", "qualified name of the column's table"],
    ["column_name", "text", "column name"],
    ["utype", "text", "column utype"],
    ["ucd", "text", "column UCD"],
    ["unit", "text", "column unit"],
    ["description", "text", "what the column holds"],
    ["datatype", "text", "VOTable datatype"],
    ["arraysize", "text", "VOTable arraysize"],
    ["xtype", "text", "DALI extended type"],
    ["size", "integer", "deprecated: fixed length"],
    ["principal", "integer", "1: shown by default"],
    ["indexed", "integer", "1: indexed"],
    ["std", "integer", "1: defined by a standard"],
    ["column_index", "integer", "order of the column"]
  ]),
  tapSchemaTable("keys", "Foreign keys between tables.", [
    ["key_id", "text", "key id"],
    ["from_table", "text", "table holding the key"],
    ["target_table", "text", "table the key refers to"],
    ["description", "text", "what the key means"],
    ["utype", "text", "key utype"]
  ]),
  tapSchemaTable("key_columns", "The columns of the foreign keys.", [
    ["key_id", "text", "key id"],
    ["from_column", "text", "column in the key's table"],
    ["target_column", "text", "column in the target table"]
  ])
]

/** A foreign key between two tables, as TAP_SCHEMA.keys and `/tables` publish it. */
export interface ForeignKey {
  readonly id: string
  readonly from: string
  readonly target: string
  readonly columns: ReadonlyArray<readonly [from: string, target: string]>
}

/** TAP 1.1's keys between the TAP_SCHEMA tables (ivoa.obscore has none). */
export const keys: ReadonlyArray<ForeignKey> = [
  { id: "tables_schema", from: "TAP_SCHEMA.tables", target: "TAP_SCHEMA.schemas", columns: [["schema_name", "schema_name"]] },
  { id: "columns_table", from: "TAP_SCHEMA.columns", target: "TAP_SCHEMA.tables", columns: [["table_name", "table_name"]] },
  { id: "keys_from", from: "TAP_SCHEMA.keys", target: "TAP_SCHEMA.tables", columns: [["from_table", "table_name"]] },
  { id: "keys_target", from: "TAP_SCHEMA.keys", target: "TAP_SCHEMA.tables", columns: [["target_table", "table_name"]] },
  { id: "key_columns_key", from: "TAP_SCHEMA.key_columns", target: "TAP_SCHEMA.keys", columns: [["key_id", "key_id"]] }
]

// Column names ADQL reserves are published delimited, as clients must write them.
const reserved = new Set(["size"])

/** A column's name as ADQL writes it: delimited when the name is a reserved word. */
export const adqlName = (name: string): string => (reserved.has(name) ? `"${name}"` : name)

/** Every table a query may name, ObsCore first. */
export const tables: ReadonlyArray<Table> = [obscore, ...tapSchemaTables]

/** The schemas, in publishing order. */
export const schemas: ReadonlyArray<{ readonly name: string; readonly description: string; readonly utype?: string }> = [
  { name: ObsCore.schemaName, description: "IVOA data models: the ObsCore table of the archive's data." },
  { name: "TAP_SCHEMA", description: "Metadata of this TAP service (TAP 1.1)." }
]

type Value = string | number | null

/** The rows of a TAP_SCHEMA table, in its column order. */
export const rowsOf = (table: Table): ReadonlyArray<ReadonlyArray<Value>> => {
  switch (table.name) {
    case "TAP_SCHEMA.schemas":
      return schemas.map((s, i) => [s.name, s.utype ?? null, s.description, i])
    case "TAP_SCHEMA.tables":
      return tables.map((t, i) => [t.schema, t.name, t.type, t.utype ?? null, t.description, i])
    case "TAP_SCHEMA.columns":
      return tables.flatMap((t) =>
        t.columns.map((
          c,
          i
        ) => [
          t.name,
          adqlName(c.name),
          c.utype ?? null,
          c.ucd ?? null,
          c.unit ?? null,
          c.description,
          c.datatype,
          c.arraysize ?? null,
          c.xtype ?? null,
          null,
          c.principal ? 1 : 0,
          c.indexed ? 1 : 0,
          c.std ? 1 : 0,
          i
        ])
      )
    case "TAP_SCHEMA.keys":
      return keys.map((k) => [k.id, k.from, k.target, null, null])
    case "TAP_SCHEMA.key_columns":
      return keys.flatMap((k) => k.columns.map(([from, target]) => [k.id, from, target]))
    default:
      return []
  }
}

/** The table an ADQL name means (regular names match regardless of case), if any. */
export const resolve = (parts: ReadonlyArray<{ readonly name: string; readonly delimited: boolean }>): Table | undefined => {
  const matches = (written: { readonly name: string; readonly delimited: boolean }, actual: string) =>
    written.delimited ? written.name === actual : written.name === actual.toLowerCase()
  return tables.find((t) => {
    const [schema, name] = t.name.split(".") as [string, string]
    if (parts.length === 2) return matches(parts[0]!, schema) && matches(parts[1]!, name)
    // An unqualified `obscore` is unambiguous; TAP_SCHEMA's names need their schema.
    return parts.length === 1 && t === obscore && matches(parts[0]!, name)
  })
}
