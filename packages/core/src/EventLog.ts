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
 * Every kind of entity the event log records: the ones with a state machine; ExecutedObsUnit,
 * whose closing (end time, final status, quality) is recorded although filing, not a state
 * machine, decides its status; and the access changes (`accessEvents`): accounts and tokens.
 */
export const LoggedEntityKind = Schema.Literal(...EntityKind.literals, "ExecutedObsUnit", "Account", "ApiToken")
/** A kind of entity the event log records. */
export type LoggedEntityKind = typeof LoggedEntityKind.Type

/**
 * One state change: which entity, from which state to which, when, by whom, and free details
 * (a transfer's error, a job id). `fromState` is null for an entity's creation event.
 */
export class EventLogEntry extends Model.Class<EventLogEntry>("EventLogEntry")({
  id: Model.Generated(Ids.EventId),
  entityKind: LoggedEntityKind,
  entityId: Schema.UUID,
  fromState: Schema.NullOr(Schema.String),
  toState: Schema.String,
  at: GeneratedTimestamp,
  actor: DisplayName,
  details: JsonObject
}) {}

/**
 * What the log records of access, as `to_state`: an account created or enabled (`active`),
 * disabled, given a grant or losing one (the grant in the details); a token issued (`active`)
 * or revoked.
 */
export const accessEvents = {
  Account: ["active", "disabled", "granted", "grant-revoked"],
  ApiToken: ["active", "revoked"]
} as const
