/**
 * The staging group: a scientist asks for observations or packages of its programs at a
 * PROCESSING location; the request and its items are created in one transaction (with the
 * request's creation event) and the staging workers take it from there.
 */
import { Api, ApiErrors, ApiSecurity, Staging } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Access from "./Access.js"
import { page } from "./Paging.js"
import { decoder } from "./Rows.js"

/** How long staged data stays when the request does not say. */
export const defaultExpiryDays = 7

const decodeRequests = decoder(Staging.StagingRequest)
const decodeItems = decoder(Staging.StagingRequestItem)

/** Requests with their items. */
const withItems = (rows: ReadonlyArray<unknown>) =>
  Effect.gen(function* () {
    const requests = yield* decodeRequests(rows)
    if (requests.length === 0) return []
    const sql = yield* SqlClient.SqlClient
    const items = yield* decodeItems(
      yield* sql`select * from staging_request_item where staging_request_id in ${sql.in(requests.map((r) => r.id))} order by id`.pipe(Effect.orDie)
    )
    return requests.map((r) => ({ ...r, items: items.filter((i) => i.stagingRequestId === r.id) }))
  })

const unprocessable = (reason: ApiErrors.Unprocessable["reason"], field: string, message: string) =>
  new ApiErrors.Unprocessable({ reason, field, message })

/** Which of these observation (or package) ids exist, and which the caller may see. */
const checkVisible = (p: ApiSecurity.Principal, field: string, ids: ReadonlyArray<string>, table: "executed_obs_unit" | "raw_data_package") =>
  Effect.gen(function* () {
    if (ids.length === 0) return
    const sql = yield* SqlClient.SqlClient
    const column = table === "executed_obs_unit" ? sql`t.id` : sql`t.executed_obs_unit_id`
    const rows = yield* sql<{ id: string; visible: boolean }>`
      select t.id, (${Access.observationScope(sql, p, column)}) as visible from ${sql(table)} t where t.id in ${sql.in(ids)}`.pipe(Effect.orDie)
    const found = new Map(rows.map((r) => [r.id, r.visible]))
    for (const [i, id] of ids.entries()) {
      const visible = found.get(id)
      if (visible === undefined) return yield* unprocessable("UnknownReference", `${field}[${i}]`, `there is no ${table === "executed_obs_unit" ? "observation" : "package"} ${id}`)
      if (!visible) {
        return yield* new ApiErrors.Forbidden({ reason: "Program", message: `${field}[${i}]: ${id} belongs to an observing program the account ${p.name} may not access` })
      }
    }
  })

/** The staging group's handlers. */
export const StagingHttpLive = HttpApiBuilder.group(Api.Api, "staging", (handlers) =>
  handlers
    .handle("create", ({ payload }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const observationIds = [...new Set(payload.observationIds ?? [])]
        const packageIds = [...new Set(payload.packageIds ?? [])]
        if (observationIds.length + packageIds.length === 0) {
          return yield* unprocessable("Invalid", "observationIds", "name at least one observation or package to stage")
        }
        const locations = yield* sql<{ id: string; type: string }>`select id, type from data_location where name = ${payload.location}`.pipe(Effect.orDie)
        if (locations.length === 0) return yield* unprocessable("UnknownReference", "location", `there is no data location named ${payload.location}`)
        if (locations[0].type !== "PROCESSING") {
          return yield* unprocessable("WrongLocationType", "location", `${payload.location} is a ${locations[0].type} location; data is staged at a PROCESSING location`)
        }
        const expiresAt = payload.expiresAt ?? new Date(Date.now() + defaultExpiryDays * 86_400_000)
        if (expiresAt.getTime() <= Date.now()) return yield* unprocessable("OutOfRange", "expiresAt", "the expiry must be in the future")
        yield* checkVisible(p, "observationIds", observationIds, "executed_obs_unit")
        yield* checkVisible(p, "packageIds", packageIds, "raw_data_package")
        const rows = yield* sql.withTransaction(
          Effect.gen(function* () {
            const created = yield* sql<{ id: string; status: string }>`
              insert into staging_request ${sql.insert({ accountId: p.accountId, dataLocationId: locations[0].id, expiresAt })} returning *`
            const id = created[0].id
            yield* sql`insert into staging_request_item ${sql.insert([
              ...observationIds.map((o) => ({ stagingRequestId: id, executedObsUnitId: o, rawDataPackageId: null })),
              ...packageIds.map((k) => ({ stagingRequestId: id, executedObsUnitId: null, rawDataPackageId: k }))
            ])}`
            yield* sql`insert into event_log ${sql.insert({ entityKind: "StagingRequest", entityId: id, fromState: null, toState: created[0].status, actor: p.name, details: "{}" })}`
            return created
          })
        ).pipe(Effect.orDie)
        return (yield* withItems(rows))[0]
      })
    )
    .handle("list", ({ urlParams: q }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const where: Array<Fragment> = []
        if (!Access.seesEverything(p)) where.push(sql`t.account_id = ${p.accountId}`)
        if (q.status !== undefined) where.push(sql`t.status = ${q.status}`)
        return yield* page({ table: "staging_request", orderBy: "created_at", where, limit: q.limit, cursor: q.cursor, decode: withItems })
      })
    )
    .handle("get", ({ path }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const mine = Access.seesEverything(p) ? sql`true` : sql`account_id = ${p.accountId}`
        const rows = yield* sql`select * from staging_request where id = ${path.id} and ${mine}`.pipe(Effect.orDie)
        if (rows.length === 0) return yield* Access.notFound("StagingRequest", path.id)
        return (yield* withItems(rows))[0]
      })
    )
)
