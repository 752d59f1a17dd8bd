/**
 * Planning rounds shared by a site's processes: a round plans only the stages it claims, a stage
 * another process planned lately is left to it, and a stamp from a clock set back does not hold a
 * stage forever. Planning on demand after a finished job is never held back by a claim.
 */
import { TestDatabase, waitUntil } from "@ccat/core/testing"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as JobQueue from "../../src/engine/JobQueue.js"
import * as PlannerRounds from "../../src/engine/PlannerRounds.js"
import * as Engine from "../../src/lifecycle/Engine.js"
import type { Stage } from "../../src/lifecycle/Stage.js"

/** A stage that counts its plans and, when `sends`, enqueues one job a plan (its work counts too). */
const counting = (name: string, options: { readonly after?: ReadonlyArray<string>; readonly sends?: boolean } = {}) => {
  const counts = { plans: 0, works: 0 }
  const stage: Stage<JobQueue.JobQueue | SqlClient.SqlClient> = {
    name,
    ...(options.after === undefined ? {} : { after: options.after }),
    plan: (site) =>
      Effect.gen(function* () {
        counts.plans++
        if (options.sends !== true || counts.plans > 1) return 0
        yield* (yield* JobQueue.JobQueue).send(`${site}.${name}`, { n: counts.plans })
        return 1
      }),
    work: () => Effect.sync(() => void counts.works++)
  }
  return { stage, counts }
}

const stampedIn = (site: string, stage: string, seconds: number) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql`insert into planner_round (site, stage, planned_at) values (${site}, ${stage}, now() + make_interval(secs => ${seconds}))
        on conflict (site, stage) do update set planned_at = excluded.planned_at`
  )

describe("planning rounds shared by a site's processes", () => {
  // The real clock: the engine's rounds and polls run on it.
  layer(TestDatabase.layer, { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("a round claims only stages nobody planned within most of an interval; a stamp far ahead is not believed", () =>
      Effect.gen(function* () {
        const first = yield* PlannerRounds.claim("chile", ["package", "bundle"], "5 seconds")
        assert.deepStrictEqual([...first].sort(), ["bundle", "package"])
        // Another process of the site, a moment later: both were just planned.
        assert.strictEqual((yield* PlannerRounds.claim("chile", ["package", "bundle"], "5 seconds")).size, 0)
        // Another site's rounds are its own.
        assert.deepStrictEqual([...(yield* PlannerRounds.claim("cologne", ["package"], "5 seconds"))], ["package"])
        // Once most of an interval has passed, the next round takes the stage again.
        yield* stampedIn("chile", "package", -4.5)
        assert.deepStrictEqual([...(yield* PlannerRounds.claim("chile", ["package", "bundle"], "5 seconds"))], ["package"])
        // A stamp ahead of the clock holds the stage, unless it is too far ahead to be a round's.
        yield* stampedIn("chile", "bundle", 30)
        assert.strictEqual((yield* PlannerRounds.claim("chile", ["bundle"], "5 seconds")).size, 0)
        yield* stampedIn("chile", "bundle", 3_600)
        assert.deepStrictEqual([...(yield* PlannerRounds.claim("chile", ["bundle"], "5 seconds"))], ["bundle"])
      }))

    it.effect("the engine plans the stages it claims and leaves the others; a finished job still plans its followers at once", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const free = counting("free")
        const held = counting("held")
        const source = counting("source", { sends: true })
        const follower = counting("follower", { after: ["source"] })
        // Another process planned `held` and `follower` just now, as far as this one can tell.
        yield* stampedIn("chile", "held", 50)
        yield* stampedIn("chile", "follower", 50)
        yield* Effect.scoped(Effect.gen(function* () {
          yield* Engine.runSite("chile", [free.stage, held.stage, source.stage, follower.stage], {
            plannerInterval: "100 millis",
            pollingIntervalSeconds: 0.5
          })
          yield* waitUntil(
            "three rounds, the source's job done and its follower planned",
            Effect.sync(() => free.counts.plans >= 3 && source.counts.works >= 1 && follower.counts.plans >= 1),
            30_000
          )
        })).pipe(Effect.provide(JobQueue.layerWith({ wakeups: false }).pipe(Layer.provideMerge(Layer.succeed(SqlClient.SqlClient, sql)))))
        assert.strictEqual(held.counts.plans, 0, "a stage another process holds is not planned in this one's rounds")
        // Planned on demand after the source's job, though its rounds are held elsewhere.
        assert.isAtLeast(follower.counts.plans, 1)
      }))
  })
})
