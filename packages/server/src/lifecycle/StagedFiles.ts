/**
 * Where a request's staged files are on the PROCESSING host: the STAGED copies of the files its
 * items cover, at their paths in the request's own folder (`StagingLayout`), for the API's files
 * page, the client and the tests.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as path from "node:path"
import * as Sites from "./Sites.js"
import { Storages } from "./Storages.js"

/** A staged file of a request, where the scientist finds it. */
export interface StagedFile {
  readonly rawDataFileId: string
  readonly relativePath: string
  /** Absolute local path: in the request's folder, or the copy's path for a request served before folders. */
  readonly path: string
  readonly sizeBytes: number
  readonly checksum: string
}

/**
 * The files staged for a request at its PROCESSING location (what is STAGED there now), at their
 * paths in the request's folder (requests served before folders existed: the copies' paths);
 * none once the request is released.
 */
export const stagedFiles = Effect.fn("Staging.stagedFiles")(function* (requestId: string) {
  const sql = yield* SqlClient.SqlClient
  const storages = yield* Storages
  const [request] = yield* sql<{ dataLocationId: string; releasedAt: Date | null }>`
    select data_location_id, released_at from staging_request where id = ${requestId}`
  if (request === undefined || request.releasedAt !== null) return []
  const location = yield* Sites.location(request.dataLocationId)
  const root = storages.rootOf(location)
  if (root === undefined) return yield* Effect.dieMessage(`location ${location.name} has no local folder to hand out`)
  const rows = yield* sql<{ rawDataFileId: string; relativePath: string; path: string; sizeBytes: number; checksum: string }>`
    select distinct f.id as raw_data_file_id, f.relative_path, coalesce(
        (select (r.staged_folders ->> o.observing_program_id::text) || '/' || f.executed_obs_unit_id::text || '/' || f.relative_path
         from staging_request r, executed_obs_unit e join obs_unit o on o.id = e.obs_unit_id
         where r.id = ${requestId} and e.id = f.executed_obs_unit_id),
        c.path) as path, c.size_bytes, c.checksum
    from staging_request_item i
    join raw_data_file f on f.raw_data_package_id = i.raw_data_package_id
      or (i.raw_data_package_id is null and f.executed_obs_unit_id = i.executed_obs_unit_id and f.data_product_id is null)
    join physical_copy c on c.raw_data_file_id = f.id and c.data_location_id = ${location.id} and c.status = 'STAGED'
    where i.staging_request_id = ${requestId}
    order by 3`
  return rows.map((r): StagedFile => ({ ...r, sizeBytes: Number(r.sizeBytes), path: path.join(root, r.path) }))
})

/** Absolute local paths of a request's staged files, for the API and the client to hand out. */
export const stagedPaths = (requestId: string) => Effect.map(stagedFiles(requestId), (files) => files.map((f) => f.path))
