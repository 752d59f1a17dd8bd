/**
 * The admin group: registering the catalog that filing refers to, accounts and grants. A name
 * that is taken is a 409, a parent that does not exist a 422 naming the field; both are the
 * database's own constraints, read back from `ConstraintError`.
 */
import { Api, ApiErrors, ApiSecurity, type ConstraintError, Ids, Observational, Repositories } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Fragment } from "@effect/sql/Statement"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Tokens from "../auth/Tokens.js"
import * as Access from "./Access.js"
import * as CatalogRules from "./CatalogRules.js"
import { decoder } from "./Rows.js"

/** Maps a refused insert to the API's errors: taken names are 409, missing parents 422 on `parent`. */
const refused =
  (entity: string, name: string, parent: string) =>
  (e: ConstraintError.ConstraintError): Effect.Effect<never, ApiErrors.Conflict | ApiErrors.Unprocessable> =>
    e.reason === "UniqueViolation"
      ? Effect.fail(
        new ApiErrors.Conflict({
          reason: "AlreadyExists",
          entity,
          id: name,
          fields: ["name"],
          message: `a ${entity} named ${name} already exists here`
        })
      )
      : e.reason === "ForeignKeyViolation"
      ? Effect.fail(new ApiErrors.Unprocessable({ reason: "UnknownReference", field: parent, message: `the ${parent} does not exist` }))
      : Effect.die(e)

/** An insert's answer: the stored row, or its refusal as `refused` maps it; a failing database is a defect. */
const inserted =
  (entity: string, name: string, parent: string) =>
  <A, R>(
    insert: Effect.Effect<A, ConstraintError.ConstraintError | SqlError, R>
  ): Effect.Effect<A, ApiErrors.Conflict | ApiErrors.Unprocessable, R> =>
    insert.pipe(
      Effect.catchTag("ConstraintError", refused(entity, name, parent)),
      Effect.catchTag("SqlError", (e) => Effect.die(e))
    )

/** A catalog entry's name and description as stored: no description is an empty one. */
const described = (payload: { readonly name: string; readonly description?: string | undefined }) => ({
  name: payload.name,
  description: payload.description ?? ""
})

const decodeInstruments = decoder(Observational.Instrument)
const decodeModules = decoder(Observational.InstrumentModule)
const decodeObsUnits = decoder(Observational.ObsUnit)

