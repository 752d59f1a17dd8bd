/**
 * An operator's way out for a SOURCE path whose file changed after it was packaged. Cleanup
 * never deletes such bytes: it marks the file's SOURCE copy CORRUPT and the path stays held by
 * the old file, so nothing can be filed under it by mistake. Once the operator has dealt with the
 * bytes now there (kept them, or filed them under a new path), `release` gives the copy up: it
 * becomes DELETED without touching the bytes, and the path is free for a new filing. Only when
 * the file's package is ARCHIVED, so the file's own bytes are safe in the archive.
 */
import { type Ids, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"

/** Why a release was refused: no such copy, or one that is not a released SOURCE copy's case. */
export class ReleaseRefused extends Data.TaggedError("ReleaseRefused")<{
  readonly reason: "NotFound" | "NotApplicable"
  readonly message: string
}> {}

/** What a release did. */
export interface Released {
  readonly copyId: string
  readonly rawDataFileId: string
  readonly location: string
  readonly path: string
}

/**
 * Gives up a CORRUPT or MISSING SOURCE copy (DELETED, bytes left where they are, the operator and
 * the reason in the event) and releases its path, in one transaction with the copy locked.
 */
export const release = Effect.fn("SourcePaths.release")(function* (copyId: string, actor: string, reason: string) {
  const sql = yield* SqlClient.SqlClient
  return yield* sql.withTransaction(
    Effect.gen(function* () {
      const [row] = yield* sql<
        { status: string; path: string; location: string; locationType: string; fileId: string | null; packageStatus: string | null }
      >`
        select c.status::text as status, c.path, l.name as location, l.type::text as location_type, f.id as file_id,
               p.status::text as package_status
        from physical_copy c join data_location l on l.id = c.data_location_id
        left join raw_data_file f on f.id = c.raw_data_file_id and f.source_location_id = c.data_location_id
        left join raw_data_package p on p.id = f.raw_data_package_id
        where c.id = ${copyId}
        for update of c`
      if (row === undefined) return yield* new ReleaseRefused({ reason: "NotFound", message: `no physical copy ${copyId}` })
      if (row.locationType !== "SOURCE" || row.fileId === null) {
        return yield* new ReleaseRefused({
          reason: "NotApplicable",
          message:
            `copy ${copyId} is not a file's copy at its SOURCE location (it is at ${row.location}, a ${row.locationType}); only SOURCE paths are released`
        })
      }
      if (row.status !== "CORRUPT" && row.status !== "MISSING") {
        return yield* new ReleaseRefused({
          reason: "NotApplicable",
          message:
            `copy ${copyId} is ${row.status}: only a SOURCE copy found changed or gone is released by hand; cleanup deletes the others`
        })
      }
      if (row.packageStatus !== "completed") {
        return yield* new ReleaseRefused({
          reason: "NotApplicable",
          message: `file ${row.fileId}'s package is ${
            row.packageStatus ?? "not written"
          }, not ARCHIVED: its bytes are safe nowhere else yet, so its SOURCE path stays held`
        })
      }
      yield* Transitions.transition({
        entity: "PhysicalCopy",
        id: copyId as Ids.PhysicalCopyId,
        from: row.status,
        to: "DELETED",
        actor,
        details: { action: "source path released", reason, bytesKept: true }
      })
      yield* sql`update raw_data_file set source_released_at = now() where id = ${row.fileId} and source_released_at is null`
      yield* Effect.logInfo(`${row.location}/${row.path}: released by ${actor} (${reason}); the bytes there were left as they are`)
      return { copyId, rawDataFileId: row.fileId, location: row.location, path: row.path } satisfies Released
    })
  )
})
