/**
 * The rules the catalog's writes share with the admin group: which references an ObsUnit may
 * hold (each checked by name of its field, so a 422 says which one is wrong), how a band given
 * in Hz becomes the wavelengths stored, which programs a caller may see, and how a refused
 * write becomes the API's error. Each check runs before anything is written, so a refused
 * request changes nothing.
 */
import { ApiErrors, type ApiSecurity, type CatalogApi, ConstraintError, Observational } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Access from "./Access.js"

const unknown = (field: string, message: string) => new ApiErrors.Unprocessable({ reason: "UnknownReference", field, message })

/** The links an ObsUnit is given (absent: unchanged, null: removed). */
export interface Links {
  readonly sourceId?: string | null | undefined
  readonly subObservingProgramId?: string | null | undefined
  readonly observingModeId?: string | null | undefined
}

/**
 * Checks that each linked Source, mode and sub-program exists and that the sub-program is one
 * of `programId`'s; answers the Source's name, for an ObsUnit created without a target.
 */
export const checkLinks = (programId: string, links: Links) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    let sourceName: string | undefined
    if (typeof links.sourceId === "string") {
      const rows = yield* sql<{ name: string }>`select name from source where id = ${links.sourceId}`
      if (rows.length === 0) return yield* unknown("sourceId", `there is no source ${links.sourceId}`)
      sourceName = rows[0].name
    }
    if (typeof links.observingModeId === "string") {
      const rows = yield* sql`select 1 from observing_mode where id = ${links.observingModeId}`
      if (rows.length === 0) return yield* unknown("observingModeId", `there is no observing mode ${links.observingModeId}`)
    }
    if (typeof links.subObservingProgramId === "string") {
      const rows = yield* sql<
        { observingProgramId: string }
      >`select observing_program_id from sub_observing_program where id = ${links.subObservingProgramId}`
      if (rows.length === 0) return yield* unknown("subObservingProgramId", `there is no sub-program ${links.subObservingProgramId}`)
      if (rows[0].observingProgramId !== programId) {
        return yield* new ApiErrors.Unprocessable({
          reason: "Invalid",
          field: "subObservingProgramId",
          message: `sub-program ${links.subObservingProgramId} belongs to another observing program than ${programId}`
        })
      }
    }
    return { sourceName }
  }).pipe(Effect.catchTag("SqlError", (e) => Effect.die(e)))

/** The band columns of a band input: wavelengths as given, or those of the frequencies. */
export const bandColumns = (band: CatalogApi.Band | null | undefined): { emMin?: number | null; emMax?: number | null } =>
  band === undefined
    ? {}
    : band === null
    ? { emMin: null, emMax: null }
    : "emMin" in band
    ? { emMin: band.emMin, emMax: band.emMax }
    : Observational.bandOfFrequencies(band.minHz, band.maxHz)

/** The column values of a module's ObsCore facts as given (absent ones are left out). */
export const moduleColumns = (input: typeof CatalogApi.UpdateInstrumentModule.Type): Record<string, unknown> => {
  const { band, ...rest } = input
  return Object.fromEntries(Object.entries({ ...bandColumns(band), ...rest }).filter(([, v]) => v !== undefined))
}

/** The condition on `observing_program` (aliased `p`) that limits it to what the caller may see. */
export const programScope = (sql: SqlClient.SqlClient, p: ApiSecurity.Principal): Fragment => {
  if (Access.seesEverything(p)) return sql`true`
  if (p.role === "scientist") return p.programIds.length === 0 ? sql`false` : sql`p.id in ${sql.in(p.programIds)}`
  return p.instrumentIds.length === 0
    ? sql`false`
    : sql`p.id in (select observing_program_id from obs_unit where instrument_id in ${sql.in(p.instrumentIds)})`
}

/**
 * Maps a write the database refused to the API's errors: a taken name is a 409, a missing
 * parent a 422 on `parent`, a broken check a 422 (the Schemas refuse those first, so this is the
 * database's second line). Anything else is a defect.
 */
export const refused =
  (entity: string, name: string, parent: string) =>
  (e: ConstraintError.ConstraintError | SqlError): Effect.Effect<never, ApiErrors.Conflict | ApiErrors.Unprocessable> => {
    const c = e._tag === "ConstraintError" ? e : ConstraintError.fromSqlError(e)
    if (c === undefined) return Effect.die(e)
    switch (c.reason) {
      case "UniqueViolation":
        return Effect.fail(
          new ApiErrors.Conflict({
            reason: "AlreadyExists",
            entity,
            id: name,
            fields: ["name"],
            message: `a ${entity} named ${name} already exists here`
          })
        )
      case "ForeignKeyViolation":
        return Effect.fail(unknown(parent, `the ${parent} does not exist`))
      case "CheckViolation":
      case "InvalidValue":
        return Effect.fail(
          new ApiErrors.Unprocessable({
            reason: "OutOfRange",
            field: c.constraint ?? entity,
            message: `the ${entity} was refused: ${c.detail}`
          })
        )
      default:
        return Effect.die(e)
    }
  }

/** Maps a change the database refused (a broken check) to a 422; anything else is a defect. */
export const refusedChange = (entity: string) => (e: SqlError): Effect.Effect<never, ApiErrors.Unprocessable> => {
  const c = ConstraintError.fromSqlError(e)
  return c !== undefined && (c.reason === "CheckViolation" || c.reason === "InvalidValue" || c.reason === "ForeignKeyViolation")
    ? Effect.fail(
      new ApiErrors.Unprocessable({
        reason: c.reason === "ForeignKeyViolation" ? "UnknownReference" : "OutOfRange",
        field: c.constraint ?? entity,
        message: `the change to the ${entity} was refused: ${c.detail}`
      })
    )
    : Effect.die(e)
}
