/**
 * Administration of the catalog filing refers to (observatory, telescopes, instruments and
 * their modules, observing programs and their planned ObsUnits) and of accounts and their
 * grants. Registered once per instrument or program, by an admin, so that filing can check
 * every reference it gets.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { Account, Role } from "./Accounts.js"
import { Conflict, NotFound, Unprocessable } from "./ApiErrors.js"
import { allow, Authentication } from "./ApiSecurity.js"
import { DisplayName, JsonObject } from "./Fields.js"
import * as Ids from "./Ids.js"
import { Instrument, InstrumentModule, Observatory, ObservingProgram, ObsUnit, Telescope } from "./Observational.js"
import { strict } from "./ApiPayload.js"
import { ModuleScience, ObsUnitLinks } from "./CatalogApi.js"
import { ProprietaryPeriodDays } from "./Observational.js"

const admin = ["admin"] as const
const everyone = ["instrument", "scientist", "operator", "admin"] as const

/** A new observatory. */
export const CreateObservatory = Schema.Struct({ name: DisplayName, description: Schema.optional(Schema.String) }).annotations(strict)
/** A new telescope of an observatory. */
export const CreateTelescope = Schema.Struct({ observatoryId: Schema.UUID, name: DisplayName, description: Schema.optional(Schema.String) })
  .annotations(strict)
/** A new instrument on a telescope. */
export const CreateInstrument = Schema.Struct({ telescopeId: Schema.UUID, name: DisplayName, description: Schema.optional(Schema.String) })
  .annotations(strict)
/** A new module of an instrument, with its band and ObsCore facts when they are known. */
export const CreateInstrumentModule = Schema.Struct({
  instrumentId: Schema.UUID,
  name: DisplayName,
  description: Schema.optional(Schema.String),
  ...ModuleScience
}).annotations(strict)
/** A new observing program; without a proprietary period its data is never public. */
export const CreateObservingProgram = Schema.Struct({
  name: DisplayName,
  title: Schema.optional(Schema.String),
  proprietaryPeriodDays: Schema.optional(Schema.NullOr(ProprietaryPeriodDays))
}).annotations(strict)
/** A new planned observation. */
export const CreateObsUnit = Schema.Struct({
  observingProgramId: Schema.UUID,
  instrumentId: Schema.UUID,
  name: DisplayName,
  target: Schema.optional(Schema.String),
  plannedDurationSeconds: Schema.optional(Schema.NonNegative),
  configuration: Schema.optional(JsonObject),
  /** The Source observed, its sub-program (of the same program) and observing mode. */
  ...ObsUnitLinks
}).annotations(strict)
/** A new account. */
export const CreateAccount = Schema.Struct({
  name: Schema.String.pipe(Schema.filter((s) => Ids.shortNameProblem(s) ?? true)),
  displayName: DisplayName,
  role: Role,
  email: Schema.optional(Schema.String.pipe(Schema.pattern(/^[^@\s]+@[^@\s]+$/)))
}).annotations(strict)
/** A grant: an instrument account may file for an instrument, a scientist read a program. */
export const Grant = Schema.Struct({
  account: Schema.String,
  instrumentId: Schema.optional(Schema.UUID),
  programId: Schema.optional(Schema.UUID)
}).annotations(strict)

/** A grant to take back: the account and exactly one of an instrument or a program. */
export const RevokeGrant = Schema.Struct({
  account: Schema.String,
  instrumentId: Schema.optional(Schema.UUID),
  programId: Schema.optional(Schema.UUID)
})

/** An account switched off (its tokens are refused at once, and at relays within their sync delay) or on again. */
export const UpdateAccount = Schema.Struct({ active: Schema.Boolean }).annotations(strict)

/** An instrument or program named in an access listing. */
export const Named = Schema.Struct({ id: Schema.UUID, name: Schema.String }).annotations({ identifier: "Named" })

/** Who can do what: an account, its role, whether it is on, its grants and its usable tokens. */
export const AccountAccess = Schema.Struct({
  account: Schema.String,
  displayName: Schema.String,
  role: Role,
  active: Schema.Boolean,
  /** Instruments the account may file for (instrument accounts). */
  instruments: Schema.Array(Named),
  /** Programs whose data the account may read and stage (scientists). */
  programs: Schema.Array(Named),
  /** Tokens neither revoked nor expired. */
  usableTokens: Schema.Int,
  /** The soonest a usable token expires, if any does. */
  nextExpiry: Schema.NullOr(Schema.DateTimeUtc),
  lastUsedAt: Schema.NullOr(Schema.DateTimeUtc)
}).annotations({ identifier: "AccountAccess" })

