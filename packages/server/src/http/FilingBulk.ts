/**
 * The common case of filing in one set-based statement: the observation (inserted, or the stored
 * one locked against a concurrent close), all its new files from arrays (`unnest`), the creation
 * events of both, and what the checks need (the stored observation, the location, the
 * instrument's modules, whether an earlier file of the observation clashes with a new path, how
 * many files went in). Ten thousand files are one round trip, not a statement per file.
 *
 * The statement never fails on a bad request: each insert only takes rows whose references
 * resolve, and `on conflict do nothing` skips ids and paths already taken. The caller runs it in
 * a transaction and checks the answer; anything short of "everything new and in order" (a
 * repeat, a conflict, an unknown module, a held path) is rolled back and filed again by the
 * careful path of `Filing`, which answers repeats and names every problem as before.
 */
import { type ApiSecurity, EventLog, type ObservationsApi } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** What the statement found and did. */
export interface Outcome {
  /** The observation's row as stored (absent: not filed, or not visible to this statement). */
  readonly observation: Record<string, unknown> | undefined
  /** Whether this statement inserted the observation. */
  readonly created: boolean
  /** The instrument of the observation's ObsUnit. */
  readonly instrumentId: string | undefined
  readonly location: { readonly id: string; readonly type: string } | undefined
  /** The instrument's modules, name to id. */
  readonly modules: ReadonlyMap<string, string>
  /** An earlier file of the observation is a folder of a new path, or has one as a folder. */
  readonly unpackable: boolean
  /** Files inserted, and when (every file of one transaction is filed at the same instant). */
  readonly inserted: number
  readonly filedAt: Date | undefined
}

/** The observation a filing creates; absent for additions to a stored one. */
export interface NewObservation {
  readonly id: string
  readonly obsUnitId: string
  readonly startAt: Date
  readonly endAt: Date | null
  readonly status: string
  readonly conditions: string
  readonly quality: string
  readonly metadata: string
}

interface Row {
  readonly id: string | null
  readonly created: boolean | null
  readonly instrumentId: string | null
  readonly locationId: string | null
  readonly locationType: string | null
  readonly modules: Record<string, string> | null
  readonly unpackable: boolean
  readonly inserted: number
  readonly insertedAt: Date | null
}

/**
 * Files an observation's files (and, with `create`, the observation) in one statement; see the
 * module's comment for what the caller must check. `folders` are the folders of the new paths.
 */
export const file = (input: {
  readonly principal: ApiSecurity.Principal
  readonly observationId: string
  readonly create: NewObservation | undefined
  readonly sourceLocation: string | undefined
  readonly files: ReadonlyArray<ObservationsApi.FileSpec>
  readonly folders: ReadonlyArray<string>
}) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const { create, files, principal: p } = input
    const n = files.length
    const ids = new Array<string>(n),
      modules = new Array<string>(n),
      paths = new Array<string>(n),
      sizes = new Array<number>(n),
      checksums = new Array<string>(n)
    for (let i = 0; i < n; i++) {
      const f = files[i]
      ids[i] = f.id
      modules[i] = f.module
      paths[i] = f.relativePath
      sizes[i] = f.sizeBytes
      checksums[i] = f.checksum
    }
    const admin = p.role === "admin"
    const grants = [...p.instrumentIds]
    const created = create === undefined
      ? sql`select * from executed_obs_unit where false`
      : sql`
        insert into executed_obs_unit (id, obs_unit_id, start_at, end_at, status, conditions, quality, metadata)
        select ${create.id}::uuid, u.id, ${create.startAt}::timestamptz, ${create.endAt}::timestamptz, ${create.status}::operation_status,
               ${create.conditions}::jsonb, ${create.quality}::observation_quality, ${create.metadata}::jsonb
        from obs_unit u
        where u.id = ${create.obsUnitId}::uuid and (${admin}::boolean or u.instrument_id = any(${grants}::uuid[]))
          and (${create.endAt}::timestamptz is null or ${create.endAt}::timestamptz >= ${create.startAt}::timestamptz)
        on conflict (id) do nothing
        returning *`
    const [row] = yield* sql<Row>`
      with
      new_obs as (${created}),
      new_obs_event as (${
        EventLog.appendFrom(sql, {
          kind: "ExecutedObsUnit",
          rows: "new_obs",
          from: null,
          to: { column: "status" },
          actor: p.name,
          details: { action: "filed" }
        })
      }),
      old_obs as (select e.* from executed_obs_unit e where e.id = ${input.observationId}::uuid for update),
      target as (
        select o.*, u.instrument_id, exists (select 1 from new_obs) as created
        from (select * from new_obs union all select * from old_obs) o
        join obs_unit u on u.id = o.obs_unit_id
      ),
      loc as (select id, type::text as type from data_location where name = ${input.sourceLocation ?? null}::text),
      mods as (select m.id, m.name from instrument_module m where m.instrument_id = (select instrument_id from target)),
      input as (
        select * from unnest(${ids}::uuid[], ${modules}::text[], ${paths}::text[], ${sizes}::int8[], ${checksums}::text[])
          with ordinality as t(id, module, relative_path, size_bytes, checksum, n)
      ),
      ins as (
        insert into raw_data_file (id, executed_obs_unit_id, instrument_module_id, relative_path, size_bytes, checksum, source_location_id)
        select i.id, t.id, m.id, i.relative_path, i.size_bytes, i.checksum, l.id
        from input i
        join mods m on m.name = i.module
        cross join loc l
        cross join target t
        where l.type = 'SOURCE' and (t.created or t.end_at is null) and (${admin}::boolean or t.instrument_id = any(${grants}::uuid[]))
        order by i.n
        on conflict do nothing
        returning id, filed_at
      ),
      events as (${EventLog.appendFrom(sql, { kind: "RawDataFile", rows: "ins", from: null, to: "filed", actor: p.name })})
      select t.*,
        (select id from loc) as location_id, (select type from loc) as location_type,
        (select json_object_agg(name, id) from mods) as modules,
        exists (
          select 1 from old_obs o join raw_data_file f on f.executed_obs_unit_id = o.id
          where f.relative_path = any(${input.folders}::text[])
        ) or exists (
          select a.folder from old_obs o join raw_data_file f on f.executed_obs_unit_id = o.id
          cross join lateral (
            select array_to_string((string_to_array(f.relative_path, '/'))[1:k], '/') as folder
            from generate_series(1, array_length(string_to_array(f.relative_path, '/'), 1) - 1) k) a
          where position('/' in f.relative_path) > 0
          intersect
          select relative_path from input
        ) as unpackable,
        (select count(*) from ins)::int as inserted,
        (select min(filed_at) from ins) as inserted_at
      from (select 1) one left join target t on true`
    return {
      observation: row.id === null ? undefined : (row as unknown as Record<string, unknown>),
      created: row.created === true,
      instrumentId: row.instrumentId ?? undefined,
      location: row.locationId === null ? undefined : { id: row.locationId, type: row.locationType! },
      modules: new Map(Object.entries(row.modules ?? {})),
      unpackable: row.unpackable,
      inserted: row.inserted,
      filedAt: row.insertedAt ?? undefined
    } satisfies Outcome
  })
