/**
 * Filing on the ops-db: an observation and its files in one transaction, all or nothing.
 *
 * The common case (a new observation with new files, or new files for an open one) is one
 * set-based statement (`FilingBulk`): ten thousand files are one round trip, their creation
 * events included. Anything else is rolled back and filed by the careful path here, which checks
 * step by step so a bad request fails with the field to fix: references first (the ObsUnit, the
 * instrument's grant, the SOURCE location, the modules), then the names, then the inserts with
 * `on conflict do nothing`; whatever was already there is compared with the request, so a repeat
 * is answered with the stored rows and a different re-file is a 409 naming the fields. Both
 * paths answer the same, and every refused request leaves the database as it was.
 *
 * Two rules protect what the packager and cleanup do later. A name the packager cannot write
 * (the manifest's, or a path that is also another file's folder anywhere in the observation) is
 * refused with 422 before anything is written. A path at a SOURCE location has one owner: the
 * file filed for it until its SOURCE copy is deleted; another observation's file on that path is
 * refused with 409 naming the holder (a partial unique index enforces it against races).
 */
import { ApiErrors, type ApiSecurity, EventLog, type ObservationsApi, Observational } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { StoredFile } from "./FilingAnswer.js"
import * as FilingBulk from "./FilingBulk.js"
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

const decodeObservation = Schema.decodeUnknown(Observational.ExecutedObsUnit)

/** Rows per statement where a statement takes one parameter per row (PostgreSQL takes at most 65,535). */
const chunkSize = 5_000

/** An observation as filed, with the files of the request as stored, in request order. */
export interface Filed {
  readonly observation: Observational.ExecutedObsUnit
  readonly files: ReadonlyArray<StoredFile>
}

interface ObservationRow {
  readonly row: Observational.ExecutedObsUnit
  readonly instrumentId: string
}

/** The observation and its instrument, locked against a concurrent close; 404 when absent. */
const lockObservation = (id: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<Record<string, unknown> & { instrumentId: string }>`
      select e.*, o.instrument_id from executed_obs_unit e join obs_unit o on o.id = e.obs_unit_id
      where e.id = ${id} for update of e`
    if (rows.length === 0) {
      return yield* new ApiErrors.NotFound({ entity: "ExecutedObsUnit", id, message: `no observation ${id} was filed; file it first` })
    }
    return { row: yield* Effect.orDie(decodeObservation(rows[0])), instrumentId: rows[0].instrumentId } satisfies ObservationRow
  })

interface NewFile {
  readonly id: string
  readonly relativePath: string
}

const refuseUnpackable = (eouId: string, rows: ReadonlyArray<NewFile>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const folders = yield* requestFolders(rows.map((r) => r.relativePath))
    const index = new Map(rows.map((r, i) => [r.relativePath, i]))
    // Filed files that are a folder of a new path (an index lookup), or have a new path as a folder.
    if (folders.size > 0) {
      const [file] = yield* sql<{ relativePath: string }>`
        select relative_path from raw_data_file
        where executed_obs_unit_id = ${eouId} and relative_path = any(${[...folders.keys()]}::text[]) limit 1`
      if (file !== undefined) {
        const i = folders.get(file.relativePath)!
        return yield* unprocessable(
          "Invalid",
          `files[${i}].relativePath`,
          `${rows[i].relativePath} would be inside ${file.relativePath}, which the observation already has as a file`
        )
      }
    }
    // Folders of filed files that are new paths: a set intersection, so it is hashed, never a scan per pair.
    const [inside] = yield* sql<{ folder: string }>`
      select a.folder from raw_data_file f
      cross join lateral (
        select array_to_string((string_to_array(f.relative_path, '/'))[1:k], '/') as folder
        from generate_series(1, array_length(string_to_array(f.relative_path, '/'), 1) - 1) k) a
      where f.executed_obs_unit_id = ${eouId} and position('/' in f.relative_path) > 0
      intersect
      select unnest(${[...index.keys()]}::text[])
      limit 1`
    if (inside !== undefined) {
      const [holder] = yield* sql<{ relativePath: string }>`
        select relative_path from raw_data_file
        where executed_obs_unit_id = ${eouId} and left(relative_path, ${inside.folder.length + 1}) = ${inside.folder + "/"} limit 1`
      const i = index.get(inside.folder)!
      return yield* unprocessable(
        "Invalid",
        `files[${i}].relativePath`,
        `${inside.folder} is already a folder of the observation (it holds ${
          holder?.relativePath ?? "files"
        }); a path cannot be both a file and a folder`
      )
    }
  })

/**
 * Refuses SOURCE paths held by a file of another observation: a path belongs to the file filed
 * for it until that file's SOURCE copy is deleted (after its package is archived), so cleanup
 * can never delete the bytes of a newer filing. A file re-filed with its own id is no conflict.
 */
const refuseHeldPaths = (locationId: string, locationName: string, eouId: string, rows: ReadonlyArray<NewFile>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    for (let i = 0; i < rows.length; i += chunkSize) {
      const chunk = rows.slice(i, i + chunkSize)
      const [held] = yield* sql<{ id: string; relativePath: string; executedObsUnitId: string; state: string }>`
        select f.id, f.relative_path, f.executed_obs_unit_id, f.state::text as state from raw_data_file f
        where f.source_location_id = ${locationId} and f.source_released_at is null
          and f.relative_path = any(${chunk.map((r) => r.relativePath)}::text[])
          and f.executed_obs_unit_id <> ${eouId}
          and not (f.id = any(${chunk.map((r) => r.id)}::uuid[]))
        limit 1`
      if (held !== undefined) {
        const index = i + chunk.findIndex((r) => r.relativePath === held.relativePath)
        return yield* conflict(
          "PathHeld",
          "RawDataFile",
          rows[index].id,
          ["relativePath"],
          `files[${index}]: ${held.relativePath} at ${locationName} still holds file ${held.id} of observation ${held.executedObsUnitId} (${held.state}), ` +
            `which is not yet deleted there; a SOURCE path takes a new file only after its previous file is archived and cleaned up: write it under a new path`
        )
      }
    }
  })

