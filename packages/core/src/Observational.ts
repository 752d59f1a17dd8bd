/**
 * The observational hierarchy of the ops-db (DESIGN §3): Observatory → Telescope → Instrument →
 * InstrumentModule, and ObservingProgram → ObsUnit (what the telescope *will* observe) →
 * ExecutedObsUnit (what it *did* observe). Each class decodes a row (`Telescope`), encodes a new
 * one (`Telescope.insert`) and has the API's JSON shape (`Telescope.json`).
 */
import * as Model from "@effect/sql/Model"
import * as Schema from "effect/Schema"
import { DisplayName, GeneratedTimestamp, JsonObject, Timestamp, TimestampOrNull } from "./Fields.js"
import * as Ids from "./Ids.js"
import { Status } from "./Status.js"

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

/** A module of an instrument; a RawDataPackage holds the files of one module. */
export class InstrumentModule extends Model.Class<InstrumentModule>("InstrumentModule")({
  id: Model.Generated(Ids.InstrumentModuleId),
  instrumentId: Ids.InstrumentId,
  name: DisplayName,
  description: Schema.String,
  createdAt: GeneratedTimestamp
}) {}

/** A scientific program; access to data is granted per program. */
export class ObservingProgram extends Model.Class<ObservingProgram>("ObservingProgram")({
  id: Model.Generated(Ids.ObservingProgramId),
  name: DisplayName,
  title: Schema.String,
  createdAt: GeneratedTimestamp
}) {}

/** A planned observation: target, duration and instrument configuration. */
export class ObsUnit extends Model.Class<ObsUnit>("ObsUnit")({
  id: Model.Generated(Ids.ObsUnitId),
  observingProgramId: Ids.ObservingProgramId,
  instrumentId: Ids.InstrumentId,
  name: DisplayName,
  target: Schema.String,
  plannedDurationSeconds: Schema.NullOr(Schema.NonNegative),
  configuration: JsonObject,
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
