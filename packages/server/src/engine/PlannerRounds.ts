/**
 * Planning rounds shared by the worker processes of a site. Each process runs every stage's
 * planner on a schedule; with N processes at a site that is N times the planning work for the
 * same ready work, on the ops-db as on the workers' cores. A round therefore first claims its
 * stages in `planner_round`: only stages no process of the site planned within most of an
 * interval are claimed, in one statement, and only those are planned. Whichever process ticks
 * first plans; the others find the stages taken and skip them, and when that process stops,
 * another one's next round claims them. Planning on demand (a finished job running the planners
 * of the stages that follow it) never claims: it stays in the process that finished the job.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/**
 * The share of an interval after which another process's round no longer holds a stage: below
 * one, so that a process whose rounds drift a little later than the claimer's still finds the
 * stage due when the claimer is gone.
 */
export const holdShare = 0.8

/**
 * A round stamped further ahead of the ops-db's clock than this is not believed (the clock was
 * set back, or a stamp was written by hand): the stage is claimed again rather than left
 * unplanned until the clock catches up.
 */
export const futureTolerance = Duration.minutes(1)

/**
 * Claims, for this process's round at `site`, the stages of `stages` that no process of the site
 * planned within `holdShare` of `interval`; returns the names claimed.
 */
export const claim = (site: string, stages: ReadonlyArray<string>, interval: Duration.DurationInput) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const holdSeconds = (Duration.toMillis(interval) * holdShare) / 1000
    const rows = yield* sql<{ stage: string }>`
      insert into planner_round (site, stage, planned_at)
      select ${site}::text, s, now() from unnest(${[...new Set(stages)]}::text[]) as s
      on conflict (site, stage) do update set planned_at = excluded.planned_at
      where planner_round.planned_at <= now() - make_interval(secs => ${holdSeconds}::float8)
         or planner_round.planned_at > now() + make_interval(secs => ${Duration.toSeconds(futureTolerance)}::float8)
      returning stage`
    return new Set(rows.map((r) => r.stage))
  }).pipe(Effect.withSpan("PlannerRounds.claim", { attributes: { site } }))
