/**
 * The deletion of one scheduled copy: decided with the copy locked (still eligible, else called
 * off), the object checked to be the one recorded, the rule checked once more right before the
 * bytes go, then deleted and recorded DELETED (releasing a SOURCE path), or DELETION_FAILED.
 */
import { type Ids, Retention as CoreRetention, type StorageDriver, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Retention from "../Retention.js"
import type * as Sites from "../Sites.js"

/** A transition refused because the copy moved on meanwhile: another planner or worker got there first. */
export const isConflict = (e: unknown): e is Transitions.TransitionError =>
  e instanceof Transitions.TransitionError && e.reason === "StateConflict"

/**
 * Runs a deletion's step from DELETION_IN_PROGRESS; false when the copy had moved on: two workers
 * may carry the same deletion (one resuming a crashed job), and the first to finish leaves the
 * other nothing to do, which is no error.
 */
const unlessFinishedElsewhere = <A, E, R>(copyId: Ids.PhysicalCopyId, step: Effect.Effect<A, E, R>) =>
  step.pipe(
    Effect.as(true),
    Effect.catchIf(
      (e: E): e is E & Transitions.TransitionError => isConflict(e),
      (e) => Effect.as(Effect.logDebug(`copy ${copyId} is ${e.actual ?? "elsewhere"}: another worker finished its deletion`), false)
    )
  )

/**
 * Decides, inside one transaction with the copy locked, whether the deletion goes ahead: only a
 * scheduled copy that is still eligible moves to DELETION_IN_PROGRESS; one that is not is called
 * off. A copy already in progress goes ahead: it was checked before it moved there, and a
 * location's job is a singleton, so a deletion it finds in progress was cut off by a dead worker.
 */
const decide = (site: string, copyId: Ids.PhysicalCopyId, locationType: string, overThreshold: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const actor = `worker:${site}`
    return yield* sql.withTransaction(
      Effect.gen(function* () {
        const [row] = yield* sql<{ status: string }>`select status::text as status from physical_copy where id = ${copyId} for update`
        if (row === undefined) return false
        if (row.status === "DELETION_IN_PROGRESS") return true
        if (row.status !== "DELETION_SCHEDULED") return false
        const still = yield* Retention.eligible({ copyId, statuses: ["DELETION_SCHEDULED"], overThreshold, limit: 1 })
        if (still.length === 0) {
          yield* Transitions.transition({
            entity: "PhysicalCopy",
            id: copyId,
            from: "DELETION_SCHEDULED",
            to: CoreRetention.keptState(locationType),
            actor,
            details: { reason: "no longer eligible for deletion" }
          })
          return false
        }
        yield* Transitions.transition({ entity: "PhysicalCopy", id: copyId, from: "DELETION_SCHEDULED", to: "DELETION_IN_PROGRESS", actor })
        return true
      })
    )
  })

/**
 * Where a copy is deleted, and how its re-check judges the fill threshold: `age` lets only the
 * minimum age make a copy eligible (a decision deletions running beside it cannot change, so such
 * copies may go in parallel); `fill` also counts the location's fill, measured afresh.
 */
export interface Target {
  readonly location: Sites.Location
  readonly storage: StorageDriver.Service
  readonly rule: "age" | "fill"
}

/** A copy as cleanup reads it before deleting: where, what was recorded, and whose SOURCE path it holds. */
interface CopyRow {
  readonly path: string
  readonly sizeBytes: number
  readonly checksum: string
  readonly identity: string | null
  /** The RawDataFile whose SOURCE path this copy is, if it is one. */
  readonly sourceFileId: string | null
}

/**
 * Why the object under the copy's path is not the one recorded, or undefined when it is (or is
 * gone, which deleting treats as done): an instrument that wrote new bytes to a packaged path, or
 * anyone who replaced a buffer's package, must never lose them to cleanup. Its size must match.
 * An unchanged identity (where the record and the driver both have one) proves the rest at the
 * cost of a stat; otherwise (no identity recorded, or one that moved without the bytes changing:
 * a remount, a chmod) the object is read whole against the recorded checksum, and only the
 * recorded bytes are deleted. A read that cannot tell fails, so the deletion is retried.
 */
const changedSince = (storage: StorageDriver.Service, copy: CopyRow) =>
  Effect.gen(function* () {
    const info = yield* storage.stat(copy.path)
    if (Number(info.size) !== Number(copy.sizeBytes)) return `it holds ${info.size} bytes, not the ${copy.sizeBytes} recorded`
    if (copy.identity !== null && info.identity !== undefined && info.identity === copy.identity) return undefined
    const moved = copy.identity !== null && info.identity !== undefined
      ? `identity ${info.identity}, recorded ${copy.identity}`
      : "no identity to compare"
    return yield* storage.verify(copy.path, copy.checksum as never).pipe(
      Effect.as(undefined),
      Effect.catchIf(
        (e) => e.reason === "Corrupt",
        (e) => Effect.succeed(`it was written again since it was recorded (${moved}): ${e.description ?? e.message}`)
      )
    )
  }).pipe(Effect.catchIf((e) => e.reason === "NotFound", () => Effect.succeed(undefined)))

