/**
 * The science catalog of the observational hierarchy: Sources (what is observed), observing
 * modes, sub-programs of observing programs, programs with their proprietary periods, the
 * ObsCore facts of instrument modules (wavelength band, resolution, product type), and the
 * links of a planned observation (ObsUnit) to its Source, mode and sub-program. Admins write;
 * every role reads, programs and sub-programs only as far as the caller may see them (404
 * otherwise, as observations).
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { Conflict, NotFound, Unprocessable } from "./ApiErrors.js"
import { Page, PageParams } from "./ApiPage.js"
import { strict } from "./ApiPayload.js"
import { allow, Authentication } from "./ApiSecurity.js"
import { DisplayName } from "./Fields.js"
import * as Ids from "./Ids.js"
import { Publisher } from "./ObsCore.js"
import {
  DataproductType,
  Declination,
  FieldOfView,
  Frequency,
  InstrumentModule,
  ObservingMode,
  ObservingProgram,
  ObsUnit,
  PolStates,
  ProprietaryPeriodDays,
  RawCalibLevel,
  RightAscension,
  Source,
  SubObservingProgram,
  Wavelength
} from "./Observational.js"

const admin = ["admin"] as const
const everyone = ["instrument", "scientist", "operator", "admin"] as const

/**
 * A Source's name: a display name without spaces at either end, so that "Orion KL " typed in a
 * hurry is refused rather than stored beside "Orion KL".
 */
export const SourceName = DisplayName.pipe(
  Schema.filter((s) => s.trim() === s || "a source name must not start or end with spaces")
).annotations({ identifier: "SourceName" })

/** A new Source: ICRS coordinates in degrees, both or neither; neither only for a solar-system body. */
export const CreateSource = Schema.Struct({
  name: SourceName,
  raDeg: Schema.optional(RightAscension),
  decDeg: Schema.optional(Declination),
  /** A solar-system body (a planet, a comet): its position moves, so it may have no coordinates. */
  solarSystem: Schema.optional(Schema.Boolean),
  description: Schema.optional(Schema.String)
}).pipe(
  Schema.filter((s) =>
    (s.raDeg === undefined) !== (s.decDeg === undefined)
      ? { path: [s.raDeg === undefined ? "raDeg" : "decDeg"], message: "give both raDeg and decDeg, or neither" }
      : s.raDeg === undefined && s.solarSystem !== true
      ? { path: ["raDeg"], message: "a source outside the solar system needs raDeg and decDeg (ICRS, degrees)" }
      : true
  )
).annotations({ ...strict, identifier: "CreateSource" })

/** A band as wavelengths in metres (ObsCore's `em_min`, `em_max`). */
export const WavelengthBand = Schema.Struct({ emMin: Wavelength, emMax: Wavelength }).pipe(
  Schema.filter((b) => b.emMin <= b.emMax || { path: ["emMax"], message: "emMax must not be below emMin" })
).annotations({ ...strict, identifier: "WavelengthBand" })

/** A band as frequencies in Hz; stored as the wavelengths they give. */
export const FrequencyBand = Schema.Struct({ minHz: Frequency, maxHz: Frequency }).pipe(
  Schema.filter((b) => b.minHz <= b.maxHz || { path: ["maxHz"], message: "maxHz must not be below minHz" })
).annotations({ ...strict, identifier: "FrequencyBand" })

/** A module's band, in whichever unit the caller has it. */
export const Band = Schema.Union(WavelengthBand, FrequencyBand).annotations({ identifier: "Band" })
/** A module's band. */
export type Band = typeof Band.Type

/** What ObsCore says of a module's raw data; each field may be left out, null clears it. */
export const ModuleScience = {
  /** The band the module sees; null clears it. */
  band: Schema.optional(Schema.NullOr(Band)),
  /** Spectral resolving power λ/Δλ. */
  emResPower: Schema.optional(Schema.NullOr(Schema.Number.pipe(Schema.finite(), Schema.positive()))),
  dataproductType: Schema.optional(Schema.NullOr(DataproductType)),
  rawCalibLevel: Schema.optional(RawCalibLevel),
  polStates: Schema.optional(Schema.NullOr(PolStates)),
  /** Diameter of the field of view, degrees. */
  fovDeg: Schema.optional(Schema.NullOr(FieldOfView)),
  /** Angular resolution (beam FWHM), arcseconds. */
  resolutionArcsec: Schema.optional(Schema.NullOr(Schema.Number.pipe(Schema.finite(), Schema.positive())))
}

