/**
 * API tokens: admins hand them out and revoke them; anyone may ask who their token says they
 * are. A token's secret is shown once, in the answer that creates it; the ops-db keeps only its
 * SHA-256, so a lost token is revoked and replaced, never recovered.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { Role } from "./Accounts.js"
import { NotFound, Unprocessable } from "./ApiErrors.js"
import { allow, Authentication } from "./ApiSecurity.js"
import * as Ids from "./Ids.js"
import { strict } from "./ApiPayload.js"

/** A token as listed: never its secret or hash. */
export const TokenView = Schema.Struct({
  id: Ids.ApiTokenId,
  accountId: Ids.AccountId,
  account: Schema.String,
  role: Role,
  label: Schema.String,
  prefix: Schema.String,
  expiresAt: Schema.NullOr(Schema.DateTimeUtc),
  revokedAt: Schema.NullOr(Schema.DateTimeUtc),
  lastUsedAt: Schema.NullOr(Schema.DateTimeUtc),
  createdAt: Schema.DateTimeUtc
}).annotations({ identifier: "TokenView" })
/** A token as listed. */
export type TokenView = typeof TokenView.Type

/** A token for an existing account. */
export const CreateToken = Schema.Struct({
  /** The account's name. */
  account: Schema.String,
  label: Schema.optional(Schema.String.pipe(Schema.maxLength(200))),
  /** When the token stops working; by default after the server's `policy.tokenLifetime`. */
  expiresAt: Schema.optional(Schema.Date),
  /** A token that never expires (a service's, such as a relay's): only when asked for by name. */
  neverExpires: Schema.optional(Schema.Boolean)
}).annotations({ ...strict, identifier: "CreateToken" })

/** A new token: `token` is the only time the secret is shown. */
export const CreatedToken = Schema.Struct({
  token: Schema.String,
  info: TokenView
}).annotations({ identifier: "CreatedToken" })

/** Who a token belongs to and what it may do. */
export const WhoAmI = Schema.Struct({
  accountId: Ids.AccountId,
  account: Schema.String,
  role: Role,
  instrumentIds: Schema.Array(Ids.InstrumentId),
  programIds: Schema.Array(Ids.ObservingProgramId)
}).annotations({ identifier: "WhoAmI" })

/** Token administration. */
export class TokensApi extends HttpApiGroup.make("tokens")
  .add(
    HttpApiEndpoint.get("whoami", "/tokens/current")
      .addSuccess(WhoAmI)
      .pipe(allow(["instrument", "scientist", "operator", "admin"], "The account, role and grants of the calling token."))
  )
  .add(
    HttpApiEndpoint.post("create", "/tokens")
      .setPayload(CreateToken)
      .addSuccess(CreatedToken, { status: 201 })
      .addError(Unprocessable)
      .pipe(allow(["admin"], "Create a token for an account; the answer shows its secret, once."))
  )
  .add(
    HttpApiEndpoint.get("list", "/tokens")
      .setUrlParams(Schema.Struct({ account: Schema.optional(Schema.String) }))
      .addSuccess(Schema.Array(TokenView))
      .pipe(allow(["admin"], "Tokens, optionally of one account; never their secrets."))
  )
  .add(
    HttpApiEndpoint.del("revoke", "/tokens/:id")
      .setPath(Schema.Struct({ id: Ids.ApiTokenId }))
      .addSuccess(TokenView)
      .addError(NotFound)
      .pipe(allow(["admin"], "Revoke a token; it is refused from then on. Revoking twice is a no-op."))
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "API tokens.")
{}
