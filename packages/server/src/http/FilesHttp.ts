/** The files group: RawDataFiles within the caller's scope. */
import { Api, ApiSecurity, RawData } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Access from "./Access.js"
import { page } from "./Paging.js"
import { decoder } from "./Rows.js"

const decode = decoder(RawData.RawDataFile)

/** The files group's handlers. */
export const FilesHttpLive = HttpApiBuilder.group(Api.Api, "files", (handlers) =>
  handlers
    .handle("list", ({ urlParams: q }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const where: Array<Fragment> = [Access.observationScope(sql, p, sql`t.executed_obs_unit_id`)]
        if (q.observationId !== undefined) where.push(sql`t.executed_obs_unit_id = ${q.observationId}`)
        if (q.moduleId !== undefined) where.push(sql`t.instrument_module_id = ${q.moduleId}`)
        if (q.packageId !== undefined) where.push(sql`t.raw_data_package_id = ${q.packageId}`)
        if (q.state !== undefined) where.push(sql`t.state = ${q.state}`)
        if (q.kind !== undefined) where.push(q.kind === "raw" ? sql`t.data_product_id is null` : sql`t.data_product_id is not null`)
        return yield* page({ table: "raw_data_file", orderBy: "filed_at", where, limit: q.limit, cursor: q.cursor, decode })
      }))
    .handle("get", ({ path }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`select t.* from raw_data_file t where t.id = ${path.id} and ${
          Access.observationScope(sql, p, sql`t.executed_obs_unit_id`)
        }`.pipe(Effect.orDie)
        if (rows.length === 0) return yield* Access.notFound("RawDataFile", path.id)
        return (yield* decode(rows))[0]
      })))