/** Changes to a module's ObsCore facts. */
export const UpdateInstrumentModule = Schema.Struct(ModuleScience).annotations({ ...strict, identifier: "UpdateInstrumentModule" })

/** The links of a planned observation; each may be left out, null removes it. */
export const ObsUnitLinks = {
  sourceId: Schema.optional(Schema.NullOr(Schema.UUID)),
  subObservingProgramId: Schema.optional(Schema.NullOr(Schema.UUID)),
  observingModeId: Schema.optional(Schema.NullOr(Schema.UUID))
}

/** Changes to an ObsUnit's links (its free-text target stays as it is). */
export const UpdateObsUnit = Schema.Struct(ObsUnitLinks).annotations({ ...strict, identifier: "UpdateObsUnit" })

/** Changes to an observing program. */
export const UpdateObservingProgram = Schema.Struct({
  title: Schema.optional(Schema.String),
  /** Days after each observation's end until its data is public; null: never public. */
  proprietaryPeriodDays: Schema.optional(Schema.NullOr(ProprietaryPeriodDays))
}).annotations({ ...strict, identifier: "UpdateObservingProgram" })

/** A new sub-program of an observing program. */
export const CreateSubObservingProgram = Schema.Struct({
  observingProgramId: Schema.UUID,
  name: DisplayName,
  title: Schema.optional(Schema.String)
}).annotations({ ...strict, identifier: "CreateSubObservingProgram" })

/** A new observing mode. */
export const CreateObservingMode = Schema.Struct({ name: DisplayName, description: Schema.optional(Schema.String) }).annotations({
  ...strict,
  identifier: "CreateObservingMode"
})

/** Filters of the source list. */
export const SourceFilter = Schema.Struct({
  /** Sources whose name contains this, ignoring case. */
  name: Schema.optional(Schema.String.pipe(Schema.maxLength(200))),
  ...PageParams
})

/** Changes to ObsCore's publisher settings. */
export const UpdatePublisher = Schema.Struct({
  authority: Schema.optional(Publisher.fields.authority),
  baseUrl: Schema.optional(Schema.String.pipe(Schema.maxLength(2000))),
  collection: Schema.optional(Publisher.fields.collection)
}).annotations({ ...strict, identifier: "UpdatePublisher" })

const sourcePath = Schema.Struct({ id: Ids.SourceId })
const modePath = Schema.Struct({ id: Ids.ObservingModeId })
const subProgramPath = Schema.Struct({ id: Ids.SubObservingProgramId })
const programPath = Schema.Struct({ id: Ids.ObservingProgramId })
const modulePath = Schema.Struct({ id: Ids.InstrumentModuleId })
const obsUnitPath = Schema.Struct({ id: Ids.ObsUnitId })

