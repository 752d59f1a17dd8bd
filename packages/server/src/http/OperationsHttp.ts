/**
 * The operations group: an operator's retry of a failed item. A retry is only worth giving when
 * something then does the work again, so each one is checked against what failed and why, in one
 * transaction with the rows locked, before it is recorded:
 *
 * - a RawDataPackage its failed bundle took with it comes back with the bundle (the sending site's
 *   bundling planner); one whose own buffer copy failed bundling goes back to wait for a bundle
 *   (the bundling planner, which checks the copy again); one whose files were all found corrupt or
 *   missing gets those files back to be checked and packaged again (the packaging planner);
 * - a DataTransferPackage is sent again by its site's bundling planner, unless every package in it
 *   was found faulty (it has none left to send);
 * - a StagingRequest is served again by the staging planner, unless a package it names is still
 *   failed (that package is retried first);
 * - a failed DataTransfer attempt is final, so its retry is a new attempt linked to it, which the
 *   transfer worker takes up (its failed bundle comes back with it).
 *
 * Anything no planner would take up is refused with a 409 that says why and what to do instead:
 * nothing is left pending with nothing to pick it up.
 */
import { Api, ApiErrors, ApiSecurity, type Ids, Repositories, Transitions } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type { SqlError } from "@effect/sql/SqlError"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Sites from "../lifecycle/Sites.js"
import * as FaultyFiles from "../lifecycle/FaultyFiles.js"
import * as SourcePaths from "../lifecycle/SourcePaths.js"
import * as Transfer from "../lifecycle/Transfer.js"
import * as Access from "./Access.js"

const notFailed = (entity: string, id: string, actual: string) =>
  new ApiErrors.Conflict({
    reason: "StateConflict",
    entity,
    id,
    fields: ["status"],
    message: `${entity} ${id} is ${actual}, not failed: only failed items are retried`
  })

/** A retry refused because retrying cannot get the item anywhere; the message says why and what to do. */
const cannotHelp = (entity: string, id: string, message: string) =>
  new ApiErrors.Conflict({ reason: "StateConflict", entity, id, fields: ["status"], message })

type Details = { readonly retry: true; readonly reason?: string }

/** Locks the row and checks it is failed; a missing row is a 404, another state a 409. */
const lockFailed = (entity: "RawDataPackage" | "DataTransferPackage" | "StagingRequest", table: string, id: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ status: string }>`select status::text as status from ${sql(table)} where id = ${id} for update`
    if (rows.length === 0) return yield* Access.notFound(entity, id)
    if (rows[0].status !== "failed") return yield* notFailed(entity, id, rows[0].status)
  })

/** failed → pending with the operator's event; the row was locked and checked by the caller. */
const toPending = (
  entity: "RawDataPackage" | "DataTransferPackage" | "StagingRequest",
  id: string,
  actor: string,
  details: Details & Record<string, unknown>
) =>
  Transitions.transition({
    entity: entity as "RawDataPackage",
    id: id as Ids.RawDataPackageId,
    from: "failed",
    to: "pending",
    actor,
    details: details as never,
    set: { errorMessage: null }
  }).pipe(Effect.catchTag("TransitionError", Effect.die))

/**
 * A failed package. Why it failed is read from its last `→ failed` event (bundling and
 * packaging record what they found there), and decides which planner takes it up again.
 */
