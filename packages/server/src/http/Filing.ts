/**
 * Filing on the ops-db: an observation and its files in one transaction, all or nothing.
 * References are checked first (the ObsUnit, the instrument's grant, the SOURCE location, the
 * modules) so a bad request fails with the field to fix, before anything is written. Files are
 * inserted in bulk with `on conflict do nothing`; whatever was already there is compared with
 * the request, so a repeat is answered with the stored rows and a different re-file is a 409
 * naming the fields. New files get their creation event in the same transaction.
 *
 * Two rules protect what the packager and cleanup do later. A name the packager cannot write
 * (the manifest's, or a path that is also another file's folder anywhere in the observation) is
 * refused with 422 before anything is written. A path at a SOURCE location has one owner: the
 * file filed for it until its SOURCE copy is deleted; another observation's file on that path is
 * refused with 409 naming the holder (a partial unique index enforces it against races).
 */
import { ApiErrors, type ApiSecurity, type Ids, type ObservationsApi, Observational, RawData } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { manifestName } from "../lifecycle/PackageManifest.js"

const decodeObservation = Schema.decodeUnknown(Observational.ExecutedObsUnit)
const decodeFiles = Schema.decodeUnknown(Schema.Array(RawData.RawDataFile))

/** Rows per insert statement: PostgreSQL takes at most 65,535 parameters in one. */
const chunkSize = 5_000

const unprocessable = (reason: ApiErrors.Unprocessable["reason"], field: string, message: string) =>
  new ApiErrors.Unprocessable({ reason, field, message })

const conflict = (reason: ApiErrors.Conflict["reason"], entity: string, id: string, fields: ReadonlyArray<string>, message: string) =>
  new ApiErrors.Conflict({ reason, entity, id, fields, message })

/** JSON with sorted keys, so two equal objects compare equal whatever their key order. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v
  )

const sameInstant = (a: DateTime.Utc | null, b: Date | null | undefined) =>
  a === null || b === null || b === undefined ? a === null && (b === null || b === undefined) : DateTime.toEpochMillis(a) === b.getTime()

/** Refuses an instrument account that files for an instrument it was not granted. */
export const authorizeInstrument = (p: ApiSecurity.Principal, instrumentId: string) =>
  p.role === "admin" || p.instrumentIds.includes(instrumentId as Ids.InstrumentId)
    ? Effect.void
    : Effect.fail(
        new ApiErrors.Forbidden({ reason: "Instrument", message: `the account ${p.name} may not file for instrument ${instrumentId}; an admin grants it with \`ccat token create --instrument\`` })
      )

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

/** Every folder of a path: `a/b/c` has `a` and `a/b`. */
const foldersOf = (p: string): Array<string> => {
  const parts = p.split("/")
  return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join("/"))
}

/**
 * Refuses names the packager could not write into the observation's packages: the manifest's
 * reserved name, and a path that is also a folder of another file of the observation (in this
 * request or filed before); one would clobber the other when the packages are unpacked.
 */
/**
 * The folders of the request's paths, each with the first file under it; fails with the first name
 * the packager cannot write within the request itself (the manifest's name, a path that is also
 * another file's folder). The main and the relay check requests by this one rule.
 */
export const requestFolders = (paths: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const index = new Map(paths.map((p, i) => [p, i]))
    const folders = new Map<string, number>()
    for (const [i, p] of paths.entries()) {
      if (p === manifestName) {
        return yield* unprocessable("Invalid", `files[${i}].relativePath`, `${manifestName} is reserved for the package manifest; file it under another name`)
      }
      for (const folder of foldersOf(p)) if (!folders.has(folder)) folders.set(folder, i)
    }
    for (const [folder, i] of folders) {
      const j = index.get(folder)
      if (j !== undefined) {
        return yield* unprocessable("Invalid", `files[${j}].relativePath`, `${folder} is also the folder of files[${i}] (${paths[i]}); a path cannot be both a file and a folder`)
      }
    }
    return folders
  })

/**
 * The request's files checked against their SOURCE location (undefined: none by that name) and
 * the observation's instrument's modules by name: each file with its module's id, or the first
 * problem, named by its field. The main and the relay check requests by this one rule.
 */