/** The science catalog. */
export class CatalogApi extends HttpApiGroup.make("catalog")
  .add(
    HttpApiEndpoint.post("createSource", "/sources").setPayload(CreateSource).addSuccess(Source.json, { status: 201 }).addError(Conflict)
      .addError(Unprocessable).pipe(
        allow(
          admin,
          "Register a Source: a name (unique, ignoring case) and ICRS coordinates in degrees (ra 0 to <360, dec -90 to 90), or a solar-system body."
        )
      )
  )
  .add(
    HttpApiEndpoint.get("listSources", "/sources").setUrlParams(SourceFilter).addSuccess(Page(Source.json)).addError(Unprocessable).pipe(
      allow(everyone, "Sources in the order they were registered, optionally those whose name contains `name`.")
    )
  )
  .add(
    HttpApiEndpoint.get("getSource", "/sources/:id").setPath(sourcePath).addSuccess(Source.json).addError(NotFound).pipe(
      allow(everyone, "One Source.")
    )
  )
  .add(
    HttpApiEndpoint.post("createObservingMode", "/observing-modes").setPayload(CreateObservingMode).addSuccess(ObservingMode.json, {
      status: 201
    }).addError(Conflict).addError(Unprocessable).pipe(allow(admin, "Register an observing mode (names are unique, ignoring case)."))
  )
  .add(
    HttpApiEndpoint.get("listObservingModes", "/observing-modes").addSuccess(Schema.Array(ObservingMode.json)).pipe(
      allow(everyone, "Every observing mode, by name.")
    )
  )
  .add(
    HttpApiEndpoint.get("getObservingMode", "/observing-modes/:id").setPath(modePath).addSuccess(ObservingMode.json).addError(NotFound)
      .pipe(allow(everyone, "One observing mode."))
  )
  .add(
    HttpApiEndpoint.get("listPrograms", "/programs").addSuccess(Schema.Array(ObservingProgram.json)).pipe(
      allow(
        everyone,
        "Observing programs the caller may see (scientists their granted programs, instruments those they file for), by name."
      )
    )
  )
  .add(
    HttpApiEndpoint.get("getProgram", "/programs/:id").setPath(programPath).addSuccess(ObservingProgram.json).addError(NotFound).pipe(
      allow(everyone, "One observing program the caller may see.")
    )
  )
  .add(
    HttpApiEndpoint.patch("updateProgram", "/programs/:id").setPath(programPath).setPayload(UpdateObservingProgram).addSuccess(
      ObservingProgram.json
    ).addError(NotFound).addError(Unprocessable).pipe(
      allow(
        admin,
        "Change a program's title or proprietary period (days after an observation's end until its data is public; null: never)."
      )
    )
  )
  .add(
    HttpApiEndpoint.post("createSubProgram", "/sub-programs").setPayload(CreateSubObservingProgram).addSuccess(SubObservingProgram.json, {
      status: 201
    }).addError(Conflict).addError(Unprocessable).pipe(
      allow(admin, "Register a sub-program of an observing program (names are unique within the program).")
    )
  )
  .add(
    HttpApiEndpoint.get("listSubPrograms", "/sub-programs").setUrlParams(
      Schema.Struct({ programId: Schema.optional(Ids.ObservingProgramId) })
    ).addSuccess(Schema.Array(SubObservingProgram.json)).pipe(
      allow(everyone, "Sub-programs of the programs the caller may see, optionally of one program.")
    )
  )
  .add(
    HttpApiEndpoint.get("getSubProgram", "/sub-programs/:id").setPath(subProgramPath).addSuccess(SubObservingProgram.json).addError(
      NotFound
    ).pipe(allow(everyone, "One sub-program the caller may see."))
  )
  .add(
    HttpApiEndpoint.get("getInstrumentModule", "/instrument-modules/:id").setPath(modulePath).addSuccess(InstrumentModule.json).addError(
      NotFound
    ).pipe(allow(everyone, "One instrument module with its band and ObsCore facts."))
  )
  .add(
    HttpApiEndpoint.patch("updateInstrumentModule", "/instrument-modules/:id").setPath(modulePath).setPayload(UpdateInstrumentModule)
      .addSuccess(InstrumentModule.json).addError(NotFound).addError(Unprocessable).pipe(
        allow(
          admin,
          "Record a module's band (wavelengths in metres or frequencies in Hz), resolving power, product type, raw calibration level, polarization states, field of view and resolution."
        )
      )
  )
  .add(
    HttpApiEndpoint.get("getObsUnit", "/obs-units/:id").setPath(obsUnitPath).addSuccess(ObsUnit.json).addError(NotFound).pipe(
      allow(everyone, "One planned observation the caller may see.")
    )
  )
  .add(
    HttpApiEndpoint.patch("updateObsUnit", "/obs-units/:id").setPath(obsUnitPath).setPayload(UpdateObsUnit).addSuccess(ObsUnit.json)
      .addError(NotFound).addError(Unprocessable).pipe(
        allow(
          admin,
          "Link a planned observation to its Source, sub-program (of the same program) and observing mode; null unlinks. The free-text target stays."
        )
      )
  )
  .add(
    HttpApiEndpoint.get("getPublisher", "/obscore/publisher").addSuccess(Publisher).pipe(
      allow(
        everyone,
        "ObsCore's publisher settings: the IVOA authority of obs_publisher_did, the public base URL of access_url, the collection name."
      )
    )
  )
  .add(
    HttpApiEndpoint.patch("updatePublisher", "/obscore/publisher").setPayload(UpdatePublisher).addSuccess(Publisher).addError(Unprocessable)
      .pipe(
        allow(
          admin,
          "Change ObsCore's publisher settings (the server also takes them from CCAT_PUBLIC_URL, CCAT_IVOA_AUTHORITY and CCAT_OBS_COLLECTION at start). The base URL loses trailing slashes."
        )
      )
  )
  .middleware(Authentication)
  .annotate(
    OpenApi.Description,
    "Sources, observing modes, sub-programs, proprietary periods and module bands: the science side of the observational hierarchy."
  )
{}