/** The admin group's handlers. */
export const AdminHttpLive = HttpApiBuilder.group(Api.Api, "admin", (handlers) =>
  handlers
    .handle(
      "createObservatory",
      ({ payload }) => Repositories.observatories.insert(described(payload)).pipe(inserted("Observatory", payload.name, "name"))
    )
    .handle(
      "createTelescope",
      ({ payload }) =>
        Repositories.telescopes.insert({ observatoryId: payload.observatoryId as Ids.ObservatoryId, ...described(payload) })
          .pipe(inserted("Telescope", payload.name, "observatoryId"))
    )
    .handle(
      "createInstrument",
      ({ payload }) =>
        Repositories.instruments.insert({ telescopeId: payload.telescopeId as Ids.TelescopeId, ...described(payload) })
          .pipe(inserted("Instrument", payload.name, "telescopeId"))
    )
    .handle("createInstrumentModule", ({ payload }) =>
      Repositories.instrumentModules.insert({
        instrumentId: payload.instrumentId as Ids.InstrumentId,
        ...described(payload),
        ...CatalogRules.moduleColumns(payload)
      }).pipe(inserted("InstrumentModule", payload.name, "instrumentId")))
    .handle(
      "createObservingProgram",
      ({ payload }) =>
        Repositories.observingPrograms.insert({
          name: payload.name,
          title: payload.title ?? "",
          proprietaryPeriodDays: payload.proprietaryPeriodDays ?? null
        }).pipe(inserted("ObservingProgram", payload.name, "name"))
    )
    .handle("createObsUnit", ({ payload }) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        // Two parents: say which one is missing rather than "a reference".
        const [program, instrument] = yield* Effect.all([
          sql`select 1 from observing_program where id = ${payload.observingProgramId}`,
          sql`select 1 from instrument where id = ${payload.instrumentId}`
        ]).pipe(Effect.orDie)
        if (program.length === 0) {
          return yield* new ApiErrors.Unprocessable({
            reason: "UnknownReference",
            field: "observingProgramId",
            message: `there is no observing program ${payload.observingProgramId}`
          })
        }
        if (instrument.length === 0) {
          return yield* new ApiErrors.Unprocessable({
            reason: "UnknownReference",
            field: "instrumentId",
            message: `there is no instrument ${payload.instrumentId}`
          })
        }
        const { sourceName } = yield* CatalogRules.checkLinks(payload.observingProgramId, payload)
        return yield* Repositories.obsUnits.insert({
          observingProgramId: payload.observingProgramId as Ids.ObservingProgramId,
          instrumentId: payload.instrumentId as Ids.InstrumentId,
          name: payload.name,
          // Without a target of its own, a unit that names a Source is about that Source.
          target: payload.target ?? sourceName ?? "",
          plannedDurationSeconds: payload.plannedDurationSeconds ?? null,
          configuration: payload.configuration ?? {},
          sourceId: (payload.sourceId ?? null) as Ids.SourceId | null,
          subObservingProgramId: (payload.subObservingProgramId ?? null) as Ids.SubObservingProgramId | null,
          observingModeId: (payload.observingModeId ?? null) as Ids.ObservingModeId | null
        }).pipe(inserted("ObsUnit", payload.name, "observingProgramId"))
      }))
    .handle(
      "listInstruments",
      () =>
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`select * from instrument order by name, id`).pipe(
          Effect.orDie,
          Effect.flatMap(decodeInstruments)
        )
    )
    .handle(
      "listInstrumentModules",
      ({ urlParams }) =>
        Effect.flatMap(
          SqlClient.SqlClient,
          (sql) =>
            sql`select * from instrument_module where ${
              urlParams.instrumentId === undefined ? sql`true` : sql`instrument_id = ${urlParams.instrumentId}`
            } order by name, id`
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
      }))
    .handle("createAccount", ({ payload }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        return yield* sql.withTransaction(
          Effect.tap(
            Repositories.accounts.insert({
              name: Ids.ShortName.make(payload.name),
              displayName: payload.displayName,
              email: payload.email ?? null,
              role: payload.role,
              active: true
            }),
            (account) => Tokens.accountCreated(account, p.name)
          )
        ).pipe(inserted("Account", payload.name, "name"))
      }))
    .handle("listAccounts", () => Repositories.accounts.list.pipe(Effect.orDie))
    .handle("grant", ({ payload }) =>
      Effect.gen(function* () {
        const found = yield* Tokens.findAccount(payload.account).pipe(Effect.orDie)
        if (Option.isNone(found)) return yield* Access.notFound("Account", payload.account)
        const account = found.value
        if ((payload.instrumentId === undefined) === (payload.programId === undefined)) {
          return yield* new ApiErrors.Unprocessable({
            reason: "Invalid",
            field: "instrumentId",
            message: "grant exactly one of instrumentId or programId"
          })
        }
        const sql = yield* SqlClient.SqlClient
        if (payload.instrumentId !== undefined) {
          if (account.role !== "instrument") {
            return yield* new ApiErrors.Unprocessable({
              reason: "Invalid",
              field: "instrumentId",
              message: `${account.name} is ${account.role}; instrument grants are for instrument accounts`
            })
          }
          if ((yield* sql`select 1 from instrument where id = ${payload.instrumentId}`.pipe(Effect.orDie)).length === 0) {
            return yield* new ApiErrors.Unprocessable({
              reason: "UnknownReference",
              field: "instrumentId",
              message: `there is no instrument ${payload.instrumentId}`
            })
          }
          yield* sql.withTransaction(
            Tokens.grantInstrument(account.id, payload.instrumentId as Ids.InstrumentId, (yield* ApiSecurity.CurrentAccount).name)
          ).pipe(Effect.orDie)
        } else {
          if (account.role !== "scientist") {
            return yield* new ApiErrors.Unprocessable({
              reason: "Invalid",
              field: "programId",
              message: `${account.name} is ${account.role}; program grants are for scientist accounts`
            })
          }
          if ((yield* sql`select 1 from observing_program where id = ${payload.programId!}`.pipe(Effect.orDie)).length === 0) {
            return yield* new ApiErrors.Unprocessable({
              reason: "UnknownReference",
              field: "programId",
              message: `there is no observing program ${payload.programId}`
            })
          }
          yield* sql.withTransaction(
            Tokens.grantProgram(account.id, payload.programId as Ids.ObservingProgramId, (yield* ApiSecurity.CurrentAccount).name)
          ).pipe(Effect.orDie)
        }
        return {
          account: account.name,
          instrumentId: (payload.instrumentId ?? null) as Ids.InstrumentId | null,
          programId: (payload.programId ?? null) as Ids.ObservingProgramId | null
        }
      }))
    .handle("revokeGrant", ({ urlParams: q }) =>
      Effect.gen(function* () {
        const found = yield* Tokens.findAccount(q.account).pipe(Effect.orDie)
        if (Option.isNone(found)) return yield* Access.notFound("Account", q.account)
        if ((q.instrumentId === undefined) === (q.programId === undefined)) {
          return yield* new ApiErrors.Unprocessable({
            reason: "Invalid",
            field: "instrumentId",
            message: "name exactly one of instrumentId or programId"
          })
        }
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const grant = q.instrumentId !== undefined
          ? { instrumentId: q.instrumentId as Ids.InstrumentId }
          : { programId: q.programId as Ids.ObservingProgramId }
        const revoked = yield* sql.withTransaction(Tokens.revokeGrant(found.value.id, grant, p.name)).pipe(Effect.orDie)
        yield* Effect.logInfo(`grant ${JSON.stringify(grant)} of ${q.account} ${revoked ? "taken back" : "was not there"} (by ${p.name})`)
        return {
          account: found.value.name,
          instrumentId: (q.instrumentId ?? null) as Ids.InstrumentId | null,
          programId: (q.programId ?? null) as Ids.ObservingProgramId | null,
          revoked
        }
      }))
    .handle("updateAccount", ({ path, payload }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const updated = yield* sql.withTransaction(Tokens.setActive(path.name, payload.active, p.name)).pipe(
          Effect.catchTag("SqlError", (e) => Effect.die(e)),
          Effect.catchTag(
            "AccountError",
            (e): Effect.Effect<never, ApiErrors.NotFound | ApiErrors.Unprocessable> =>
              e.reason === "UnknownAccount"
                ? Access.notFound("Account", path.name)
                : new ApiErrors.Unprocessable({ reason: "Invalid", field: "active", message: e.message })
          )
        )
        yield* Effect.logInfo(`account ${path.name} ${payload.active ? "enabled" : "disabled"} by ${p.name}`)
        return updated
      }))
    .handle("listAccess", () =>
      Effect.map(Tokens.listAccess.pipe(Effect.orDie), (rows) =>
        rows.map((r) => ({
          ...r,
          nextExpiry: r.nextExpiry === null ? null : DateTime.unsafeFromDate(r.nextExpiry),
          lastUsedAt: r.lastUsedAt === null ? null : DateTime.unsafeFromDate(r.lastUsedAt)
        })))))
