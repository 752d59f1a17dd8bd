/**
 * The careful path's filing of a request's files into an observation: the observation locked
 * against a concurrent close, the refusals that protect the packager and cleanup (a name that
 * cannot be packaged, a SOURCE path another observation's file still holds), one insert for the
 * files and their events, and the comparison of whatever was already stored with the request.
 */
import { ApiErrors, type ApiSecurity, EventLog, type ObservationsApi, Observational } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { StoredFile } from "./FilingAnswer.js"
import { checkFileSpecs, conflict, requestFolders, unprocessable } from "./FilingRules.js"

/** Decodes an `executed_obs_unit` row. */
export const decodeObservation = Schema.decodeUnknown(Observational.ExecutedObsUnit)

/** Rows per statement where a statement takes one parameter per row (PostgreSQL takes at most 65,535). */
const chunkSize = 5_000

/** An observation row with the instrument it belongs to (whose grant the caller needs). */
export interface ObservationRow {
  readonly row: Observational.ExecutedObsUnit
  readonly instrumentId: string
}

/** The observation and its instrument, locked against a concurrent close; 404 when absent. */
export const lockObservation = (id: string) =>
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
export const fileFiles = (
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
