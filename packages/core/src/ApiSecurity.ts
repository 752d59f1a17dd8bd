/**
 * Who is calling, and what each endpoint lets them do. Every endpoint of the contract declares
 * its roles with `Roles`; the `Authentication` middleware (bearer API tokens) resolves the token
 * to the caller's account, refuses a role the endpoint does not list before anything else runs,
 * and hands the handlers the `CurrentAccount`. Declaring the roles in the contract means the
 * OpenAPI document, the docs page and the server's checks read the same list.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Context from "effect/Context"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { Role } from "./Accounts.js"
import { Forbidden, Unauthorized } from "./ApiErrors.js"
import type * as Ids from "./Ids.js"

/** The roles an endpoint accepts: an annotation on the endpoint, read by the server and the docs. */
export class Roles extends Context.Tag("@ccat/core/ApiSecurity/Roles")<Roles, ReadonlyArray<Role>>() {}

/** The caller, as the handlers see it: the account, its role and what it was granted. */
export interface Principal {
  readonly accountId: Ids.AccountId
  readonly name: string
  readonly role: Role
  /** Instruments an instrument account may file for. */
  readonly instrumentIds: ReadonlyArray<Ids.InstrumentId>
  /** Observing programs a scientist may read and stage. */
  readonly programIds: ReadonlyArray<Ids.ObservingProgramId>
}

/** The authenticated caller of the current request. */
export class CurrentAccount extends Context.Tag("@ccat/core/ApiSecurity/CurrentAccount")<CurrentAccount, Principal>() {}

/**
 * Bearer-token authentication and role check for every endpoint of a group. Fails with
 * `Unauthorized` (401) or `Forbidden` (403, reason Role) before the request body is read.
 */
export class Authentication extends HttpApiMiddleware.Tag<Authentication>()("Authentication", {
  failure: Schema.Union(Unauthorized, Forbidden),
  provides: CurrentAccount,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

/**
 * Declares who may call an endpoint, and says so in its OpenAPI description (so the docs page
 * lists the roles next to the route).
 */
export const allow = (roles: ReadonlyArray<Role>, description: string) => <E extends HttpApiEndpoint.HttpApiEndpoint.Any>(endpoint: E): E =>
  (endpoint as unknown as HttpApiEndpoint.HttpApiEndpoint.AnyWithProps)
    .annotate(Roles, roles)
    .annotate(OpenApi.Description, `${description}\n\nRoles: ${roles.join(", ")}.`) as unknown as E

/** The roles an endpoint declares, or undefined when it is public (health, readiness). */
export const rolesOf = (endpoint: HttpApiEndpoint.HttpApiEndpoint.AnyWithProps): ReadonlyArray<Role> | undefined =>
  Option.getOrUndefined(Context.getOption(endpoint.annotations, Roles))