export const checkFileSpecs = (
  sourceLocation: string,
  location: { readonly type: string } | undefined,
  modules: ReadonlyMap<string, string>,
  files: ReadonlyArray<ObservationsApi.FileSpec>
) =>
  Effect.gen(function* () {
    if (location === undefined) return yield* unprocessable("UnknownReference", "sourceLocation", `there is no data location named ${sourceLocation}`)
    if (location.type !== "SOURCE") {
      return yield* unprocessable("WrongLocationType", "sourceLocation", `${sourceLocation} is a ${location.type} location; files are filed at a SOURCE location`)
    }
    const ids = new Map<string, number>()
    const paths = new Map<string, number>()
    const checked: Array<{ readonly spec: ObservationsApi.FileSpec; readonly moduleId: string }> = []
    for (const [i, f] of files.entries()) {
      const moduleId = modules.get(f.module)
      if (moduleId === undefined) {
        return yield* unprocessable("UnknownReference", `files[${i}].module`, `the observation's instrument has no module named ${f.module} (it has ${[...modules.keys()].join(", ") || "none"})`)
      }
      if (ids.has(f.id)) return yield* unprocessable("Invalid", `files[${i}].id`, `file id ${f.id} appears twice in the request (also files[${ids.get(f.id)}])`)
      if (paths.has(f.relativePath)) {
        return yield* unprocessable("Invalid", `files[${i}].relativePath`, `${f.relativePath} appears twice in the request (also files[${paths.get(f.relativePath)}])`)
      }
      ids.set(f.id, i)
      paths.set(f.relativePath, i)
      checked.push({ spec: f, moduleId })
    }
    return checked
  })

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
        return yield* unprocessable("Invalid", `files[${i}].relativePath`, `${rows[i].relativePath} would be inside ${file.relativePath}, which the observation already has as a file`)
      }
    }
    const [inside] = yield* sql<{ relativePath: string; folder: string }>`
      select f.relative_path, a.folder from raw_data_file f
      cross join lateral (
        select array_to_string((string_to_array(f.relative_path, '/'))[1:k], '/') as folder
        from generate_series(1, array_length(string_to_array(f.relative_path, '/'), 1) - 1) k) a
      where f.executed_obs_unit_id = ${eouId} and position('/' in f.relative_path) > 0
        and a.folder = any(${[...index.keys()]}::text[])
      limit 1`
    if (inside !== undefined) {
      const i = index.get(inside.folder)!
      return yield* unprocessable("Invalid", `files[${i}].relativePath`, `${inside.folder} is already a folder of the observation (it holds ${inside.relativePath}); a path cannot be both a file and a folder`)
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
        return yield* conflict("PathHeld", "RawDataFile", rows[index].id, ["relativePath"],
          `files[${index}]: ${held.relativePath} at ${locationName} still holds file ${held.id} of observation ${held.executedObsUnitId} (${held.state}), ` +
            `which is not yet deleted there; a SOURCE path takes a new file only after its previous file is archived and cleaned up: write it under a new path`)
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
      (yield* sql<{ id: string; name: string }>`select id, name from instrument_module where instrument_id = ${observation.instrumentId}`).map((m) => [m.name, m.id])
    )
    const checked = yield* checkFileSpecs(sourceLocation, location, modules, files)
    const ids = new Map(files.map((f, i) => [f.id, i]))
    const rows = checked.map(({ moduleId, spec: f }) => ({
      id: f.id, executedObsUnitId: eouId, instrumentModuleId: moduleId, relativePath: f.relativePath, sizeBytes: f.sizeBytes, checksum: f.checksum, sourceLocationId: location.id
    }))
    yield* refuseUnpackable(eouId, rows)
    yield* refuseHeldPaths(location.id, sourceLocation, eouId, rows)
    const inserted: Array<Record<string, unknown>> = []
    for (let i = 0; i < rows.length; i += chunkSize) {
      const chunk = rows.slice(i, i + chunkSize)
      inserted.push(...(yield* sql<Record<string, unknown>>`insert into raw_data_file ${sql.insert(chunk)} on conflict do nothing returning *`))
    }
    const byId = new Map<string, Record<string, unknown>>(inserted.map((r) => [r.id as string, r]))
    const rest = rows.filter((r) => !byId.has(r.id))
    if (rest.length > 0) {
      const existing = yield* sql<Record<string, unknown>>`select * from raw_data_file where id in ${sql.in(rest.map((r) => r.id))}`
      const stored = new Map(existing.map((r) => [r.id as string, r]))
      for (const r of rest) {
        const s = stored.get(r.id)
        const i = ids.get(r.id)!
        if (s === undefined) {
          // Filed meanwhile by a concurrent request: the same observation's path, or a SOURCE path another file holds.
          const holder = yield* sql<{ id: string }>`select id from raw_data_file where executed_obs_unit_id = ${eouId} and relative_path = ${r.relativePath}`
          if (holder.length === 0) yield* refuseHeldPaths(location.id, sourceLocation, eouId, [r])
          return yield* conflict("DuplicatePath", "RawDataFile", r.id, ["relativePath"],
            `files[${i}]: ${r.relativePath} of observation ${eouId} was already filed as file ${holder[0]?.id ?? "(another id)"}, not ${r.id}`)
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
          return yield* conflict("DifferentContent", "RawDataFile", r.id, fields,
            `files[${i}]: file ${r.id} was already filed with a different ${fields.join(", ")}; a filed file cannot change (file a new id instead)`)
        }
        byId.set(r.id, s)
      }
    }
    if (closed && inserted.length > 0) {
      return yield* conflict("Closed", "ExecutedObsUnit", eouId, [],
        `observation ${eouId} is closed (it ended at ${DateTime.formatIso(observation.row.endAt!)}); it takes no new files`)
    }
    for (let i = 0; i < inserted.length; i += chunkSize) {
      yield* sql`insert into event_log ${sql.insert(inserted.slice(i, i + chunkSize).map((r) => ({
        entityKind: "RawDataFile", entityId: r.id, fromState: null, toState: r.state, actor: p.name, details: "{}"
      })))}`
    }
    return yield* Effect.orDie(decodeFiles(rows.map((r) => byId.get(r.id)!)))
  })

