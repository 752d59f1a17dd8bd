/**
 * Moving a row from one state to the next (DESIGN §4.4): one SQL transaction that updates the row
 * only if it is still in the state the caller expects, and appends the change to the event log.
 * A move the machine does not allow, a row that moved on meanwhile, or a row that does not exist
 * is a `TransitionError`, never an overwrite.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { Checksum } from "./Checksum.js"
import * as EventLog from "./EventLog.js"
import { EntityKind } from "./EventLog.js"
import type { JsonObject } from "./Fields.js"
import type * as Ids from "./Ids.js"
import * as RawData from "./RawData.js"
import * as Staging from "./Staging.js"
import * as StateMachine from "./StateMachine.js"
import * as Storage from "./Storage.js"

/** Why a transition was refused. */
export const Reason = Schema.Literal("IllegalTransition", "StateConflict", "NotFound")
/** Why a transition was refused. */
export type Reason = typeof Reason.Type

/**
 * A refused transition. `actual` is the state the row was found in when it had moved on, so a
 * worker can tell "someone else already did it" from "something went wrong".
 */
export class TransitionError extends Schema.TaggedError<TransitionError>()("TransitionError", {
  reason: Reason,
  entity: EntityKind,
  id: Schema.String,
  from: Schema.String,
  to: Schema.String,
  actual: Schema.optional(Schema.String)
}) {
  /** A readable account of the refusal. */
  override get message(): string {
    switch (this.reason) {
      case "IllegalTransition":
        return `${this.entity} cannot move from ${this.from} to ${this.to}: the state machine does not allow it`
      case "StateConflict":
        return `${this.entity} ${this.id} is ${
          this.actual ?? "in another state"
        }, not ${this.from}: it moved on meanwhile, so ${this.to} was not applied`
      case "NotFound":
        return `${this.entity} ${this.id} does not exist`
    }
  }
}

/** The decoded row of each stateful entity. */
export interface EntityOf {
  readonly RawDataFile: RawData.RawDataFile
  readonly RawDataPackage: RawData.RawDataPackage
  readonly DataTransferPackage: RawData.DataTransferPackage
  readonly DataTransfer: RawData.DataTransfer
  readonly PhysicalCopy: Storage.PhysicalCopy
  readonly StagingRequest: Staging.StagingRequest
}

/** The id type of each stateful entity. */
export interface IdOf {
  readonly RawDataFile: Ids.RawDataFileId
  readonly RawDataPackage: Ids.RawDataPackageId
  readonly DataTransferPackage: Ids.DataTransferPackageId
  readonly DataTransfer: Ids.DataTransferId
  readonly PhysicalCopy: Ids.PhysicalCopyId
  readonly StagingRequest: Ids.StagingRequestId
}

interface PackageOutcome {
  readonly sizeBytes?: number | null
  readonly checksum?: Checksum | null
  readonly errorMessage?: string | null
}

/**
 * The other columns a transition may set with the state change, per entity: the results of the
 * work that caused it (a size and checksum once a package is written, a transfer's figures).
 */
export interface SettableOf {
  readonly RawDataFile: { readonly rawDataPackageId?: Ids.RawDataPackageId | null }
  readonly RawDataPackage: PackageOutcome
  readonly DataTransferPackage: PackageOutcome
  readonly DataTransfer: {
    readonly bytesTransferred?: number
    readonly durationMs?: number | null
    readonly throughputBytesPerSecond?: number | null
    readonly errorReason?: string | null
    readonly errorMessage?: string | null
    readonly retryable?: boolean | null
    readonly startedAt?: Date | null
    readonly finishedAt?: Date | null
  }
  readonly PhysicalCopy: {
    readonly verifiedAt?: Date | null
    readonly sizeBytes?: number
    readonly checksum?: Checksum
  }
  readonly StagingRequest: { readonly expiresAt?: Date | null; readonly errorMessage?: string | null }
}

interface Target {
  readonly table: string
  readonly column: string
  readonly model: Schema.Schema<any, any>
  readonly settable: ReadonlyArray<string>
}

