/**
 * An operator's two ways out for a file that packaging found corrupt or missing at its SOURCE
 * location. Packaging never packages such a file: it detaches it from its package and keeps its
 * SOURCE path held, so nothing new can be filed under the path while the file's own bytes may
 * still come back. Either the bytes are put back at the path (the instrument rewrote them, a
 * disk came back) and the operator asks for a `recheck`: the file is filed again and packaging
 * reads it once more against its filed checksum; or the bytes are gone for good and the operator
 * `giveUp`s the file: it stays corrupt or missing in the catalog, as the record of the loss, and
 * its path is released for new filings. Neither touches the bytes at the path.
 */
import { EventLog, type Ids, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"

/** Why an action on a faulty file was refused: no such file, or one not in the case the action is for. */
export class FaultyFileRefused extends Data.TaggedError("FaultyFileRefused")<{
  readonly reason: "NotFound" | "NotApplicable"
  readonly message: string
}> {}

/** What an action on a faulty file did. */
export interface FaultyFileAction {
  readonly rawDataFileId: string
  readonly relativePath: string
  /** The state the file is in afterwards: `filed` after a recheck, still corrupt or missing after giving up. */
  readonly state: string
}

interface FileRow {
  readonly state: string
  readonly relativePath: string
  readonly packageId: string | null
  readonly released: boolean
  readonly location: string
}

/** Locks the file and checks it is one packaging found faulty and nothing has taken up since. */
const lockFaulty = (fileId: string, action: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [row] = yield* sql<FileRow>`
      select f.state::text as state, f.relative_path, f.raw_data_package_id as package_id,
             f.source_released_at is not null as released, l.name as location
      from raw_data_file f join data_location l on l.id = f.source_location_id
      where f.id = ${fileId}
      for update of f`
    if (row === undefined) return yield* new FaultyFileRefused({ reason: "NotFound", message: `no raw data file ${fileId}` })
    if (row.state !== "corrupt" && row.state !== "missing") {
      return yield* new FaultyFileRefused({
        reason: "NotApplicable",
        message: `file ${fileId} is ${row.state}: only a file packaging found corrupt or missing can be ${action}`
      })
    }
    if (row.packageId !== null) {
      return yield* new FaultyFileRefused({
        reason: "NotApplicable",
        message: `file ${fileId} is attached to package ${row.packageId} again (a retry of that package checks it): nothing to ${action}`
      })
    }
    if (row.released) {
      return yield* new FaultyFileRefused({
        reason: "NotApplicable",
        message: `file ${fileId} was given up already and its path ${row.location}/${row.relativePath} released`
      })
    }
    return row
  })

/**
 * Files a corrupt or missing file again, so the packaging planner takes it into a new package and
 * reads it once more against its filed size and checksum: packaged if the bytes are back, marked
 * again with what was found if not.
 */
export const recheck = Effect.fn("FaultyFiles.recheck")(function* (fileId: string, actor: string, reason: string | undefined) {
  const sql = yield* SqlClient.SqlClient
  return yield* sql.withTransaction(
    Effect.gen(function* () {
      const row = yield* lockFaulty(fileId, "rechecked")
      yield* Transitions.transition({
        entity: "RawDataFile",
        id: fileId as Ids.RawDataFileId,
        from: row.state as "corrupt" | "missing",
        to: "filed",
        actor,
        details: { action: "recheck", ...(reason === undefined ? {} : { reason }) }
      })
      yield* Effect.logInfo(
        `file ${fileId} (${row.location}/${row.relativePath}) filed again by ${actor} for packaging to read it once more`
      )
      return { rawDataFileId: fileId, relativePath: row.relativePath, state: "filed" } satisfies FaultyFileAction
    })
  )
})

/**
 * Records a corrupt or missing file as lost and releases its SOURCE path: the file keeps its state
 * (the catalog's record that its filed bytes never reached the archive), the event names the
 * operator and the reason, and the path takes a new filing. The bytes at the path, if any, are
 * left as they are.
 */
export const giveUp = Effect.fn("FaultyFiles.giveUp")(function* (fileId: string, actor: string, reason: string) {
  const sql = yield* SqlClient.SqlClient
  return yield* sql.withTransaction(
    Effect.gen(function* () {
      const row = yield* lockFaulty(fileId, "given up")
      yield* sql`update raw_data_file set source_released_at = now(), updated_at = now() where id = ${fileId}`
      yield* EventLog.append({
        kind: "RawDataFile",
        id: fileId,
        from: row.state,
        to: row.state,
        actor,
        details: { action: "given up as lost", reason, sourcePathReleased: `${row.location}/${row.relativePath}`, bytesKept: true }
      })
      yield* Effect.logWarning(
        `file ${fileId} given up as lost by ${actor} (${reason}); its path ${row.location}/${row.relativePath} takes a new filing`
      )
      return { rawDataFileId: fileId, relativePath: row.relativePath, state: row.state } satisfies FaultyFileAction
    })
  )
})
