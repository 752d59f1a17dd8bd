/**
 * `ccat token create | list | revoke`: how an admin hands out API tokens on the server's own
 * machine, before any admin token exists (the first admin token comes from here). They talk to
 * the ops-db directly through the server's configuration, as `ccat migrate` does.
 */
import { Accounts } from "@ccat/core"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Console from "effect/Console"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { configOption, dataDirOption, jsonOption, loadOptions } from "../cli/CommonOptions.js"
import type { ServerConfigShape } from "../ServerConfig.js"
import * as Tokens from "./Tokens.js"

/** Runs an effect, made from the loaded configuration, on the configured ops-db (migrated, like `serve` would). */
export const withConfigAndOpsDb = <A, E>(
  o: { config: Option.Option<string>; dataDir: Option.Option<string> },
  effect: (config: ServerConfigShape) => Effect.Effect<A, E, SqlClient.SqlClient>
) =>
  Effect.gen(function* () {
    // loaded when a command runs, so that the commands that need no database never import it
    const [Main, Config] = yield* Effect.promise(() => Promise.all([import("../Main.js"), import("../ServerConfig.js")]))
    const config = yield* Config.load(loadOptions(o))
    return yield* effect(config).pipe(Effect.provide(Main.opsDbLayer(config)))
  })

/** Runs an effect on the configured ops-db (migrated, like `serve` would). */
export const withOpsDb = <A, E>(
  o: { config: Option.Option<string>; dataDir: Option.Option<string> },
  effect: Effect.Effect<A, E, SqlClient.SqlClient>
) => withConfigAndOpsDb(o, () => effect)

const iso = (d: DateTime.Utc | null) => (d === null ? "-" : DateTime.formatIso(d))

const create = Command.make(
  "create",
  {
    config: configOption,
    dataDir: dataDirOption,
    json: jsonOption,
    account: Options.text("account").pipe(Options.withDescription("account name (a slug); created with the role if it does not exist")),
    role: Options.choice("role", Accounts.Role.literals).pipe(Options.withDescription("the account's role")),
    instrument: Options.text("instrument").pipe(
      Options.repeated,
      Options.withDescription("instrument (id or name) an instrument account may file for; repeatable")
    ),
    program: Options.text("program").pipe(
      Options.repeated,
      Options.withDescription("observing program (id or name) a scientist may read and stage; repeatable")
    ),
    label: Options.text("label").pipe(Options.withDescription("what the token is for (shown in token list)"), Options.optional),
    expiresInDays: Options.integer("expires-in-days").pipe(
      Options.withDescription(
        "the token stops working after this many days (default: the configuration's policy.tokenLifetime, one year unless set)"
      ),
      Options.optional
    ),
    neverExpires: Options.boolean("never-expires").pipe(
      Options.withDescription("a token that never expires, for a service such as a relay; revoke it when it is no longer needed")
    )
  },
  (o) =>
    withConfigAndOpsDb(o, ({ topology }) => Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const days = Option.getOrUndefined(o.expiresInDays)
      if (days !== undefined && o.neverExpires) {
        return yield* new Tokens.AccountError({
          reason: "InvalidOption",
          message: "--expires-in-days and --never-expires exclude each other"
        })
      }
      if (days !== undefined && days <= 0) {
        return yield* new Tokens.AccountError({ reason: "InvalidOption", message: "--expires-in-days must be at least 1" })
      }
      const expiresAt = o.neverExpires
        ? undefined
        : days !== undefined
        ? new Date(Date.now() + days * 86_400_000)
        : Tokens.defaultExpiry(topology.policy.tokenLifetime)
      if (o.instrument.length > 0 && o.role !== "instrument") {
        return yield* new Tokens.AccountError({ reason: "GrantNotForRole", message: "--instrument is for --role instrument" })
      }
      if (o.program.length > 0 && o.role !== "scientist") {
        return yield* new Tokens.AccountError({ reason: "GrantNotForRole", message: "--program is for --role scientist" })
      }
      return yield* sql.withTransaction(Effect.gen(function* () {
        const account = yield* Tokens.ensureAccount({ name: o.account, role: o.role })
        const instruments = yield* Effect.forEach(o.instrument, Tokens.resolveInstrument)
        const programs = yield* Effect.forEach(o.program, Tokens.resolveProgram)
        yield* Effect.forEach(instruments, (i) => Tokens.grantInstrument(account.id, i), { discard: true })
        yield* Effect.forEach(programs, (p) => Tokens.grantProgram(account.id, p), { discard: true })
        const { info, token } = yield* Tokens.issue({ accountId: account.id, label: Option.getOrUndefined(o.label), expiresAt })
        if (o.json) {
          return yield* Console.log(
            JSON.stringify({
              token,
              id: info.id,
              prefix: info.prefix,
              account: info.account,
              role: info.role,
              instruments,
              programs,
              expiresAt: info.expiresAt === null ? null : iso(info.expiresAt)
            })
          )
        }
        yield* Console.log(
          `token ${info.prefix} for ${info.account} (${info.role})${
            instruments.length > 0 ? `, instruments ${instruments.join(", ")}` : ""
          }${programs.length > 0 ? `, programs ${programs.join(", ")}` : ""}, ${
            info.expiresAt === null ? "never expires" : `expires ${iso(info.expiresAt)}`
          }:`
        )
        yield* Console.log(token)
        yield* Console.log("it is shown this once: store it now (the server keeps only its hash)")
      }))
    }))
).pipe(Command.withDescription("create an API token (and the account, with its grants, if needed); prints the token once"))

