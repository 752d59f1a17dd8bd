/**
 * The packaging job's commit is one statement holding five changes: it must apply all of them or
 * none. A file that moved on while the package was written, or a package that left in_progress,
 * leaves no copy, offset, event or changed state behind; a run that commits is recorded in full,
 * and running the job again changes nothing.
 */
import { assert, describe, it } from "@effect/vitest"
import { Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { JobQueue } from "../../src/engine/JobQueue.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import { queueName } from "../../src/lifecycle/Stage.js"
import { fileObservation, layer, observatory, policyLayer, syncTopology, tempDir, topologyIn } from "./LifecycleWorld.js"

/** What a package's commit writes, counted: all zero before it, all set after it. */
const footprint = (packageId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ copies: number; offsets: number; packaged: number; events: number; sized: boolean }>`
      select
        (select count(*)::int from physical_copy c where c.raw_data_package_id = ${packageId}
           or c.raw_data_file_id in (select id from raw_data_file where raw_data_package_id = ${packageId})) as copies,
        (select count(*)::int from raw_data_package_member where raw_data_package_id = ${packageId}) as offsets,
        (select count(*)::int from raw_data_file where raw_data_package_id = ${packageId} and state = 'packaged') as packaged,
        (select count(*)::int from event_log where entity_id in (
           select id from raw_data_file where raw_data_package_id = ${packageId}
           union all select id from physical_copy where raw_data_package_id = ${packageId}
             or raw_data_file_id in (select id from raw_data_file where raw_data_package_id = ${packageId}))
           and not (entity_kind = 'RawDataFile' and from_state is null)) as events,
        (select size_bytes is not null from raw_data_package where id = ${packageId}) as sized`).pipe(Effect.map((rows) => rows[0]!))

/** Files an observation of three files and claims its one package; returns the package's id. */
const onePackage = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const jobs = yield* JobQueue
  const dir = yield* tempDir
  const topology = topologyIn(dir)
  yield* syncTopology(topology)
  const obs = yield* observatory
  const { eou, files } = yield* fileObservation(topology, obs, [1, 2, 3].map((i) => ({ path: `det/f${i}.fits`, bytes: 5_000 })))
  yield* jobs.ensureQueue(queueName("chile", Packaging.name), Packaging.stage.queue)
  const claimed = yield* Packaging.plan("chile").pipe(Effect.provide(policyLayer(topology)))
  assert.strictEqual(claimed, 1)
  const [pkg] = yield* sql<{ id: string }>`select id from raw_data_package where executed_obs_unit_id = ${eou.id}`
  return { packageId: pkg!.id, files, topology }
})

describe("the packaging job's one-statement commit", () => {
  it.scopedLive(
    "a file that moved on while the package was written: nothing is committed, the refusal names it",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const { packageId, files } = yield* onePackage
        // Moved on between the job's start and its commit: only a trigger can land there in one test.
        const moved = files[1]!.id
        yield* sql.unsafe(`create or replace function ccat_test_move() returns trigger language plpgsql as $$
        begin
          update raw_data_file set state = 'missing' where id = '${moved}' and state = 'filed';
          return null;
        end $$`)
        yield* sql.unsafe(`create trigger ccat_test_move after update of status on raw_data_package
        for each row when (new.status = 'in_progress') execute function ccat_test_move()`)
        const exit = yield* Effect.exit(Packaging.work("chile", { packageId }))
        yield* sql.unsafe(`drop trigger ccat_test_move on raw_data_package`)
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
        assert.instanceOf(error, Transitions.TransitionError)
        assert.strictEqual((error as Transitions.TransitionError).reason, "StateConflict")
        assert.strictEqual((error as Transitions.TransitionError).id, moved)
        assert.deepStrictEqual(yield* footprint(packageId), { copies: 0, offsets: 0, packaged: 0, events: 0, sized: false })
      }).pipe(Effect.provide(layer)),
    60_000
  )

  it.scopedLive(
    "a package that left in_progress while it was written: the job dies and nothing is committed",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const { packageId } = yield* onePackage
        // the buffer copy's identity is read between the write and the commit: an operator's failing of the package lands there
        yield* sql.unsafe(`create or replace function ccat_test_fail() returns trigger language plpgsql as $$
        begin
          update raw_data_package set status = 'failed' where id = new.id;
          return null;
        end $$`)
        yield* sql.unsafe(`create trigger ccat_test_fail after update of status on raw_data_package
        for each row when (new.status = 'in_progress') execute function ccat_test_fail()`)
        const exit = yield* Effect.exit(Packaging.work("chile", { packageId }))
        yield* sql.unsafe(`drop trigger ccat_test_fail on raw_data_package`)
        assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause))
        assert.deepStrictEqual(yield* footprint(packageId), { copies: 0, offsets: 0, packaged: 0, events: 0, sized: false })
      }).pipe(Effect.provide(layer)),
    60_000
  )

  it.scopedLive(
    "a commit records everything with its events, in order per row; the job run again changes nothing",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const { packageId, files } = yield* onePackage
        yield* Packaging.work("chile", { packageId })
        const after = yield* footprint(packageId)
        // a buffer copy and three source copies, three offsets, three files packaged, and an event for each change
        assert.deepStrictEqual(after, { copies: 4, offsets: 3, packaged: 3, events: 7, sized: true })
        const steps = yield* sql<{ step: string; actor: string }>`
        select coalesce(from_state, '-') || '>' || to_state as step, actor from event_log
        where entity_kind = 'RawDataPackage' and entity_id = ${packageId} order by id`
        assert.deepStrictEqual(steps.map((s) => s.step), ["->pending", "pending>scheduled", "scheduled>in_progress"])
        assert.strictEqual(steps[2]!.actor, "worker:chile")
        const fileSteps = yield* sql<{ step: string }>`
        select coalesce(from_state, '-') || '>' || to_state as step from event_log
        where entity_kind = 'RawDataFile' and entity_id = ${files[0]!.id} order by id`
        assert.deepStrictEqual(fileSteps.map((s) => s.step), ["->filed", "filed>packaged"])
        yield* Packaging.work("chile", { packageId })
        assert.deepStrictEqual(yield* footprint(packageId), after)
      }).pipe(Effect.provide(layer)),
    60_000
  )
})
