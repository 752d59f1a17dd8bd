/**
 * The locations group: sites, locations (without their driver configuration), physical copies,
 * and the operator's availability switches.
 */
import { Api, ApiErrors, ApiSecurity, EventLog, Storage } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Access from "./Access.js"
import { page } from "./Paging.js"
import { decoder } from "./Rows.js"

const decodeSites = decoder(Storage.Site)
const decodeCopies = decoder(Storage.PhysicalCopy)
const decodeLocations = (rows: ReadonlyArray<unknown>) =>
  Effect.map(decoder(Storage.DataLocation)(rows), (ls) => ls.map(({ driverConfig: _, ...view }) => view))

/** The locations group's handlers. */
export const LocationsHttpLive = HttpApiBuilder.group(Api.Api, "locations", (handlers) =>
  handlers
    .handle(
      "listSites",
      () =>
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`select * from site order by name`).pipe(Effect.orDie, Effect.flatMap(decodeSites))
    )
    .handle("list", ({ urlParams: q }) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const where: Array<Fragment> = []
        if (q.siteId !== undefined) where.push(sql`site_id = ${q.siteId}`)
        if (q.type !== undefined) where.push(sql`type = ${q.type}`)
        const rows = yield* sql`select * from data_location where ${sql.and(where)} order by site_id, priority, name`.pipe(Effect.orDie)
        return yield* decodeLocations(rows)
      }))
    .handle("get", ({ path }) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`select * from data_location where id = ${path.id}`.pipe(Effect.orDie)
        if (rows.length === 0) return yield* Access.notFound("DataLocation", path.id)
        return (yield* decodeLocations(rows))[0]
      }))
    .handle("setAvailability", ({ path, payload }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        if (payload.readable === undefined && payload.writable === undefined && payload.deletable === undefined) {
          return yield* new ApiErrors.Unprocessable({
            reason: "Invalid",
            field: "readable",
            message: "say which of readable, writable, deletable to change"
          })
        }
        // The switch and its event in one transaction; the old values (locked) tell a change from a repeat.
        const rows = yield* sql.withTransaction(
          Effect.gen(function* () {
            const before = yield* sql<EventLog.Availability>`
              select readable, writable, deletable from data_location where id = ${path.id} for update`
            if (before.length === 0) return []
            const after = yield* sql<Record<string, unknown> & EventLog.Availability>`
              update data_location set
                readable = coalesce(${payload.readable ?? null}::boolean, readable),
                writable = coalesce(${payload.writable ?? null}::boolean, writable),
                deletable = coalesce(${payload.deletable ?? null}::boolean, deletable),
                updated_at = now()
              where id = ${path.id} returning *`
            const from = EventLog.availability(before[0]), to = EventLog.availability(after[0])
            if (from !== to) {
              yield* EventLog.append({
                kind: "DataLocation",
                id: path.id,
                from,
                to,
                actor: p.name,
                details: { action: "availability", ...(payload.reason === undefined ? {} : { reason: payload.reason }) }
              })
            }
            return after
          })
        ).pipe(Effect.orDie)
        if (rows.length === 0) return yield* Access.notFound("DataLocation", path.id)
        const [location] = yield* decodeLocations(rows)
        yield* Effect.logInfo(
          `location ${location.name} availability set by ${p.name}: read=${location.readable} write=${location.writable} delete=${location.deletable}` +
            (payload.reason === undefined ? "" : ` (${payload.reason})`)
        )
        return location
      }))
    .handle("listCopies", ({ urlParams: q }) =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const where: Array<Fragment> = []
        if (q.locationId !== undefined) where.push(sql`t.data_location_id = ${q.locationId}`)
        if (q.fileId !== undefined) where.push(sql`t.raw_data_file_id = ${q.fileId}`)
        if (q.packageId !== undefined) where.push(sql`t.raw_data_package_id = ${q.packageId}`)
        if (q.bundleId !== undefined) where.push(sql`t.data_transfer_package_id = ${q.bundleId}`)
        if (q.observationId !== undefined) {
          // The observation's copies found from its files, packages and bundles by their own indexes
          // (one set of ids), so the page reads those copies and not the copies table in page order.
          where.push(sql`t.id in (
            select c.id from raw_data_file f join physical_copy c on c.raw_data_file_id = f.id where f.executed_obs_unit_id = ${q.observationId}
            union all
            select c.id from raw_data_package p join physical_copy c on c.raw_data_package_id = p.id where p.executed_obs_unit_id = ${q.observationId}
            union all
            select c.id from raw_data_package p join data_transfer_package_member m on m.raw_data_package_id = p.id
              join physical_copy c on c.data_transfer_package_id = m.data_transfer_package_id where p.executed_obs_unit_id = ${q.observationId})`)
        }
        if (q.status !== undefined) where.push(sql`t.status = ${q.status}`)
        return yield* page({ table: "physical_copy", orderBy: "created_at", where, limit: q.limit, cursor: q.cursor, decode: decodeCopies })
      })))
