/**
 * The folders of staging requests at a PROCESSING location, removed once the request was released
 * or expired, so no link there keeps a deleted copy's bytes on disk (`StagingLayout`).
 */
import { EventLog } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as StagingLayout from "../StagingLayout.js"
import { batch } from "./CleanupScheduling.js"

/** Requests whose folders are to be removed: made, not yet removed, and released or expired. */
export const foldersDue = (sql: SqlClient.SqlClient) =>
  sql`r.staged_folders is not null and r.folders_removed_at is null and (r.released_at is not null or r.expires_at <= now())`

/**
 * Removes the folders of the location's released or expired requests, each recorded (with its
 * event) once gone. The copies they linked stay in the store until no live request needs them.
 * A folder that cannot be removed fails the job (it is retried); the others are not held up.
 */
export const removeFolders = (site: string, locationId: string, root: string | undefined) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    if (root === undefined) return 0
    const due = yield* sql<{ id: string; status: string; stagedFolders: Record<string, string> }>`
      select r.id, r.status::text as status, r.staged_folders from staging_request r
      where r.data_location_id = ${locationId} and ${foldersDue(sql)} order by r.updated_at limit ${batch}`
    let failed = 0
    for (const r of due) {
      const removed = yield* StagingLayout.remove(root, Object.values(r.stagedFolders)).pipe(Effect.either)
      if (removed._tag === "Left") {
        failed++
        yield* Effect.logWarning(`removing the folders of staging request ${r.id} failed; the job is retried`, removed.left)
        continue
      }
      yield* sql.withTransaction(Effect.zipRight(
        sql`update staging_request set folders_removed_at = now() where id = ${r.id}`,
        EventLog.append({
          kind: "StagingRequest",
          id: r.id,
          from: r.status,
          to: r.status,
          actor: `worker:${site}`,
          details: { action: "folders-removed", folders: Object.values(r.stagedFolders) }
        })
      ))
    }
    return failed
  })
