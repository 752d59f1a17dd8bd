/**
 * The bounds of the in-memory job store: it keeps at most `maxJobs`, destroying finished jobs
 * before pending ones to make room, refuses a new job (503, busy) while every kept job runs, and
 * destroys each job at its destruction time. A job belongs to its account; anonymous jobs are
 * listed to nobody.
 */
import { it } from "@effect/vitest"
import type { ApiSecurity } from "@ccat/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as TestClock from "effect/TestClock"
import { expect } from "vitest"
import type * as TapQuery from "../../src/tap/TapQuery.js"
import * as UwsJobs from "../../src/tap/UwsJobs.js"

const tap: TapQuery.TapLimits = { defaultMaxrec: 10, hardMaxrec: 100, syncTimeout: Duration.seconds(1), asyncTimeout: Duration.seconds(60) }
const anonymous: TapQuery.Caller = { kind: "anonymous" }
const account = (id: string): TapQuery.Caller => ({
  kind: "account",
  principal: { accountId: id, name: `sci-${id}`, role: "scientist", instrumentIds: [], programIds: [] } as unknown as ApiSecurity.Principal
})
const query = () => new Map([["query", "SELECT TOP 1 obs_id FROM ivoa.obscore"]])

it.scoped("keeps at most maxJobs, finished before pending, and refuses while all run", () =>
  Effect.gen(function* () {
    const jobs = yield* UwsJobs.make({ ...UwsJobs.defaultLimits, maxJobs: 2 }, tap)
    const a = yield* jobs.create(anonymous, query())
    yield* TestClock.adjust("1 second")
    const b = yield* jobs.create(anonymous, query())
    b.phase = "COMPLETED"
    yield* TestClock.adjust("1 second")
    // b is finished, a only pending: b goes although a is older.
    const c = yield* jobs.create(anonymous, query())
    expect([yield* jobs.get(anonymous, a.id), yield* jobs.get(anonymous, b.id), yield* jobs.get(anonymous, c.id)].map((j) => j?.id))
      .toEqual([a.id, undefined, c.id])
    a.phase = "EXECUTING"
    c.phase = "QUEUED"
    const refused = yield* Effect.flip(jobs.create(anonymous, query()))
    expect([refused.fault, refused.message]).toEqual(["busy", "the service holds 2 active jobs already: try again when some have finished"])
  }))

it.scoped("destroys a job at its destruction time; a job is its owner's", () =>
  Effect.gen(function* () {
    const jobs = yield* UwsJobs.make({ ...UwsJobs.defaultLimits, retention: Duration.hours(1) }, tap)
    const mine = yield* jobs.create(account("a"), query())
    const open = yield* jobs.create(anonymous, query())
    expect(yield* jobs.get(account("b"), mine.id)).toBeUndefined()
    expect(yield* jobs.get(anonymous, mine.id)).toBeUndefined()
    expect((yield* jobs.get(account("a"), mine.id))?.id).toBe(mine.id)
    expect((yield* jobs.get(account("b"), open.id))?.id).toBe(open.id)
    expect((yield* jobs.list(account("a"))).map((j) => j.id)).toEqual([mine.id])
    expect(yield* jobs.list(anonymous)).toEqual([])
    yield* TestClock.adjust("61 minutes")
    expect(yield* jobs.get(account("a"), mine.id)).toBeUndefined()
    expect(yield* jobs.list(account("a"))).toEqual([])
  }))
