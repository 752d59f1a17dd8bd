/**
 * Tokens checked offline at the relay, against the token hashes and accounts last pulled from
 * the main: the same rules as the main (prefix, SHA-256 of the secret compared in constant time,
 * revoked, expired, account disabled, the endpoint's roles), so a token the main revoked stops
 * working here once the relay has synced (within its sync interval while the link is up).
 */
import { Accounts, ApiErrors, ApiSecurity, type Ids } from "@ccat/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import { timingSafeEqual } from "node:crypto"
import { authorizeRoute, roleTable } from "../auth/Authentication.js"
import type { Reference } from "./Reference.js"
import { RelayApi } from "./RelayApi.js"

/** The reference data the relay currently checks against (replaced by every sync). */
export class CurrentReference extends Context.Tag("@ccat/server/relay/CurrentReference")<CurrentReference, Ref.Ref<Reference>>() {}

const unauthorized = (reason: typeof ApiErrors.UnauthorizedReason.Type, message: string) => new ApiErrors.Unauthorized({ reason, message })

/** Resolves a token against the reference data, as the main's `authenticate` does against the ops-db. */
export const authenticateOffline = (reference: Reference, token: string) =>
  Effect.gen(function* () {
    if (token === "") return yield* unauthorized("MissingToken", "send an API token as `Authorization: Bearer ccat_...`")
    const parsed = Accounts.parseToken(token)
    if (parsed === undefined) {
      return yield* unauthorized("MalformedToken", "the bearer token is not a CCAT API token (expected ccat_<prefix>_<secret>)")
    }
    const row = reference.tokens.find((t) => t.prefix === parsed.prefix)
    const presented = Buffer.from(yield* Accounts.hashSecret(parsed.secret), "hex")
    const stored = Buffer.from(row?.secretSha256 ?? "0".repeat(64), "hex")
    if (row === undefined || stored.length !== presented.length || !timingSafeEqual(presented, stored)) {
      return yield* unauthorized(
        "UnknownToken",
        "the API token is not known to the relay (a token made at the main reaches the relay at its next sync)"
      )
    }
    if (row.revokedAt !== null) {
      return yield* unauthorized("Revoked", `the API token ${parsed.prefix} was revoked; ask an admin for a new one`)
    }
    if (row.expiresAt !== null && Date.parse(row.expiresAt) <= Date.now()) {
      return yield* unauthorized("Expired", `the API token ${parsed.prefix} expired at ${row.expiresAt}; ask an admin for a new one`)
    }
    const account = reference.accounts.find((a) => a.id === row.accountId)
    if (account === undefined || !account.active) {
      return yield* unauthorized("AccountDisabled", `the account of token ${parsed.prefix} is disabled`)
    }
    const principal: ApiSecurity.Principal = {
      accountId: account.id as Ids.AccountId,
      name: account.name,
      role: account.role,
      instrumentIds: account.instrumentIds as ReadonlyArray<Ids.InstrumentId>,
      programIds: account.programIds as ReadonlyArray<Ids.ObservingProgramId>
    }
    return principal
  })

/** The caller's scope for the relay's `Idempotency-Key` records, from the current reference data. */
export const accountScope = (reference: Ref.Ref<Reference>, authorization: string | undefined) =>
  Effect.gen(function* () {
    const auth = authorization ?? ""
    if (!auth.toLowerCase().startsWith("bearer ")) return Option.none<{ readonly scope: string }>()
    const principal = yield* authenticateOffline(yield* Ref.get(reference), auth.slice(7).trim()).pipe(Effect.option)
    return Option.map(principal, (p) => ({ scope: `account:${p.accountId}` }))
  })

/** The `Authentication` middleware of the relay, offline. */
export const layer = Layer.effect(
  ApiSecurity.Authentication,
  Effect.gen(function* () {
    const reference = yield* CurrentReference
    const roles = roleTable(RelayApi)
    return ApiSecurity.Authentication.of({
      bearer: (token) =>
        Effect.gen(function* () {
          const principal = yield* authenticateOffline(yield* Ref.get(reference), Redacted.value(token))
          return yield* authorizeRoute(roles, principal)
        })
    })
  })
)
