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

/** Copies a location job takes per round, so one round stays short. */
export const batch = 500

/**
 * Copies one planner tick schedules at most of each kind (eligible ones; failed deletions due
 * again, seldom any): each costs a row update with two events (about 0.1 ms), so a tick stays
 * within tens of milliseconds while scheduling 40 deletions a second per site at the default
 * 5-second rounds.
 */
export const planBatch = 200

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
 * Moves a chunk of eligible copies to DELETION_SCHEDULED together: a statement per state they
 * are in, each row updated once with an event per step of the way (PRESENT or STAGED through
 * DELETION_POSSIBLE, DELETION_POSSIBLE, and failed deletions back), whatever the chunk's size.
 * All or nothing: a copy that moved on since it was judged fails the whole chunk's transaction.
 */
const scheduleTogether = (site: string, chunk: ReadonlyArray<Retention.Deletable>) =>
  Effect.forEach(["PRESENT", "STAGED", "DELETION_POSSIBLE", "DELETION_FAILED"] as const, (from) =>
    Transitions.transitionAll({
      entity: "PhysicalCopy",
      ids: chunk.filter((c) => c.status === from).map((c) => c.id as Ids.PhysicalCopyId),
      from,
      ...(from === "PRESENT" || from === "STAGED" ? { via: "DELETION_POSSIBLE" as const } : {}),
      to: "DELETION_SCHEDULED",
      actor: `planner:${site}`
    }), { discard: true })

/**
 * Moves one eligible copy to DELETION_SCHEDULED (a savepoint of the caller's transaction, so a
 * copy that moved on meanwhile is skipped without undoing the others); its location's job is
 * sent after.
 */
const schedule = (site: string, copy: Retention.Deletable) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql.withTransaction(scheduleTogether(site, [copy])).pipe(Effect.catchIf(isConflict, () => Effect.void))
  )

/** Copies scheduled per planner transaction: each kind of a tick's in one commit, short enough not to hold locks long. */
const scheduleChunk = planBatch

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
      limit ${planBatch}`)
