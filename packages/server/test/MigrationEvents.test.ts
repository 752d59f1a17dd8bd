/**
 * Migrations 0002 onwards on a database that already holds data at 0001 (the upgrade an
 * operator runs), and the event-log row that closing an observation writes since 0002: one per
 * close, none for an idempotent repeat or a refused re-close.
 */
import { EventLog, Migrations } from "@ccat/core"
import { Fixtures, TestDatabase } from "@ccat/core/testing"
import { assert, it } from "@effect/vitest"
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { randomUUID } from "node:crypto"
import * as Harness from "./ApiHarness.js"

/** The migrator as a release that shipped only 0001 would run it. */
const runOnly = (names: ReadonlyArray<string>) =>
  Migrator.make({})({
    loader: Migrator.fromRecord(Object.fromEntries(names.map((n) => [n, Migrations.migrations[n]!]))),
    table: Migrations.table
  })

it.layer(TestDatabase.layerEmpty, { timeout: 60_000 })("upgrade from 0001", (it) => {
  it.effect("keeps every row, adds ExecutedObsUnit to the event log and a delete concurrency to each retention policy", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const first = yield* runOnly(["0001_init"])
      assert.deepStrictEqual(first.map(([, name]) => name), ["init"])
      // A 0001 database in use: a site, a buffer with its retention policy, and an event.
      const [site] = yield* sql<{ id: string }>`insert into site (name, short_name, role) values ('chile', 'cl', 'secondary') returning id`
      const [location] = yield* sql<{ id: string }>`
        insert into data_location (site_id, name, type, technology, driver_config, priority)
        values (${site.id}, 'chile-buffer', 'BUFFER', 'disk', '{"root":"/b"}', 0) returning id`
      yield* sql`insert into retention_policy (data_location_id, min_age_seconds, disk_usage_threshold, required_archive_copies)
        values (${location.id}, 3600, 0.85, 2)`
      const entity = randomUUID()
      yield* sql`insert into event_log (entity_kind, entity_id, from_state, to_state, actor) values ('PhysicalCopy', ${entity}, null, 'PRESENT', 'upgrade-test')`
      // Before the upgrade the kind does not exist.
      const early = yield* Effect.either(
        sql`insert into event_log (entity_kind, entity_id, to_state) values ('ExecutedObsUnit', ${randomUUID()}, 'completed')`
      )
      assert.isTrue(Either.isLeft(early))

      const applied = yield* Migrations.run
      assert.deepStrictEqual(
        applied.map(([id, name]) => `${String(id).padStart(4, "0")}_${name}`),
        Object.keys(Migrations.migrations).slice(1)
      )
      assert.deepStrictEqual(yield* Migrations.run, [])

      const [policy] = yield* sql<
        { minAgeSeconds: string; diskUsageThreshold: number; requiredArchiveCopies: number; deleteConcurrency: number }
      >`
        select min_age_seconds, disk_usage_threshold, required_archive_copies, delete_concurrency from retention_policy where data_location_id = ${location.id}`
      assert.deepStrictEqual(
        { ...policy, minAgeSeconds: Number(policy.minAgeSeconds) },
        { minAgeSeconds: 3600, diskUsageThreshold: 0.85, requiredArchiveCopies: 2, deleteConcurrency: 4 }
      )
      const old = yield* sql<{ actor: string; toState: string }>`select actor, to_state from event_log where entity_id = ${entity}`
      assert.deepStrictEqual(old, [{ actor: "upgrade-test", toState: "PRESENT" }])
      const closedId = randomUUID()
      yield* sql`insert into event_log (entity_kind, entity_id, from_state, to_state) values ('ExecutedObsUnit', ${closedId}, 'in_progress', 'completed')`
      const [kinds] = yield* sql<{ kinds: Array<string> }>`select enum_range(null::entity_kind)::text[] as kinds`
      assert.deepStrictEqual(kinds.kinds, [
        "RawDataFile",
        "RawDataPackage",
        "DataTransferPackage",
        "DataTransfer",
        "PhysicalCopy",
        "StagingRequest",
        "ExecutedObsUnit",
        "Account",
        "ApiToken",
        "AlertIncident",
        "Site",
        "DataLocation",
        "Route"
      ])
      // The new column refuses what the configuration would refuse, and the log stays append-only.
      const zero = yield* Effect.either(sql`update retention_policy set delete_concurrency = 0`)
      assert.isTrue(Either.isLeft(zero))
      const rewrite = yield* Effect.either(sql`update event_log set to_state = 'failed' where entity_id = ${closedId}`)
      assert.isTrue(Either.isLeft(rewrite))
    }))
})