const packageOutcome = ["sizeBytes", "checksum", "errorMessage"]

/** Where each entity's state lives, and what a transition may set beside it. */
const targets: { readonly [K in EntityKind]: Target } = {
  RawDataFile: { table: "raw_data_file", column: "state", model: RawData.RawDataFile, settable: ["rawDataPackageId"] },
  RawDataPackage: { table: "raw_data_package", column: "status", model: RawData.RawDataPackage, settable: packageOutcome },
  DataTransferPackage: {
    table: "data_transfer_package",
    column: "status",
    model: RawData.DataTransferPackage,
    settable: packageOutcome
  },
  DataTransfer: {
    table: "data_transfer",
    column: "status",
    model: RawData.DataTransfer,
    settable: [
      "bytesTransferred",
      "durationMs",
      "throughputBytesPerSecond",
      "errorReason",
      "errorMessage",
      "retryable",
      "startedAt",
      "finishedAt"
    ]
  },
  PhysicalCopy: {
    table: "physical_copy",
    column: "status",
    model: Storage.PhysicalCopy,
    settable: ["verifiedAt", "sizeBytes", "checksum"]
  },
  StagingRequest: {
    table: "staging_request",
    column: "status",
    model: Staging.StagingRequest,
    settable: ["expiresAt", "errorMessage"]
  }
}

/** The table that holds each stateful entity (for queries elsewhere that must agree). */
export const tableOf = (entity: EntityKind): string => targets[entity].table

/** What to move, from where to where, and what to record. */
export interface TransitionInput<K extends EntityKind> {
  readonly entity: K
  readonly id: IdOf[K]
  /** The state the caller believes the row is in; the update applies only if it still is. */
  readonly from: StateMachine.StateOf[K]
  readonly to: StateMachine.StateOf[K]
  /** Who moved it (an account name, a worker, "system"); recorded in the event log. */
  readonly actor?: string
  /** Free details for the event log (an error, a job id, figures). */
  readonly details?: JsonObject
  /** Other columns to set in the same update. */
  readonly set?: SettableOf[K]
}

/**
 * Moves one row from `from` to `to` and appends the event, in one statement (the update and the
 * event's insert together, so the move is atomic inside or outside a caller's transaction and
 * costs one round trip to the ops-db). Returns the row as it is after the move.
 */
export const transition = <K extends EntityKind>(
  input: TransitionInput<K>
): Effect.Effect<EntityOf[K], TransitionError | SqlError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const { entity, from, id, to } = input
    const refuse = (reason: Reason, actual?: string) =>
      new TransitionError({ reason, entity, id, from, to, ...(actual !== undefined ? { actual } : {}) })
    if (!StateMachine.canTransition(entity, from, to)) return yield* refuse("IllegalTransition")
    const target = targets[entity]
    const set: Record<string, unknown> = { ...(input.set ?? {}) }
    for (const key of Object.keys(set)) {
      if (!target.settable.includes(key)) {
        return yield* Effect.dieMessage(`Transitions.transition: ${entity} transitions cannot set ${key}`)
      }
    }
    const sql = yield* SqlClient.SqlClient
    const extra = Object.keys(set).length === 0 ? sql.literal("") : sql`, ${sql.update(set)}`
    const rows = yield* sql`
      with moved as (
        update ${sql(target.table)}
        set ${sql(target.column)} = ${to}, updated_at = now() ${extra}
        where id = ${id} and ${sql(target.column)} = ${from}
        returning *),
      logged as (${EventLog.appendFrom(sql, { kind: entity, rows: "moved", from, to, actor: input.actor, details: input.details })})
      select * from moved`
    if (rows.length === 0) {
      const found = yield* sql<{ state: string }>`
        select ${sql(target.column)}::text as state from ${sql(target.table)} where id = ${id}`
      return yield* found.length === 0 ? refuse("NotFound") : refuse("StateConflict", found[0].state)
    }
    return (yield* Effect.orDie(Schema.decodeUnknown(target.model)(rows[0]))) as EntityOf[K]
  }).pipe(Effect.withSpan("Transitions.transition", { attributes: { entity: input.entity, from: input.from, to: input.to } }))

