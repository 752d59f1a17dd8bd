/**
 * The lifecycle state machines, as plain data: for every stateful entity, the states a row may
 * start in and, for each state, the states it may move to next. The repositories (`Transitions`)
 * refuse any other move; the docs and the UI read the same tables, so they cannot drift apart.
 */
import type { EntityKind } from "./EventLog.js"
import type { RawDataFileState } from "./RawData.js"
import type { Status } from "./Status.js"
import type { PhysicalCopyStatus } from "./Storage.js"

/** The state type of each kind of entity. */
export interface StateOf {
  readonly RawDataFile: RawDataFileState
  readonly RawDataPackage: Status
  readonly DataTransferPackage: Status
  readonly DataTransfer: Status
  readonly PhysicalCopy: PhysicalCopyStatus
  readonly StagingRequest: Status
}

/** A state machine: where a row may start and where each state may go next. */
export interface Machine<S extends string> {
  /** States a new row may be created in. */
  readonly initial: ReadonlyArray<S>
  /** For each state, the states it may move to; an empty list marks a final state. */
  readonly next: { readonly [K in S]: ReadonlyArray<S> }
}

/**
 * A long-running operation that can be retried on the same row: packaging and archiving a
 * RawDataPackage, moving a DataTransferPackage, serving a StagingRequest. `scheduled → pending`
 * lets a planner take back a job the engine lost; `in_progress → scheduled` lets the engine
 * retry after a worker crash; `failed → pending` is a retry that an operator or the backoff
 * policy decided on.
 */
export const operation: Machine<Status> = {
  initial: ["pending"],
  next: {
    pending: ["scheduled", "failed"],
    scheduled: ["in_progress", "pending", "failed"],
    in_progress: ["completed", "failed", "scheduled"],
    completed: [],
    failed: ["pending"]
  }
}

/**
 * One DataTransfer attempt. It never goes back: a retry is a new attempt row linked to this
 * one, so every attempt's bytes, duration and error stay on record.
 */
export const transferAttempt: Machine<Status> = {
  initial: ["pending"],
  next: {
    pending: ["scheduled", "failed"],
    scheduled: ["in_progress", "failed"],
    in_progress: ["completed", "failed"],
    completed: [],
    failed: []
  }
}

/**
 * A filed file: packaged once a package holds it, marked corrupt or missing when a scan at its
 * SOURCE finds it damaged or gone, and back to filed when it is repaired or found again (or its
 * package is abandoned) so it gets packaged anew.
 */
export const rawDataFile: Machine<RawDataFileState> = {
  initial: ["filed"],
  next: {
    filed: ["packaged", "corrupt", "missing"],
    packaged: ["filed", "corrupt", "missing"],
    corrupt: ["filed"],
    missing: ["filed"]
  }
}

/**
 * A PhysicalCopy: PRESENT (or STAGED at a PROCESSING location) until cleanup. Deletion is a
 * path through DELETION_POSSIBLE (retention allows it) and DELETION_SCHEDULED (a job exists) to
 * DELETION_IN_PROGRESS and then DELETED or DELETION_FAILED; until deletion starts it can be
 * called off (back to PRESENT or STAGED), which keeps invariant 1 enforceable when a copy
 * becomes the source of a new transfer. Whoever finds a copy's bytes wrong or gone records it as
 * CORRUPT or MISSING, from any state in which the copy was still counted (and from
 * DELETION_IN_PROGRESS, when the bytes about to be deleted are not the ones recorded). A CORRUPT
 * or MISSING copy goes back to PRESENT or STAGED only when re-read and found good, and to DELETED
 * once repair has replaced it or removed the bad object. DELETED is final: a new copy is a new row.
 */
export const physicalCopy: Machine<PhysicalCopyStatus> = {
  initial: ["PRESENT", "STAGED"],
  next: {
    PRESENT: ["DELETION_POSSIBLE", "DELETION_SCHEDULED", "CORRUPT", "MISSING"],
    STAGED: ["DELETION_POSSIBLE", "DELETION_SCHEDULED", "CORRUPT", "MISSING"],
    DELETION_POSSIBLE: ["DELETION_SCHEDULED", "PRESENT", "STAGED", "CORRUPT", "MISSING"],
    DELETION_SCHEDULED: ["DELETION_IN_PROGRESS", "PRESENT", "STAGED", "CORRUPT", "MISSING"],
    DELETION_IN_PROGRESS: ["DELETED", "DELETION_FAILED", "CORRUPT"],
    DELETION_FAILED: ["DELETION_SCHEDULED", "PRESENT", "CORRUPT", "MISSING"],
    CORRUPT: ["PRESENT", "STAGED", "MISSING", "DELETED"],
    MISSING: ["PRESENT", "STAGED", "CORRUPT", "DELETED"],
    DELETED: []
  }
}

/** The machine of every stateful entity. */
export const machines: { readonly [K in EntityKind]: Machine<StateOf[K]> } = {
  RawDataFile: rawDataFile,
  RawDataPackage: operation,
  DataTransferPackage: operation,
  DataTransfer: transferAttempt,
  PhysicalCopy: physicalCopy,
  StagingRequest: operation
}

/** Every state of an entity kind. */
export const states = <K extends EntityKind>(kind: K): ReadonlyArray<StateOf[K]> => Object.keys(machines[kind].next) as Array<StateOf[K]>

/** Whether `state` is a state of the entity kind at all (input from the API is only a string). */
export const isState = <K extends EntityKind>(kind: K, state: string): state is StateOf[K] => Object.hasOwn(machines[kind].next, state)

/** The states a row of this kind in state `from` may move to. */
export const nextStates = <K extends EntityKind>(kind: K, from: StateOf[K]): ReadonlyArray<StateOf[K]> =>
  (machines[kind].next as Record<string, ReadonlyArray<StateOf[K]>>)[from] ?? []

/** Whether moving a row of this kind from `from` to `to` is allowed. */
export const canTransition = (kind: EntityKind, from: string, to: string): boolean =>
  isState(kind, from) && isState(kind, to) && nextStates(kind, from).includes(to)

/** Whether a state is final (no move leaves it). */
export const isFinal = <K extends EntityKind>(kind: K, state: StateOf[K]): boolean => nextStates(kind, state).length === 0

/** Every allowed move of an entity kind, as `[from, to]` pairs (for docs, UIs and tests). */
export const transitions = <K extends EntityKind>(kind: K): ReadonlyArray<readonly [StateOf[K], StateOf[K]]> =>
  states(kind).flatMap((from) => nextStates(kind, from).map((to) => [from, to] as const))