it.layer(TestDatabase.layerEmpty, { timeout: 60_000 })("upgrade from 0003", (it) => {
  it.effect("gives each SOURCE path one owner: deleted copies release their paths, older duplicates are released with an event", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* runOnly(["0001_init", "0002_executed_obs_unit_events", "0003_retention_delete_concurrency"])
      const [site] = yield* sql<{ id: string }>`insert into site (name, short_name, role) values ('chile', 'cl', 'secondary') returning id`
      const [source] = yield* sql<{ id: string }>`
        insert into data_location (site_id, name, type, technology, driver_config, priority)
        values (${site.id}, 'chile-source', 'SOURCE', 'disk', '{"root":"/s"}', 0) returning id`
      const [obs] = yield* sql<{ id: string }>`insert into observatory (name) values ('CCAT') returning id`
      const [tel] = yield* sql<{ id: string }>`insert into telescope (observatory_id, name) values (${obs.id}, 'FYST') returning id`
      const [ins] = yield* sql<{ id: string }>`insert into instrument (telescope_id, name) values (${tel.id}, 'Prime-Cam') returning id`
      const [mod] = yield* sql<
        { id: string }
      >`insert into instrument_module (instrument_id, name) values (${ins.id}, '280GHz') returning id`
      const [prog] = yield* sql<{ id: string }>`insert into observing_program (name) values ('deep') returning id`
      const [unit] = yield* sql<
        { id: string }
      >`insert into obs_unit (observing_program_id, instrument_id, name) values (${prog.id}, ${ins.id}, 'd56') returning id`
      const fileAt = (relativePath: string, filedAt: string) =>
        Effect.gen(function* () {
          const [eou] = yield* sql<
            { id: string }
          >`insert into executed_obs_unit (id, obs_unit_id, start_at, status) values (${randomUUID()}, ${unit.id}, now(), 'completed') returning id`
          const [f] = yield* sql<{ id: string }>`
            insert into raw_data_file (id, executed_obs_unit_id, instrument_module_id, relative_path, size_bytes, checksum, source_location_id, filed_at)
            values (${randomUUID()}, ${eou.id}, ${mod.id}, ${relativePath}, 1, ${
              "sha256:" + "0".repeat(64)
            }, ${source.id}, ${filedAt}) returning id`
          return f.id
        })
      // p1: filed twice, the first one's SOURCE copy already deleted; p2: filed twice, both live.
      const deletedOne = yield* fileAt("p1", "2026-01-01T00:00:00Z")
      yield* sql`insert into physical_copy (raw_data_file_id, data_location_id, path, size_bytes, checksum, status)
        values (${deletedOne}, ${source.id}, 'p1', 1, ${"sha256:" + "0".repeat(64)}, 'DELETED')`
      const newOnP1 = yield* fileAt("p1", "2026-02-01T00:00:00Z")
      const older = yield* fileAt("p2", "2026-01-01T00:00:00Z")
      const newer = yield* fileAt("p2", "2026-02-01T00:00:00Z")
      yield* Migrations.run
      const released = yield* sql<{ id: string }>`select id from raw_data_file where source_released_at is not null order by id`
      assert.deepStrictEqual(released.map((r) => r.id), [deletedOne, older].sort())
      const [event] = yield* sql<{ details: { heldBy: string } }>`select details from event_log where entity_id = ${older}`
      assert.strictEqual(event.details.heldBy, newer)
      assert.strictEqual((yield* sql`select 1 from event_log where entity_id = ${newOnP1}`).length, 0)
      // From now on a third live file on p2 is refused by the database itself.
      const third = yield* Effect.either(fileAt("p2", "2026-03-01T00:00:00Z"))
      assert.isTrue(Either.isLeft(third))
      // The new statuses exist once the run committed.
      yield* sql`update physical_copy set status = 'CORRUPT' where raw_data_file_id = ${deletedOne}`
    }))
})

