/**
 * `ccat account list | disable | enable | grant | revoke-grant`: taking access back (and giving
 * it) on the server's own machine, beside `ccat token`. Like it they talk to the ops-db through
 * the server's configuration, so an admin locked out of the API (every admin token lost) can
 * still act; each change is logged as the operating-system user who ran it.
 */
import type { Ids } from "@ccat/core"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { configOption, dataDirOption, jsonOption } from "../cli/CommonOptions.js"
import { withOpsDb } from "./TokenCommands.js"
import * as Tokens from "./Tokens.js"

const nameArg = Args.text({ name: "account" }).pipe(Args.withDescription("the account's name"))
const instrumentOption = Options.text("instrument").pipe(
  Options.withDescription("instrument (id or name) an instrument account files for"),
  Options.optional
)
const programOption = Options.text("program").pipe(
  Options.withDescription("observing program (id or name) a scientist reads and stages"),
  Options.optional
)

const iso = (d: Date | null) => (d === null ? "-" : d.toISOString())

/** The account and exactly one grant named by `--instrument` or `--program`. */
const accountAndGrant = (o: { account: string; instrument: Option.Option<string>; program: Option.Option<string> }) =>
  Effect.gen(function* () {
    const found = yield* Tokens.findAccount(o.account)
    if (Option.isNone(found)) {
      return yield* new Tokens.AccountError({ reason: "UnknownAccount", message: `there is no account ${o.account}` })
    }
    if (Option.isSome(o.instrument) === Option.isSome(o.program)) {
      return yield* new Tokens.AccountError({ reason: "InvalidOption", message: "name exactly one of --instrument or --program" })
    }
    const grant: { readonly instrumentId: Ids.InstrumentId } | { readonly programId: Ids.ObservingProgramId } = Option.isSome(o.instrument)
      ? { instrumentId: yield* Tokens.resolveInstrument(o.instrument.value) }
      : { programId: yield* Tokens.resolveProgram(Option.getOrThrow(o.program)) }
    return { account: found.value, grant }
  })

const list = Command.make(
  "list",
  { config: configOption, dataDir: dataDirOption, json: jsonOption },
  (o) =>
    withOpsDb(
      o,
      Effect.gen(function* () {
        const rows = yield* Tokens.listAccess
        if (o.json) {
          return yield* Console.log(
            JSON.stringify(
              rows.map((r) => ({ ...r, nextExpiry: r.nextExpiry?.toISOString() ?? null, lastUsedAt: r.lastUsedAt?.toISOString() ?? null }))
            )
          )
        }
        if (rows.length === 0) return yield* Console.log("no accounts")
        for (const r of rows) {
          const grants = [...r.instruments.map((i) => `files for ${i.name}`), ...r.programs.map((p) => `reads ${p.name}`)]
          yield* Console.log(
            `${r.account} (${r.role}) ${r.active ? "active" : "DISABLED"}  ${r.usableTokens} usable token(s), next expiry ${
              iso(r.nextExpiry)
            }, last used ${iso(r.lastUsedAt)}${grants.length > 0 ? `  ${grants.join(", ")}` : ""}`
          )
        }
      })
    )
).pipe(Command.withDescription("who can do what: every account, its role, state, grants and usable tokens"))

const switchTo = (active: boolean) =>
  Command.make(
    active ? "enable" : "disable",
    { config: configOption, dataDir: dataDirOption, account: nameArg },
    (o) =>
      withOpsDb(
        o,
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const account = yield* sql.withTransaction(Tokens.setActive(o.account, active))
          yield* Console.log(`account ${account.name} (${account.role}) is ${
            active
              ? "active: its tokens work again (those neither revoked nor expired)"
              : "disabled: every token of it is refused from now on"
          }`)
        })
      )
  ).pipe(
    Command.withDescription(
      active ? "enable an account again" : "disable an account: all its tokens are refused at once (at relays within their sync delay)"
    )
  )

const grant = Command.make("grant", {
  config: configOption,
  dataDir: dataDirOption,
  account: nameArg,
  instrument: instrumentOption,
  program: programOption
}, (o) =>
  withOpsDb(
    o,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql.withTransaction(Effect.gen(function* () {
        const { account, grant } = yield* accountAndGrant(o)
        if ("instrumentId" in grant) {
          if (account.role !== "instrument") {
            return yield* new Tokens.AccountError({
              reason: "GrantNotForRole",
              message: `${account.name} is ${account.role}; --instrument is for instrument accounts`
            })
          }
          yield* Tokens.grantInstrument(account.id, grant.instrumentId)
        } else {
          if (account.role !== "scientist") {
            return yield* new Tokens.AccountError({
              reason: "GrantNotForRole",
              message: `${account.name} is ${account.role}; --program is for scientist accounts`
            })
          }
          yield* Tokens.grantProgram(account.id, grant.programId)
        }
        yield* Console.log(
          `${account.name} may now ${
            "instrumentId" in grant ? `file for instrument ${grant.instrumentId}` : `read program ${grant.programId}`
          }`
        )
      }))
    })
  )).pipe(
    Command.withDescription("let an instrument account file for an instrument (--instrument) or a scientist read a program (--program)")
  )

const revokeGrant = Command.make("revoke-grant", {
  config: configOption,
  dataDir: dataDirOption,
  account: nameArg,
  instrument: instrumentOption,
  program: programOption
}, (o) =>
  withOpsDb(
    o,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql.withTransaction(Effect.gen(function* () {
        const { account, grant } = yield* accountAndGrant(o)
        const revoked = yield* Tokens.revokeGrant(account.id, grant)
        const what = "instrumentId" in grant ? `instrument ${grant.instrumentId}` : `program ${grant.programId}`
        yield* Console.log(revoked ? `${account.name} no longer has ${what}` : `${account.name} had no grant of ${what}; nothing changed`)
      }))
    })
  )).pipe(Command.withDescription("take a grant back: the account's tokens lose it at once (at relays within their sync delay)"))

/** `ccat account ...`. */
export const account = Command.make("account").pipe(
  Command.withDescription("accounts and their grants: who can do what, disable, enable, grant, revoke a grant"),
  Command.withSubcommands([list, switchTo(false), switchTo(true), grant, revokeGrant])
)
