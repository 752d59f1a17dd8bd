/** The tokens group: who am I, and the admin's token administration (see `auth/Tokens`). */
import { Api, ApiErrors, ApiSecurity } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Tokens from "../auth/Tokens.js"
import { ServerConfig } from "../ServerConfig.js"
import * as Access from "./Access.js"

/** The tokens group's handlers. */
export const TokensHttpLive = HttpApiBuilder.group(Api.Api, "tokens", (handlers) =>
  handlers
    .handle("whoami", () =>
      Effect.map(ApiSecurity.CurrentAccount, (p) => ({
        accountId: p.accountId,
        account: p.name,
        role: p.role,
        instrumentIds: p.instrumentIds,
        programIds: p.programIds
      })))
    .handle("create", ({ payload }) =>
      Effect.gen(function* () {
        const account = yield* Tokens.findAccount(payload.account).pipe(Effect.orDie)
        if (Option.isNone(account)) {
          return yield* new ApiErrors.Unprocessable({
            reason: "UnknownReference",
            field: "account",
            message: `there is no account ${payload.account}; create it first`
          })
        }
        if (payload.expiresAt !== undefined && payload.expiresAt.getTime() <= Date.now()) {
          return yield* new ApiErrors.Unprocessable({
            reason: "OutOfRange",
            field: "expiresAt",
            message: "the expiry must be in the future"
          })
        }
        if (payload.expiresAt !== undefined && payload.neverExpires === true) {
          return yield* new ApiErrors.Unprocessable({
            reason: "Invalid",
            field: "neverExpires",
            message: "give an expiry or ask for a token that never expires, not both"
          })
        }
        const p = yield* ApiSecurity.CurrentAccount
        const { topology } = yield* ServerConfig
        const expiresAt = payload.neverExpires === true
          ? undefined
          : payload.expiresAt ?? Tokens.defaultExpiry(topology.policy.tokenLifetime)
        const sql = yield* SqlClient.SqlClient
        const created = yield* sql.withTransaction(
          Tokens.issue({ accountId: account.value.id, label: payload.label, expiresAt, actor: p.name })
        ).pipe(Effect.orDie)
        yield* Effect.logInfo(`token ${created.info.prefix} created for ${payload.account} by ${p.name}`)
        return created
      }))
    .handle("list", ({ urlParams }) => Tokens.list(urlParams.account).pipe(Effect.orDie))
    .handle("revoke", ({ path }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const revoked = yield* sql.withTransaction(Tokens.revoke(path.id, p.name)).pipe(Effect.orDie)
        if (Option.isNone(revoked)) return yield* Access.notFound("ApiToken", path.id)
        return revoked.value
      })))
