/**
 * Filing on the ops-db: an observation and its files in one transaction, all or nothing.
 *
 * The common case (a new observation with new files, or new files for an open one) is one
 * set-based statement (`FilingBulk`): ten thousand files are one round trip, their creation
 * events included. Anything else is rolled back and filed by the careful path (the observation
 * here, its files in `FilingFiles`), which checks step by step so a bad request fails with the
 * field to fix: references first (the ObsUnit, the instrument's grant, the SOURCE location, the
 * modules), then the names, then the inserts with `on conflict do nothing`; whatever was already
 * there is compared with the request, so a repeat is answered with the stored rows and a
 * different re-file is a 409 naming the fields. Both paths answer the same, and every refused
 * request leaves the database as it was.
 *
 * Two rules protect what the packager and cleanup do later. A name the packager cannot write
 * (the manifest's, or a path that is also another file's folder anywhere in the observation) is
 * refused with 422 before anything is written. A path at a SOURCE location has one owner: the
 * file filed for it until its SOURCE copy is deleted; another observation's file on that path is
 * refused with 409 naming the holder (a partial unique index enforces it against races).
 */
import { type ApiSecurity, EventLog, type ObservationsApi, type Observational } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { StoredFile } from "./FilingAnswer.js"
import * as FilingBulk from "./FilingBulk.js"
import { decodeObservation, fileFiles, lockObservation, type ObservationRow } from "./FilingFiles.js"
import {
  authorizeInstrument,
  checkFileSpecs,
  conflict,
  observationDifferences,
  requestFolders,
  sameInstant,
  unprocessable
} from "./FilingRules.js"

export { authorizeInstrument, checkFileSpecs, requestFolders } from "./FilingRules.js"

/** An observation as filed, with the files of the request as stored, in request order. */
export interface Filed {
  readonly observation: Observational.ExecutedObsUnit
  readonly files: ReadonlyArray<StoredFile>
}

/** The bulk path found something it leaves to the careful path; its transaction is rolled back. */
class Fallback {
  readonly _tag = "Fallback"
}

const fallback = Effect.fail(new Fallback())

/** The files of a bulk filing as stored: each new, filed at the transaction's instant. */
const storedFiles = (
  eouId: string,
  locationId: string,
  modules: ReadonlyMap<string, string>,
  files: ReadonlyArray<ObservationsApi.FileSpec>,
  at: Date
): Array<StoredFile> =>
  files.map((f) => ({
    // As the database returns a uuid: lower-case, whatever case the request used.
    id: f.id.toLowerCase(),
    executedObsUnitId: eouId,
    instrumentModuleId: modules.get(f.module)!,
    relativePath: f.relativePath,
    sizeBytes: f.sizeBytes,
    checksum: f.checksum,
    sourceLocationId: locationId,
    rawDataPackageId: null,
    state: "filed",
    filedAt: at,
    updatedAt: at
  }))

/**
 * Files by the bulk path when it is the common case: `None` when the careful path must decide
 * (its transaction is then rolled back, so nothing of it stays).
 */
const bulk = (
  p: ApiSecurity.Principal,
  observationId: string,
  create: FilingBulk.NewObservation | undefined,
  repeatOf: ObservationsApi.FileObservation | undefined,
  sourceLocation: string | undefined,
  files: ReadonlyArray<ObservationsApi.FileSpec>
): Effect.Effect<Option.Option<Filed>, never, SqlClient.SqlClient> =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    if (files.length > 0 && sourceLocation === undefined) return Option.none()
    const folders = yield* Effect.option(requestFolders(files.map((f) => f.relativePath)))
    if (Option.isNone(folders)) return Option.none()
    return yield* sql.withTransaction(
      Effect.gen(function* () {
        const outcome = yield* FilingBulk.file({
          principal: p,
          observationId,
          create,
          sourceLocation,
          files,
          folders: [...folders.value.keys()]
        })
        if (outcome.observation === undefined || outcome.instrumentId === undefined) return yield* fallback
        const observation = yield* Effect.orDie(decodeObservation(outcome.observation))
        if (!outcome.created) {
          if (repeatOf !== undefined && observationDifferences(observation, repeatOf).length > 0) return yield* fallback
          yield* authorizeInstrument(p, outcome.instrumentId)
        }
        if (files.length === 0) return Option.some<Filed>({ observation, files: [] })
        const location = outcome.location
        yield* checkFileSpecs(sourceLocation!, location, outcome.modules, files)
        if (location === undefined || outcome.unpackable || outcome.inserted !== files.length || outcome.filedAt === undefined) {
          return yield* fallback
        }
        return Option.some<Filed>({ observation, files: storedFiles(observation.id, location.id, outcome.modules, files, outcome.filedAt) })
      })
      // Whatever went wrong (a refusal, a conflict, a deadlock with a concurrent filing), the careful path runs it again and says why.
    ).pipe(Effect.catchAll(() => Effect.succeedNone))
  })

