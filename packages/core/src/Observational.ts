/**
 * The observational hierarchy of the ops-db (DESIGN §3): Observatory → Telescope → Instrument →
 * InstrumentModule (with its frequency band), and ObservingProgram → SubObservingProgram →
 * ObsUnit (what the telescope *will* observe: a Source, an ObservingMode and a configuration) →
 * ExecutedObsUnit (what it *did* observe). Each class decodes a row (`Telescope`), encodes a new
 * one (`Telescope.insert`) and has the API's JSON shape (`Telescope.json`).
 */
import * as Model from "@effect/sql/Model"
import * as Schema from "effect/Schema"
import { DisplayName, GeneratedTimestamp, JsonObject, Timestamp, TimestampOrNull } from "./Fields.js"
import * as Ids from "./Ids.js"
import { Status } from "./Status.js"

/**
 * A column that may be NULL and that rows made before it existed lack: a creator may leave it out
 * (the database's default, NULL, holds), a reader always gets it, as `null` when unset.
 */
const Optional = <S extends Schema.Schema.Any>(schema: S) =>
  Model.Field({
    select: Schema.NullOr(schema),
    insert: Schema.optional(Schema.NullOr(schema)),
    update: Schema.NullOr(schema),
    json: Schema.NullOr(schema),
    jsonCreate: Schema.optional(Schema.NullOr(schema)),
    jsonUpdate: Schema.optional(Schema.NullOr(schema))
  })

/** The speed of light in vacuum, m/s: converts a frequency band to the wavelengths ObsCore uses. */
export const speedOfLight = 299_792_458

/** A wavelength in metres: finite and above zero (`em_min`, `em_max` in ObsCore). */
export const Wavelength = Schema.Number.pipe(
  Schema.finite({ message: () => "a wavelength must be a finite number of metres" }),
  Schema.positive({ message: () => "a wavelength must be above zero metres" })
).annotations({ identifier: "WavelengthMetres" })

/** A frequency in Hz: finite and above zero. */
export const Frequency = Schema.Number.pipe(
  Schema.finite({ message: () => "a frequency must be a finite number of Hz" }),
  Schema.positive({ message: () => "a frequency must be above zero Hz" })
).annotations({ identifier: "FrequencyHz" })

/** The wavelength of a frequency (metres from Hz). */
export const wavelengthOf = (frequencyHz: number): number => speedOfLight / frequencyHz

/**
 * The wavelength band of a frequency band: the highest frequency gives the shortest wavelength,
 * so `emMin` comes from `maxHz`.
 */
export const bandOfFrequencies = (minHz: number, maxHz: number): { readonly emMin: number; readonly emMax: number } => ({
  emMin: wavelengthOf(maxHz),
  emMax: wavelengthOf(minHz)
})

/** Right ascension (ICRS) in degrees, from 0 up to but not including 360. */
export const RightAscension = Schema.Number.pipe(
  Schema.finite({ message: () => "ra must be a finite number of degrees" }),
  Schema.greaterThanOrEqualTo(0, { message: () => "ra must be from 0 up to (not including) 360 degrees" }),
  Schema.lessThan(360, { message: () => "ra must be from 0 up to (not including) 360 degrees" })
).annotations({ identifier: "RightAscensionDeg" })

/** Declination (ICRS) in degrees, from -90 to 90. */
export const Declination = Schema.Number.pipe(
  Schema.finite({ message: () => "dec must be a finite number of degrees" }),
  Schema.between(-90, 90, { message: () => "dec must be from -90 to 90 degrees" })
).annotations({ identifier: "DeclinationDeg" })

/** ObsCore's `dataproduct_type` vocabulary: what kind of data a module's raw data is. */
export const DataproductType = Schema.Literal("image", "cube", "spectrum", "sed", "timeseries", "visibility", "event", "measurements")
/** ObsCore's `dataproduct_type` vocabulary. */
export type DataproductType = typeof DataproductType.Type

