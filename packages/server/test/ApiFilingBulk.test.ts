/**
 * Filing at instrument speed: a filing of 10,000 files is a bounded number of set-based
 * statements whatever its size (counted from the SQL client's own spans, never timed), its
 * answer is exactly what the contract's Schema would encode, and a filing that meets a
 * conflicting path inserted concurrently, half-way through its insert, leaves nothing behind.
 */
import { it } from "@effect/vitest"
import { type ApiSecurity, type Ids, Observational, ObservationsApi, RawData } from "@ccat/core"
import { Fixtures } from "@ccat/core/testing"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Tracer from "effect/Tracer"
import { randomBytes, randomUUID } from "node:crypto"
import { expect } from "vitest"
import * as Filing from "../src/http/Filing.js"
import { CcatClient, FilingBatches } from "@ccat/client"
import * as Harness from "./ApiHarness.js"

const sha = () => `sha256:${randomBytes(32).toString("hex")}`

const admin: ApiSecurity.Principal = {
  accountId: randomUUID() as Ids.AccountId,
  name: "bulk-admin",
  role: "admin",
  instrumentIds: [],
  programIds: []
}

const observation = (world: Fixtures.World, files: number, prefix = `scan-${randomUUID()}`) => ({
  id: randomUUID(),
  obsUnitId: world.obsUnit.id,
  startAt: new Date("2026-05-01T03:00:00Z"),
  endAt: new Date("2026-05-01T03:40:00Z"),
  sourceLocation: world.source.name,
  files: Array.from({ length: files }, (_, i) => ({
    id: randomUUID(),
    module: i % 2 === 0 ? "280GHz" : "350GHz",
    relativePath: `${prefix}/d${i % 10}/det${String(i).padStart(5, "0")}.fits`,
    sizeBytes: 1000 + i,
    checksum: sha()
  }))
})

/** A tracer that counts the SQL client's statements (`sql.execute` spans); BEGIN and COMMIT are not spans. */
const statementCounter = (base: Tracer.Tracer) => {
  const statements: Array<string> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      if (name === "sql.execute") statements.push(name)
      return base.span(name, parent, context, links, startTime, kind)
    },
    context: base.context
  })
  return { tracer, statements }
}