/** Files an observation with its files by the careful path, or answers with what is stored when it is a repeat. */
const fileCarefully = (p: ApiSecurity.Principal, req: ObservationsApi.FileObservation) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(
      Effect.gen(function* () {
        const units = yield* sql<{ instrumentId: string }>`select instrument_id from obs_unit where id = ${req.obsUnitId}`
        if (units.length === 0) {
          return yield* unprocessable("UnknownReference", "obsUnitId", `there is no ObsUnit ${req.obsUnitId}; an admin plans it first`)
        }
        const instrumentId = units[0].instrumentId
        yield* authorizeInstrument(p, instrumentId)
        const endAt = req.endAt ?? null
        if (endAt !== null && endAt.getTime() < req.startAt.getTime()) {
          return yield* unprocessable(
            "OutOfRange",
            "endAt",
            `the observation ends (${endAt.toISOString()}) before it starts (${req.startAt.toISOString()})`
          )
        }
        const files = req.files ?? []
        if (files.length > 0 && req.sourceLocation === undefined) {
          return yield* unprocessable("Invalid", "sourceLocation", "files are filed at a SOURCE location: name it in sourceLocation")
        }
        const inserted = yield* sql<Record<string, unknown>>`
          insert into executed_obs_unit ${sql.insert(newObservation(req))}
          on conflict (id) do nothing returning *`
        let observation: ObservationRow
        let closed = false
        if (inserted.length > 0) {
          observation = { row: yield* Effect.orDie(decodeObservation(inserted[0])), instrumentId }
          yield* EventLog.append(filedEvent(observation.row.id, observation.row.status, p.name))
        } else {
          // The insert saw the row, so it exists: not finding it now would be a defect.
          observation = yield* lockObservation(req.id).pipe(Effect.catchTag("NotFound", (e) => Effect.die(e)))
          // The caller's right to the stored observation first: which fields differ would tell
          // another instrument's account what was filed under that id.
          yield* authorizeInstrument(p, observation.instrumentId)
          const fields = observationDifferences(observation.row, req)
          if (fields.length > 0) {
            return yield* conflict(
              "DifferentContent",
              "ExecutedObsUnit",
              req.id,
              fields,
              `observation ${req.id} was already filed with a different ${fields.join(", ")}; to end it, use close`
            )
          }
          closed = observation.row.endAt !== null
        }
        const stored = files.length === 0 ? [] : yield* fileFiles(p, observation, req.sourceLocation!, files, closed)
        return { observation: observation.row, files: stored } satisfies Filed
      })
    ).pipe(Effect.catchTag("SqlError", Effect.die)))

/** The creation event of a filed observation (its status as filed; a close is an event of its own). */
export const filedEvent = (id: string, status: string, actor: string): EventLog.NewEvent => ({
  kind: "ExecutedObsUnit",
  id,
  from: null,
  to: status,
  actor,
  details: { action: "filed" }
})

