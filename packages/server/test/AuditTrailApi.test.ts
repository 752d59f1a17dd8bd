/**
 * The audit trail of what is no state machine's move, through the real server on a real
 * ops-db: an observation's filing and close, an availability switch (and a repeat that changes
 * nothing), an operator's retry of a transfer attempt, a staging request; each event names who
 * made the change, and `GET /events` shows each item's history to the roles that may read it.
 */
import { Transitions } from "@ccat/core"
import { Fixtures } from "@ccat/core/testing"
import { it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { randomUUID } from "node:crypto"
import { expect } from "vitest"
import * as Harness from "./ApiHarness.js"

it.layer(Harness.layer(), { timeout: 60_000 })("audit trail through the API", (it) => {
  it.effect("filing, closing, availability switches, retries and staging are events naming who made them, readable per item", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const instrument = yield* Harness.client(yield* Harness.tokenFor({ role: "instrument", instrumentIds: [world.instrument.id] }))
      const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
      const scientist = yield* Harness.client(yield* Harness.tokenFor({ role: "scientist", programIds: [world.program.id] }))

      // An observation filed and closed: two events, the filing's and the close's, by the instrument's account.
      const id = randomUUID()
      yield* instrument.observations.file({ payload: { id, obsUnitId: world.obsUnit.id, startAt: new Date(Date.UTC(2026, 4, 1)) } })
      yield* instrument.observations.close({
        path: { id: id as any },
        payload: { endAt: new Date(Date.UTC(2026, 4, 1, 1)), status: "completed" }
      })
      const observed = yield* scientist.status.events({ urlParams: { entity: "ExecutedObsUnit", id } })
      expect(observed.items.map((e) => [e.fromState, e.toState, e.details.action])).toEqual([
        [null, "in_progress", "filed"],
        ["in_progress", "completed", "close"]
      ])
      expect(new Set(observed.items.map((e) => e.actor)).size).toBe(1)
      expect(observed.items[0].actor).toMatch(/^instrument-/)

      // Availability: each change an event with the reason; a switch to what is already set writes none.
      yield* operator.locations.setAvailability({ path: { id: world.chileBuffer.id }, payload: { writable: false, reason: "disk swap" } })
      const before = yield* Harness.counts(["event_log"])
      yield* operator.locations.setAvailability({ path: { id: world.chileBuffer.id }, payload: { writable: false, reason: "again" } })
      expect(yield* Harness.counts(["event_log"])).toEqual(before)
      yield* operator.locations.setAvailability({ path: { id: world.chileBuffer.id }, payload: { writable: true, deletable: false } })
      const switched = yield* operator.status.events({ urlParams: { entity: "DataLocation", id: world.chileBuffer.id } })
      expect(switched.items.map((e) => [e.fromState, e.toState, e.details.reason ?? null])).toEqual([
        ["read+write+delete", "read+delete", "disk swap"],
        ["read+delete", "read+write", null]
      ])
      expect(switched.items[0].actor).toMatch(/^operator-/)
      // Locations' history is the operators': to a scientist it is not there.
      const hidden = yield* Effect.either(scientist.status.events({ urlParams: { entity: "DataLocation", id: world.chileBuffer.id } }))
      expect(Either.isLeft(hidden) && hidden.left._tag).toBe("NotFound")
      // An unknown location is a 404 for operators too, and nothing is written.
      const unknown = yield* Effect.either(
        operator.locations.setAvailability({ path: { id: randomUUID() as any }, payload: { readable: false } })
      )
      expect(Either.isLeft(unknown) && unknown.left._tag).toBe("NotFound")
      expect((yield* Harness.counts(["event_log"])).event_log).toBe(before.event_log + 1)

      // An operator's retry of a failed attempt: the new attempt's creation names the operator and the attempt it retries.
      const eou = yield* Fixtures.executedObsUnit(world).pipe(Effect.orDie)
      const pkg = yield* Fixtures.rawDataPackage(world, eou).pipe(Effect.orDie)
      const bundle = yield* Fixtures.dataTransferPackage([pkg]).pipe(Effect.orDie)
      const attempt = yield* Fixtures.dataTransfer(world, bundle).pipe(Effect.orDie)
      yield* Transitions.transition({ entity: "DataTransfer", id: attempt.id, from: "pending", to: "failed" }).pipe(Effect.orDie)
      const retried = yield* operator.operations.retry({ payload: { entity: "DataTransfer", id: attempt.id, reason: "link repaired" } })
      const [created] = (yield* operator.status.events({ urlParams: { entity: "DataTransfer", id: retried.newAttemptId! } })).items
      expect([created.fromState, created.toState, created.details]).toEqual([null, "pending", {
        retry: true,
        reason: "link repaired",
        retriedAttempt: attempt.id
      }])
      expect(created.actor).toMatch(/^operator-/)

      // A staging request's creation names the scientist; its history is theirs to read.
      const request = yield* scientist.staging.create({ payload: { location: world.processing.name, observationIds: [eou.id] } })
      const staged = yield* scientist.status.events({ urlParams: { entity: "StagingRequest", id: request.id } })
      expect(staged.items.map((e) => [e.fromState, e.toState])).toEqual([[null, "pending"]])
      expect(staged.items[0].actor).toMatch(/^scientist-/)

      // Every event of this test sits in the same transaction as its change: no event names a row that does not exist.
      const [{ n }] = yield* sql<{ n: number }>`
        select count(*)::int as n from event_log e
        where e.entity_kind = 'DataTransfer' and not exists (select 1 from data_transfer t where t.id = e.entity_id)`.pipe(Effect.orDie)
      expect(n).toBe(0)
    }))
})
