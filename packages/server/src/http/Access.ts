/**
 * What each caller may see (DESIGN §3: access per observing program). Operators and admins see
 * everything; a scientist sees observations of the programs it was granted, an instrument
 * account those of its instruments. The rule is one SQL condition on an observation id, so
 * lists filter in the database and single reads answer 404 for what the caller may not see
 * (a 403 would confirm that the id exists).
 */
import { ApiErrors, type ApiSecurity } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"

/** Whether the caller sees every observation. */
export const seesEverything = (p: ApiSecurity.Principal): boolean => p.role === "operator" || p.role === "admin"

/** The condition on `obs_unit` (aliased `o`) that limits it to what the caller may see. */
export const obsUnitScope = (sql: SqlClient.SqlClient, p: ApiSecurity.Principal): Fragment => {
  if (seesEverything(p)) return sql`true`
  const ids = p.role === "instrument" ? p.instrumentIds : p.programIds
  if (ids.length === 0) return sql`false`
  return p.role === "instrument" ? sql`o.instrument_id in ${sql.in(ids)}` : sql`o.observing_program_id in ${sql.in(ids)}`
}

/** The condition that an observation id column is one the caller may see. */
export const observationScope = (sql: SqlClient.SqlClient, p: ApiSecurity.Principal, column: Fragment): Fragment =>
  seesEverything(p)
    ? sql`true`
    : sql`${column} in (select e.id from executed_obs_unit e join obs_unit o on o.id = e.obs_unit_id where ${obsUnitScope(sql, p)})`

/** A 404 for a thing that does not exist or that the caller may not see. */
export const notFound = (entity: string, id: string) =>
  new ApiErrors.NotFound({ entity, id, message: `${entity} ${id} does not exist or is not visible to this account` })

/** Whether the caller may see the observation. */
export const canSeeObservation = (p: ApiSecurity.Principal, observationId: string) =>
  Effect.gen(function* () {
    if (seesEverything(p)) return true
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql`select 1 from executed_obs_unit e join obs_unit o on o.id = e.obs_unit_id
                            where e.id = ${observationId} and ${obsUnitScope(sql, p)}`
    return rows.length > 0
  }).pipe(Effect.orDie)
