/**
 * The catalog group: Sources, observing modes, sub-programs, programs, and the ObsCore facts of
 * modules and links of ObsUnits (see `CatalogApi`). Reads of programs, sub-programs and ObsUnits
 * are limited to what the caller may see (404 otherwise); Sources, modes and instrument modules
 * are reference data every role reads. Writes check every reference first (`CatalogRules`).
 */
import { Api, ApiErrors, ApiSecurity, type Ids, Observational, Repositories } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as ObsCorePublisher from "../ObsCorePublisher.js"
import * as Access from "./Access.js"
import * as Rules from "./CatalogRules.js"
import { page } from "./Paging.js"
import { decodeOne, decoder } from "./Rows.js"

const decodeSources = decoder(Observational.Source)
const decodeSource = decodeOne(Observational.Source)
const decodeModes = decoder(Observational.ObservingMode)
const decodeMode = decodeOne(Observational.ObservingMode)
const decodePrograms = decoder(Observational.ObservingProgram)
const decodeProgram = decodeOne(Observational.ObservingProgram)
const decodeSubPrograms = decoder(Observational.SubObservingProgram)
const decodeSubProgram = decodeOne(Observational.SubObservingProgram)
const decodeModule = decodeOne(Observational.InstrumentModule)
const decodeObsUnit = decodeOne(Observational.ObsUnit)

/** The one row a read found, or a 404 naming what was asked for. */
const one = <A>(entity: string, id: string, decode: (row: unknown) => Effect.Effect<A>) => (rows: ReadonlyArray<unknown>) =>
  rows.length === 0 ? Effect.fail(Access.notFound(entity, id)) : decode(rows[0])

/** `LIKE` pattern of a literal substring. */
const containing = (s: string) => `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`

