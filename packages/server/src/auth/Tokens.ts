/**
 * Accounts, grants and API tokens on the ops-db, shared by the `tokens`/`admin` endpoints and
 * the `ccat token` / `ccat account` commands so both hand out and take back access the same way.
 * A token's secret exists only in the value returned by `issue`; the database keeps its prefix
 * and SHA-256. Every change is an event in the log (`AccessEvents`), written in one transaction
 * with the change; run these inside a transaction of your own when several must hold together.
 */
import { Accounts, ConstraintError, Ids, Repositories, TokensApi } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Data from "effect/Data"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as AccessEvents from "./AccessEvents.js"

/**
 * Runs a change and its event in one transaction (a savepoint inside a caller's), so neither
 * commits without the other whoever calls.
 */
const atomically = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql.withTransaction(effect))

/** Why an account or grant could not be set up as asked (for the CLI and the handlers to word). */
export class AccountError extends Data.TaggedError("AccountError")<{
  readonly reason:
    | "UnknownAccount"
    | "RoleMismatch"
    | "InvalidName"
    | "UnknownInstrument"
    | "UnknownProgram"
    | "AmbiguousName"
    | "GrantNotForRole"
    | "LastAdmin"
    | "InvalidOption"
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
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      Effect.map(
        sql<{ id: string }>`select id from account where name = ${name}`,
        (rows) => Option.fromNullable(rows[0]?.id as Ids.AccountId | undefined)
      )
  ).pipe(Effect.flatMap((id) => (Option.isNone(id) ? Effect.succeedNone : Repositories.accounts.findById(id.value))))

/**
 * The account named `name` with role `role`, created when missing. An existing account with
 * another role is an error: one role per account, and a token must not silently get another.
 */
export const ensureAccount = Effect.fn("Tokens.ensureAccount")(function* (input: {
  readonly name: string
  readonly role: Accounts.Role
  readonly displayName?: string | undefined
  /** Who asks, for the event log (default: the local command's user). */
  readonly actor?: string | undefined
}) {
  if (Ids.shortNameProblem(input.name) !== undefined) {
    return yield* new AccountError({
      reason: "InvalidName",
      message: `account name ${JSON.stringify(input.name)}: ${Ids.shortNameProblem(input.name)}`
    })
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
  return yield* atomically(Effect.tap(
    Repositories.accounts.insert({
      name: Ids.ShortName.make(input.name),
      displayName: input.displayName ?? input.name,
      email: null,
      role: input.role,
      active: true
    }),
    (created) => accountCreated(created, input.actor ?? AccessEvents.cliActor())
  ))
})

/** Records a new account in the event log. */
export const accountCreated = (account: Accounts.Account, actor: string) =>
  AccessEvents.record({
    kind: "Account",
    id: account.id,
    from: null,
    to: "active",
    actor,
    details: { name: account.name, role: account.role }
  })

/** Finds an instrument by id or by name (names are unique per telescope, so a name must be unambiguous). */
export const resolveInstrument = Effect.fn("Tokens.resolveInstrument")(function* (ref: string) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ id: string }>`select id from instrument where id::text = ${ref} or name = ${ref}`
  if (rows.length === 0) return yield* new AccountError({ reason: "UnknownInstrument", message: `no instrument ${JSON.stringify(ref)}` })
  if (rows.length > 1) {
    return yield* new AccountError({
      reason: "AmbiguousName",
      message: `several instruments are named ${JSON.stringify(ref)}; give its id`
    })
  }
  return rows[0].id as Ids.InstrumentId
})

/** Finds an observing program by id or by name. */
export const resolveProgram = Effect.fn("Tokens.resolveProgram")(function* (ref: string) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ id: string }>`select id from observing_program where id::text = ${ref} or name = ${ref}`
  if (rows.length === 0) {
    return yield* new AccountError({ reason: "UnknownProgram", message: `no observing program ${JSON.stringify(ref)}` })
  }
  return rows[0].id as Ids.ObservingProgramId
})

/** Lets an account file for an instrument; granting twice is a no-op (and logged once). */
export const grantInstrument = (accountId: Ids.AccountId, instrumentId: Ids.InstrumentId, actor: string = AccessEvents.cliActor()) =>
  atomically(Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const added =
      yield* sql`insert into instrument_access (account_id, instrument_id) values (${accountId}, ${instrumentId}) on conflict do nothing returning account_id`
    if (added.length > 0) {
      yield* AccessEvents.record({ kind: "Account", id: accountId, from: null, to: "granted", actor, details: { instrumentId } })
    }
  }))

/** Lets an account read and stage a program's data; granting twice is a no-op (and logged once). */
export const grantProgram = (accountId: Ids.AccountId, programId: Ids.ObservingProgramId, actor: string = AccessEvents.cliActor()) =>
  atomically(Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const added =
      yield* sql`insert into program_access (account_id, observing_program_id) values (${accountId}, ${programId}) on conflict do nothing returning account_id`
    if (added.length > 0) {
      yield* AccessEvents.record({ kind: "Account", id: accountId, from: null, to: "granted", actor, details: { programId } })
    }
  }))

/** Takes a grant back; whether there was one to take. */
export const revokeGrant = (
  accountId: Ids.AccountId,
  grant: { readonly instrumentId: Ids.InstrumentId } | { readonly programId: Ids.ObservingProgramId },
  actor: string = AccessEvents.cliActor()
) =>
  atomically(Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const removed = "instrumentId" in grant
      ? yield* sql`delete from instrument_access where account_id = ${accountId} and instrument_id = ${grant.instrumentId} returning account_id`
      : yield* sql`delete from program_access where account_id = ${accountId} and observing_program_id = ${grant.programId} returning account_id`
    if (removed.length > 0) {
      yield* AccessEvents.record({ kind: "Account", id: accountId, from: null, to: "grant-revoked", actor, details: { ...grant } })
    }
    return removed.length > 0
  }))

