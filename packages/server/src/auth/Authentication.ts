/**
 * The server side of `ApiSecurity.Authentication`: a bearer token is looked up by its public
 * prefix, its secret compared by SHA-256 in constant time, the account's role checked against
 * the roles the endpoint declares in the contract, and the caller's grants loaded for the
 * handlers. All of it before the request body is read, so a refused caller costs little.
 */
import { Accounts, Api, ApiErrors, ApiSecurity, type Ids } from "@ccat/core"
import type * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { timingSafeEqual } from "node:crypto"

/**
 * The principal, if the route being served allows its role (by `roles`, from `roleTable`); else
 * Forbidden naming the roles the route is for. The main and the relay check roles by this one rule.
 */
export const authorizeRoute = (roles: ReadonlyMap<string, ReadonlyArray<Accounts.Role>>, principal: ApiSecurity.Principal) =>
  Effect.gen(function* () {
    const { route } = yield* HttpRouter.RouteContext
    const allowed = roles.get(`${route.method} ${route.path}`) ?? []
    if (!allowed.includes(principal.role)) {
      return yield* new ApiErrors.Forbidden({
        reason: "Role",
        allowedRoles: allowed,
        message: `${route.method} ${route.path} is for ${
          allowed.join(", ") || "nobody"
        }; the account ${principal.name} is ${principal.role}`
      })
    }
    return principal
  })

/** `METHOD /path/:param` → the roles a contract (the main's by default) declares for that endpoint. */
export const roleTable = (
  api: { readonly groups: Readonly<Record<string, { readonly endpoints: object }>> } = Api.Api
): ReadonlyMap<string, ReadonlyArray<Accounts.Role>> => {
  const table = new Map<string, ReadonlyArray<Accounts.Role>>()
  for (const group of Object.values(api.groups)) {
    for (const endpoint of Object.values(group.endpoints) as Array<HttpApiEndpoint.HttpApiEndpoint.AnyWithProps>) {
      const roles = ApiSecurity.rolesOf(endpoint)
      if (roles !== undefined) table.set(`${endpoint.method} ${endpoint.path}`, roles)
    }
  }
  return table
}

interface TokenRow {
  readonly tokenId: string
  readonly secretSha256: string
  readonly expiresAt: Date | null
  readonly revokedAt: Date | null
  readonly accountId: string
  readonly name: string
  readonly role: Accounts.Role
  readonly active: boolean
}

const unauthorized = (reason: typeof ApiErrors.UnauthorizedReason.Type, message: string) => new ApiErrors.Unauthorized({ reason, message })

/** Resolves a presented token to the caller, or fails with the reason it is not usable. */
export const authenticate = Effect.fn("Authentication.authenticate")(function* (token: string) {
  if (token === "") {
    return yield* unauthorized(
      "MissingToken",
      "send an API token as `Authorization: Bearer ccat_...` (an admin creates one with `ccat token create`)"
    )
  }
  const parsed = Accounts.parseToken(token)
  if (parsed === undefined) {
    return yield* unauthorized("MalformedToken", "the bearer token is not a CCAT API token (expected ccat_<prefix>_<secret>)")
  }
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<TokenRow>`
    select t.id as token_id, t.secret_sha256, t.expires_at, t.revoked_at, a.id as account_id, a.name, a.role, a.active
    from api_token t join account a on a.id = t.account_id
    where t.prefix = ${parsed.prefix}`.pipe(Effect.orDie)
  const row = rows[0]
  const presented = Buffer.from(yield* Accounts.hashSecret(parsed.secret), "hex")
  // Compare even when no row matched, so the answer takes as long either way.
  const stored = Buffer.from(row?.secretSha256 ?? "0".repeat(64), "hex")
  if (row === undefined || !timingSafeEqual(presented, stored)) {
    return yield* unauthorized("UnknownToken", "the API token is not known; ask an admin for a new one")
  }
  if (row.revokedAt !== null) {
    return yield* unauthorized("Revoked", `the API token ${parsed.prefix} was revoked; ask an admin for a new one`)
  }
  if (row.expiresAt !== null && row.expiresAt.getTime() <= Date.now()) {
    return yield* unauthorized(
      "Expired",
      `the API token ${parsed.prefix} expired at ${row.expiresAt.toISOString()}; ask an admin for a new one`
    )
  }
  if (!row.active) return yield* unauthorized("AccountDisabled", `the account ${row.name} is disabled`)
  const [instruments, programs] = yield* Effect.all([
    sql<{ id: string }>`select instrument_id as id from instrument_access where account_id = ${row.accountId}`,
    sql<{ id: string }>`select observing_program_id as id from program_access where account_id = ${row.accountId}`,
    // Marking use at most once a minute keeps reads from writing on every request.
    sql`update api_token set last_used_at = now()
        where id = ${row.tokenId} and (last_used_at is null or last_used_at < now() - interval '1 minute')`
  ]).pipe(Effect.orDie)
  const principal: ApiSecurity.Principal = {
    accountId: row.accountId as Ids.AccountId,
    name: row.name,
    role: row.role,
    instrumentIds: instruments.map((r) => r.id as Ids.InstrumentId),
    programIds: programs.map((r) => r.id as Ids.ObservingProgramId)
  }
  return principal
})

/** The `Authentication` middleware on the ops-db. */
export const AuthenticationLive = Layer.effect(
  ApiSecurity.Authentication,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const roles = roleTable()
    return ApiSecurity.Authentication.of({
      bearer: (token) =>
        Effect.gen(function* () {
          const principal = yield* authenticate(Redacted.value(token)).pipe(Effect.provideService(SqlClient.SqlClient, sql))
          return yield* authorizeRoute(roles, principal)
        })
    })
  })
)