it.layer(Harness.layer(), { timeout: 120_000 })("filing in bulk", (it) => {
  it.effect("a filing of 10,000 files is a bounded number of statements, as is a repeat of it, and its events are all there", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const request = observation(world, ObservationsApi.maxFilesPerRequest)
      const before = yield* Harness.counts()
      const first = statementCounter(yield* Effect.tracer)
      const filed = yield* Filing.fileObservation(admin, request).pipe(Effect.withTracer(first.tracer))
      expect(filed.files).toHaveLength(request.files.length)
      // One set-based statement: the observation, every file and every event.
      expect(first.statements.length).toBe(1)
      const after = yield* Harness.counts()
      expect([
        after.executed_obs_unit - before.executed_obs_unit,
        after.raw_data_file - before.raw_data_file,
        after.event_log - before.event_log
      ]).toEqual([1, request.files.length, request.files.length + 1])

      // A repeat takes the careful path: still a handful of statements, none per file.
      const again = statementCounter(yield* Effect.tracer)
      const repeated = yield* Filing.fileObservation(admin, request).pipe(Effect.withTracer(again.tracer))
      expect(repeated.files.map((f) => f.filedAt.getTime())).toEqual(filed.files.map((f) => f.filedAt.getTime()))
      expect(again.statements.length).toBeLessThanOrEqual(12)
      expect(yield* Harness.counts()).toEqual(after)

      // Additions of 10,000 files to an open observation: one statement too.
      const open = { ...observation(world, 0), endAt: undefined }
      yield* Filing.fileObservation(admin, open)
      const added = statementCounter(yield* Effect.tracer)
      const more = observation(world, 10_000).files
      const addedFiles = yield* Filing.addFiles(admin, open.id, { sourceLocation: world.source.name, files: more }).pipe(
        Effect.withTracer(added.tracer)
      )
      expect(addedFiles.files.map((f) => f.id)).toEqual(more.map((f) => f.id))
      expect(added.statements.length).toBe(1)
    }))

  it.effect("a checksum only the ops-db's domain refuses fails the whole filing with the domain's error and stores nothing", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const request = observation(world, 2_000)
      // the right length in bytes for sha256 (62 hex digits and a two-byte character): only the digits' rule refuses it
      request.files[1234]!.checksum = `sha256:${"a".repeat(62)}é`
      const before = yield* Harness.counts()
      const exit = yield* Effect.exit(Filing.fileObservation(admin, request))
      const defect = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined
      const refused = (defect as { cause?: { code?: string; constraint?: string; message?: string } } | undefined)?.cause
      expect([refused?.code, refused?.constraint, refused?.message]).toEqual([
        "23514",
        "checksum_check",
        `value for domain checksum violates check constraint "checksum_check"`
      ])
      expect(yield* Harness.counts()).toEqual(before)
    }))

  it.effect("the answer through the API is the contract's own encoding of the stored rows", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const token = yield* Harness.tokenFor({ role: "instrument", instrumentIds: [world.instrument.id] })
      const request = { ...observation(world, 300), conditions: { pwvMm: 0.6 }, metadata: { scan: 17 } }
      const r = yield* Harness.raw("POST", "/api/v1/observations", { token, body: JSON.stringify(request) })
      expect(r.status).toBe(200)
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql`select * from raw_data_file where executed_obs_unit_id = ${request.id}`.pipe(Effect.orDie)
      const byId = new Map(rows.map((row) => [row.id as string, row]))
      const [stored] = yield* sql`select * from executed_obs_unit where id = ${request.id}`.pipe(Effect.orDie)
      const expected = yield* Schema.encode(ObservationsApi.FiledObservation)({
        observation: yield* Schema.decodeUnknown(Observational.ExecutedObsUnit)(stored),
        files: yield* Schema.decodeUnknown(Schema.Array(RawData.RawDataFile))(request.files.map((f) => byId.get(f.id)))
      }).pipe(Effect.orDie)
      expect(r.json).toEqual(JSON.parse(JSON.stringify(expected)))
      // A repeat (the careful path) answers the same bytes' worth.
      const again = yield* Harness.raw("POST", "/api/v1/observations", { token, body: JSON.stringify(request) })
      expect(again.json).toEqual(r.json)
    }).pipe(Effect.orDie))

  it.effect("a conflicting path inserted concurrently half-way through a filing of 10,000 files refuses it whole and leaves nothing behind", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const request = observation(world, 10_000)
      const contested = request.files[6_000]
      // Another observation takes file 6,000's SOURCE path in a transaction that stays open.
      const holder = { ...observation(world, 0), endAt: undefined }
      yield* Filing.fileObservation(admin, holder)
      const before = yield* Harness.counts()
      const release = yield* Deferred.make<void>()
      const taken = yield* Deferred.make<void>()
      const blocker = yield* sql.withTransaction(
        Effect.gen(function* () {
          yield* sql`
            insert into raw_data_file (id, executed_obs_unit_id, instrument_module_id, relative_path, size_bytes, checksum, source_location_id)
            values (${randomUUID()}, ${holder.id}, ${world.modules[0].id}, ${contested.relativePath}, 1, ${sha()}, ${world.source.id})`
          yield* Deferred.succeed(taken, undefined)
          yield* Deferred.await(release)
        })
      ).pipe(Effect.orDie, Effect.fork)
      yield* Deferred.await(taken)
      // The filing runs into the uncommitted row and waits for it.
      const filing = yield* Effect.either(Filing.fileObservation(admin, request)).pipe(Effect.fork)
      yield* sql<{ n: number }>`
        select count(*)::int as n from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock' and query like '%new_obs%'`.pipe(
        Effect.orDie,
        Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (rows) => rows[0].n > 0 }),
        Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("the filing never waited for the concurrent insert") }),
        Effect.orDie
      )
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(blocker)
      const result = yield* Fiber.join(filing)
      expect(result._tag).toBe("Left")
      if (result._tag === "Left") {
        expect(result.left._tag).toBe("Conflict")
        expect((result.left as { reason: string }).reason).toBe("PathHeld")
        expect(result.left.message).toContain(`files[6000]`)
      }
      // Only the concurrent file is new: no observation, file or event of the refused filing.
      const after = yield* Harness.counts()
      expect([
        after.executed_obs_unit - before.executed_obs_unit,
        after.raw_data_file - before.raw_data_file,
        after.event_log - before.event_log
      ]).toEqual([0, 1, 0])
      const leftovers = yield* sql<{ n: number }>`select count(*)::int as n from raw_data_file where id = any(${
        request.files.map((f) => f.id)
      }::uuid[])`.pipe(Effect.orDie)
      expect(leftovers[0].n).toBe(0)
      // The real clock: it waits, bounded, for the filing to block on the concurrent insert.
    }).pipe(Effect.withClock(Clock.make())))

  it.effect("@ccat/client files an observation larger than a request in batches, additions in flight at once, then closes it; repeating it changes nothing", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const token = yield* Harness.tokenFor({ role: "instrument", instrumentIds: [world.instrument.id] })
      const client = yield* CcatClient.make({ baseUrl: yield* Harness.BaseUrl, token })
      const request = { ...observation(world, 12_000), status: "failed" as const, quality: "bad" as const }
      const steps = FilingBatches.steps(request, { batchSize: 5_000 })
      expect(steps.map((s) => s.endpoint)).toEqual(["file", "addFiles", "addFiles", "close"])
      expect(FilingBatches.steps(observation(world, 10))).toHaveLength(1)
      const before = yield* Harness.counts()
      const filed = yield* FilingBatches.fileObservation(client, request, { batchSize: 5_000, concurrency: 2 })
      expect(filed.files.map((f) => f.id)).toEqual(request.files.map((f) => f.id))
      expect([
        filed.observation.status,
        filed.observation.quality,
        filed.observation.endAt === null ? null : DateTime.formatIso(filed.observation.endAt)
      ]).toEqual(["failed", "bad", request.endAt.toISOString()])
      const after = yield* Harness.counts()
      expect([after.executed_obs_unit - before.executed_obs_unit, after.raw_data_file - before.raw_data_file]).toEqual([1, 12_000])
      // 12,000 creation events, the observation's filing and its close.
      expect(after.event_log - before.event_log).toBe(12_002)
      const again = yield* FilingBatches.fileObservation(client, request, { batchSize: 5_000, concurrency: 2 })
      expect(again.files.map((f) => f.filedAt)).toEqual(filed.files.map((f) => f.filedAt))
      expect(yield* Harness.counts()).toEqual(after)
    }).pipe(Effect.orDie))
})
