/**
 * Stage 7 of issue 6, cleanup: SOURCE file copies, BUFFER package and bundle copies and
 * PROCESSING staged copies are deleted exactly when invariant 1 and the location's retention
 * policy allow it (the rules are `Retention.eligible`). The planner moves an eligible copy
 * PRESENT/STAGED → DELETION_POSSIBLE → DELETION_SCHEDULED and enqueues its job in the same
 * transaction; the worker locks the copy, re-checks the rule inside its transaction (a copy that
 * became a transfer source, is needed by a staging request, or whose archive copies lost their
 * verification is called off, back to PRESENT or STAGED), moves it to DELETION_IN_PROGRESS,
 * deletes it (a file already gone counts as deleted) and records DELETED, or DELETION_FAILED,
 * which the planner schedules again after a capped exponential wait.
 */
import { Ids, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { JobQueue } from "../engine/JobQueue.js"
import * as Retention from "./Retention.js"
import * as Sites from "./Sites.js"
import { queueName, type Stage } from "./Stage.js"
import { Storages } from "./Storages.js"

/** The stage's name and queue suffix. */
export const name = "cleanup"

const Job = Schema.Struct({ copyId: Ids.PhysicalCopyId })

/** Copies a planning round schedules at most, so one round stays short. */
const batch = 500

/** First wait before a failed deletion is tried again; it doubles per failure up to an hour. */
const retryBaseSeconds = 2

/** The state a called-off copy goes back to: STAGED at a PROCESSING location, PRESENT elsewhere. */
const keptState = (locationType: string) => (locationType === "PROCESSING" ? "STAGED" as const : "PRESENT" as const)

const isConflict = (e: unknown) => e instanceof Transitions.TransitionError && e.reason === "StateConflict"

/** Moves one eligible copy to DELETION_SCHEDULED and enqueues its job, in one transaction. */
const schedule = (site: string, copy: Retention.Deletable) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const jobs = yield* JobQueue
    const id = copy.id as Ids.PhysicalCopyId
    const actor = `planner:${site}`
    return yield* sql.withTransaction(
      Effect.gen(function* () {
        if (copy.status === "PRESENT" || copy.status === "STAGED") {
          yield* Transitions.transition({ entity: "PhysicalCopy", id, from: copy.status, to: "DELETION_POSSIBLE", actor })
        }
        const from = copy.status === "DELETION_FAILED" ? "DELETION_FAILED" as const : "DELETION_POSSIBLE" as const
        yield* Transitions.transition({ entity: "PhysicalCopy", id, from, to: "DELETION_SCHEDULED", actor })
        yield* jobs.send(queueName(site, name), { copyId: id }, { singletonKey: id })
        return 1
      })
    ).pipe(Effect.catchIf(isConflict, () => Effect.succeed(0)))
  })

/** Failed deletions whose wait is over: 2 s after the first failure, doubling, at most an hour. */
const failedDue = (site: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ id: string; path: string; locationId: string; locationType: string }>`
      select c.id, c.path, c.data_location_id as location_id, l.type::text as location_type
      from physical_copy c join data_location l on l.id = c.data_location_id join site s on s.id = l.site_id
      where s.name = ${site} and c.status = 'DELETION_FAILED'
        and c.updated_at < now() - make_interval(secs => least(3600, ${retryBaseSeconds} * power(2, greatest(0, (
          select count(*) from event_log e
          where e.entity_kind = 'PhysicalCopy' and e.entity_id = c.id and e.to_state = 'DELETION_FAILED') - 1))))
      limit ${batch}`
  )

/**
 * Schedules the deletion of every eligible copy at the site, retries failed deletions whose
 * wait is over, and re-sends jobs a lost queue would have dropped.
 */
export const plan = Effect.fn("Cleanup.plan")(function* (site: string) {
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobQueue
  const overThreshold = yield* Retention.overThreshold({ site })
  const eligible = yield* Retention.eligible({
    site,
    statuses: ["PRESENT", "STAGED", "DELETION_POSSIBLE"],
    overThreshold,
    limit: batch
  })
  let enqueued = 0
  for (const copy of eligible) enqueued += yield* schedule(site, copy)
  // A failed deletion is retried whatever the rule says now: the worker re-checks it.
  for (const copy of yield* failedDue(site)) {
    enqueued += yield* schedule(site, { ...copy, status: "DELETION_FAILED", locationType: copy.locationType as Retention.Deletable["locationType"] })
  }
  const stale = yield* sql<{ id: string }>`
    select c.id from physical_copy c join data_location l on l.id = c.data_location_id join site s on s.id = l.site_id
    where s.name = ${site} and c.status in ('DELETION_SCHEDULED', 'DELETION_IN_PROGRESS')
      and c.updated_at < now() - interval '10 minutes'
    limit ${batch}`
  for (const copy of stale) {
    const sent = yield* jobs.send(queueName(site, name), { copyId: copy.id }, { singletonKey: copy.id })
    if (sent !== null) enqueued++
  }
  return enqueued
})

/**
 * Decides, inside one transaction with the copy locked, whether the deletion goes ahead: only a
 * scheduled copy that is still eligible moves to DELETION_IN_PROGRESS; one that is not is called
 * off. A copy already in progress (a retry after a crash) goes ahead: it was checked before.
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
            entity: "PhysicalCopy", id: copyId, from: "DELETION_SCHEDULED", to: keptState(locationType), actor,
            details: { reason: "no longer eligible for deletion" }
          })
          return false
        }
        yield* Transitions.transition({ entity: "PhysicalCopy", id: copyId, from: "DELETION_SCHEDULED", to: "DELETION_IN_PROGRESS", actor })
        return true
      })
    )
  })

/** Deletes one scheduled copy if the rule still allows it. */
export const work = Effect.fn("Cleanup.work")(function* (site: string, data: unknown) {
  const { copyId } = yield* Schema.decodeUnknown(Job)(data)
  const sql = yield* SqlClient.SqlClient
  const storages = yield* Storages
  const [copy] = yield* sql<{ path: string; locationId: string; locationType: string }>`
    select c.path, c.data_location_id as location_id, l.type::text as location_type
    from physical_copy c join data_location l on l.id = c.data_location_id where c.id = ${copyId}`
  if (copy === undefined) return yield* Effect.logWarning(`physical copy ${copyId} does not exist; job dropped`)
  const overThreshold = yield* Retention.overThreshold({ locationId: copy.locationId })
  if (!(yield* decide(site, copyId, copy.locationType, overThreshold))) return
  const location = yield* Sites.location(copy.locationId)
  // Delete is idempotent: an object already gone counts as deleted.
  const deleted = yield* Effect.flatMap(storages.of(location), (storage) => storage.delete(copy.path)).pipe(Effect.either)
  const actor = `worker:${site}`
  if (deleted._tag === "Right") {
    yield* Transitions.transition({ entity: "PhysicalCopy", id: copyId, from: "DELETION_IN_PROGRESS", to: "DELETED", actor })
    return
  }
  yield* Transitions.transition({
    entity: "PhysicalCopy", id: copyId, from: "DELETION_IN_PROGRESS", to: "DELETION_FAILED", actor,
    details: { error: deleted.left.message }
  })
  yield* Effect.logWarning(`deleting ${copy.path} at ${location.name} failed; the planner retries it`, deleted.left)
})

/** The cleanup stage. */
export const stage: Stage<SqlClient.SqlClient | JobQueue | Storages> = {
  name,
  plan,
  work,
  queue: { policy: "stately", retryLimit: 5, retryDelaySeconds: 30, retryBackoff: true, expireInSeconds: 3600 },
  concurrency: 2
}
