/**
 * Releasing staged data and per-request folders. A scientist (or an operator) releases a
 * completed request once processing is done: `released_at` is set, so the request no longer keeps
 * its staged copies (cleanup then deletes those no other live request needs). The staging worker
 * records the folders it made for a request at its PROCESSING location, one per observing
 * program (`{"<program id>": "<program folder>/<request id>"}`, relative to the location's root),
 * and cleanup records when it removed them. Requests served before this migration have no
 * folders (null) and are handed out at their copies' paths, as before.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = String.raw`
alter table staging_request
  add column released_at timestamptz,
  add column staged_folders jsonb check (staged_folders is null or jsonb_typeof(staged_folders) = 'object'),
  add column folders_removed_at timestamptz;
create index staging_request_folders_due on staging_request (data_location_id)
  where staged_folders is not null and folders_removed_at is null;
`

/** Adds `released_at`, `staged_folders` and `folders_removed_at` to `staging_request`. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
