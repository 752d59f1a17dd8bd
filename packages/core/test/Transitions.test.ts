import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { EntityKind } from "../src/EventLog.js"
import * as Repositories from "../src/Repositories.js"
import * as StateMachine from "../src/StateMachine.js"
import * as Transitions from "../src/Transitions.js"
import * as Fixtures from "../src/testing/Fixtures.js"
import * as TestDatabase from "../src/testing/TestDatabase.js"

/** One fresh row of every stateful entity, in its initial state. */
const rows = Effect.gen(function* () {
  const w = yield* Fixtures.world
  const eou = yield* Fixtures.executedObsUnit(w)
  const file = yield* Fixtures.rawDataFile(w, eou)
  const pkg = yield* Fixtures.rawDataPackage(w, eou)
  const bundle = yield* Fixtures.dataTransferPackage([pkg])
  const attempt = yield* Fixtures.dataTransfer(w, bundle)
  const copy = yield* Fixtures.physicalCopy(w.chileBuffer, pkg)
  const staging = yield* Repositories.stagingRequests.insert({
    accountId: w.scientist.id,
    dataLocationId: w.processing.id,
    expiresAt: null
  })
  const ids: { readonly [K in EntityKind]: Transitions.IdOf[K] } = {
    RawDataFile: file.id,
    RawDataPackage: pkg.id,
    DataTransferPackage: bundle.id,
    DataTransfer: attempt.id,
    PhysicalCopy: copy.id,
    StagingRequest: staging.id
  }
  return { ids, pkg }
})

/** A wall-clock pause: the row lock is held in real time, whatever the test clock says. */
const pause = (ms: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))

const kinds = Object.keys(StateMachine.machines) as Array<EntityKind>

