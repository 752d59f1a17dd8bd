/**
 * Who asks for science data, and what they may read. The science endpoints (one file's bytes,
 * DataLink) answer anonymous callers too, as the Virtual Observatory's clients expect: anonymous
 * callers read public data only (an observation whose program's proprietary period has ended,
 * the rule of ObsCore's hidden `ccat_public_from`), an account reads public data and what its
 * grants allow (`Access.obsUnitScope`), operators and admins everything. A token that is sent
 * must be valid: a wrong one is refused rather than treated as anonymous.
 */
import type { ApiSecurity } from "@ccat/core"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { authenticate } from "../auth/Authentication.js"
import * as Access from "../http/Access.js"

/** The caller of a science request. */
export type Caller =
  | { readonly kind: "anonymous" }
  | { readonly kind: "account"; readonly principal: ApiSecurity.Principal }

/** A presented token that is not valid. */
export class InvalidToken extends Data.TaggedError("InvalidToken")<{ readonly message: string }> {}

/**
 * The token an Authorization header carries: `Bearer <token>`, or HTTP Basic with the token as
 * the password (any user name), for clients such as TOPCAT and STILTS that can only answer a
 * Basic challenge; "" for anything else, which no token matches.
 */
export const tokenOf = (header: string): string => {
  const [scheme = "", credentials = ""] = header.trim().split(/\s+/, 2)
  if (scheme.toLowerCase() === "bearer") return credentials
  if (scheme.toLowerCase() !== "basic") return ""
  const decoded = Buffer.from(credentials, "base64").toString("utf8")
  const colon = decoded.indexOf(":")
  return colon < 0 ? "" : decoded.slice(colon + 1).trim()
}

/**
 * The caller: anonymous without an Authorization header, else the account its token names
 * (the science endpoints and TAP alike).
 */
export const caller = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const header = request.headers.authorization
  if (header === undefined || header.trim() === "") return { kind: "anonymous" } as Caller
  const token = tokenOf(header)
  const principal = yield* authenticate(token).pipe(
    Effect.mapError((e) => new InvalidToken({ message: `${e.message} (or send no Authorization header for public data only)` }))
  )
  return { kind: "account", principal } as Caller
})

/**
 * The condition that an ExecutedObsUnit id column names an observation the caller may read:
 * public ones (a proprietary period set and over since the observation's end) and those of the
 * account's scope.
 */
export const observationReadable = (sql: SqlClient.SqlClient, who: Caller, column: Fragment): Fragment => {
  if (who.kind === "account" && Access.seesEverything(who.principal)) return sql`true`
  const scope = who.kind === "account" ? Access.obsUnitScope(sql, who.principal) : sql`false`
  return sql`${column} in (
    select e.id from executed_obs_unit e join obs_unit o on o.id = e.obs_unit_id
    join observing_program p on p.id = o.observing_program_id
    where (p.proprietary_period_days is not null and e.end_at is not null
           and e.end_at + make_interval(days => p.proprietary_period_days) <= now())
       or ${scope})`
}