/** What to move, many rows of one entity at once, all from one state to another. */
export interface TransitionAllInput<K extends EntityKind> {
  readonly entity: K
  readonly ids: ReadonlyArray<IdOf[K]>
  readonly from: StateMachine.StateOf[K]
  readonly to: StateMachine.StateOf[K]
  /**
   * A state passed through on the way: each row is updated once, straight to `to`, and gets two
   * events, `from` to `via` then `via` to `to` (half the row versions and index entries of two
   * moves, the same history).
   */
  readonly via?: StateMachine.StateOf[K]
  readonly actor?: string
  /** The same details for every row's event. */
  readonly details?: JsonObject
}

/**
 * Moves every row of `ids` from `from` to `to` (through `via` when given), with an event for each
 * step, in one statement (one round trip whatever the number of rows). All or nothing: when any
 * row is missing or moved on meanwhile, nothing moves and the refusal names the first such row,
 * as `transition` would.
 */
export const transitionAll = <K extends EntityKind>(
  input: TransitionAllInput<K>
): Effect.Effect<void, TransitionError | SqlError, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const { entity, from, ids, to, via } = input
    if (ids.length === 0) return
    const refuse = (reason: Reason, id: string, actual?: string) =>
      new TransitionError({ reason, entity, id, from, to, ...(actual !== undefined ? { actual } : {}) })
    const legal = via === undefined
      ? StateMachine.canTransition(entity, from, to)
      : StateMachine.canTransition(entity, from, via) && StateMachine.canTransition(entity, via, to)
    if (!legal) return yield* refuse("IllegalTransition", ids[0]!)
    const target = targets[entity]
    const sql = yield* SqlClient.SqlClient
    const events = { kind: entity, actor: input.actor, details: input.details }
    // the steps of each row in order, so the two events get ascending ids as the moves would
    const logged = via === undefined
      ? EventLog.appendFrom(sql, { ...events, rows: "moved", from, to })
      : sql`
        with steps as (
          select m.id, s.from_state, s.to_state from moved m
          cross join (values (1, ${from}::text, ${via}::text), (2, ${via}::text, ${to}::text)) s(step, from_state, to_state)
          order by m.id, s.step)
        ${EventLog.appendFrom(sql, { ...events, rows: "steps", from: { column: "from_state" }, to: { column: "to_state" } })}`
    const wanted = [...new Set(ids as ReadonlyArray<string>)]
    // Every row is locked and checked first; the move applies only when all are where expected,
    // so a partial move never commits.
    const rows = yield* sql<{ id: string; state: string | null; moved: boolean }>`
      with wanted as (select unnest(${wanted}::uuid[]) as id),
      current as (
        select t.id, ${sql(target.column)}::text as state from ${sql(target.table)} t
        where t.id in (select id from wanted) for update of t),
      ready as (
        select count(*) = ${wanted.length} as ok from current where state = ${from}::text),
      moved as (
        update ${sql(target.table)} t set ${sql(target.column)} = ${to}, updated_at = now()
        from ready where ready.ok and t.id in (select id from wanted) and t.${sql(target.column)} = ${from}
        returning t.id),
      logged as (${logged})
      select w.id::text as id, c.state, exists (select 1 from moved m where m.id = w.id) as moved
      from wanted w left join current c on c.id = w.id`
    const bad = rows.find((r) => !r.moved)
    if (bad === undefined) return
    const stray = rows.find((r) => r.state === null) ?? rows.find((r) => r.state !== from) ?? bad
    return yield* stray.state === null ? refuse("NotFound", stray.id) : refuse("StateConflict", stray.id, stray.state)
  }).pipe(
    Effect.withSpan("Transitions.transitionAll", {
      attributes: { entity: input.entity, from: input.from, to: input.to, via: input.via ?? "", rows: input.ids.length }
    })
  )