/** Files an observation with its files, or answers with what is stored when it is a repeat. */
export const fileObservation = Effect.fn("Filing.fileObservation")(function* (p: ApiSecurity.Principal, req: ObservationsApi.FileObservation) {
  const sql = yield* SqlClient.SqlClient
  return yield* sql.withTransaction(
    Effect.gen(function* () {
      const units = yield* sql<{ instrumentId: string }>`select instrument_id from obs_unit where id = ${req.obsUnitId}`
      if (units.length === 0) return yield* unprocessable("UnknownReference", "obsUnitId", `there is no ObsUnit ${req.obsUnitId}; an admin plans it first`)
      const instrumentId = units[0].instrumentId
      yield* authorizeInstrument(p, instrumentId)
      const endAt = req.endAt ?? null
      if (endAt !== null && endAt.getTime() < req.startAt.getTime()) {
        return yield* unprocessable("OutOfRange", "endAt", `the observation ends (${endAt.toISOString()}) before it starts (${req.startAt.toISOString()})`)
      }
      const files = req.files ?? []
      if (files.length > 0 && req.sourceLocation === undefined) {
        return yield* unprocessable("Invalid", "sourceLocation", "files are filed at a SOURCE location: name it in sourceLocation")
      }
      const status = req.status ?? (endAt === null ? "in_progress" : "completed")
      const inserted = yield* sql<Record<string, unknown>>`
        insert into executed_obs_unit ${sql.insert({
          id: req.id,
          obsUnitId: req.obsUnitId,
          startAt: req.startAt,
          endAt,
          status,
          conditions: JSON.stringify(req.conditions ?? {}),
          quality: req.quality ?? "unassessed",
          metadata: JSON.stringify(req.metadata ?? {})
        })}
        on conflict (id) do nothing returning *`
      let observation: ObservationRow
      let closed = false
      if (inserted.length > 0) {
        observation = { row: yield* Effect.orDie(decodeObservation(inserted[0])), instrumentId }
      } else {
        // The insert saw the row, so it exists: not finding it now would be a defect.
        observation = yield* lockObservation(req.id).pipe(Effect.catchTag("NotFound", (e) => Effect.die(e)))
        const s = observation.row
        // Fields the request leaves out are not compared: a repeat may state less, never other.
        const fields = [
          s.obsUnitId !== req.obsUnitId ? "obsUnitId" : undefined,
          !sameInstant(s.startAt, req.startAt) ? "startAt" : undefined,
          req.endAt != null && !sameInstant(s.endAt, req.endAt) ? "endAt" : undefined,
          req.status !== undefined && s.status !== req.status ? "status" : undefined,
          req.quality !== undefined && s.quality !== req.quality ? "quality" : undefined,
          req.conditions !== undefined && canonical(s.conditions) !== canonical(req.conditions) ? "conditions" : undefined,
          req.metadata !== undefined && canonical(s.metadata) !== canonical(req.metadata) ? "metadata" : undefined
        ].filter((x): x is string => x !== undefined)
        if (fields.length > 0) {
          return yield* conflict("DifferentContent", "ExecutedObsUnit", req.id, fields,
            `observation ${req.id} was already filed with a different ${fields.join(", ")}; to end it, use close`)
        }
        yield* authorizeInstrument(p, observation.instrumentId)
        closed = s.endAt !== null
      }
      const stored = files.length === 0 ? [] : yield* fileFiles(p, observation, req.sourceLocation!, files, closed)
      return { observation: observation.row, files: stored }
    })
  ).pipe(Effect.catchTag("SqlError", Effect.die))
})

