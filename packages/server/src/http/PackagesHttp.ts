/** The packages group: RawDataPackages and their journey, within the caller's scope. */
import { Api, ApiSecurity, RawData, Status } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Access from "./Access.js"
import { page } from "./Paging.js"
import { decoder } from "./Rows.js"

const decodeRows = decoder(RawData.RawDataPackage)
const decode = (rows: ReadonlyArray<unknown>) =>
  Effect.map(decodeRows(rows), (packages) => packages.map((p) => ({ ...p, journey: Status.journey(p.status) })))

/** The statuses of each journey, for filtering by journey in SQL. */
const statusesOf = (journey: Status.PackageJourney) => Status.statuses.filter((s) => Status.journey(s) === journey)

/** The packages group's handlers. */
export const PackagesHttpLive = HttpApiBuilder.group(Api.Api, "packages", (handlers) =>
  handlers
    .handle("list", ({ urlParams: q }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const where: Array<Fragment> = [Access.observationScope(sql, p, sql`t.executed_obs_unit_id`)]
        if (q.observationId !== undefined) where.push(sql`t.executed_obs_unit_id = ${q.observationId}`)
        if (q.moduleId !== undefined) where.push(sql`t.instrument_module_id = ${q.moduleId}`)
        if (q.status !== undefined) where.push(sql`t.status = ${q.status}`)
        if (q.journey !== undefined) where.push(sql`t.status::text in ${sql.in(statusesOf(q.journey))}`)
        return yield* page({ table: "raw_data_package", orderBy: "created_at", where, limit: q.limit, cursor: q.cursor, decode })
      })
    )
    .handle("get", ({ path }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`select t.* from raw_data_package t where t.id = ${path.id} and ${Access.observationScope(sql, p, sql`t.executed_obs_unit_id`)}`.pipe(Effect.orDie)
        if (rows.length === 0) return yield* Access.notFound("RawDataPackage", path.id)
        return (yield* decode(rows))[0]
      })
    )
)
