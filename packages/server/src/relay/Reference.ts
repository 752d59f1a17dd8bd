/**
 * The reference data a telescope-side relay checks filings and tokens against while the link to
 * the main is down: ObsUnits (which name the instrument), instrument modules, data locations,
 * accounts with their grants, and API tokens as their SHA-256 hashes (never secrets). The main
 * serves it at `GET /api/v1/relay/reference` to admin tokens; the relay pulls it every sync
 * interval and keeps the last copy in its own store, so it works after a restart offline.
 *
 * The route sits beside the contract rather than in it: it is the relay's private channel to the
 * main (token hashes), not part of the public API that instruments and scientists call.
 */
import { Accounts, ApiErrors } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { authenticate } from "../auth/Authentication.js"

/** The path of the reference endpoint at the main. */
export const path = "/api/v1/relay/reference"

/** An ObsUnit as the relay needs it: which instrument files for it. */
export const ObsUnitRef = Schema.Struct({ id: Schema.String, instrumentId: Schema.String })

/** An instrument module by name, as filings name them. */
export const ModuleRef = Schema.Struct({ id: Schema.String, instrumentId: Schema.String, name: Schema.String })

/** A data location by name and type (files are filed at SOURCE). */
export const LocationRef = Schema.Struct({ id: Schema.String, name: Schema.String, type: Schema.String })

/** An account, its role and grants. */
export const AccountRef = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  role: Accounts.Role,
  active: Schema.Boolean,
  instrumentIds: Schema.Array(Schema.String),
  programIds: Schema.Array(Schema.String)
})

/** A token as the ops-db stores it: public prefix, hash of the secret, validity. */
export const TokenRef = Schema.Struct({
  prefix: Schema.String,
  secretSha256: Schema.String,
  accountId: Schema.String,
  expiresAt: Schema.NullOr(Schema.String),
  revokedAt: Schema.NullOr(Schema.String)
})

/** Everything the relay pulls in one answer, stamped with the main's clock. */
export const Reference = Schema.Struct({
  generatedAt: Schema.String,
  obsUnits: Schema.Array(ObsUnitRef),
  modules: Schema.Array(ModuleRef),
  locations: Schema.Array(LocationRef),
  accounts: Schema.Array(AccountRef),
  tokens: Schema.Array(TokenRef)
}).annotations({ identifier: "RelayReference" })
/** The reference data. */
export type Reference = typeof Reference.Type

/** Reads the reference data from the ops-db. */
export const load = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [now] = yield* sql<{ now: Date }>`select now() as now`
  const obsUnits = yield* sql<{ id: string; instrumentId: string }>`select id, instrument_id from obs_unit`
  const modules = yield* sql<{ id: string; instrumentId: string; name: string }>`select id, instrument_id, name from instrument_module`
  const locations = yield* sql<{ id: string; name: string; type: string }>`select id, name, type::text as type from data_location`
  const accounts = yield* sql<
    { id: string; name: string; role: Accounts.Role; active: boolean; instrumentIds: Array<string>; programIds: Array<string> }
  >`
    select a.id, a.name, a.role::text as role, a.active,
      coalesce((select array_agg(instrument_id::text) from instrument_access i where i.account_id = a.id), '{}') as instrument_ids,
      coalesce((select array_agg(observing_program_id::text) from program_access p where p.account_id = a.id), '{}') as program_ids
    from account a`
  const tokens = yield* sql<{ prefix: string; secretSha256: string; accountId: string; expiresAt: Date | null; revokedAt: Date | null }>`
    select prefix, secret_sha256, account_id, expires_at, revoked_at from api_token`
  const iso = (d: Date | null) => (d === null ? null : d.toISOString())
  return {
    generatedAt: now.now.toISOString(),
    obsUnits,
    modules,
    locations,
    accounts,
    tokens: tokens.map((t) => ({ ...t, expiresAt: iso(t.expiresAt), revokedAt: iso(t.revokedAt) }))
  } satisfies Reference
})

const refuse = (status: number, body: object) => HttpServerResponse.unsafeJson(body, { status })

/** `GET /api/v1/relay/reference` at the main: admin tokens only (a relay's token). */
export const routeLayer = HttpApiBuilder.Router.use((router) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    router.get(
      path,
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const auth = request.headers.authorization ?? ""
        const token = auth.toLowerCase().startsWith("bearer ") ? auth.slice(7).trim() : ""
        const principal = yield* authenticate(token).pipe(Effect.either)
        if (principal._tag === "Left") {
          return refuse(401, { _tag: "Unauthorized", reason: principal.left.reason, message: principal.left.message })
        }
        if (principal.right.role !== "admin") {
          const e = new ApiErrors.Forbidden({
            reason: "Role",
            allowedRoles: ["admin"],
            message: `${path} is for a relay's admin token; the account ${principal.right.name} is ${principal.right.role}`
          })
          return refuse(403, { _tag: e._tag, reason: e.reason, allowedRoles: e.allowedRoles, message: e.message })
        }
        return HttpServerResponse.unsafeJson(Schema.encodeSync(Reference)(yield* load))
      }).pipe(Effect.orDie, Effect.provideService(SqlClient.SqlClient, sql))
    ))
)