const retryPackage = (id: string, actor: string, details: Details) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* lockFailed("RawDataPackage", "raw_data_package", id)
    const [last] = yield* sql<{ details: { bundleId?: string; problem?: string } }>`
      select details from event_log where entity_kind = 'RawDataPackage' and entity_id = ${id} and to_state = 'failed'
      order by id desc limit 1`
    const bundleId = last?.details.bundleId
    if (bundleId !== undefined && last?.details.problem === undefined) {
      // Its bundle failed and took it along: retrying it retries the bundle (Bundling.retried).
      const [bundle] = yield* sql<{ status: string }>`select status::text as status from data_transfer_package where id = ${bundleId}`
      // A pending bundle (retried already) brings it back too.
      if (bundle?.status === "failed" || bundle?.status === "pending") {
        return yield* toPending("RawDataPackage", id, actor, { ...details, bundleId })
      }
      return yield* cannotHelp(
        "RawDataPackage",
        id,
        `package ${id} failed with its bundle ${bundleId}, which went on without it (it is ${
          bundle?.status ?? "gone"
        }): nothing would send the package again`
      )
    }
    // Written and still in a buffer of a site that sends towards an archive: it waits for a
    // bundle again, and bundling checks the copy again (a copy still bad fails it again), also
    // one bundling had found corrupt or missing (an operator may have put it back).
    const buffered = yield* sql<{ n: number }>`
      select count(*)::int as n from physical_copy c join data_location l on l.id = c.data_location_id
      where c.raw_data_package_id = ${id} and c.status in ('PRESENT', 'CORRUPT', 'MISSING') and l.type = 'BUFFER'
        and not exists (select 1 from data_location a where a.site_id = l.site_id and a.type = 'LONG_TERM_ARCHIVE')`
    if (buffered[0].n > 0) return yield* toPending("RawDataPackage", id, actor, details)
    const written = yield* sql<{ n: number }>`
      select count(*)::int as n from physical_copy where raw_data_package_id = ${id} and status <> 'DELETED'`
    if (written[0].n > 0) {
      return yield* cannotHelp(
        "RawDataPackage",
        id,
        `package ${id} has copies but none in a buffer it could be sent from: nothing would take it up again`
      )
    }
    // Never written: its files are packaged again. Files it found corrupt or missing (and that
    // nothing else took since) come back to be checked again: restored ones are packaged, ones
    // still bad fail it again with what was found.
    const faulty = yield* sql<{ id: Ids.RawDataFileId; state: "corrupt" | "missing" }>`
      select f.id, f.state::text as state from raw_data_file f
      where f.raw_data_package_id is null and f.state in ('corrupt', 'missing')
        and f.id in (select e.entity_id from event_log e where e.entity_kind = 'RawDataFile' and e.details->>'packageId' = ${id}
                     and e.to_state in ('corrupt', 'missing'))
      order by f.relative_path
      for update`
    for (const f of faulty) {
      yield* Transitions.transition({
        entity: "RawDataFile",
        id: f.id,
        from: f.state,
        to: "filed",
        actor,
        details: { packageId: id, retry: true, ...(details.reason === undefined ? {} : { reason: details.reason }) },
        set: { rawDataPackageId: id as Ids.RawDataPackageId }
      }).pipe(Effect.catchTag("TransitionError", Effect.die))
    }
    const files = yield* sql<
      { n: number }
    >`select count(*)::int as n from raw_data_file where raw_data_package_id = ${id} and state = 'filed'`
    if (files[0].n === 0) {
      return yield* cannotHelp(
        "RawDataPackage",
        id,
        `package ${id} holds no file to package again: its files were packaged elsewhere or were never its own; nothing would take it up`
      )
    }
    return yield* toPending("RawDataPackage", id, actor, { ...details, files: files[0].n, recheckedFiles: faulty.length })
  })

/** A failed bundle: its site's bundling planner sends it again, if it has packages left. */
const retryBundle = (id: string, actor: string, details: Details) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* lockFailed("DataTransferPackage", "data_transfer_package", id)
    const members = yield* sql<
      { n: number }
    >`select count(*)::int as n from data_transfer_package_member where data_transfer_package_id = ${id}`
    if (members[0].n === 0) {
      return yield* cannotHelp(
        "DataTransferPackage",
        id,
        `bundle ${id} has no packages left: every package in it was found faulty when it was bundled and taken out (each is FAILED with what was found); retry those packages, they are bundled anew`
      )
    }
    return yield* toPending("DataTransferPackage", id, actor, details)
  })

/**
 * A failed staging request: the staging planner serves it again, once the packages it names can
 * be staged. A released one is not: it would be served only for cleanup to take it back.
 */
