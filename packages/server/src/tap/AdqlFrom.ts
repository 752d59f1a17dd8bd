/**
 * The FROM item of a translated query and the caller's access rule over it. ObsCore is the view
 * `ivoa.obscore`; a TAP_SCHEMA table is its rows as a VALUES list of bind parameters.
 */
import type { Access } from "./AdqlTranslate.js"
import * as TapSchema from "./TapSchema.js"

type Bind = (value: unknown, cast: string) => string

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`

/** The condition that keeps only the rows the caller may see (of a restricted table). */
export const accessSql = (bind: Bind, access: Access): string => {
  switch (access.kind) {
    case "all":
      return "true"
    case "public":
      return `t."ccat_public_from" <= now()`
    case "programs":
      return `(t."ccat_public_from" <= now() or t."ccat_program_id" = any(${bind([...access.ids], "uuid[]")}))`
    case "instruments":
      return `(t."ccat_public_from" <= now() or t."ccat_instrument_id" = any(${bind([...access.ids], "uuid[]")}))`
  }
}

/** The table as a FROM item named t. */
export const sourceSql = (bind: Bind, table: TapSchema.Table): string => {
  if (table === TapSchema.obscore) return "ivoa.obscore as t"
  const cast = (c: TapSchema.Column) => (c.sqlType === "text" ? "text" : "bigint")
  const names = table.columns.map((c) => quote(c.name)).join(", ")
  const rows = TapSchema.rowsOf(table)
  if (rows.length === 0) return `(select ${table.columns.map((c) => `null::${cast(c)} as ${quote(c.name)}`).join(", ")} where false) as t`
  const values = rows.map((row) => `(${row.map((v, i) => bind(v, cast(table.columns[i]!))).join(", ")})`).join(", ")
  return `(values ${values}) as t(${names})`
}