const observation = (world: Fixtures.World) => ({
  id: randomUUID(),
  obsUnitId: world.obsUnit.id,
  startAt: new Date("2026-05-01T03:00:00Z"),
  sourceLocation: world.source.name,
  files: []
})

/** The event-log rows of an observation. */
const eventsOf = (id: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ entityKind: string; fromState: string | null; toState: string; actor: string; details: Record<string, unknown> }>`
      select entity_kind, from_state, to_state, actor, details from event_log where entity_id = ${id} order by id`
  ).pipe(Effect.orDie)

it.layer(Harness.layer(), { timeout: 60_000 })("closing an observation", (it) => {
  it.effect("writes one ExecutedObsUnit event with the close after the filing's, none for a repeat or a refused re-close", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const name = `telescope-${Fixtures.suffix()}`
      const token = yield* Harness.tokenFor({ role: "instrument", name, instrumentIds: [world.instrument.id] })
      const client = yield* Harness.client(token)
      const request = observation(world)
      yield* client.observations.file({ payload: request })
      const filed = { entityKind: "ExecutedObsUnit", fromState: null, toState: "in_progress", actor: name, details: { action: "filed" } }
      assert.deepStrictEqual(yield* eventsOf(request.id), [filed])
      const endAt = new Date("2026-05-01T04:00:00Z")
      yield* client.observations.close({ path: { id: request.id as never }, payload: { endAt, status: "completed", quality: "good" } })
      const events = yield* eventsOf(request.id)
      assert.deepStrictEqual(events, [filed, {
        entityKind: "ExecutedObsUnit",
        fromState: "in_progress",
        toState: "completed",
        actor: name,
        details: { action: "close", endAt: endAt.toISOString(), quality: "good" }
      }])
      // The close is part of the observation's history the API shows, within the caller's programs.
      const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
      const history = yield* operator.status.events({ urlParams: { entity: "ExecutedObsUnit", id: request.id } })
      assert.deepStrictEqual(history.items.map((e) => [e.fromState, e.toState, e.actor]), [
        [null, "in_progress", name],
        ["in_progress", "completed", name]
      ])
      const stranger = yield* Harness.client(
        yield* Harness.tokenFor({ role: "scientist", programIds: [(yield* Fixtures.world.pipe(Effect.orDie)).program.id] })
      )
      const hidden = yield* Effect.either(stranger.status.events({ urlParams: { entity: "ExecutedObsUnit", id: request.id } }))
      assert.isTrue(Either.isLeft(hidden) && hidden.left._tag === "NotFound")
      // An idempotent repeat answers with the stored record and writes nothing.
      yield* client.observations.close({ path: { id: request.id as never }, payload: { endAt, status: "completed" } })
      const refused = yield* Effect.either(
        client.observations.close({ path: { id: request.id as never }, payload: { endAt, status: "failed" } })
      )
      assert.isTrue(Either.isLeft(refused) && refused.left._tag === "Conflict")
      assert.deepStrictEqual(yield* eventsOf(request.id), events)
      // The history endpoint's model decodes the row.
      const [row] = yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`select * from event_log where entity_id = ${request.id}`).pipe(
        Effect.orDie
      )
      const decoded = yield* Schema.decodeUnknown(EventLog.EventLogEntry)(row).pipe(Effect.orDie)
      assert.strictEqual(decoded.entityKind, "ExecutedObsUnit")
    }))
})