/** The catalog, accounts and grants. */
export class AdminApi extends HttpApiGroup.make("admin")
  .add(
    HttpApiEndpoint.post("createObservatory", "/observatories").setPayload(CreateObservatory).addSuccess(Observatory.json, { status: 201 })
      .addError(Conflict).addError(Unprocessable).pipe(allow(admin, "Register an observatory."))
  )
  .add(
    HttpApiEndpoint.post("createTelescope", "/telescopes").setPayload(CreateTelescope).addSuccess(Telescope.json, { status: 201 }).addError(
      Conflict
    ).addError(Unprocessable).pipe(allow(admin, "Register a telescope."))
  )
  .add(
    HttpApiEndpoint.post("createInstrument", "/instruments").setPayload(CreateInstrument).addSuccess(Instrument.json, { status: 201 })
      .addError(Conflict).addError(Unprocessable).pipe(allow(admin, "Register an instrument."))
  )
  .add(
    HttpApiEndpoint.post("createInstrumentModule", "/instrument-modules").setPayload(CreateInstrumentModule).addSuccess(
      InstrumentModule.json,
      { status: 201 }
    ).addError(Conflict).addError(Unprocessable).pipe(allow(admin, "Register a module of an instrument."))
  )
  .add(
    HttpApiEndpoint.post("createObservingProgram", "/programs").setPayload(CreateObservingProgram).addSuccess(ObservingProgram.json, {
      status: 201
    }).addError(Conflict).addError(Unprocessable).pipe(allow(admin, "Register an observing program."))
  )
  .add(
    HttpApiEndpoint.post("createObsUnit", "/obs-units").setPayload(CreateObsUnit).addSuccess(ObsUnit.json, { status: 201 }).addError(
      Conflict
    ).addError(Unprocessable).pipe(allow(admin, "Plan an observation (ObsUnit) of a program with an instrument."))
  )
  .add(
    HttpApiEndpoint.get("listInstruments", "/instruments").addSuccess(Schema.Array(Instrument.json)).pipe(
      allow(everyone, "Every instrument.")
    )
  )
  .add(
    HttpApiEndpoint.get("listInstrumentModules", "/instrument-modules").setUrlParams(
      Schema.Struct({ instrumentId: Schema.optional(Ids.InstrumentId) })
    ).addSuccess(Schema.Array(InstrumentModule.json)).pipe(allow(everyone, "Instrument modules, optionally of one instrument."))
  )
  .add(
    HttpApiEndpoint.get("listObsUnits", "/obs-units").setUrlParams(
      Schema.Struct({ instrumentId: Schema.optional(Ids.InstrumentId), programId: Schema.optional(Ids.ObservingProgramId) })
    ).addSuccess(Schema.Array(ObsUnit.json)).pipe(
      allow(everyone, "Planned observations, by instrument or program; each caller sees those it may file for or read.")
    )
  )
  .add(
    HttpApiEndpoint.post("createAccount", "/accounts").setPayload(CreateAccount).addSuccess(Account.json, { status: 201 }).addError(
      Conflict
    ).addError(Unprocessable).pipe(allow(admin, "Create an account with one role."))
  )
  .add(HttpApiEndpoint.get("listAccounts", "/accounts").addSuccess(Schema.Array(Account.json)).pipe(allow(admin, "Every account.")))
  .add(
    HttpApiEndpoint.post("grant", "/grants").setPayload(Grant).addSuccess(
      Schema.Struct({
        account: Schema.String,
        instrumentId: Schema.NullOr(Ids.InstrumentId),
        programId: Schema.NullOr(Ids.ObservingProgramId)
      })
    ).addError(NotFound).addError(Unprocessable).pipe(
      allow(admin, "Let an instrument account file for an instrument, or a scientist read a program. Granting twice is a no-op.")
    )
  )
  .add(
    HttpApiEndpoint.del("revokeGrant", "/grants").setUrlParams(RevokeGrant).addSuccess(
      Schema.Struct({
        account: Schema.String,
        instrumentId: Schema.NullOr(Ids.InstrumentId),
        programId: Schema.NullOr(Ids.ObservingProgramId),
        revoked: Schema.Boolean
      })
    ).addError(NotFound).addError(Unprocessable).pipe(
      allow(
        admin,
        "Take a grant back; the account's tokens lose it at once (at relays within their sync delay). `revoked` is false when there was no such grant."
      )
    )
  )
  .add(
    HttpApiEndpoint.patch("updateAccount", "/accounts/:name").setPath(Schema.Struct({ name: Schema.String })).setPayload(UpdateAccount)
      .addSuccess(Account.json).addError(NotFound).addError(Unprocessable).pipe(
        allow(
          admin,
          "Disable an account (every token of it is refused from then on) or enable it again. The last active admin cannot be disabled."
        )
      )
  )
  .add(
    HttpApiEndpoint.get("listAccess", "/access").addSuccess(Schema.Array(AccountAccess)).pipe(
      allow(admin, "Who can do what: every account with its role, state, grants and usable tokens.")
    )
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "The catalog filing refers to, accounts and grants.")
{}