describe("Transitions", () => {
  it.layer(TestDatabase.layer)((it) => {
    it.effect("every legal transition of every machine moves the row and writes exactly one event", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const { ids, pkg } = yield* rows
        let walked = 0
        for (const entity of kinds) {
          const table = Transitions.tableOf(entity)
          const column = entity === "RawDataFile" ? "state" : "status"
          const id = ids[entity]
          for (const [from, to] of StateMachine.transitions(entity)) {
            // place the row in `from` directly (with what that state requires), then move it
            yield* sql`update ${sql(table)} set ${sql(column)} = ${from} ${
              entity === "RawDataFile" ? sql`, raw_data_package_id = ${pkg.id}` : sql.literal("")
            } ${
              entity === "RawDataPackage" || entity === "DataTransferPackage"
                ? sql`, size_bytes = 1, checksum = ${Fixtures.checksum()}`
                : sql.literal("")
            } where id = ${id}`
            const before = (yield* Repositories.eventLog.listBy("entityId", id)).length
            const moved = yield* Transitions.transition({
              entity,
              id,
              from,
              to,
              actor: "test",
              details: { step: walked }
            } as Transitions.TransitionInput<typeof entity>)
            assert.strictEqual((moved as unknown as Record<string, unknown>)[column], to, `${entity} ${from} → ${to}`)
            const events = yield* Repositories.eventLog.listBy("entityId", id)
            assert.strictEqual(events.length, before + 1, `one event for ${entity} ${from} → ${to}`)
            const last = events[events.length - 1]
            assert.deepStrictEqual(
              [last.entityKind, last.fromState, last.toState, last.actor, last.details],
              [entity, from, to, "test", { step: walked }]
            )
            walked++
          }
        }
        assert.isAtLeast(walked, 40)
      }))

    it.effect("every illegal transition is refused, leaves the row alone and writes no event", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const { ids, pkg } = yield* rows
        let refused = 0
        for (const entity of kinds) {
          const table = Transitions.tableOf(entity)
          const column = entity === "RawDataFile" ? "state" : "status"
          const id = ids[entity]
          const states = StateMachine.states(entity)
          for (const from of states) {
            yield* sql`update ${sql(table)} set ${sql(column)} = ${from} ${
              entity === "RawDataFile" ? sql`, raw_data_package_id = ${pkg.id}` : sql.literal("")
            } ${
              entity === "RawDataPackage" || entity === "DataTransferPackage"
                ? sql`, size_bytes = 1, checksum = ${Fixtures.checksum()}`
                : sql.literal("")
            } where id = ${id}`
            for (const to of [...states, "no_such_state"]) {
              if (StateMachine.canTransition(entity, from, to)) continue
              const error = yield* Effect.flip(
                Transitions.transition({ entity, id, from, to } as Transitions.TransitionInput<typeof entity>)
              )
              assert.strictEqual(error._tag, "TransitionError")
              assert.strictEqual((error as Transitions.TransitionError).reason, "IllegalTransition")
              assert.include(error.message, `cannot move from ${from} to ${to}`)
              refused++
            }
            const [row] = yield* sql<{ state: string }>`select ${sql(column)}::text as state from ${sql(table)} where id = ${id}`
            assert.strictEqual(row.state, from)
          }
          const events = yield* Repositories.eventLog.listBy("entityId", id)
          assert.deepStrictEqual(
            events.map((e) => e.fromState),
            [null],
            `${entity}: only its creation event, none for refusals`
          )
        }
        assert.isAtLeast(refused, 100)
      }))

    it.effect("a row that moved on is a StateConflict, a missing row NotFound; neither writes an event", () =>
      Effect.gen(function* () {
        const { ids } = yield* rows
        const id = ids.RawDataPackage
        yield* Transitions.transition({ entity: "RawDataPackage", id, from: "pending", to: "scheduled" })
        const conflict = yield* Effect.flip(
          Transitions.transition({ entity: "RawDataPackage", id, from: "pending", to: "failed" })
        )
        assert.strictEqual(conflict._tag, "TransitionError")
        if (conflict._tag !== "TransitionError") return
        assert.strictEqual(conflict.reason, "StateConflict")
        assert.strictEqual(conflict.actual, "scheduled")
        assert.match(conflict.message, /is scheduled, not pending/)

        const missing = yield* Effect.flip(
          Transitions.transition({ entity: "StagingRequest", id: Fixtures.uuid(), from: "pending", to: "scheduled" })
        )
        assert.strictEqual(missing._tag === "TransitionError" && missing.reason, "NotFound")
        const events = yield* Repositories.eventLog.listBy("entityId", id)
        assert.deepStrictEqual(events.map((e) => [e.fromState, e.toState]), [[null, "pending"], ["pending", "scheduled"]])
      }))

    it.effect("a transition sets the outcome columns with the state, and rolls back with its transaction", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const { ids } = yield* rows
        const id = ids.DataTransfer
        const finishedAt = new Date("2026-05-02T10:00:00Z")
        yield* Transitions.transition({ entity: "DataTransfer", id, from: "pending", to: "scheduled" })
        yield* Transitions.transition({
          entity: "DataTransfer",
          id,
          from: "scheduled",
          to: "in_progress",
          set: { startedAt: new Date("2026-05-02T09:00:00Z") }
        })
        const done = yield* Transitions.transition({
          entity: "DataTransfer",
          id,
          from: "in_progress",
          to: "completed",
          set: { bytesTransferred: 3_600_000_000, durationMs: 3_600_000, throughputBytesPerSecond: 1e6, finishedAt }
        })
        assert.strictEqual(done.bytesTransferred, 3_600_000_000)
        assert.strictEqual(done.throughputBytesPerSecond, 1e6)
        assert.strictEqual(done.finishedAt?.epochMillis, finishedAt.getTime())

        const pkgId = ids.RawDataPackage
        const rolledBack = yield* Effect.either(
          sql.withTransaction(
            Effect.zipRight(
              Transitions.transition({ entity: "RawDataPackage", id: pkgId, from: "pending", to: "scheduled" }),
              Effect.fail("the job could not be enqueued" as const)
            )
          )
        )
        assert.isTrue(Either.isLeft(rolledBack))
        const pkg = yield* Repositories.rawDataPackages.findById(pkgId)
        assert.strictEqual(pkg._tag === "Some" && pkg.value.status, "pending")
        assert.lengthOf(yield* Repositories.eventLog.listBy("entityId", pkgId), 1, "only the creation event")
      }))

    it.effect("two concurrent transitions of the same row: exactly one wins", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        for (let round = 0; round < 10; round++) {
          const { ids } = yield* rows
          const id = ids.RawDataPackage
          const results = yield* Effect.all(
            [
              Effect.either(Transitions.transition({ entity: "RawDataPackage", id, from: "pending", to: "scheduled", actor: "a" })),
              Effect.either(Transitions.transition({ entity: "RawDataPackage", id, from: "pending", to: "failed", actor: "b" }))
            ],
            { concurrency: "unbounded" }
          )
          const winners = results.filter(Either.isRight)
          const losers = results.filter(Either.isLeft).map((r) => r.left)
          assert.lengthOf(winners, 1, `round ${round}: exactly one wins`)
          assert.lengthOf(losers, 1)
          assert.strictEqual(losers[0]._tag === "TransitionError" && losers[0].reason, "StateConflict")
          const events = (yield* Repositories.eventLog.listBy("entityId", id)).filter((e) => e.fromState !== null)
          assert.lengthOf(events, 1, "only the winner is in the event log")
          assert.strictEqual(events[0].toState, winners[0].right.status)
        }

        // Deterministic interleaving: A holds the row lock in an open transaction while B tries.
        const { ids } = yield* rows
        const id = ids.StagingRequest
        const [a, b] = yield* Effect.all(
          [
            Effect.either(
              sql.withTransaction(
                Effect.zipLeft(
                  Transitions.transition({ entity: "StagingRequest", id, from: "pending", to: "scheduled" }),
                  pause(300)
                )
              )
            ),
            Effect.either(
              Effect.zipRight(
                pause(100),
                Transitions.transition({ entity: "StagingRequest", id, from: "pending", to: "failed" })
              )
            )
          ],
          { concurrency: "unbounded" }
        )
        assert.isTrue(Either.isRight(a), "A, first to lock the row, wins")
        assert.isTrue(Either.isLeft(b))
        if (Either.isLeft(b)) {
          assert.strictEqual(b.left._tag === "TransitionError" && b.left.reason, "StateConflict")
          assert.strictEqual(b.left._tag === "TransitionError" && b.left.actual, "scheduled", "B waited for A's commit")
        }
        assert.lengthOf((yield* Repositories.eventLog.listBy("entityId", id)).filter((e) => e.fromState !== null), 1)
      }))

    it.effect("transitionAll moves every row with an event each, or none when one moved on or is missing", () =>
      Effect.gen(function* () {
        const w = yield* Fixtures.world
        const eou = yield* Fixtures.executedObsUnit(w)
        const files = yield* Effect.forEach([1, 2, 3], () => Fixtures.rawDataFile(w, eou))
        const ids = files.map((f) => f.id)
        const stateOf = (id: string) =>
          Effect.map(Repositories.rawDataFiles.findById(id as never), (r) => r._tag === "Some" ? r.value.state : "gone")
        const moves = (id: string) =>
          Effect.map(Repositories.eventLog.listBy("entityId", id), (es) => es.filter((e) => e.fromState !== null).length)

        // one of them moved on meanwhile: nothing moves, the refusal names it
        yield* Transitions.transition({ entity: "RawDataFile", id: ids[1]!, from: "filed", to: "corrupt" })
        const conflict = yield* Effect.flip(Transitions.transitionAll({ entity: "RawDataFile", ids, from: "filed", to: "missing" }))
        assert.strictEqual(conflict._tag === "TransitionError" && conflict.reason, "StateConflict")
        assert.strictEqual(conflict._tag === "TransitionError" && conflict.id, ids[1])
        assert.deepStrictEqual(yield* Effect.forEach(ids, stateOf), ["filed", "corrupt", "filed"])
        assert.deepStrictEqual(yield* Effect.forEach(ids, moves), [0, 1, 0])

        // a missing row: NotFound, nothing moves
        const others = [ids[0]!, ids[2]!]
        const missing = yield* Effect.flip(
          Transitions.transitionAll({ entity: "RawDataFile", ids: [...others, Fixtures.uuid() as never], from: "filed", to: "missing" })
        )
        assert.strictEqual(missing._tag === "TransitionError" && missing.reason, "NotFound")
        assert.deepStrictEqual(yield* Effect.forEach(others, stateOf), ["filed", "filed"])

        // all where expected: all move, one event each, in one statement
        yield* Transitions.transitionAll({ entity: "RawDataFile", ids: others, from: "filed", to: "missing", actor: "worker:test" })
        assert.deepStrictEqual(yield* Effect.forEach(others, stateOf), ["missing", "missing"])
        const events = yield* Repositories.eventLog.listBy("entityId", ids[0]!)
        assert.deepStrictEqual(events.filter((e) => e.fromState !== null).map((e) => [e.fromState, e.toState, e.actor]), [[
          "filed",
          "missing",
          "worker:test"
        ]])

        const illegal = yield* Effect.flip(
          Transitions.transitionAll({ entity: "RawDataFile", ids: others, from: "missing", to: "packaged" })
        )
        assert.strictEqual(illegal._tag === "TransitionError" && illegal.reason, "IllegalTransition")
      }))

    it.effect("transitionAll through a state: one update per row, both events in order, or nothing", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const w = yield* Fixtures.world
        const eou = yield* Fixtures.executedObsUnit(w)
        const copies = yield* Effect.forEach(
          [1, 2],
          () => Effect.flatMap(Fixtures.rawDataPackage(w, eou), (p) => Fixtures.physicalCopy(w.chileBuffer, p))
        )
        const ids = copies.map((c) => c.id)
        const history = (id: string) => sql<{ fromState: string; toState: string; actor: string }>`
            select from_state, to_state, actor from event_log where entity_id = ${id} and from_state is not null order by id`
        const versions = () =>
          sql<{ n: number }>`select sum(n_tup_upd)::int as n from pg_stat_xact_user_tables where relname = 'physical_copy'`

        // a step that is not in the machine, either way: nothing moves
        for (
          const [from, via, to] of [["PRESENT", "DELETED", "DELETION_SCHEDULED"], ["PRESENT", "DELETION_POSSIBLE", "DELETED"]] as const
        ) {
          const illegal = yield* Effect.flip(Transitions.transitionAll({ entity: "PhysicalCopy", ids, from, via, to }))
          assert.strictEqual(illegal._tag === "TransitionError" && illegal.reason, "IllegalTransition")
        }
        // one moved on meanwhile: nothing moves, no event
        yield* Transitions.transition({ entity: "PhysicalCopy", id: ids[1]!, from: "PRESENT", to: "MISSING" })
        const conflict = yield* Effect.flip(
          Transitions.transitionAll({ entity: "PhysicalCopy", ids, from: "PRESENT", via: "DELETION_POSSIBLE", to: "DELETION_SCHEDULED" })
        )
        assert.strictEqual(conflict._tag === "TransitionError" && conflict.actual, "MISSING")
        assert.deepStrictEqual(yield* history(ids[0]!), [])

        // the transaction's own count of updated rows
        const updated = yield* sql.withTransaction(Effect.gen(function* () {
          const before = (yield* versions())[0]?.n ?? 0
          yield* Transitions.transitionAll({
            entity: "PhysicalCopy",
            ids: [ids[0]!],
            from: "PRESENT",
            via: "DELETION_POSSIBLE",
            to: "DELETION_SCHEDULED",
            actor: "planner:test"
          })
          return ((yield* versions())[0]?.n ?? 0) - before
        }))
        assert.strictEqual(updated, 1, "one row version for the two steps")
        const [moved] = yield* sql<{ status: string }>`select status::text as status from physical_copy where id = ${ids[0]!}`
        assert.strictEqual(moved!.status, "DELETION_SCHEDULED")
        assert.deepStrictEqual((yield* history(ids[0]!)).map((e) => [e.fromState, e.toState, e.actor]), [
          ["PRESENT", "DELETION_POSSIBLE", "planner:test"],
          ["DELETION_POSSIBLE", "DELETION_SCHEDULED", "planner:test"]
        ])
      }))
  })
})