const list = Command.make(
  "list",
  { config: configOption, dataDir: dataDirOption, json: jsonOption, account: Options.text("account").pipe(Options.optional) },
  (o) =>
    withOpsDb(
      o,
      Effect.gen(function* () {
        const tokens = yield* Tokens.list(Option.getOrUndefined(o.account))
        if (o.json) {
          return yield* Console.log(
            JSON.stringify(
              tokens.map((t) => ({
                ...t,
                expiresAt: iso(t.expiresAt),
                revokedAt: iso(t.revokedAt),
                lastUsedAt: iso(t.lastUsedAt),
                createdAt: iso(t.createdAt)
              }))
            )
          )
        }
        if (tokens.length === 0) return yield* Console.log("no tokens")
        for (const t of tokens) {
          const state = t.revokedAt !== null
            ? "revoked"
            : t.expiresAt !== null && DateTime.toEpochMillis(t.expiresAt) <= Date.now()
            ? "expired"
            : "active"
          yield* Console.log(
            `${t.prefix}  ${t.account} (${t.role})  ${state}  created ${iso(t.createdAt)}  last used ${
              iso(t.lastUsedAt)
            }  ${t.label}  id ${t.id}`
          )
        }
      })
    )
).pipe(Command.withDescription("list API tokens (never their secrets)"))

const revoke = Command.make(
  "revoke",
  { config: configOption, dataDir: dataDirOption, token: Args.text({ name: "id-or-prefix" }) },
  (o) =>
    withOpsDb(
      o,
      Effect.gen(function* () {
        const revoked = yield* Tokens.revoke(o.token)
        if (Option.isNone(revoked)) {
          return yield* new Tokens.AccountError({ reason: "UnknownAccount", message: `no token with id or prefix ${o.token}` })
        }
        yield* Console.log(`revoked token ${revoked.value.prefix} of ${revoked.value.account} at ${iso(revoked.value.revokedAt)}`)
      })
    )
).pipe(Command.withDescription("revoke an API token by id or prefix; it is refused from then on"))

/** `ccat token ...`. */
export const token = Command.make("token").pipe(
  Command.withDescription("API token administration"),
  Command.withSubcommands([create, list, revoke])
)
