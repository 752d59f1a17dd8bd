/**
 * The append-only event log: one row per state change of a stateful entity, written in the same
 * transaction as the change (DESIGN §4.4). The database rejects UPDATE, DELETE and TRUNCATE on it.
 */
import * as Model from "@effect/sql/Model"
import * as Schema from "effect/Schema"
import { DisplayName, GeneratedTimestamp, JsonObject } from "./Fields.js"
import * as Ids from "./Ids.js"

/** The kinds of entity that have a state machine, and so appear in the event log. */
export const EntityKind = Schema.Literal(
  "RawDataFile",
  "RawDataPackage",
  "DataTransferPackage",
  "DataTransfer",
  "PhysicalCopy",
  "StagingRequest"
)
/** A kind of entity with a state machine. */
export type EntityKind = typeof EntityKind.Type

/**
 * One state change: which entity, from which state to which, when, by whom, and free details
 * (a transfer's error, a job id). `fromState` is null for an entity's creation event.
 */
export class EventLogEntry extends Model.Class<EventLogEntry>("EventLogEntry")({
  id: Model.Generated(Ids.EventId),
  entityKind: EntityKind,
  entityId: Schema.UUID,
  fromState: Schema.NullOr(Schema.String),
  toState: Schema.String,
  at: GeneratedTimestamp,
  actor: DisplayName,
  details: JsonObject
}) {}
