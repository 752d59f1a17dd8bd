/**
 * Cleanup's scheduling side: eligible copies moved to DELETION_SCHEDULED in chunks of one
 * transaction each, and failed deletions found again once their capped exponential wait is over.
 */
import { Backoff, type Ids, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Retention from "../Retention.js"
import { isConflict } from "./CopyDeletion.js"

/** Copies a planning round schedules at most, and a location job takes per round, so one round stays short. */
export const batch = 500

/** Waits before a failed deletion is tried again: 2 s after the first failure, doubling, at most an hour. */
const deletionRetry: Backoff.Policy = { base: "2 seconds", cap: "1 hour", jitter: Backoff.none }

/**
 * The policy's waits in seconds by failures so far (1-based), up to the first at the cap: the
 * planner's statement picks each copy's from its count of failures.
 */
const deletionWaits: ReadonlyArray<number> = (() => {
  const waits: Array<number> = []
  for (let failures = 1; failures <= 64; failures++) {
    waits.push(Duration.toSeconds(Backoff.delayFor(deletionRetry, failures, 0)))
    if (waits[waits.length - 1] >= Duration.toSeconds(deletionRetry.cap!)) break
  }
  return waits
})()

/**
 * Moves one eligible copy to DELETION_SCHEDULED (a savepoint of the caller's transaction, so a
 * copy that moved on meanwhile is skipped without undoing the others); its location's job is
 * sent after.
 */
const schedule = (site: string, copy: Retention.Deletable) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const id = copy.id as Ids.PhysicalCopyId
    const actor = `planner:${site}`
    return yield* sql.withTransaction(
      Effect.gen(function* () {
        if (copy.status === "PRESENT" || copy.status === "STAGED") {
          yield* Transitions.transition({ entity: "PhysicalCopy", id, from: copy.status, to: "DELETION_POSSIBLE", actor })
        }
        const from = copy.status === "DELETION_FAILED" ? "DELETION_FAILED" as const : "DELETION_POSSIBLE" as const
        yield* Transitions.transition({ entity: "PhysicalCopy", id, from, to: "DELETION_SCHEDULED", actor })
      })
    ).pipe(Effect.catchIf(isConflict, () => Effect.void))
  })

/**
 * Moves a chunk of eligible copies to DELETION_SCHEDULED together: a statement per step of the
 * way (PRESENT or STAGED to DELETION_POSSIBLE, then on to DELETION_SCHEDULED, and failed
 * deletions back to DELETION_SCHEDULED), each row with its event, whatever the chunk's size. All
 * or nothing: a copy that moved on since it was judged fails the whole chunk's transaction.
 */
const scheduleTogether = (site: string, chunk: ReadonlyArray<Retention.Deletable>) =>
  Effect.gen(function* () {
    const actor = `planner:${site}`
    const ids = (keep: (copy: Retention.Deletable) => boolean) => chunk.filter(keep).map((c) => c.id as Ids.PhysicalCopyId)
    for (const from of ["PRESENT", "STAGED"] as const) {
      yield* Transitions.transitionAll({ entity: "PhysicalCopy", ids: ids((c) => c.status === from), from, to: "DELETION_POSSIBLE", actor })
    }
    for (const from of ["DELETION_POSSIBLE", "DELETION_FAILED"] as const) {
      const moving = ids((c) => from === "DELETION_FAILED" ? c.status === "DELETION_FAILED" : c.status !== "DELETION_FAILED")
      yield* Transitions.transitionAll({ entity: "PhysicalCopy", ids: moving, from, to: "DELETION_SCHEDULED", actor })
    }
  })

/** Copies scheduled per planner transaction: one commit for many, short enough not to hold locks long. */
const scheduleChunk = 100

/**
 * Schedules copies, `scheduleChunk` per transaction: each chunk at once (a few statements), or,
 * when one of its copies moved on meanwhile, copy by copy, skipping those that did.
 */
export const scheduleAll = (site: string, copies: ReadonlyArray<Retention.Deletable>) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      Effect.forEach(
        Array.from(
          { length: Math.ceil(copies.length / scheduleChunk) },
          (_, i) => copies.slice(i * scheduleChunk, (i + 1) * scheduleChunk)
        ),
        (chunk) =>
          sql.withTransaction(scheduleTogether(site, chunk)).pipe(
            Effect.catchIf(isConflict, () => sql.withTransaction(Effect.forEach(chunk, (copy) => schedule(site, copy), { discard: true })))
          ),
        { discard: true }
      )
  )

/** Failed deletions whose wait (`deletionRetry`) is over. */
export const failedDue = (site: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string; path: string; locationId: string; locationType: string }>`
      select c.id, c.path, c.data_location_id as location_id, l.type::text as location_type
      from physical_copy c join data_location l on l.id = c.data_location_id join site s on s.id = l.site_id
      where s.name = ${site} and c.status = 'DELETION_FAILED'
        and c.updated_at < now() - make_interval(secs => (${deletionWaits}::float8[])[least(${deletionWaits.length}, greatest(1, (
          select count(*)::int from event_log e
          where e.entity_kind = 'PhysicalCopy' and e.entity_id = c.id and e.to_state = 'DELETION_FAILED')))])
      limit ${batch}`)