/** Files (or re-files) the given files of an observation; returns them as stored, in request order. */
const fileFiles = (
  p: ApiSecurity.Principal,
  observation: ObservationRow,
  sourceLocation: string,
  files: ReadonlyArray<ObservationsApi.FileSpec>,
  closed: boolean
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const eouId = observation.row.id
    const locations = yield* sql<{ id: string; type: string }>`select id, type from data_location where name = ${sourceLocation}`
    const location = locations[0]
    const modules = location?.type !== "SOURCE" ? new Map<string, string>() : new Map(
      (yield* sql<{ id: string; name: string }>`select id, name from instrument_module where instrument_id = ${observation.instrumentId}`)
        .map((m) => [m.name, m.id])
    )
    const checked = yield* checkFileSpecs(sourceLocation, location, modules, files)
    const ids = new Map(files.map((f, i) => [f.id, i]))
    const rows = checked.map(({ moduleId, spec: f }) => ({
      // As the database returns a uuid: lower-case, whatever case the request used.
      id: f.id.toLowerCase(),
      executedObsUnitId: eouId,
      instrumentModuleId: moduleId,
      relativePath: f.relativePath,
      sizeBytes: f.sizeBytes,
      checksum: f.checksum,
      sourceLocationId: location.id
    }))
    yield* refuseUnpackable(eouId, rows)
    yield* refuseHeldPaths(location.id, sourceLocation, eouId, rows)
    // One statement for the files and their events, whatever their number.
    const inserted = yield* sql<StoredFile>`
      with ins as (
        insert into raw_data_file (id, executed_obs_unit_id, instrument_module_id, relative_path, size_bytes, checksum, source_location_id)
        select t.id, ${eouId}::uuid, t.module_id, t.relative_path, t.size_bytes, t.checksum, ${location.id}::uuid
        from unnest(${rows.map((r) => r.id)}::uuid[], ${rows.map((r) => r.instrumentModuleId)}::uuid[], ${
          rows.map((r) => r.relativePath)
        }::text[],
                    ${rows.map((r) => r.sizeBytes)}::int8[], ${
                      rows.map((r) => r.checksum)
                    }::text[]) with ordinality as t(id, module_id, relative_path, size_bytes, checksum, n)
        order by t.n
        on conflict do nothing
        returning *
      ),
      events as (${EventLog.appendFrom(sql, { kind: "RawDataFile", rows: "ins", from: null, to: { column: "state" }, actor: p.name })})
      select * from ins`
    const byId = new Map<string, StoredFile>(inserted.map((r) => [r.id, r]))
    const rest = rows.filter((r) => !byId.has(r.id))
    if (rest.length > 0) {
      const existing = yield* sql<StoredFile>`select * from raw_data_file where id = any(${rest.map((r) => r.id)}::uuid[])`
      const stored = new Map(existing.map((r) => [r.id, r]))
      for (const r of rest) {
        const s = stored.get(r.id)
        const i = ids.get(r.id)!
        if (s === undefined) {
          // Filed meanwhile by a concurrent request: the same observation's path, or a SOURCE path another file holds.
          const holder = yield* sql<
            { id: string }
          >`select id from raw_data_file where executed_obs_unit_id = ${eouId} and relative_path = ${r.relativePath}`
          if (holder.length === 0) yield* refuseHeldPaths(location.id, sourceLocation, eouId, [r])
          return yield* conflict(
            "DuplicatePath",
            "RawDataFile",
            r.id,
            ["relativePath"],
            `files[${i}]: ${r.relativePath} of observation ${eouId} was already filed as file ${
              holder[0]?.id ?? "(another id)"
            }, not ${r.id}`
          )
        }
        const fields = [
          s.executedObsUnitId !== r.executedObsUnitId ? "observation" : undefined,
          s.instrumentModuleId !== r.instrumentModuleId ? "module" : undefined,
          s.relativePath !== r.relativePath ? "relativePath" : undefined,
          Number(s.sizeBytes) !== r.sizeBytes ? "sizeBytes" : undefined,
          s.checksum !== r.checksum ? "checksum" : undefined,
          s.sourceLocationId !== r.sourceLocationId ? "sourceLocation" : undefined
        ].filter((x): x is string => x !== undefined)
        if (fields.length > 0) {
          return yield* conflict(
            "DifferentContent",
            "RawDataFile",
            r.id,
            fields,
            `files[${i}]: file ${r.id} was already filed with a different ${
              fields.join(", ")
            }; a filed file cannot change (file a new id instead)`
          )
        }
        byId.set(r.id, s)
      }
    }
    if (closed && inserted.length > 0) {
      return yield* conflict(
        "Closed",
        "ExecutedObsUnit",
        eouId,
        [],
        `observation ${eouId} is closed (it ended at ${DateTime.formatIso(observation.row.endAt!)}); it takes no new files`
      )
    }
    return rows.map((r) => byId.get(r.id)!)
  })

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