/**
 * Switches an account off (every token of it is refused from the next request on) or on again.
 * The last active admin stays on: with none, nobody could switch anyone back through the API.
 * Switching to the state the account is in changes and logs nothing.
 */
export const setActive = Effect.fn("Tokens.setActive")(function* (name: string, active: boolean, actor: string = AccessEvents.cliActor()) {
  const sql = yield* SqlClient.SqlClient
  const found = yield* findAccount(name)
  if (Option.isNone(found)) return yield* new AccountError({ reason: "UnknownAccount", message: `there is no account ${name}` })
  const account = found.value
  if (account.active === active) return account
  if (!active && account.role === "admin") {
    // the row lock on every active admin makes two admins disabling each other at once wait in turn
    const admins = yield* sql<{ id: string }>`select id from account where role = 'admin' and active for update`
    if (admins.every((a) => a.id === account.id)) {
      return yield* new AccountError({
        reason: "LastAdmin",
        message: `${name} is the last active admin; enable or create another admin first`
      })
    }
  }
  yield* sql`update account set active = ${active} where id = ${account.id}`
  yield* AccessEvents.record({
    kind: "Account",
    id: account.id,
    from: account.active ? "active" : "disabled",
    to: active ? "active" : "disabled",
    actor
  })
  return { ...account, active }
}, atomically)

/** The row of `listAccess`: an account with its grants (named) and token figures. */
export interface AccessRow {
  readonly account: string
  readonly displayName: string
  readonly role: Accounts.Role
  readonly active: boolean
  readonly instruments: ReadonlyArray<{ readonly id: string; readonly name: string }>
  readonly programs: ReadonlyArray<{ readonly id: string; readonly name: string }>
  readonly usableTokens: number
  readonly nextExpiry: Date | null
  readonly lastUsedAt: Date | null
}

/** Who can do what: every account, by name, with its grants and usable tokens, in one query. */
export const listAccess = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return yield* sql<AccessRow>`
    select a.name as account, a.display_name, a.role::text as role, a.active,
      coalesce((select json_agg(json_build_object('id', i.id, 'name', i.name) order by i.name)
        from instrument_access g join instrument i on i.id = g.instrument_id where g.account_id = a.id), '[]') as instruments,
      coalesce((select json_agg(json_build_object('id', p.id, 'name', p.name) order by p.name)
        from program_access g join observing_program p on p.id = g.observing_program_id where g.account_id = a.id), '[]') as programs,
      (select count(*)::int from api_token t where t.account_id = a.id and t.revoked_at is null and (t.expires_at is null or t.expires_at > now())) as usable_tokens,
      (select min(t.expires_at) from api_token t where t.account_id = a.id and t.revoked_at is null and t.expires_at > now()) as next_expiry,
      (select max(t.last_used_at) from api_token t where t.account_id = a.id) as last_used_at
    from account a order by a.name`
})

/** When a token created now without an expiry of its own stops working (`policy.tokenLifetime`). */
export const defaultExpiry = (lifetimeMillis: number): Date => new Date(Date.now() + lifetimeMillis)

/** Issues a new token for an account: the secret is in `token`, here and nowhere else. */
export const issue = Effect.fn("Tokens.issue")(function* (input: {
  readonly accountId: Ids.AccountId
  readonly label?: string | undefined
  /** When it stops working; none is a token that never expires (the commands default to `policy.tokenLifetime`). */
  readonly expiresAt?: Date | undefined
  readonly actor?: string | undefined
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
  yield* AccessEvents.record({
    kind: "ApiToken",
    id: row.id,
    from: null,
    to: "active",
    actor: input.actor ?? AccessEvents.cliActor(),
    details: {
      account: rows[0].account,
      prefix: generated.prefix,
      label: input.label ?? "",
      expiresAt: input.expiresAt?.toISOString() ?? null
    }
  })
  return { token: generated.token, info: toView(rows[0]) }
}, atomically)

/** Every token, or one account's, oldest first; never a secret. */
export const list = Effect.fn("Tokens.list")(function* (account?: string) {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<TokenRow>`${selectTokens(sql)} ${
    account === undefined ? sql`` : sql`where a.name = ${account}`
  } order by t.created_at, t.id`
  return rows.map(toView)
})

/** Revokes a token by id or prefix; a revoked token stays revoked at its first revocation time. */
export const revoke = Effect.fn("Tokens.revoke")(function* (idOrPrefix: string, actor: string = AccessEvents.cliActor()) {
  const sql = yield* SqlClient.SqlClient
  // the old value tells a first revocation (logged) from a repeated one (a no-op)
  const rows = yield* sql<{ id: string; wasRevoked: boolean }>`
    update api_token t set revoked_at = coalesce(t.revoked_at, now())
    from api_token old where old.id = t.id and (t.id::text = ${idOrPrefix} or t.prefix = ${idOrPrefix})
    returning t.id, old.revoked_at is not null as was_revoked`
  if (rows.length === 0) return Option.none<TokensApi.TokenView>()
  if (!rows[0].wasRevoked) yield* AccessEvents.record({ kind: "ApiToken", id: rows[0].id, from: "active", to: "revoked", actor })
  const found = yield* sql<TokenRow>`${selectTokens(sql)} where t.id = ${rows[0].id}`
  return Option.some(toView(found[0]))
}, atomically)
