/**
 * The admin group: registering the catalog that filing refers to, accounts and grants. A name
 * that is taken is a 409, a parent that does not exist a 422 naming the field; both are the
 * database's own constraints, read back from `ConstraintError`.
 */
import { Api, ApiErrors, ApiSecurity, type ConstraintError, Ids, Observational, Repositories } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Tokens from "../auth/Tokens.js"
import * as Access from "./Access.js"
import { decoder } from "./Rows.js"

/** Maps a refused insert to the API's errors: taken names are 409, missing parents 422 on `parent`. */
const refused =
  (entity: string, name: string, parent: string) =>
  (e: ConstraintError.ConstraintError): Effect.Effect<never, ApiErrors.Conflict | ApiErrors.Unprocessable> =>
    e.reason === "UniqueViolation"
      ? Effect.fail(new ApiErrors.Conflict({ reason: "AlreadyExists", entity, id: name, fields: ["name"], message: `a ${entity} named ${name} already exists here` }))
      : e.reason === "ForeignKeyViolation"
        ? Effect.fail(new ApiErrors.Unprocessable({ reason: "UnknownReference", field: parent, message: `the ${parent} does not exist` }))
        : Effect.die(e)

const decodeInstruments = decoder(Observational.Instrument)
const decodeModules = decoder(Observational.InstrumentModule)
const decodeObsUnits = decoder(Observational.ObsUnit)

