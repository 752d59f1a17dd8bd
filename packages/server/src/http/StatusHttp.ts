/**
 * The status group: the system's state in one consistent snapshot (`StatusSnapshot`: one
 * read-only repeatable-read transaction, maintained counts and live rows only), and the
 * event-log history of one item. Only reads.
 */
import { Api, ApiErrors, ApiPage, ApiSecurity, EventLog, StatusApi } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Access from "./Access.js"
import * as EventHistory from "./EventHistory.js"
import { decoder } from "./Rows.js"
import { snapshot } from "./StatusSnapshot.js"

/**
 * Where each entity kind's rows live, and the condition under which a non-operator may see one
 * (`null`: operators and admins only, as the transfers and copies groups are).
 */
const eventScope = (
  sql: SqlClient.SqlClient,
  p: ApiSecurity.Principal,
  entity: EventLog.LoggedEntityKind
): { table: string; visible: Fragment | null } => {
  switch (entity) {
    case "ExecutedObsUnit":
      return { table: "executed_obs_unit", visible: Access.observationScope(sql, p, sql`t.id`) }
    case "RawDataFile":
      return { table: "raw_data_file", visible: Access.observationScope(sql, p, sql`t.executed_obs_unit_id`) }
    case "RawDataPackage":
      return { table: "raw_data_package", visible: Access.observationScope(sql, p, sql`t.executed_obs_unit_id`) }
    case "StagingRequest":
      return { table: "staging_request", visible: p.role === "scientist" ? sql`t.account_id = ${p.accountId}` : null }
    case "DataTransferPackage":
      return { table: "data_transfer_package", visible: null }
    case "DataTransfer":
      return { table: "data_transfer", visible: null }
    case "PhysicalCopy":
      return { table: "physical_copy", visible: null }
    case "Account":
      return { table: "account", visible: null }
    case "ApiToken":
      return { table: "api_token", visible: null }
    case "Site":
      return { table: "site", visible: null }
    case "DataLocation":
      return { table: "data_location", visible: null }
    case "Route":
      return { table: "route", visible: null }
    case "AlertIncident":
      return { table: "alert_incident", visible: null }
  }
}

const decodeEvents = decoder(EventLog.EventLogEntry)
const EventCursor = Schema.parseJson(Schema.Tuple(Schema.Int))

/** One page of an item's events, oldest first, after the event the cursor names. */
const events = (p: ApiSecurity.Principal, q: typeof StatusApi.EventFilter.Type) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const scope = eventScope(sql, p, q.entity)
    const visible = Access.seesEverything(p) ? sql`true` : scope.visible ?? sql`false`
    const found = yield* sql<{ born: Date }>`
      select t.${sql(EventHistory.bornColumn(scope.table))} as born from ${sql(scope.table)} t where t.id = ${q.id} and ${visible}`.pipe(
      Effect.orDie
    )
    if (found.length === 0) return yield* Access.notFound(q.entity, q.id)
    let after = 0
    if (q.cursor !== undefined) {
      const decoded = yield* Schema.decodeUnknown(EventCursor)(Buffer.from(q.cursor, "base64url").toString("utf8")).pipe(
        Effect.mapError(() =>
          new ApiErrors.Unprocessable({
            reason: "Invalid",
            field: "cursor",
            message: "the cursor is not one this server gave out; start again without it"
          })
        )
      )
      after = decoded[0]
    }
    const limit = q.limit ?? ApiPage.defaultLimit
    const rows = yield* EventHistory.page(sql, { entity: q.entity, id: q.id, born: found[0]!.born, after, limit }).pipe(Effect.orDie)
    const kept = rows.slice(0, limit)
    const items = yield* decodeEvents(kept)
    const last = kept[kept.length - 1]
    const nextCursor = rows.length > limit && last !== undefined
      ? Buffer.from(JSON.stringify([Number(last.id)])).toString("base64url")
      : null
    return { items, nextCursor }
  })

/** The status group's handlers. */
export const StatusHttpLive = HttpApiBuilder.group(Api.Api, "status", (handlers) =>
  handlers
    .handle(
      "get",
      ({ urlParams: q }) =>
        Effect.flatMap(ApiSecurity.CurrentAccount, (p) => snapshot(p, q.failedLimit ?? StatusApi.defaultFailedLimit)).pipe(
          Effect.orDie,
          Effect.withSpan("StatusHttp.snapshot")
        )
    )
    .handle(
      "events",
      ({ urlParams: q }) => Effect.flatMap(ApiSecurity.CurrentAccount, (p) => events(p, q)).pipe(Effect.withSpan("StatusHttp.events"))
    ))
