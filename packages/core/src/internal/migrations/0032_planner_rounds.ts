/**
 * `planner_round`: per site and stage, when a worker process of the site last ran that stage's
 * periodic planning round. Several processes of one site share the rounds through it (a round
 * claims the stages nobody planned within most of an interval), so N processes plan about as
 * often as one instead of N times as often.
 *
 * Expand-only: a new table, which the previous release never reads; its processes keep planning
 * every round of their own during an upgrade, as they always did.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const ddl = `
create table if not exists planner_round (
  site text not null,
  stage text not null,
  planned_at timestamptz not null,
  primary key (site, stage)
);
`

/** Adds the planning rounds' table. */
export default Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(ddl).raw).pipe(Effect.asVoid)
