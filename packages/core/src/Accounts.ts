/**
 * People and machines that use the platform: accounts with one role, API tokens stored only as
 * hashes, and access per observing program (scientists) or per instrument (instrument accounts).
 */
import * as Model from "@effect/sql/Model"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { DisplayName, GeneratedTimestamp, TimestampOrNull } from "./Fields.js"
import * as Ids from "./Ids.js"

/** What an account may do: file (instrument), read and stage (scientist), run (operator), all (admin). */
export const Role = Schema.Literal("instrument", "scientist", "operator", "admin")
/** What an account may do. */
export type Role = typeof Role.Type

/** A person or an instrument's machine that calls the API. */
export class Account extends Model.Class<Account>("Account")({
  id: Model.Generated(Ids.AccountId),
  name: Ids.ShortName,
  displayName: DisplayName,
  email: Schema.NullOr(Schema.String.pipe(Schema.pattern(/^[^@\s]+@[^@\s]+$/))),
  role: Role,
  active: Schema.Boolean,
  createdAt: GeneratedTimestamp
}) {}

/** The public part of a token, by which the server finds its row without knowing the secret. */
export const TokenPrefix = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9]{8,16}$/), Schema.brand("TokenPrefix"))
/** The public part of a token. */
export type TokenPrefix = typeof TokenPrefix.Type

/** Lower-case hex SHA-256 of a token's secret. */
export const SecretSha256 = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/))

/**
 * An API token. Only the SHA-256 of its secret is stored, so a leaked database yields no usable
 * token; the hash is `Model.Sensitive`, so it never appears in the API's JSON.
 */
export class ApiToken extends Model.Class<ApiToken>("ApiToken")({
  id: Model.Generated(Ids.ApiTokenId),
  accountId: Ids.AccountId,
  label: Schema.String,
  prefix: TokenPrefix,
  secretSha256: Model.Sensitive(SecretSha256),
  expiresAt: TimestampOrNull,
  revokedAt: TimestampOrNull,
  lastUsedAt: TimestampOrNull,
  createdAt: GeneratedTimestamp
}) {}

/** That an account may see and stage the data of an observing program. */
export class ProgramAccess extends Model.Class<ProgramAccess>("ProgramAccess")({
  accountId: Ids.AccountId,
  observingProgramId: Ids.ObservingProgramId,
  grantedAt: GeneratedTimestamp
}) {}

/** That an (instrument) account may file observations for an instrument. */
export class InstrumentAccess extends Model.Class<InstrumentAccess>("InstrumentAccess")({
  accountId: Ids.AccountId,
  instrumentId: Ids.InstrumentId,
  grantedAt: GeneratedTimestamp
}) {}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

const randomString = (length: number): string => {
  // 62 symbols: rejection sampling keeps every symbol equally likely.
  let out = ""
  while (out.length < length) {
    for (const b of globalThis.crypto.getRandomValues(new Uint8Array(length * 2))) {
      if (b < 248 && out.length < length) out += alphabet[b % 62]
    }
  }
  return out
}

/** Lower-case hex SHA-256 of a token secret (Web Crypto, so it runs outside Node too). */
export const hashSecret = (secret: string): Effect.Effect<string> =>
  Effect.promise(async () => {
    const digest = await globalThis.crypto.subtle.digest("SHA-256", new TextEncoder().encode(secret))
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("")
  })

/** A new token: `ccat_<prefix>_<secret>` to hand out once, and what to store. */
export interface NewToken {
  readonly token: string
  readonly prefix: TokenPrefix
  readonly secretSha256: string
}

/** Makes a new random token (12-character prefix, 40-character secret, about 238 bits). */
export const generateToken: Effect.Effect<NewToken> = Effect.suspend(() => {
  const prefix = randomString(12) as TokenPrefix
  const secret = randomString(40)
  return Effect.map(hashSecret(secret), (secretSha256) => ({ token: `ccat_${prefix}_${secret}`, prefix, secretSha256 }))
})

/** Splits a presented token into prefix and secret, or undefined when it is not one of ours. */
export const parseToken = (token: string): { readonly prefix: TokenPrefix; readonly secret: string } | undefined => {
  const m = /^ccat_([A-Za-z0-9]{8,16})_([A-Za-z0-9]{20,128})$/.exec(token)
  return m === null ? undefined : { prefix: m[1] as TokenPrefix, secret: m[2] }
}