/** The observation's row as the request states it, defaults filled in. */
const newObservation = (req: ObservationsApi.FileObservation) => {
  const endAt = req.endAt ?? null
  return {
    id: req.id,
    obsUnitId: req.obsUnitId,
    startAt: req.startAt,
    endAt,
    status: req.status ?? (endAt === null ? "in_progress" : "completed"),
    conditions: JSON.stringify(req.conditions ?? {}),
    quality: req.quality ?? "unassessed",
    metadata: JSON.stringify(req.metadata ?? {})
  } satisfies FilingBulk.NewObservation
}

/** Files an observation with its files, or answers with what is stored when it is a repeat. */
export const fileObservation = Effect.fn("Filing.fileObservation")(
  function* (p: ApiSecurity.Principal, req: ObservationsApi.FileObservation) {
    const endAt = req.endAt ?? null
    const plain = endAt === null || endAt.getTime() >= req.startAt.getTime()
    const filed = plain ? yield* bulk(p, req.id, newObservation(req), req, req.sourceLocation, req.files ?? []) : Option.none<Filed>()
    return Option.isSome(filed) ? filed.value : yield* fileCarefully(p, req)
  }
)

/** Adds files to an open observation (a repeat of files already filed is answered as stored). */
export const addFiles = Effect.fn("Filing.addFiles")(
  function* (p: ApiSecurity.Principal, id: string, req: typeof ObservationsApi.AddFiles.Type) {
    const filed = yield* bulk(p, id, undefined, undefined, req.sourceLocation, req.files)
    if (Option.isSome(filed)) return { files: filed.value.files }
    const sql = yield* SqlClient.SqlClient
    return yield* sql.withTransaction(
      Effect.gen(function* () {
        const observation = yield* lockObservation(id)
        yield* authorizeInstrument(p, observation.instrumentId)
        const files = yield* fileFiles(p, observation, req.sourceLocation, req.files, observation.row.endAt !== null)
        return { files }
      })
    ).pipe(Effect.catchTag("SqlError", Effect.die))
  }
)

/** Closes an observation; closing it again the same way answers with the stored record. */
export const closeObservation = Effect.fn("Filing.closeObservation")(
  function* (p: ApiSecurity.Principal, id: string, req: typeof ObservationsApi.CloseObservation.Type) {
    const sql = yield* SqlClient.SqlClient
    return yield* sql.withTransaction(
      Effect.gen(function* () {
        const observation = yield* lockObservation(id)
        yield* authorizeInstrument(p, observation.instrumentId)
        const s = observation.row
        if (req.endAt.getTime() < DateTime.toEpochMillis(s.startAt)) {
          return yield* unprocessable(
            "OutOfRange",
            "endAt",
            `the observation cannot end (${req.endAt.toISOString()}) before it started (${DateTime.formatIso(s.startAt)})`
          )
        }
        if (s.endAt !== null) {
          const fields = [
            !sameInstant(s.endAt, req.endAt) ? "endAt" : undefined,
            s.status !== req.status ? "status" : undefined,
            req.quality !== undefined && s.quality !== req.quality ? "quality" : undefined
          ].filter((x): x is string => x !== undefined)
          if (fields.length === 0) return s
          return yield* conflict(
            "DifferentContent",
            "ExecutedObsUnit",
            id,
            fields,
            `observation ${id} was already closed with a different ${fields.join(", ")}`
          )
        }
        const rows = yield* sql<Record<string, unknown>>`
        update executed_obs_unit
        set end_at = ${req.endAt}, status = ${req.status}, quality = coalesce(${
          req.quality ?? null
        }::observation_quality, quality), updated_at = now()
        where id = ${id} returning *`
        // The close is part of the observation's audited history (migration 0002); a repeat returned above and writes none.
        yield* EventLog.append({
          kind: "ExecutedObsUnit",
          id,
          from: s.status,
          to: req.status,
          actor: p.name,
          details: { action: "close", endAt: req.endAt.toISOString(), ...(req.quality !== undefined ? { quality: req.quality } : {}) }
        })
        return yield* Effect.orDie(decodeObservation(rows[0]))
      })
    ).pipe(Effect.catchTag("SqlError", Effect.die))
  }
)