const retryStaging = (id: string, actor: string, details: Details) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* lockFailed("StagingRequest", "staging_request", id)
    const [released] = yield* sql<{ releasedAt: Date | null }>`select released_at from staging_request where id = ${id}`
    if (released?.releasedAt != null) {
      return yield* cannotHelp(
        "StagingRequest",
        id,
        `staging request ${id} was released: it keeps nothing any more; make a new request instead`
      )
    }
    const failed = yield* sql<{ id: string }>`
      select p.id from staging_request_item i join raw_data_package p on p.id = i.raw_data_package_id
      where i.staging_request_id = ${id} and p.status = 'failed' order by p.id`
    if (failed.length > 0) {
      return yield* cannotHelp(
        "StagingRequest",
        id,
        `staging request ${id} names packages that are still failed (${
          failed.map((p) => p.id).join(", ")
        }): retry them first, then the request`
      )
    }
    return yield* toPending("StagingRequest", id, actor, details)
  })

/**
 * A failed transfer attempt: a new pending attempt linked to it, which the transfer worker takes
 * up as the bundle's next attempt. A failed bundle comes back with it (failed → pending, so its
 * bundling planner brings its packages back and sends it); a delivered one needs nothing.
 */
const retryAttempt = (id: string, actor: string, details: Details) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const found = yield* Repositories.dataTransfers.findById(id as Ids.DataTransferId)
    if (Option.isNone(found)) return yield* Access.notFound("DataTransfer", id)
    const old = found.value
    if (old.status !== "failed") return yield* notFailed("DataTransfer", id, old.status)
    const later = yield* sql<{ id: string }>`select id from data_transfer where previous_attempt_id = ${old.id} for update`
    if (later.length > 0) {
      return yield* new ApiErrors.Conflict({
        reason: "StateConflict",
        entity: "DataTransfer",
        id,
        fields: [],
        message: `attempt ${id} was already retried by attempt ${later[0].id}`
      })
    }
    const bundleId = old.dataTransferPackageId
    if (bundleId === null) {
      return yield* cannotHelp(
        "DataTransfer",
        id,
        `attempt ${id} moved a single package, which this release no longer sends on its own: retry the package instead`
      )
    }
    const [bundle] = yield* sql<
      { status: string }
    >`select status::text as status from data_transfer_package where id = ${bundleId} for update`
    if (bundle?.status === "completed") {
      return yield* cannotHelp("DataTransfer", id, `bundle ${bundleId} of attempt ${id} arrived already: there is nothing to send again`)
    }
    const newer = yield* sql<{ id: string; status: string }>`
      select id, status::text as status from data_transfer where data_transfer_package_id = ${bundleId} and attempt > ${old.attempt}
      order by attempt desc limit 1`
    if (newer.length > 0) {
      return yield* cannotHelp(
        "DataTransfer",
        id,
        `attempt ${id} is not the last of bundle ${bundleId}: attempt ${newer[0].id} (${
          newer[0].status
        }) came after it; retry that one if it failed`
      )
    }
    if (bundle?.status === "failed") {
      const members = yield* sql<
        { n: number }
      >`select count(*)::int as n from data_transfer_package_member where data_transfer_package_id = ${bundleId}`
      if (members[0].n === 0) {
        return yield* cannotHelp(
          "DataTransfer",
          id,
          `bundle ${bundleId} of attempt ${id} has no packages left: every package in it was found faulty when it was bundled; retry those packages, they are bundled anew`
        )
      }
      yield* toPending("DataTransferPackage", bundleId, actor, { ...details, retriedAttempt: id })
    }
    const next = yield* Repositories.dataTransfers.insert(
      {
        dataTransferPackageId: old.dataTransferPackageId,
        rawDataPackageId: old.rawDataPackageId,
        routeId: old.routeId,
        fromLocationId: old.fromLocationId,
        toLocationId: old.toLocationId,
        previousAttemptId: old.id,
        attempt: old.attempt + 1,
        adapter: old.adapter
      },
      { actor, details: { ...details, retriedAttempt: old.id } }
    ).pipe(
      // A worker linked its own next attempt to this one meanwhile (previous_attempt_id is unique).
      Effect.catchTag(
        "ConstraintError",
        () =>
          Effect.fail(
            cannotHelp(
              "DataTransfer",
              id,
              `a worker started the attempt after ${id} meanwhile: the bundle is being sent; retry that attempt if it fails`
            )
          )
      )
    )
    // A bundle still on its way has its next try queued for when its backoff ends: the operator
    // fixed what failed, so that try starts now and takes up this attempt.
    if (bundle?.status !== "failed") {
      const from = yield* Sites.location(old.fromLocationId)
      // in a savepoint: a failed statement would otherwise abort the retry's whole transaction
      const moved = yield* sql.withTransaction(Transfer.tryNow(from.siteName, bundleId)).pipe(
        Effect.catchAll((e) =>
          Effect.as(
            Effect.logWarning(
              `retry of attempt ${old.id}: its bundle's next try could not be moved forward; it runs when its backoff ends`,
              e
            ),
            0
          )
        )
      )
      if (moved > 0) yield* Effect.logInfo(`bundle ${bundleId}: its next try, waiting for its backoff, starts now`)
    }
    yield* Effect.logInfo(`transfer attempt ${old.id} retried by ${actor} as attempt ${next.attempt} (${next.id})`)
    return next.id
  })

