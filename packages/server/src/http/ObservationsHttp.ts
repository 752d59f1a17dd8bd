/**
 * The observations group: filing (see `Filing`), and reading observations within the caller's
 * scope (see `Access`).
 */
import { Api, ApiSecurity, Observational } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiError from "@effect/platform/HttpApiError"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Access from "./Access.js"
import * as Filing from "./Filing.js"
import * as FilingAnswer from "./FilingAnswer.js"
import * as FilingInput from "./FilingInput.js"
import { page } from "./Paging.js"
import { decoder } from "./Rows.js"

const decode = decoder(Observational.ExecutedObsUnit)

/** The observations group's handlers. */
export const ObservationsHttpLive = HttpApiBuilder.group(Api.Api, "observations", (handlers) =>
  handlers
    // Filing reads and answers its bodies itself: see `FilingInput` and `FilingAnswer`.
    .handleRaw("file", () =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const payload = yield* Effect.flatMap(FilingInput.body, FilingInput.fileObservation).pipe(
          Effect.catchTag("ParseError", HttpApiError.HttpApiDecodeError.refailParseError)
        )
        const filed = yield* Filing.fileObservation(p, payload)
        return yield* FilingAnswer.filedObservation(filed.observation, filed.files)
      }))
    .handleRaw("addFiles", ({ path }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const payload = yield* Effect.flatMap(FilingInput.body, FilingInput.addFiles).pipe(
          Effect.catchTag("ParseError", HttpApiError.HttpApiDecodeError.refailParseError)
        )
        const filed = yield* Filing.addFiles(p, path.id, payload)
        return FilingAnswer.filedFiles(filed.files)
      }))
    .handle("close", ({ path, payload }) => Effect.flatMap(ApiSecurity.CurrentAccount, (p) => Filing.closeObservation(p, path.id, payload)))
    .handle("list", ({ urlParams: q }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const where: Array<Fragment> = [sql`t.obs_unit_id in (select o.id from obs_unit o where ${Access.obsUnitScope(sql, p)})`]
        if (q.obsUnitId !== undefined) where.push(sql`t.obs_unit_id = ${q.obsUnitId}`)
        if (q.programId !== undefined) {
          where.push(sql`t.obs_unit_id in (select id from obs_unit where observing_program_id = ${q.programId})`)
        }
        if (q.instrumentId !== undefined) {
          where.push(sql`t.obs_unit_id in (select id from obs_unit where instrument_id = ${q.instrumentId})`)
        }
        if (q.status !== undefined) where.push(sql`t.status = ${q.status}`)
        if (q.quality !== undefined) where.push(sql`t.quality = ${q.quality}`)
        if (q.startFrom !== undefined) where.push(sql`t.start_at >= ${q.startFrom}`)
        if (q.startTo !== undefined) where.push(sql`t.start_at < ${q.startTo}`)
        return yield* page({ table: "executed_obs_unit", orderBy: "start_at", where, limit: q.limit, cursor: q.cursor, decode })
      }))
    .handle("get", ({ path }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql`select t.* from executed_obs_unit t where t.id = ${path.id} and ${
          Access.observationScope(sql, p, sql`t.id`)
        }`.pipe(Effect.orDie)
        if (rows.length === 0) return yield* Access.notFound("ExecutedObsUnit", path.id)
        return (yield* decode(rows))[0]
      })))
