/**
 * The packaging job's two statements against the ops-db: its start (the package, its files and
 * their source location read, and the package moved to in_progress with its event) and its
 * commit (the package's copy in the buffer, its members' offsets, its files packaged and their
 * SOURCE copies, each change with its events). Each is one statement, atomic on its own, so a
 * site 220 ms from the ops-db pays one round trip for each, whatever the number of files.
 */
import { EventLog, type Ids, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as MemberOffsets from "./MemberOffsets.js"
import type * as Packager from "./Packager.js"
import * as Sites from "./Sites.js"

/** A file of the package, as the job packages it. */
export interface FileRow {
  readonly id: Ids.RawDataFileId
  readonly executedObsUnitId: Ids.ExecutedObsUnitId
  readonly instrumentModuleId: Ids.InstrumentModuleId
  readonly relativePath: Packager.FileToPackage["relativePath"]
  readonly sizeBytes: number
  readonly checksum: Packager.FileToPackage["checksum"]
  readonly sourceLocationId: string
}

/** The package as its job found it, before and after its start. */
export interface Started {
  /** Its status when the job began (`moved` says whether the job then moved it on). */
  readonly status: string
  readonly relativePath: string
  /** Written already: a live copy exists (a retry after the commit). */
  readonly hasCopy: boolean
  /** Moved from scheduled to in_progress by this start. */
  readonly moved: boolean
  /** Its files still filed, in archive order. */
  readonly files: ReadonlyArray<FileRow>
  /** The SOURCE location of its first file, to read the files from. */
  readonly source: Sites.Location | null
}

/**
 * Reads the package and its filed files and, when it is scheduled and not written yet, moves it
 * to in_progress with its event, in one statement. Undefined when the package does not exist. A
 * package that was scheduled when read but moved on before the move is a StateConflict, as
 * `Transitions.transition` would report it.
 */
export const start = (site: string, packageId: Ids.RawDataPackageId) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<Omit<Started, "files"> & { readonly files: ReadonlyArray<FileRow> }>`
      with pkg as (
        select p.id, p.status::text as status, p.relative_path,
          exists (select 1 from physical_copy c where c.raw_data_package_id = p.id and c.status <> 'DELETED') as has_copy
        from raw_data_package p where p.id = ${packageId}),
      files as (
        select f.id, f.executed_obs_unit_id, f.instrument_module_id, f.relative_path, f.size_bytes, f.checksum, f.source_location_id
        from raw_data_file f where f.raw_data_package_id = ${packageId} and f.state = 'filed'),
      moved as (
        update raw_data_package p set status = 'in_progress', updated_at = now()
        from pkg where p.id = pkg.id and pkg.status = 'scheduled' and not pkg.has_copy and p.status = 'scheduled'
        returning p.id),
      logged as (${
        EventLog.appendFrom(sql, { kind: "RawDataPackage", rows: "moved", from: "scheduled", to: "in_progress", actor: `worker:${site}` })
      })
      select pkg.status, pkg.relative_path, pkg.has_copy, exists (select 1 from moved) as moved,
        coalesce((select json_agg(json_build_object('id', f.id, 'executed_obs_unit_id', f.executed_obs_unit_id,
            'instrument_module_id', f.instrument_module_id, 'relative_path', f.relative_path, 'size_bytes', f.size_bytes,
            'checksum', f.checksum, 'source_location_id', f.source_location_id) order by f.relative_path, f.id) from files f), '[]'::json) as files,
        (select ${Sites.locationJson(sql)} from data_location l join site s on s.id = l.site_id
         where l.id = (select f.source_location_id from files f order by f.relative_path, f.id limit 1)) as source
      from pkg`
    const row = rows[0]
    if (row === undefined) return undefined
    if (row.status === "scheduled" && !row.hasCopy && !row.moved) {
      const [now] = yield* sql<{ status: string }>`select status::text as status from raw_data_package where id = ${packageId}`
      return yield* new Transitions.TransitionError({
        reason: now === undefined ? "NotFound" : "StateConflict",
        entity: "RawDataPackage",
        id: packageId,
        from: "scheduled",
        to: "in_progress",
        ...(now === undefined ? {} : { actual: now.status })
      })
    }
    return row satisfies Started
  }).pipe(Effect.withSpan("PackageJob.start", { attributes: { packageId } }))

/**
 * Records the written package in one statement: its size and checksum, its verified copy in the
 * buffer, where each file sits in its tar, its files packaged and each SOURCE file's copy (the
 * identity it had when read, so cleanup never deletes bytes that changed since), every change
 * with its events. All or nothing: the package must still be in_progress (else the job dies: a
 * bug, not a race) and every file still filed (else a StateConflict naming the first that is
 * not, and nothing is written).
 */
