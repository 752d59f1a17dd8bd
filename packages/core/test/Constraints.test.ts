import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { randomUUID } from "node:crypto"
import * as Checksum from "../src/Checksum.js"
import * as ConstraintError from "../src/ConstraintError.js"
import * as RelativePath from "../src/RelativePath.js"
import * as Repositories from "../src/Repositories.js"
import * as Transitions from "../src/Transitions.js"
import * as Fixtures from "../src/testing/Fixtures.js"
import * as TestDatabase from "../src/testing/TestDatabase.js"

/** Runs a statement that must fail, and returns the SQLSTATE PostgreSQL refused it with. */
const refusedWith = <A, R>(statement: Effect.Effect<A, SqlError, R>) =>
  Effect.gen(function* () {
    const exit = yield* Effect.exit(statement)
    assert.isTrue(Exit.isFailure(exit), "the database accepted a row it must refuse")
    const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : undefined
    const code = (failure?._tag === "Some" ? (failure.value.cause as { code?: string }).code : undefined) ?? "none"
    return code
  })

/** A valid raw_data_file row for the world, as plain SQL values, to break one field at a time. */
const fileRow = (w: Fixtures.World, eouId: string) => ({
  id: randomUUID(),
  executedObsUnitId: eouId,
  instrumentModuleId: w.modules[0].id,
  relativePath: `scan/${randomUUID()}.fits`,
  sizeBytes: 10,
  checksum: Fixtures.checksum(),
  sourceLocationId: w.source.id
})

/** Narrows a refused insert to the ConstraintError it must be. */
const constraintError = (e: unknown): ConstraintError.ConstraintError => {
  assert.instanceOf(e, ConstraintError.ConstraintError)
  return e as ConstraintError.ConstraintError
}