/** The catalog group's handlers. */
export const CatalogHttpLive = HttpApiBuilder.group(Api.Api, "catalog", (handlers) =>
  handlers
    .handle("createSource", ({ payload }) =>
      Repositories.sources.insert({
        name: payload.name,
        raDeg: payload.raDeg ?? null,
        decDeg: payload.decDeg ?? null,
        solarSystem: payload.solarSystem ?? false,
        description: payload.description ?? ""
      }).pipe(
        Effect.catchTags({
          ConstraintError: Rules.refused("Source", payload.name, "name"),
          SqlError: Rules.refused("Source", payload.name, "name")
        })
      ))
    .handle("listSources", ({ urlParams: q }) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const where: Array<Fragment> = q.name === undefined ? [] : [sql`t.name ilike ${containing(q.name)}`]
        return yield* page({
          table: "source",
          orderBy: "created_at",
          where: where.length === 0 ? [sql`true`] : where,
          limit: q.limit,
          cursor: q.cursor,
          decode: decodeSources
        })
      }))
    .handle(
      "getSource",
      ({ path }) =>
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`select * from source where id = ${path.id}`).pipe(
          Effect.orDie,
          Effect.flatMap(one("Source", path.id, decodeSource))
        )
    )
    .handle(
      "createObservingMode",
      ({ payload }) =>
        Repositories.observingModes.insert({ name: payload.name, description: payload.description ?? "" }).pipe(
          Effect.catchTags({
            ConstraintError: Rules.refused("ObservingMode", payload.name, "name"),
            SqlError: Rules.refused("ObservingMode", payload.name, "name")
          })
        )
    )
    .handle(
      "listObservingModes",
      () =>
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`select * from observing_mode order by lower(name), id`).pipe(
          Effect.orDie,
          Effect.flatMap(decodeModes)
        )
    )
    .handle(
      "getObservingMode",
      ({ path }) =>
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`select * from observing_mode where id = ${path.id}`).pipe(
          Effect.orDie,
          Effect.flatMap(one("ObservingMode", path.id, decodeMode))
        )
    )
    .handle("listPrograms", () =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`select p.* from observing_program p where ${Rules.programScope(sql, p)} order by p.name, p.id`.pipe(
          Effect.orDie
        )
        return yield* decodePrograms(rows)
      }))
    .handle("getProgram", ({ path }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`select p.* from observing_program p where p.id = ${path.id} and ${Rules.programScope(sql, p)}`.pipe(
          Effect.orDie
        )
        return yield* one("ObservingProgram", path.id, decodeProgram)(rows)
      }))
    .handle("updateProgram", ({ path, payload }) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const changes = Object.fromEntries(Object.entries(payload).filter(([, v]) => v !== undefined))
        const rows = Object.keys(changes).length === 0
          ? yield* sql`select * from observing_program where id = ${path.id}`.pipe(Effect.orDie)
          : yield* sql`update observing_program set ${sql.update(changes)} where id = ${path.id} returning *`.pipe(
            Effect.catchTag("SqlError", Rules.refusedChange("ObservingProgram"))
          )
        const program = yield* one("ObservingProgram", path.id, decodeProgram)(rows)
        yield* Effect.logInfo(
          `observing program ${program.name}: ${JSON.stringify(changes)} (by ${(yield* ApiSecurity.CurrentAccount).name})`
        )
        return program
      }))
    .handle("createSubProgram", ({ payload }) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const program = yield* sql`select 1 from observing_program where id = ${payload.observingProgramId}`.pipe(Effect.orDie)
        if (program.length === 0) {
          return yield* new ApiErrors.Unprocessable({
            reason: "UnknownReference",
            field: "observingProgramId",
            message: `there is no observing program ${payload.observingProgramId}`
          })
        }
        return yield* Repositories.subObservingPrograms.insert({
          observingProgramId: payload.observingProgramId as Ids.ObservingProgramId,
          name: payload.name,
          title: payload.title ?? ""
        }).pipe(Effect.catchTags({
          ConstraintError: Rules.refused("SubObservingProgram", payload.name, "observingProgramId"),
          SqlError: Rules.refused("SubObservingProgram", payload.name, "observingProgramId")
        }))
      }))
    .handle("listSubPrograms", ({ urlParams: q }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const where: Array<Fragment> = [
          sql`s.observing_program_id in (select p.id from observing_program p where ${Rules.programScope(sql, p)})`
        ]
        if (q.programId !== undefined) where.push(sql`s.observing_program_id = ${q.programId}`)
        const rows = yield* sql`select s.* from sub_observing_program s where ${sql.and(where)} order by s.name, s.id`.pipe(Effect.orDie)
        return yield* decodeSubPrograms(rows)
      }))
    .handle("getSubProgram", ({ path }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`select s.* from sub_observing_program s where s.id = ${path.id}
          and s.observing_program_id in (select p.id from observing_program p where ${Rules.programScope(sql, p)})`.pipe(Effect.orDie)
        return yield* one("SubObservingProgram", path.id, decodeSubProgram)(rows)
      }))
    .handle(
      "getInstrumentModule",
      ({ path }) =>
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`select * from instrument_module where id = ${path.id}`).pipe(
          Effect.orDie,
          Effect.flatMap(one("InstrumentModule", path.id, decodeModule))
        )
    )
    .handle("updateInstrumentModule", ({ path, payload }) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const changes = Rules.moduleColumns(payload)
        const rows = Object.keys(changes).length === 0
          ? yield* sql`select * from instrument_module where id = ${path.id}`.pipe(Effect.orDie)
          : yield* sql`update instrument_module set ${sql.update(changes)} where id = ${path.id} returning *`.pipe(
            Effect.catchTag("SqlError", Rules.refusedChange("InstrumentModule"))
          )
        return yield* one("InstrumentModule", path.id, decodeModule)(rows)
      }))
    .handle("getObsUnit", ({ path }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`select o.* from obs_unit o where o.id = ${path.id} and ${Access.obsUnitScope(sql, p)}`.pipe(Effect.orDie)
        return yield* one("ObsUnit", path.id, decodeObsUnit)(rows)
      }))
    .handle("updateObsUnit", ({ path, payload }) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const found = yield* sql<{ observingProgramId: string }>`select observing_program_id from obs_unit where id = ${path.id}`.pipe(
          Effect.orDie
        )
        if (found.length === 0) return yield* Access.notFound("ObsUnit", path.id)
        yield* Rules.checkLinks(found[0].observingProgramId, payload)
        const changes = Object.fromEntries(Object.entries(payload).filter(([, v]) => v !== undefined))
        const rows = Object.keys(changes).length === 0
          ? yield* sql`select * from obs_unit where id = ${path.id}`.pipe(Effect.orDie)
          : yield* sql`update obs_unit set ${sql.update(changes)} where id = ${path.id} returning *`.pipe(
            Effect.catchTag("SqlError", Rules.refusedChange("ObsUnit"))
          )
        return yield* one("ObsUnit", path.id, decodeObsUnit)(rows)
      }))
    .handle("getPublisher", () => ObsCorePublisher.read)
    .handle("updatePublisher", ({ payload }) =>
      Effect.gen(function* () {
        const stored = yield* ObsCorePublisher.write(payload).pipe(
          Effect.catchTag("PublisherError", (e) => new ApiErrors.Unprocessable({ reason: "Invalid", field: e.setting, message: e.message }))
        )
        yield* Effect.logInfo(`ObsCore publisher set to ${JSON.stringify(stored)} by ${(yield* ApiSecurity.CurrentAccount).name}`)
        return stored
      })))
