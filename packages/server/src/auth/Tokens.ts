/**
 * Accounts, grants and API tokens on the ops-db, shared by the `tokens`/`admin` endpoints and
 * the `ccat token` commands so both hand out and revoke tokens the same way. A token's secret
 * exists only in the value returned by `issue`; the database keeps its prefix and SHA-256.
 */
import { Accounts, ConstraintError, Ids, Repositories, TokensApi } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Data from "effect/Data"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

/** Why an account or grant could not be set up as asked (for the CLI and the handlers to word). */
export class AccountError extends Data.TaggedError("AccountError")<{
  readonly reason: "UnknownAccount" | "RoleMismatch" | "InvalidName" | "UnknownInstrument" | "UnknownProgram" | "AmbiguousName" | "GrantNotForRole"
  readonly message: string
}> {}

interface TokenRow {
  readonly id: string
  readonly accountId: string
  readonly account: string
  readonly role: Accounts.Role
  readonly label: string
  readonly prefix: string
  readonly expiresAt: Date | null
  readonly revokedAt: Date | null
  readonly lastUsedAt: Date | null
  readonly createdAt: Date
}

const toView = (r: TokenRow): TokensApi.TokenView => ({
  id: r.id as Ids.ApiTokenId,
  accountId: r.accountId as Ids.AccountId,
  account: r.account,
  role: r.role,
  label: r.label,
  prefix: r.prefix,
  expiresAt: r.expiresAt === null ? null : DateTime.unsafeFromDate(r.expiresAt),
  revokedAt: r.revokedAt === null ? null : DateTime.unsafeFromDate(r.revokedAt),
  lastUsedAt: r.lastUsedAt === null ? null : DateTime.unsafeFromDate(r.lastUsedAt),
  createdAt: DateTime.unsafeFromDate(r.createdAt)
})

const selectTokens = (sql: SqlClient.SqlClient) => sql`
  select t.id, t.account_id, a.name as account, a.role, t.label, t.prefix, t.expires_at, t.revoked_at, t.last_used_at, t.created_at
  from api_token t join account a on a.id = t.account_id`

/** The account with this name, if any. */
export const findAccount = (name: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ id: string }>`select id from account where name = ${name}`, (rows) => Option.fromNullable(rows[0]?.id as Ids.AccountId | undefined))
  ).pipe(Effect.flatMap((id) => (Option.isNone(id) ? Effect.succeedNone : Repositories.accounts.findById(id.value))))

/**
 * The account named `name` with role `role`, created when missing. An existing account with
 * another role is an error: one role per account, and a token must not silently get another.
 */
export const ensureAccount = Effect.fn("Tokens.ensureAccount")(function* (input: {
  readonly name: string
  readonly role: Accounts.Role
  readonly displayName?: string | undefined
}) {
  if (Ids.shortNameProblem(input.name) !== undefined) {
    return yield* new AccountError({ reason: "InvalidName", message: `account name ${JSON.stringify(input.name)}: ${Ids.shortNameProblem(input.name)}` })
  }
  const existing = yield* findAccount(input.name)
  if (Option.isSome(existing)) {
    if (existing.value.role !== input.role) {
      return yield* new AccountError({
        reason: "RoleMismatch",
        message: `the account ${input.name} exists with role ${existing.value.role}, not ${input.role}; an account has one role`
      })
    }
    return existing.value
  }
  return yield* Repositories.accounts.insert({
    name: Ids.ShortName.make(input.name),
    displayName: input.displayName ?? input.name,
    email: null,
    role: input.role,
    active: true
  })
})

/** Finds an instrument by id or by name (names are unique per telescope, so a name must be unambiguous). */
export const resolveInstrument = Effect.fn("Tokens.resolveInstrument")(function* (ref: string) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ id: string }>`select id from instrument where id::text = ${ref} or name = ${ref}`
  if (rows.length === 0) return yield* new AccountError({ reason: "UnknownInstrument", message: `no instrument ${JSON.stringify(ref)}` })
  if (rows.length > 1) return yield* new AccountError({ reason: "AmbiguousName", message: `several instruments are named ${JSON.stringify(ref)}; give its id` })
  return rows[0].id as Ids.InstrumentId
})

/** Finds an observing program by id or by name. */
export const resolveProgram = Effect.fn("Tokens.resolveProgram")(function* (ref: string) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ id: string }>`select id from observing_program where id::text = ${ref} or name = ${ref}`
  if (rows.length === 0) return yield* new AccountError({ reason: "UnknownProgram", message: `no observing program ${JSON.stringify(ref)}` })
  return rows[0].id as Ids.ObservingProgramId
})

/** Lets an account file for an instrument; granting twice is a no-op. */
export const grantInstrument = (accountId: Ids.AccountId, instrumentId: Ids.InstrumentId) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`insert into instrument_access (account_id, instrument_id) values (${accountId}, ${instrumentId}) on conflict do nothing`
  ).pipe(Effect.asVoid)

/** Lets an account read and stage a program's data; granting twice is a no-op. */
export const grantProgram = (accountId: Ids.AccountId, programId: Ids.ObservingProgramId) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`insert into program_access (account_id, observing_program_id) values (${accountId}, ${programId}) on conflict do nothing`
  ).pipe(Effect.asVoid)

/** Issues a new token for an account: the secret is in `token`, here and nowhere else. */
export const issue = Effect.fn("Tokens.issue")(function* (input: {
  readonly accountId: Ids.AccountId
  readonly label?: string | undefined
  readonly expiresAt?: Date | undefined
}) {
  const generated = yield* Accounts.generateToken
  const row = yield* Repositories.apiTokens.insert({
    accountId: input.accountId,
    label: input.label ?? "",
    prefix: generated.prefix,
    secretSha256: generated.secretSha256,
    expiresAt: input.expiresAt === undefined ? null : DateTime.unsafeFromDate(input.expiresAt),
    revokedAt: null,
    lastUsedAt: null
  }).pipe(Effect.catchTag("ConstraintError", (e: ConstraintError.ConstraintError) => Effect.die(e)))
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<TokenRow>`${selectTokens(sql)} where t.id = ${row.id}`
  return { token: generated.token, info: toView(rows[0]) }
})

/** Every token, or one account's, oldest first; never a secret. */
export const list = Effect.fn("Tokens.list")(function* (account?: string) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<TokenRow>`${selectTokens(sql)} ${account === undefined ? sql`` : sql`where a.name = ${account}`} order by t.created_at, t.id`
  return rows.map(toView)
})

/** Revokes a token by id or prefix; a revoked token stays revoked at its first revocation time. */
export const revoke = Effect.fn("Tokens.revoke")(function* (idOrPrefix: string) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ id: string }>`
    update api_token set revoked_at = coalesce(revoked_at, now())
    where id::text = ${idOrPrefix} or prefix = ${idOrPrefix} returning id`
  if (rows.length === 0) return Option.none<TokensApi.TokenView>()
  const found = yield* sql<TokenRow>`${selectTokens(sql)} where t.id = ${rows[0].id}`
  return Option.some(toView(found[0]))
})