/**
 * ObsCore's calibration level of raw data: 0 needs the instrument's own tools to read, 1 is in a
 * standard format (FITS) that standard tools read.
 */
export const RawCalibLevel = Schema.Literal(0, 1)
/** The calibration level of raw data. */
export type RawCalibLevel = typeof RawCalibLevel.Type

/** The polarization states of a module as ObsCore writes them, e.g. `/I/Q/U/`. */
export const PolStates = Schema.String.pipe(
  Schema.pattern(/^\/((I|Q|U|V|RR|LL|RL|LR|XX|YY|XY|YX|POLI|POLA)\/)+$/, {
    message: () => "polStates is a list like /I/Q/U/ of I, Q, U, V, RR, LL, RL, LR, XX, YY, XY, YX, POLI, POLA"
  })
).annotations({ identifier: "PolStates" })

/** An angle on the sky in degrees: above zero, at most 180 (a field of view). */
export const FieldOfView = Schema.Number.pipe(
  Schema.finite(),
  Schema.greaterThan(0, { message: () => "a field of view must be above zero degrees" }),
  Schema.lessThanOrEqualTo(180, { message: () => "a field of view is at most 180 degrees" })
).annotations({ identifier: "FieldOfViewDeg" })

/** A positive finite number (a resolution, a resolving power). */
const PositiveFinite = Schema.Number.pipe(Schema.finite(), Schema.positive({ message: () => "must be above zero" }))

/** A proprietary period in whole days, at most a century. */
export const ProprietaryPeriodDays = Schema.Int.pipe(
  Schema.between(0, 36_500, { message: () => "a proprietary period is 0 to 36500 whole days" })
).annotations({ identifier: "ProprietaryPeriodDays" })

/** An observatory (CCAT): the root of the observational hierarchy. */
export class Observatory extends Model.Class<Observatory>("Observatory")({
  id: Model.Generated(Ids.ObservatoryId),
  name: DisplayName,
  description: Schema.String,
  createdAt: GeneratedTimestamp
}) {}

/** A telescope of an observatory (FYST). */
export class Telescope extends Model.Class<Telescope>("Telescope")({
  id: Model.Generated(Ids.TelescopeId),
  observatoryId: Ids.ObservatoryId,
  name: DisplayName,
  description: Schema.String,
  createdAt: GeneratedTimestamp
}) {}

/** An instrument mounted on a telescope (Prime-Cam, CHAI); it files observations. */
export class Instrument extends Model.Class<Instrument>("Instrument")({
  id: Model.Generated(Ids.InstrumentId),
  telescopeId: Ids.TelescopeId,
  name: DisplayName,
  description: Schema.String,
  createdAt: GeneratedTimestamp
}) {}

/**
 * A module of an instrument; a RawDataPackage holds the files of one module. What ObsCore says
 * of its raw data comes from here: the wavelength band (`emMin`..`emMax`, metres), resolving
 * power, product type, calibration level, polarization states, field of view and angular
 * resolution. Each is null until an admin records it.
 */
export class InstrumentModule extends Model.Class<InstrumentModule>("InstrumentModule")({
  id: Model.Generated(Ids.InstrumentModuleId),
  instrumentId: Ids.InstrumentId,
  name: DisplayName,
  description: Schema.String,
  /** The shortest wavelength the module sees, metres. */
  emMin: Optional(Wavelength),
  /** The longest wavelength the module sees, metres. */
  emMax: Optional(Wavelength),
  /** Spectral resolving power λ/Δλ. */
  emResPower: Optional(PositiveFinite),
  dataproductType: Optional(DataproductType),
  /** 0 unless the module writes a standard format; defaults to 0. */
  rawCalibLevel: Model.Field({
    select: RawCalibLevel,
    insert: Schema.optional(RawCalibLevel),
    update: RawCalibLevel,
    json: RawCalibLevel,
    jsonCreate: Schema.optional(RawCalibLevel),
    jsonUpdate: Schema.optional(RawCalibLevel)
  }),
  polStates: Optional(PolStates),
  /** Diameter of the field of view, degrees. */
  fovDeg: Optional(FieldOfView),
  /** Angular resolution (beam FWHM), arcseconds. */
  resolutionArcsec: Optional(PositiveFinite),
  createdAt: GeneratedTimestamp
}) {}

