/**
 * The cleanup planner's sweep: where, in a pass over every live copy of a site's cleanable
 * locations, the planner left off, so the pass is judged a bounded slice a tick instead of all at
 * once (`sweep_location`, `sweep_path`: the last copy judged, in the order of the live path
 * index), and when the pass began (`sweep_started_at`: every copy is judged at that moment or
 * later, which is what the site's `full_pass_at` records when the pass ends). All three are null
 * while no pass is under way. `sweep_requested_at`: the latest moment something asked for a pass
 * that begins then or later (a tick that read only part of what came due), so a pass under way
 * goes on and the next begins when it ends.
 *
 * Expand-only: nullable columns with no default on a table of one row per site; the previous
 * release never reads them and goes on judging its full passes at once during an upgrade.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = `
alter table cleanup_mark add column if not exists sweep_location uuid;
alter table cleanup_mark add column if not exists sweep_path text;
alter table cleanup_mark add column if not exists sweep_started_at timestamptz;
alter table cleanup_mark add column if not exists sweep_requested_at timestamptz;
`

/** Adds the cleanup sweep's place and start to each site's cleanup mark. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