export const commit = (
  site: string,
  packageId: Ids.RawDataPackageId,
  buffer: Sites.Location,
  written: Packager.Written,
  bufferIdentity: string | null,
  files: ReadonlyArray<FileRow>,
  identities: ReadonlyMap<string, string>
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const actor = `worker:${site}`
    const ids = files.map((f) => f.id)
    const offsets = MemberOffsets.columns(written.manifest)
    // Every row is locked and checked first; each change applies only when all are as expected.
    const rows = yield* sql<{ ok: boolean; packageReady: boolean; id: string | null; state: string | null }>`
      with pkg as (
        select id from raw_data_package where id = ${packageId} and status = 'in_progress' for update),
      wanted as (select unnest(${ids}::uuid[]) as id),
      current as (
        select t.id, t.state::text as state from raw_data_file t where t.id in (select id from wanted) for update of t),
      ready as (
        select exists (select 1 from pkg) and (select count(*) from current where state = 'filed') = ${ids.length} as ok),
      updated as (
        update raw_data_package p set size_bytes = ${written.sizeBytes}, checksum = ${written.checksum}, updated_at = now()
        from ready where ready.ok and p.id = ${packageId}
        returning p.id),
      buffer_copy as (
        insert into physical_copy (raw_data_package_id, data_location_id, path, size_bytes, checksum, status, verified_at, identity)
        select u.id, ${buffer.id}::uuid, ${written.key}::text, ${written.sizeBytes}::bigint, ${written.checksum}::text,
          'PRESENT'::physical_copy_status, now(), ${bufferIdentity}::text
        from updated u
        returning id, status),
      buffer_logged as (${EventLog.appendFrom(sql, { kind: "PhysicalCopy", rows: "buffer_copy", from: null, to: { column: "status" } })}),
      offsets as (
        insert into raw_data_package_member (raw_data_package_id, raw_data_file_id, header_offset, data_offset, size_bytes)
        select ${packageId}::uuid, m.file, m.header, m.data, m.size
        from unnest(${offsets.fileIds}::uuid[], ${offsets.headerOffsets}::bigint[], ${offsets.dataOffsets}::bigint[], ${offsets.sizes}::bigint[])
          as m(file, header, data, size)
        cross join ready
        where ready.ok and exists (select 1 from raw_data_file f where f.id = m.file)
        on conflict do nothing),
      moved as (
        update raw_data_file t set state = 'packaged', updated_at = now()
        from ready where ready.ok and t.id in (select id from wanted) and t.state = 'filed'
        returning t.id),
      moved_logged as (${EventLog.appendFrom(sql, { kind: "RawDataFile", rows: "moved", from: "filed", to: "packaged", actor })}),
      source_copy as (
        insert into physical_copy (raw_data_file_id, data_location_id, path, size_bytes, checksum, status, verified_at, identity)
        select f.id, f.location, f.path, f.size, f.checksum, 'PRESENT'::physical_copy_status, now(), f.identity
        from unnest(${ids}::uuid[], ${files.map((f) => f.sourceLocationId)}::uuid[], ${files.map((f) => f.relativePath)}::text[],
                    ${files.map((f) => f.sizeBytes)}::bigint[], ${files.map((f) => f.checksum)}::text[], ${
                      files.map((f) => identities.get(f.id) ?? null)
                    }::text[])
          as f(id, location, path, size, checksum, identity)
        cross join ready
        where ready.ok
        on conflict do nothing
        returning id, status),
      source_logged as (${
        EventLog.appendFrom(sql, {
          kind: "PhysicalCopy",
          rows: "source_copy",
          from: null,
          to: { column: "status" },
          actor,
          details: { action: "source file packaged", packageId }
        })
      })
      select r.ok, exists (select 1 from pkg) as package_ready, w.id::text as id, c.state
      from ready r left join wanted w on true left join current c on c.id = w.id`
    const first = rows[0]
    if (first === undefined || first.ok) return
    if (!first.packageReady) return yield* Effect.dieMessage(`RawDataPackage ${packageId} left in_progress while it was written`)
    const stray = rows.find((r) => r.state === null) ?? rows.find((r) => r.state !== "filed")
    if (stray === undefined || stray.id === null) {
      return yield* Effect.dieMessage(`package ${packageId}: its commit applied nothing, for no reason it could name`)
    }
    return yield* new Transitions.TransitionError({
      reason: stray.state === null ? "NotFound" : "StateConflict",
      entity: "RawDataFile",
      id: stray.id,
      from: "filed",
      to: "packaged",
      ...(stray.state === null ? {} : { actual: stray.state })
    })
  }).pipe(Effect.withSpan("PackageJob.commit", { attributes: { packageId, files: files.length } }))