/**
 * A scientific program; access to data is granted per program. Its data becomes public
 * `proprietaryPeriodDays` after each observation ends; null means never (the default, so no
 * data is published by accident).
 */
export class ObservingProgram extends Model.Class<ObservingProgram>("ObservingProgram")({
  id: Model.Generated(Ids.ObservingProgramId),
  name: DisplayName,
  title: Schema.String,
  proprietaryPeriodDays: Optional(ProprietaryPeriodDays),
  createdAt: GeneratedTimestamp
}) {}

/** A part of an observing program (a survey field, a sub-project), grouping its ObsUnits. */
export class SubObservingProgram extends Model.Class<SubObservingProgram>("SubObservingProgram")({
  id: Model.Generated(Ids.SubObservingProgramId),
  observingProgramId: Ids.ObservingProgramId,
  name: DisplayName,
  title: Schema.String,
  createdAt: GeneratedTimestamp
}) {}

/**
 * What is observed: a name and ICRS coordinates in degrees, or a solar-system body, whose
 * position moves and so may have none. Names are unique regardless of case.
 */
export class Source extends Model.Class<Source>("Source")({
  id: Model.Generated(Ids.SourceId),
  name: DisplayName,
  /** ICRS right ascension, degrees; null only for a solar-system body. */
  raDeg: Schema.NullOr(RightAscension),
  /** ICRS declination, degrees; null only for a solar-system body. */
  decDeg: Schema.NullOr(Declination),
  solarSystem: Schema.Boolean,
  description: Schema.String,
  createdAt: GeneratedTimestamp
}) {}

/** How the telescope observes (raster, on-the-fly map, pointing, stare); ObsUnits name one. */
export class ObservingMode extends Model.Class<ObservingMode>("ObservingMode")({
  id: Model.Generated(Ids.ObservingModeId),
  name: DisplayName,
  description: Schema.String,
  createdAt: GeneratedTimestamp
}) {}

/**
 * A planned observation: its target, duration, observing mode and instrument configuration.
 * `target` is the free text ops-dbs held before Sources existed; `sourceId` names the Source
 * when there is one (new ObsUnits with a Source carry its name as `target`).
 */
export class ObsUnit extends Model.Class<ObsUnit>("ObsUnit")({
  id: Model.Generated(Ids.ObsUnitId),
  observingProgramId: Ids.ObservingProgramId,
  instrumentId: Ids.InstrumentId,
  name: DisplayName,
  target: Schema.String,
  plannedDurationSeconds: Schema.NullOr(Schema.NonNegative),
  configuration: JsonObject,
  subObservingProgramId: Optional(Ids.SubObservingProgramId),
  sourceId: Optional(Ids.SourceId),
  observingModeId: Optional(Ids.ObservingModeId),
  createdAt: GeneratedTimestamp
}) {}

/** How good an executed observation turned out, once someone assessed it. */
export const Quality = Schema.Literal("unassessed", "good", "questionable", "bad")
/** How good an executed observation turned out. */
export type Quality = typeof Quality.Type

/**
 * An observation as executed. Its id is made by the instrument, so filing the same observation
 * twice stores it once (DESIGN §4.6).
 */
export class ExecutedObsUnit extends Model.Class<ExecutedObsUnit>("ExecutedObsUnit")({
  id: Ids.ExecutedObsUnitId,
  obsUnitId: Ids.ObsUnitId,
  startAt: Timestamp,
  endAt: TimestampOrNull,
  status: Status,
  conditions: JsonObject,
  quality: Quality,
  metadata: JsonObject,
  createdAt: GeneratedTimestamp,
  updatedAt: GeneratedTimestamp
}) {}
