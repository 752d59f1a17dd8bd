/**
 * What a staging request is served from: the packages it covers, each package's verified archive
 * copies (online first), and, when a package has only bad ones, why it cannot be staged.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Sites from "../Sites.js"
import { Storages } from "../Storages.js"

/** A package a request covers, and whether the request names it itself. */
export interface PackageRow {
  readonly id: string
  readonly status: string
  readonly explicit: boolean
  readonly relativePath: string
  readonly sizeBytes: number
  readonly checksum: string
  readonly executedObsUnitId: string
}

/** A filed file of a package a request covers. */
export interface FileRow {
  readonly id: string
  readonly rawDataPackageId: string
  readonly relativePath: string
  readonly checksum: string
}

/** The packages a request covers: those it names, and the archived ones of the observations it names. */
export const packagesOf = (requestId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<PackageRow>`
      select p.id, p.status::text as status, bool_or(i.raw_data_package_id is not null) as explicit, p.relative_path,
             p.size_bytes, p.checksum, p.executed_obs_unit_id
      from staging_request_item i
      -- an observation's raw data: a processed product kept under it is staged by its package's id
      join raw_data_package p on p.id = i.raw_data_package_id
        or (i.raw_data_package_id is null and p.executed_obs_unit_id = i.executed_obs_unit_id and p.data_product_id is null)
      where i.staging_request_id = ${requestId}
      group by p.id order by p.relative_path`)

/** Verified archive copies of a package, online ones first, then by priority. */
export const archiveCopiesOf = (packageId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const storages = yield* Storages
    const rows = yield* sql<{ id: string; locationId: string; path: string }>`
      select c.id, c.data_location_id as location_id, c.path from physical_copy c
      join data_location l on l.id = c.data_location_id join raw_data_package p on p.id = c.raw_data_package_id
      where c.raw_data_package_id = ${packageId} and l.type = 'LONG_TERM_ARCHIVE' and l.readable and c.status = 'PRESENT'
        and c.verified_at is not null and c.checksum = p.checksum
      order by l.priority, l.name`
    const out = []
    for (const r of rows) {
      const location = yield* Sites.location(r.locationId)
      const storage = yield* storages.of(location)
      out.push({ id: r.id, location, storage, path: r.path })
    }
    return out.sort((a, b) => Number(a.storage.capabilities.nearline) - Number(b.storage.capabilities.nearline))
  })

/** An archive copy to read a package from, with its location and storage. */
export type ArchiveCopy = Effect.Effect.Success<ReturnType<typeof archiveCopiesOf>>[number]

/**
 * Why a package has no good archive copy, when it has bad ones: each CORRUPT or MISSING archive
 * copy with what its finder saw; undefined when it has none (it is not archived yet).
 */
export const noGoodCopyReason = (packageId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const bad = yield* sql<{ location: string; status: string; detail: string | null }>`
      select l.name as location, c.status::text as status,
        (select e.details->>'detail' from event_log e where e.entity_kind = 'PhysicalCopy' and e.entity_id = c.id
         order by e.id desc limit 1) as detail
      from physical_copy c join data_location l on l.id = c.data_location_id
      where c.raw_data_package_id = ${packageId} and l.type = 'LONG_TERM_ARCHIVE' and c.status in ('CORRUPT', 'MISSING')
      order by l.priority, l.name`
    if (bad.length === 0) return undefined
    const each = bad.map((b) => `copy at ${b.location} ${b.status}${b.detail === null ? "" : ` (${b.detail})`}`)
    return `package ${packageId} has no good archive copy left: ${each.join("; ")}`
  })

/** A package whose every archive copy was found bad: the request cannot be served. */
export class NoGoodCopy extends Data.TaggedError("NoGoodCopy")<{ readonly packageId: string; readonly message: string }> {}
