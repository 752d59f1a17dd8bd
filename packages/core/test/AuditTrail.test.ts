/**
 * The audit trail against the state machines themselves: every transition of every machine, read
 * from `StateMachine.machines` (so a transition added later without an event fails here), is
 * driven on a fresh row created through its repository and moved through `Transitions` from its
 * initial state, and the row's history in the event log must read exactly as it was walked: its
 * creation, then one event per move, each starting where the previous one ended.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as EventLog from "../src/EventLog.js"
import type { EntityKind } from "../src/EventLog.js"
import * as Repositories from "../src/Repositories.js"
import * as StateMachine from "../src/StateMachine.js"
import * as Transitions from "../src/Transitions.js"
import * as Fixtures from "../src/testing/Fixtures.js"
import * as TestDatabase from "../src/testing/TestDatabase.js"

const kinds = Object.keys(StateMachine.machines) as Array<EntityKind>

type Move = readonly [from: string, to: string]

/** The fewest moves from an initial state of the machine to `target`, and the state they start from. */
const pathTo = (kind: EntityKind, target: string): { readonly start: string; readonly moves: ReadonlyArray<Move> } => {
  const machine = StateMachine.machines[kind]
  const reached = new Map<string, { readonly start: string; readonly moves: ReadonlyArray<Move> }>(
    machine.initial.map((s) => [s, { start: s, moves: [] }])
  )
  const queue: Array<string> = [...machine.initial]
  while (queue.length > 0) {
    const at = queue.shift()!
    const here = reached.get(at)!
    for (const next of StateMachine.nextStates(kind, at as never) as ReadonlyArray<string>) {
      if (!reached.has(next)) {
        reached.set(next, { start: here.start, moves: [...here.moves, [at, next]] })
        queue.push(next)
      }
    }
  }
  const found = reached.get(target)
  if (found === undefined) throw new Error(`${kind}: ${target} cannot be reached from an initial state`)
  return found
}

/** What a move into a state must set beside the state (the ops-db's checks say so). */
const setFor = (kind: EntityKind, to: string, packageId: string): Record<string, unknown> | undefined => {
  if (kind === "RawDataFile" && to === "packaged") return { rawDataPackageId: packageId }
  if ((kind === "RawDataPackage" || kind === "DataTransferPackage") && to === "completed") {
    return { sizeBytes: 4096, checksum: Fixtures.checksum() }
  }
  return undefined
}