/** The operations group's handlers. */
export const OperationsHttpLive = HttpApiBuilder.group(
  Api.Api,
  "operations",
  (handlers) =>
    handlers.handle("retry", ({ payload }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const sql = yield* SqlClient.SqlClient
        const details: Details = payload.reason === undefined ? { retry: true } : { retry: true, reason: payload.reason }
        const done = { entity: payload.entity, id: payload.id, from: "failed", to: "pending" } as const
        return yield* sql.withTransaction(
          Effect.gen(function* () {
            switch (payload.entity) {
              case "RawDataPackage":
                yield* retryPackage(payload.id, p.name, details)
                return done
              case "DataTransferPackage":
                yield* retryBundle(payload.id, p.name, details)
                return done
              case "StagingRequest":
                yield* retryStaging(payload.id, p.name, details)
                return done
              case "DataTransfer":
                return { ...done, newAttemptId: yield* retryAttempt(payload.id, p.name, details) }
            }
          })
        ).pipe(Effect.catchTag("SqlError", Effect.die))
      })).handle("releaseSourcePath", ({ path, payload }) =>
        Effect.gen(function* () {
          const p = yield* ApiSecurity.CurrentAccount
          return yield* SourcePaths.release(path.id, p.name, payload.reason).pipe(
            Effect.catchTag("ReleaseRefused", (e): Effect.Effect<never, ApiErrors.NotFound | ApiErrors.Conflict> =>
              Effect.fail(
                e.reason === "NotFound"
                  ? Access.notFound("PhysicalCopy", path.id)
                  : new ApiErrors.Conflict({
                    reason: "StateConflict",
                    entity: "PhysicalCopy",
                    id: path.id,
                    fields: ["status"],
                    message: e.message
                  })
              )),
            Effect.catchTag("SqlError", Effect.die),
            Effect.catchTag("TransitionError", Effect.die)
          )
        })).handle(
        "recheckFile",
        ({ path, payload }) =>
          Effect.flatMap(ApiSecurity.CurrentAccount, (p) => settled(path.id, FaultyFiles.recheck(path.id, p.name, payload.reason)))
      ).handle(
        "giveUpFile",
        ({ path, payload }) =>
          Effect.flatMap(ApiSecurity.CurrentAccount, (p) => settled(path.id, FaultyFiles.giveUp(path.id, p.name, payload.reason)))
      )
)

/** An action on a faulty file, its refusals as the API's errors. */
const settled = <A, R>(id: string, action: Effect.Effect<A, FaultyFiles.FaultyFileRefused | SqlError | Transitions.TransitionError, R>) =>
  action.pipe(
    Effect.catchTag("FaultyFileRefused", (e): Effect.Effect<never, ApiErrors.NotFound | ApiErrors.Conflict> =>
      Effect.fail(
        e.reason === "NotFound"
          ? Access.notFound("RawDataFile", id)
          : new ApiErrors.Conflict({ reason: "StateConflict", entity: "RawDataFile", id, fields: ["state"], message: e.message })
      )),
    Effect.catchTag("SqlError", Effect.die),
    Effect.catchTag("TransitionError", Effect.die)
  )