/** Deletes one scheduled copy if the rule still allows it, and records the outcome. */
export const deleteCopy = (site: string, copyId: Ids.PhysicalCopyId, target: Target) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [copy] = yield* sql<CopyRow>`
      select c.path, c.size_bytes, c.checksum, c.identity, f.id as source_file_id from physical_copy c
      left join raw_data_file f on f.id = c.raw_data_file_id and f.source_location_id = c.data_location_id
      where c.id = ${copyId}`
    if (copy === undefined) return yield* Effect.logWarning(`physical copy ${copyId} does not exist; nothing to delete`)
    const overThreshold = target.rule === "age" ? [] : yield* Retention.overThreshold({ locationId: target.location.id })
    if (!(yield* decide(site, copyId, target.location.type, overThreshold))) return
    // Leaves the deletion without deleting: the copy kept as CORRUPT, or DELETION_FAILED for the
    // planner to look at again; false when another worker had finished it meanwhile.
    const leave = (to: "CORRUPT" | "DELETION_FAILED", details: Readonly<Record<string, string>>) =>
      unlessFinishedElsewhere(
        copyId,
        Transitions.transition({ entity: "PhysicalCopy", id: copyId, from: "DELETION_IN_PROGRESS", to, actor: `worker:${site}`, details })
      )
    // A staged copy at PROCESSING is the system's own working copy, expired or released as a
    // whole; a file filed there (a pipeline's product) is someone's data and is checked as SOURCE is.
    if (target.location.type !== "PROCESSING" || copy.sourceFileId !== null) {
      const changed = yield* changedSince(target.storage, copy).pipe(Effect.either)
      const why = changed._tag === "Left" ? undefined : changed.right
      if (why !== undefined) {
        const recorded = yield* leave("CORRUPT", { reason: "changed since recorded", detail: why })
        if (!recorded) return
        return yield* Effect.logError(
          `not deleting ${copy.path} at ${target.location.name}: ${why}; the copy is marked CORRUPT and kept for an operator`
        )
      }
      // A stat that failed otherwise is the location's problem: the deletion fails and is retried.
      if (changed._tag === "Left") {
        const recorded = yield* leave("DELETION_FAILED", {
          error: `could not check the object before deleting it: ${changed.left.message}`
        })
        if (!recorded) return
        return yield* Effect.logWarning(
          `checking ${copy.path} at ${target.location.name} before deleting it failed; the planner retries it`,
          changed.left
        )
      }
    }
    // The rule again, right before the bytes go: an archive copy found bad since the decision
    // (or a deletion resumed after a crash, long after it) must not let the last good bytes go.
    const still = yield* Retention.eligible({ copyId, statuses: ["DELETION_IN_PROGRESS"], overThreshold, limit: 1 })
    if (still.length === 0) {
      const recorded = yield* leave("DELETION_FAILED", {
        error:
          "no longer eligible when about to be deleted (an archive copy it relied on is no longer good, or it is needed again); the planner looks again"
      })
      if (!recorded) return
      return yield* Effect.logWarning(
        `not deleting ${copy.path} at ${target.location.name}: it is no longer eligible; the planner looks at it again`
      )
    }
    // Delete is idempotent: an object already gone counts as deleted. Whatever else happens (a
    // driver's defect too) is recorded, so the copy never waits in DELETION_IN_PROGRESS for nothing.
    const deleted = yield* target.storage.delete(copy.path).pipe(Effect.sandbox, Effect.either)
    const actor = `worker:${site}`
    // Two workers may finish the same crashed deletion; the second finds it done, which is no error.
    // A SOURCE file's path is released with its deletion, in the same transaction: from then on
    // the instrument may file new bytes under it.
    const finish = (to: "DELETED" | "DELETION_FAILED", details?: { readonly error: string }) =>
      unlessFinishedElsewhere(
        copyId,
        sql.withTransaction(
          Effect.gen(function* () {
            yield* Transitions.transition({
              entity: "PhysicalCopy",
              id: copyId,
              from: "DELETION_IN_PROGRESS",
              to,
              actor,
              ...(details ? { details } : {})
            })
            if (to === "DELETED" && copy.sourceFileId !== null) {
              yield* sql`update raw_data_file set source_released_at = now() where id = ${copy.sourceFileId} and source_released_at is null`
            }
          })
        )
      )
    if (deleted._tag === "Right") return yield* finish("DELETED")
    const error = Cause.squash(deleted.left)
    yield* finish("DELETION_FAILED", { error: error instanceof Error ? error.message : String(error) })
    yield* Effect.logWarning(`deleting ${copy.path} at ${target.location.name} failed; the planner retries it`, deleted.left)
  }).pipe(Effect.withSpan("Cleanup.deleteCopy", { attributes: { copyId } }))