/** The admin group's handlers. */
export const AdminHttpLive = HttpApiBuilder.group(Api.Api, "admin", (handlers) =>
  handlers
    .handle("createObservatory", ({ payload }) =>
      Repositories.observatories.insert({ name: payload.name, description: payload.description ?? "" }).pipe(
        Effect.catchTag("ConstraintError", refused("Observatory", payload.name, "name")), Effect.catchTag("SqlError", (e) => Effect.die(e)))
    )
    .handle("createTelescope", ({ payload }) =>
      Repositories.telescopes.insert({ observatoryId: payload.observatoryId as Ids.ObservatoryId, name: payload.name, description: payload.description ?? "" }).pipe(
        Effect.catchTag("ConstraintError", refused("Telescope", payload.name, "observatoryId")), Effect.catchTag("SqlError", (e) => Effect.die(e)))
    )
    .handle("createInstrument", ({ payload }) =>
      Repositories.instruments.insert({ telescopeId: payload.telescopeId as Ids.TelescopeId, name: payload.name, description: payload.description ?? "" }).pipe(
        Effect.catchTag("ConstraintError", refused("Instrument", payload.name, "telescopeId")), Effect.catchTag("SqlError", (e) => Effect.die(e)))
    )
    .handle("createInstrumentModule", ({ payload }) =>
      Repositories.instrumentModules.insert({ instrumentId: payload.instrumentId as Ids.InstrumentId, name: payload.name, description: payload.description ?? "" }).pipe(
        Effect.catchTag("ConstraintError", refused("InstrumentModule", payload.name, "instrumentId")), Effect.catchTag("SqlError", (e) => Effect.die(e)))
    )
    .handle("createObservingProgram", ({ payload }) =>
      Repositories.observingPrograms.insert({ name: payload.name, title: payload.title ?? "" }).pipe(
        Effect.catchTag("ConstraintError", refused("ObservingProgram", payload.name, "name")), Effect.catchTag("SqlError", (e) => Effect.die(e)))
    )
    .handle("createObsUnit", ({ payload }) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        // Two parents: say which one is missing rather than "a reference".
        const [program, instrument] = yield* Effect.all([
          sql`select 1 from observing_program where id = ${payload.observingProgramId}`,
          sql`select 1 from instrument where id = ${payload.instrumentId}`
        ]).pipe(Effect.orDie)
        if (program.length === 0) return yield* new ApiErrors.Unprocessable({ reason: "UnknownReference", field: "observingProgramId", message: `there is no observing program ${payload.observingProgramId}` })
        if (instrument.length === 0) return yield* new ApiErrors.Unprocessable({ reason: "UnknownReference", field: "instrumentId", message: `there is no instrument ${payload.instrumentId}` })
        return yield* Repositories.obsUnits.insert({
          observingProgramId: payload.observingProgramId as Ids.ObservingProgramId,
          instrumentId: payload.instrumentId as Ids.InstrumentId,
          name: payload.name,
          target: payload.target ?? "",
          plannedDurationSeconds: payload.plannedDurationSeconds ?? null,
          configuration: payload.configuration ?? {}
        }).pipe(Effect.catchTag("ConstraintError", refused("ObsUnit", payload.name, "observingProgramId")), Effect.catchTag("SqlError", (e) => Effect.die(e)))
      })
    )
    .handle("listInstruments", () =>
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql`select * from instrument order by name, id`).pipe(Effect.orDie, Effect.flatMap(decodeInstruments))
    )
    .handle("listInstrumentModules", ({ urlParams }) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql`select * from instrument_module where ${urlParams.instrumentId === undefined ? sql`true` : sql`instrument_id = ${urlParams.instrumentId}`} order by name, id`
      ).pipe(Effect.orDie, Effect.flatMap(decodeModules))
    )
    .handle("listObsUnits", ({ urlParams: q }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const where: Array<Fragment> = [Access.obsUnitScope(sql, p)]
        if (q.instrumentId !== undefined) where.push(sql`o.instrument_id = ${q.instrumentId}`)
        if (q.programId !== undefined) where.push(sql`o.observing_program_id = ${q.programId}`)
        const rows = yield* sql`select o.* from obs_unit o where ${sql.and(where)} order by o.created_at, o.id`.pipe(Effect.orDie)
        return yield* decodeObsUnits(rows)
      })
    )
    .handle("createAccount", ({ payload }) =>
      Repositories.accounts.insert({ name: Ids.ShortName.make(payload.name), displayName: payload.displayName, email: payload.email ?? null, role: payload.role, active: true }).pipe(
        Effect.catchTag("ConstraintError", refused("Account", payload.name, "name")), Effect.catchTag("SqlError", (e) => Effect.die(e)))
    )
    .handle("listAccounts", () => Repositories.accounts.list.pipe(Effect.orDie))
    .handle("grant", ({ payload }) =>
      Effect.gen(function* () {
        const found = yield* Tokens.findAccount(payload.account).pipe(Effect.orDie)
        if (Option.isNone(found)) return yield* Access.notFound("Account", payload.account)
        const account = found.value
        if ((payload.instrumentId === undefined) === (payload.programId === undefined)) {
          return yield* new ApiErrors.Unprocessable({ reason: "Invalid", field: "instrumentId", message: "grant exactly one of instrumentId or programId" })
        }
        const sql = yield* SqlClient.SqlClient
        if (payload.instrumentId !== undefined) {
          if (account.role !== "instrument") return yield* new ApiErrors.Unprocessable({ reason: "Invalid", field: "instrumentId", message: `${account.name} is ${account.role}; instrument grants are for instrument accounts` })
          if ((yield* sql`select 1 from instrument where id = ${payload.instrumentId}`.pipe(Effect.orDie)).length === 0) {
            return yield* new ApiErrors.Unprocessable({ reason: "UnknownReference", field: "instrumentId", message: `there is no instrument ${payload.instrumentId}` })
          }
          yield* Tokens.grantInstrument(account.id, payload.instrumentId as Ids.InstrumentId).pipe(Effect.orDie)
        } else {
          if (account.role !== "scientist") return yield* new ApiErrors.Unprocessable({ reason: "Invalid", field: "programId", message: `${account.name} is ${account.role}; program grants are for scientist accounts` })
          if ((yield* sql`select 1 from observing_program where id = ${payload.programId!}`.pipe(Effect.orDie)).length === 0) {
            return yield* new ApiErrors.Unprocessable({ reason: "UnknownReference", field: "programId", message: `there is no observing program ${payload.programId}` })
          }
          yield* Tokens.grantProgram(account.id, payload.programId as Ids.ObservingProgramId).pipe(Effect.orDie)
        }
        return {
          account: account.name,
          instrumentId: (payload.instrumentId ?? null) as Ids.InstrumentId | null,
          programId: (payload.programId ?? null) as Ids.ObservingProgramId | null
        }
      })
    )
)