/** Adds files to an open observation (a repeat of files already filed is answered as stored). */
export const addFiles = Effect.fn("Filing.addFiles")(function* (p: ApiSecurity.Principal, id: string, req: typeof ObservationsApi.AddFiles.Type) {
  const sql = yield* SqlClient.SqlClient
  return yield* sql.withTransaction(
    Effect.gen(function* () {
      const observation = yield* lockObservation(id)
      yield* authorizeInstrument(p, observation.instrumentId)
      const files = yield* fileFiles(p, observation, req.sourceLocation, req.files, observation.row.endAt !== null)
      return { files }
    })
  ).pipe(Effect.catchTag("SqlError", Effect.die))
})

/** Closes an observation; closing it again the same way answers with the stored record. */
export const closeObservation = Effect.fn("Filing.closeObservation")(function* (p: ApiSecurity.Principal, id: string, req: typeof ObservationsApi.CloseObservation.Type) {
  const sql = yield* SqlClient.SqlClient
  return yield* sql.withTransaction(
    Effect.gen(function* () {
      const observation = yield* lockObservation(id)
      yield* authorizeInstrument(p, observation.instrumentId)
      const s = observation.row
      if (req.endAt.getTime() < DateTime.toEpochMillis(s.startAt)) {
        return yield* unprocessable("OutOfRange", "endAt", `the observation cannot end (${req.endAt.toISOString()}) before it started (${DateTime.formatIso(s.startAt)})`)
      }
      if (s.endAt !== null) {
        const fields = [
          !sameInstant(s.endAt, req.endAt) ? "endAt" : undefined,
          s.status !== req.status ? "status" : undefined,
          req.quality !== undefined && s.quality !== req.quality ? "quality" : undefined
        ].filter((x): x is string => x !== undefined)
        if (fields.length === 0) return s
        return yield* conflict("DifferentContent", "ExecutedObsUnit", id, fields,
          `observation ${id} was already closed with a different ${fields.join(", ")}`)
      }
      const rows = yield* sql<Record<string, unknown>>`
        update executed_obs_unit
        set end_at = ${req.endAt}, status = ${req.status}, quality = coalesce(${req.quality ?? null}::observation_quality, quality), updated_at = now()
        where id = ${id} returning *`
      // The close is part of the observation's audited history (migration 0002); a repeat returned above and writes none.
      yield* sql`insert into event_log ${sql.insert({
        entityKind: "ExecutedObsUnit", entityId: id, fromState: s.status, toState: req.status, actor: p.name,
        details: JSON.stringify({ action: "close", endAt: req.endAt.toISOString(), ...(req.quality !== undefined ? { quality: req.quality } : {}) })
      })}`
      return yield* Effect.orDie(decodeObservation(rows[0]))
    })
  ).pipe(Effect.catchTag("SqlError", Effect.die))
})
