/**
 * The append-only event log: one row per state change of a stateful entity, per access change and
 * per configuration change, written in the same transaction as the change (DESIGN §4.4) through
 * `append` or `appendFrom`, the only writers. The database rejects UPDATE, DELETE and TRUNCATE on it.
 */
import * as Model from "@effect/sql/Model"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Fragment } from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
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
 * whose filing and closing (end time, final status, quality) are recorded although filing, not a
 * state machine, decides its status; the access changes (`accessEvents`): accounts and tokens;
 * the topology (`configurationEvents`): sites, locations (their availability switches too)
 * and routes; and the built-in notifier's incidents, opened and resolved.
 */
export const LoggedEntityKind = Schema.Literal(
  ...EntityKind.literals,
  "ExecutedObsUnit",
  "Account",
  "ApiToken",
  "Site",
  "DataLocation",
  "Route",
  "AlertIncident"
)
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

/**
 * What the log records of the topology, as `to_state`: a Site or Route created or changed by the
 * configuration sync (`configured`, what changed in the details). A DataLocation's state in the
 * log is its availability (`availability`), so a switch reads as one state to another and a
 * configuration change as an event from the availability to itself.
 */
export const configurationEvents = {
  Site: ["configured"],
  Route: ["configured"]
} as const

/** The availability switches of a DataLocation. */
export interface Availability {
  readonly readable: boolean
  readonly writable: boolean
  readonly deletable: boolean
}

/**
 * A DataLocation's availability as an event state: the operations it allows joined by `+`
 * (`read+write+delete`, `read`), or `unavailable` when it allows none.
 */
export const availability = (a: Availability): string => {
  const allowed = [a.readable ? "read" : "", a.writable ? "write" : "", a.deletable ? "delete" : ""].filter((s) => s !== "")
  return allowed.length === 0 ? "unavailable" : allowed.join("+")
}

/** One event to append. */
export interface NewEvent {
  readonly kind: LoggedEntityKind
  readonly id: string
  /** The state before; null for the entity's creation. */
  readonly from: string | null
  readonly to: string
  /** Who made the change (an account name, `worker:<site>`, `cli:<user>`); `system` when unsaid. */
  readonly actor?: string | undefined
  /** Free details: an error, a reason, a job id, what changed. */
  readonly details?: Readonly<Record<string, unknown>> | undefined
}

/**
 * Appends events in one statement whatever their number (arrays, not a row of parameters per
 * event). It runs in the caller's transaction: call it inside the transaction that makes the
 * change, so the log never shows a change that did not commit nor misses one that did.
 */
export const append = (events: NewEvent | ReadonlyArray<NewEvent>): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const list: ReadonlyArray<NewEvent> = Array.isArray(events) ? events : [events as NewEvent]
    if (list.length === 0) return
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      insert into event_log (entity_kind, entity_id, from_state, to_state, actor, details)
      select * from unnest(
        ${list.map((e) => e.kind)}::text[]::entity_kind[], ${list.map((e) => e.id)}::uuid[],
        ${list.map((e) => e.from)}::text[], ${list.map((e) => e.to)}::text[],
        ${list.map((e) => e.actor ?? "system")}::text[], ${list.map((e) => JSON.stringify(e.details ?? {}))}::text[]::jsonb[])`
  }).pipe(Effect.withSpan("EventLog.append"))

/** A state in `RowEvents`: a value, null (a creation), or a column of the changed rows. */
export type StateOfRow = string | null | { readonly column: string }

/** The events of the rows a statement changes: one per row of its CTE `rows`. */
export interface RowEvents {
  readonly kind: LoggedEntityKind
  /** The name of the CTE that returns the changed rows, with their `id`. */
  readonly rows: string
  readonly from: StateOfRow
  readonly to: Exclude<StateOfRow, null>
  readonly actor?: string | undefined
  /** The same details for every row's event. */
  readonly details?: Readonly<Record<string, unknown>> | undefined
  /** A jsonb column of the changed rows with each row's own details, merged over `details`. */
  readonly detailsColumn?: string | undefined
}

/**
 * The SQL that appends one event per row of the CTE `rows`, to be placed as a CTE of the very
 * statement that makes the change (`with moved as (update ... returning *), logged as
 * (${appendFrom(sql, ...)}) select * from moved`): the change and its events are one statement,
 * atomic in or out of a transaction, at the cost of one round trip.
 */
export const appendFrom = (sql: SqlClient.SqlClient, e: RowEvents): Fragment => {
  const state = (s: StateOfRow): Fragment =>
    s === null ? sql`null::text` : typeof s === "string" ? sql`${s}::text` : sql`r.${sql(s.column)}::text`
  const shared = sql`${JSON.stringify(e.details ?? {})}::jsonb`
  const details = e.detailsColumn === undefined ? shared : sql`${shared} || r.${sql(e.detailsColumn)}::jsonb`
  return sql`
    insert into event_log (entity_kind, entity_id, from_state, to_state, actor, details)
    select ${e.kind}::entity_kind, r.id, ${state(e.from)}, ${state(e.to)}, ${e.actor ?? "system"}::text, ${details}
    from ${sql(e.rows)} r`
}