describe("the ops-db refuses invalid rows", () => {
  it.layer(TestDatabase.layer)((it) => {
    it.effect("sizes, enums, references, paths, checksums, names, location types", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const w = yield* Fixtures.world
        const eou = yield* Fixtures.executedObsUnit(w)
        const insertFile = (overrides: Record<string, unknown>) =>
          sql`insert into raw_data_file ${sql.insert({ ...fileRow(w, eou.id), ...overrides })}`

        // the valid row goes in, so each refusal below is caused by its one broken field
        yield* insertFile({})
        for (const path of ["a/b.c/..d", "run 7/.hidden", "ünïcode/файл.fits", "x".repeat(1024)]) {
          yield* insertFile({ relativePath: path })
        }

        assert.strictEqual(yield* refusedWith(insertFile({ sizeBytes: -1 })), "23514", "negative size")
        assert.strictEqual(yield* refusedWith(insertFile({ state: "lost" })), "22P02", "unknown enum value")
        assert.strictEqual(
          yield* refusedWith(sql`insert into site ${sql.insert({ name: "X", shortName: "x", role: "tertiary" })}`),
          "22P02",
          "unknown site role"
        )
        assert.strictEqual(
          yield* refusedWith(insertFile({ executedObsUnitId: randomUUID() })),
          "23503",
          "dangling observation"
        )
        assert.strictEqual(yield* refusedWith(insertFile({ instrumentModuleId: randomUUID() })), "23503", "dangling module")
        assert.strictEqual(
          yield* refusedWith(insertFile({ sourceLocationId: w.chileBuffer.id })),
          "23503",
          "a file is filed at a SOURCE location only"
        )

        const unsafe = ["/etc/passwd", "a/../b", "..", "../x", "a//b", "./a", "a/", "C:/x", "a\\b", "", "x".repeat(1025)]
        for (const path of unsafe) {
          assert.isDefined(RelativePath.problem(path), `the schema refuses ${JSON.stringify(path)} too`)
          assert.strictEqual(yield* refusedWith(insertFile({ relativePath: path })), "23514", `unsafe path ${path}`)
        }
        assert.strictEqual(yield* refusedWith(insertFile({ relativePath: "a\u0000b" })), "22021", "NUL in a path")

        const malformed = [
          "sha256:xyz",
          `sha256:${"a".repeat(63)}`,
          `SHA256:${"a".repeat(64)}`,
          `sha256:${"A".repeat(64)}`,
          `crc32:${"a".repeat(8)}`,
          "a".repeat(64)
        ]
        for (const checksum of malformed) {
          assert.isDefined(Checksum.problem(checksum), `the schema refuses ${checksum} too`)
          assert.strictEqual(yield* refusedWith(insertFile({ checksum })), "23514", `malformed checksum ${checksum}`)
        }

        assert.strictEqual(
          yield* refusedWith(sql`insert into site ${sql.insert({ name: "Bad", shortName: "Chile Site", role: "main" })}`),
          "23514",
          "short names are slugs"
        )
        assert.strictEqual(
          yield* refusedWith(
            sql`insert into staging_request ${sql.insert({ accountId: w.scientist.id, dataLocationId: w.archive.id })}`
          ),
          "23503",
          "staging only to a PROCESSING location"
        )
        assert.strictEqual(
          yield* refusedWith(
            sql`insert into data_transfer ${
              sql.insert({
                fromLocationId: w.chileBuffer.id,
                toLocationId: w.cologneBuffer.id,
                adapter: "bbcp"
              })
            }`
          ),
          "23514",
          "a transfer moves exactly one package or bundle"
        )
        assert.strictEqual(
          yield* refusedWith(
            sql`insert into data_location ${
              sql.insert({
                siteId: w.chile.id,
                name: "bad-capacity",
                type: "BUFFER",
                technology: "disk",
                capacityBytes: -5
              })
            }`
          ),
          "23514",
          "negative capacity"
        )
        assert.strictEqual(
          yield* refusedWith(
            sql`insert into executed_obs_unit ${
              sql.insert({
                id: randomUUID(),
                obsUnitId: w.obsUnit.id,
                startAt: new Date("2026-01-02"),
                endAt: new Date("2026-01-01"),
                status: "completed"
              })
            }`
          ),
          "23514",
          "an observation cannot end before it starts"
        )
      }))

    it.effect("filing is idempotent: duplicate keys are refused and reported as UniqueViolation", () =>
      Effect.gen(function* () {
        const w = yield* Fixtures.world
        const eou = yield* Fixtures.executedObsUnit(w)
        const file = yield* Fixtures.rawDataFile(w, eou)
        const { filedAt: _f, updatedAt: _u, state: _s, rawDataPackageId: _p, ...insert } = file

        const sameId = constraintError(yield* Effect.flip(Repositories.rawDataFiles.insert(insert)))
        assert.strictEqual(sameId._tag, "ConstraintError")
        assert.strictEqual(sameId.reason, "UniqueViolation")
        assert.strictEqual(sameId.constraint, "raw_data_file_pkey")

        const samePath = constraintError(yield* Effect.flip(Repositories.rawDataFiles.insert({ ...insert, id: Fixtures.uuid() })))
        assert.strictEqual(samePath.reason, "UniqueViolation")
        assert.strictEqual(samePath.constraint, "raw_data_file_executed_obs_unit_id_relative_path_key")
        assert.match(samePath.message, /UniqueViolation \(raw_data_file\.raw_data_file_executed_obs_unit_id_relative_path_key\)/)

        const { createdAt: _c, updatedAt: _eu, ...eouInsert } = eou
        const refiled = constraintError(yield* Effect.flip(Repositories.executedObsUnits.insert(eouInsert)))
        assert.strictEqual(refiled.reason, "UniqueViolation")

        const dangling = constraintError(
          yield* Effect.flip(Repositories.rawDataFiles.insert({
            ...insert,
            id: Fixtures.uuid(),
            executedObsUnitId: Fixtures.uuid(),
            relativePath: "scan/dangling.fits" as typeof insert.relativePath
          }))
        )
        assert.strictEqual(dangling.reason, "ForeignKeyViolation")

        assert.lengthOf(yield* Repositories.rawDataFiles.listBy("executedObsUnitId", eou.id), 1, "stored once")

        // the filing path: the same file again is the stored row; a different one is refused
        const again = yield* Repositories.rawDataFiles.insertIdempotent(insert)
        assert.deepStrictEqual(again, file)
        // jsonb reorders keys ({"zenith": .., "az": ..} comes back as {"az": .., "zenith": ..})
        const second = { ...eouInsert, id: Fixtures.uuid<typeof eou.id>(), conditions: { zenithDeg: 40, azDeg: 180, pwvMm: 0.5 } }
        const stored = yield* Repositories.executedObsUnits.insertIdempotent(second)
        assert.deepStrictEqual(yield* Repositories.executedObsUnits.insertIdempotent(second), stored)
        const changed = constraintError(
          yield* Effect.flip(Repositories.rawDataFiles.insertIdempotent({ ...insert, sizeBytes: insert.sizeBytes + 1 }))
        )
        assert.strictEqual(changed.reason, "UniqueViolation")
        assert.match(changed.message, /a different row was already stored with id/)
        const otherId = constraintError(
          yield* Effect.flip(Repositories.rawDataFiles.insertIdempotent({ ...insert, id: Fixtures.uuid() }))
        )
        assert.match(otherId.message, /another row already holds a unique key/)
        const newFile = yield* Repositories.rawDataFiles.insertIdempotent({
          ...insert,
          id: Fixtures.uuid(),
          relativePath: "scan/second.fits" as typeof insert.relativePath
        })
        assert.strictEqual(newFile.state, "filed")
        assert.lengthOf(yield* Repositories.rawDataFiles.listBy("executedObsUnitId", eou.id), 2)
        const fileEvents = yield* Repositories.eventLog.listBy("entityId", file.id)
        assert.deepStrictEqual(
          fileEvents.map((e) => [e.entityKind, e.fromState, e.toState]),
          [["RawDataFile", null, "filed"]],
          "one creation event, none for the refused or repeated filings"
        )
      }))

    it.effect("one live copy of a package per location; a DELETED copy can be replaced", () =>
      Effect.gen(function* () {
        const w = yield* Fixtures.world
        const eou = yield* Fixtures.executedObsUnit(w)
        const pkg = yield* Fixtures.rawDataPackage(w, eou)
        const copy = yield* Fixtures.physicalCopy(w.chileBuffer, pkg)
        const twice = constraintError(yield* Effect.flip(Fixtures.physicalCopy(w.chileBuffer, pkg)))
        assert.strictEqual(twice.reason, "UniqueViolation")
        for (
          const [from, to] of [
            ["PRESENT", "DELETION_SCHEDULED"],
            ["DELETION_SCHEDULED", "DELETION_IN_PROGRESS"],
            ["DELETION_IN_PROGRESS", "DELETED"]
          ] as const
        ) {
          yield* Transitions.transition({ entity: "PhysicalCopy", id: copy.id, from, to })
        }
        const again = yield* Fixtures.physicalCopy(w.chileBuffer, pkg)
        assert.notStrictEqual(again.id, copy.id)
      }))

    it.effect("the event log is append-only in the database itself", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const w = yield* Fixtures.world
        const eou = yield* Fixtures.executedObsUnit(w)
        const pkg = yield* Fixtures.rawDataPackage(w, eou)
        yield* Transitions.transition({ entity: "RawDataPackage", id: pkg.id, from: "pending", to: "scheduled" })
        assert.strictEqual(yield* refusedWith(sql`update event_log set to_state = 'completed'`), "55000", "update")
        assert.strictEqual(yield* refusedWith(sql`delete from event_log`), "55000", "delete")
        assert.strictEqual(yield* refusedWith(sql`truncate event_log`), "55000", "truncate")
        const events = yield* Repositories.eventLog.listBy("entityId", pkg.id)
        assert.deepStrictEqual(events.map((e) => e.toState), ["pending", "scheduled"])
      }))
  })
})