describe("audit trail", () => {
  it.layer(TestDatabase.layer)((it) => {
    it.effect(
      "every transition of every state machine, walked from a row's creation, is in the event log in order",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const w = yield* Fixtures.world
          const eou = yield* Fixtures.executedObsUnit(w)
          /** A fresh row of each kind in one of its initial states, through its repository. */
          const create: {
            readonly [K in EntityKind]: (initial: StateMachine.StateOf[K]) => Fixtures.Fx<{ readonly id: Transitions.IdOf[K] }>
          } = {
            RawDataFile: () => Fixtures.rawDataFile(w, eou),
            RawDataPackage: () => Fixtures.rawDataPackage(w, eou),
            DataTransferPackage: () => Effect.flatMap(Fixtures.rawDataPackage(w, eou), (p) => Fixtures.dataTransferPackage([p])),
            DataTransfer: () =>
              Fixtures.rawDataPackage(w, eou).pipe(
                Effect.flatMap((p) => Fixtures.dataTransferPackage([p])),
                Effect.flatMap((b) => Fixtures.dataTransfer(w, b))
              ),
            // A package of its own per copy: a location holds one live copy of a package.
            PhysicalCopy: (initial) =>
              Effect.flatMap(
                Fixtures.rawDataPackage(w, eou),
                (p) => Fixtures.physicalCopy(initial === "STAGED" ? w.processing : w.chileBuffer, p, initial)
              ),
            StagingRequest: () =>
              Repositories.stagingRequests.insert({ accountId: w.scientist.id, dataLocationId: w.processing.id, expiresAt: null })
          }
          const holder = yield* Fixtures.rawDataPackage(w, eou)

          /** Creates a row in `start`, moves it along `moves` (the last one by `transitionAll` when asked), and checks its history. */
          const walk = (kind: EntityKind, start: string, moves: ReadonlyArray<Move>, lastInBulk: boolean) =>
            Effect.gen(function* () {
              const { id } = yield* (create[kind] as (s: string) => Fixtures.Fx<{ readonly id: string }>)(start)
              for (const [i, [from, to]] of moves.entries()) {
                const details = { step: i }
                const set = setFor(kind, to, holder.id)
                if (lastInBulk && i === moves.length - 1 && set === undefined) {
                  yield* Transitions.transitionAll({
                    entity: kind,
                    ids: [id as never],
                    from: from as never,
                    to: to as never,
                    actor: "audit-walk",
                    details
                  })
                } else {
                  yield* Transitions.transition({
                    entity: kind,
                    id: id as never,
                    from: from as never,
                    to: to as never,
                    actor: "audit-walk",
                    details,
                    ...(set === undefined ? {} : { set })
                  } as Transitions.TransitionInput<typeof kind>)
                }
              }
              const events = yield* sql<
                { entityKind: string; fromState: string | null; toState: string; actor: string; details: { step?: number } }
              >`
              select entity_kind::text as entity_kind, from_state, to_state, actor, details from event_log where entity_id = ${id} order by id`
              const walked = `${kind} ${[start, ...moves.map(([, to]) => to)].join(" → ")}`
              assert.deepStrictEqual(
                events.map((e) => [e.entityKind, e.fromState, e.toState]),
                [[kind, null, start], ...moves.map(([from, to]) => [kind, from, to])],
                `the history of ${walked}`
              )
              assert.deepStrictEqual(events.slice(1).map((e) => [e.actor, e.details.step]), moves.map((_, i) => ["audit-walk", i]), walked)
            })

          const covered = new Set<string>()
          for (const kind of kinds) {
            for (const initial of StateMachine.machines[kind].initial) {
              yield* walk(kind, initial, [], false)
            }
            for (const [i, [from, to]] of StateMachine.transitions(kind).entries()) {
              const { moves, start } = pathTo(kind, from)
              yield* walk(kind, start, [...moves, [from, to]], i % 2 === 1)
              covered.add(`${kind}:${from}→${to}`)
            }
          }
          const all = kinds.flatMap((kind) => StateMachine.transitions(kind).map(([from, to]) => `${kind}:${from}→${to}`))
          assert.strictEqual(covered.size, all.length)
          assert.isAbove(all.length, 60, "the machines have their transitions")

          // No row of a logged entity in this database lacks its creation event, whichever fixture made it.
          for (const [kind, table] of [
            ...kinds.map((k) => [k, Transitions.tableOf(k)] as const),
            ["ExecutedObsUnit", "executed_obs_unit"] as const
          ]) {
            const [{ n }] = yield* sql<{ n: number }>`
            select count(*)::int as n from ${sql(table)} t
            where not exists (select 1 from event_log e where e.entity_kind = ${kind}::entity_kind and e.entity_id = t.id and e.from_state is null)`
            assert.strictEqual(n, 0, `every ${kind} has its creation event`)
          }
        }),
      60_000
    )

    it.effect("the one writer: many events in one statement, and a statement's own rows with shared and per-row details", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const w = yield* Fixtures.world
        const eou = yield* Fixtures.executedObsUnit(w)
        const packages = [yield* Fixtures.rawDataPackage(w, eou), yield* Fixtures.rawDataPackage(w, eou)]
        const ids = packages.map((p) => p.id)
        yield* EventLog.append(
          ids.map((id, i) => ({ kind: "RawDataPackage" as const, id, from: "pending", to: "pending", actor: "audit-walk", details: { i } }))
        )
        yield* sql`
          with noted as (select id, status, jsonb_build_object('path', relative_path) as own from raw_data_package where id in ${
            sql.in(ids)
          }),
          logged as (${
            EventLog.appendFrom(sql, {
              kind: "RawDataPackage",
              rows: "noted",
              from: { column: "status" },
              to: { column: "status" },
              actor: "audit-walk",
              details: { shared: true },
              detailsColumn: "own"
            })
          })
          select 1`
        for (const [i, p] of packages.entries()) {
          const events = yield* sql<{ actor: string; details: Record<string, unknown> }>`
            select actor, details from event_log where entity_id = ${p.id} and actor = 'audit-walk' order by id`
          assert.deepStrictEqual(events.map((e) => e.details), [{ i }, { shared: true, path: p.relativePath }])
        }
        // An empty batch is no statement and no event.
        yield* EventLog.append([])
      }))

    it.effect("a change and its event commit together: a rolled-back move leaves neither", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const w = yield* Fixtures.world
        const pkg = yield* Fixtures.rawDataPackage(w, yield* Fixtures.executedObsUnit(w))
        const failed = yield* sql.withTransaction(
          Effect.zipRight(
            Transitions.transition({ entity: "RawDataPackage", id: pkg.id, from: "pending", to: "scheduled", actor: "audit-walk" }),
            Effect.fail("rolled back" as const)
          )
        ).pipe(Effect.flip)
        assert.strictEqual(failed, "rolled back")
        const [row] = yield* sql<{ status: string }>`select status::text as status from raw_data_package where id = ${pkg.id}`
        const events = yield* sql<{ toState: string }>`select to_state from event_log where entity_id = ${pkg.id} order by id`
        assert.deepStrictEqual([row.status, events.map((e) => e.toState)], ["pending", ["pending"]])
      }))
  })
})
