/**
 * `ccat copies release COPY-ID --reason TEXT` as an operator runs it: the real `ccat` process
 * against a real `ccat serve` on a real ops-db. A file's SOURCE copy found changed (CORRUPT, as
 * cleanup leaves it) is given up once its package is ARCHIVED, its path released; anything else
 * is refused with the reason and exit 3.
 */
import { Fixtures } from "@ccat/core/testing"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as CliWorld from "./CliWorld.js"

let w: CliWorld.CliWorld
let changed: string
let notArchived: string
let fileId: string

beforeAll(async () => {
  w = await CliWorld.start()
  const ids = await w.db(Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const eou = yield* Fixtures.executedObsUnit(w.world)
    const sourceCopy = (packageStatus: string) =>
      Effect.gen(function* () {
        const pkg = yield* Fixtures.rawDataPackage(w.world, eou)
        yield* sql`update raw_data_package set status = ${packageStatus}::operation_status, size_bytes = 4096, checksum = ${Fixtures.checksum()} where id = ${pkg.id}`
        const file = yield* Fixtures.rawDataFile(w.world, eou)
        yield* sql`update raw_data_file set state = 'packaged', raw_data_package_id = ${pkg.id} where id = ${file.id}`
        const [copy] = yield* sql<{ id: string }>`
          insert into physical_copy (raw_data_file_id, data_location_id, path, size_bytes, checksum, status, verified_at)
          values (${file.id}, ${w.world.source.id}, ${file.relativePath}, ${file.sizeBytes}, ${file.checksum}, 'CORRUPT', now()) returning id`
        return { copy: copy.id, file: file.id }
      })
    const a = yield* sourceCopy("completed")
    const b = yield* sourceCopy("in_progress")
    return { changed: a.copy, fileId: a.file, notArchived: b.copy }
  }))
  changed = ids.changed
  fileId = ids.fileId
  notArchived = ids.notArchived
}, 180_000)
afterAll(async () => {
  await w?.close()
})

describe("ccat copies release", () => {
  it("gives up a changed SOURCE copy of an archived file and releases its path; refuses anything else with the reason", async () => {
    const early = await w.run(["copies", "release", notArchived, "--reason", "checked"], w.tokens.operator)
    expect([early.code, early.stderr]).toEqual([3, expect.stringContaining("not ARCHIVED")])
    const scientist = await w.run(["copies", "release", changed, "--reason", "checked"], w.tokens.scientist)
    expect(scientist.code).toBe(3)
    const released = await w.run(
      ["copies", "release", changed, "--reason", "new bytes copied to /data/rescued", "--json"],
      w.tokens.operator
    )
    expect(released.code, released.stderr).toBe(0)
    expect(JSON.parse(released.stdout)).toMatchObject({ copyId: changed, rawDataFileId: fileId, location: w.world.source.name })
    const again = await w.run(["copies", "release", changed, "--reason", "again"], w.tokens.operator)
    expect([again.code, again.stderr]).toEqual([3, expect.stringContaining("is DELETED")])
    const noReason = await w.run(["copies", "release", changed], w.tokens.operator)
    expect(noReason.code).toBe(2)
    const row = await w.db(
      Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql<{ released: boolean }>`select source_released_at is not null as released from raw_data_file where id = ${fileId}`
      )
    )
    expect(row[0]!.released).toBe(true)
  }, 120_000)
})

describe("ccat files recheck and give-up", () => {
  it("files a corrupt file again, gives a missing one up with --lost only, and refuses anything else with the reason", async () => {
    const [corrupt, missing] = await w.db(Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const eou = yield* Fixtures.executedObsUnit(w.world)
      const faulty = (state: string) =>
        Effect.flatMap(
          Fixtures.rawDataFile(w.world, eou),
          (file) => Effect.as(sql`update raw_data_file set state = ${state}::raw_data_file_state where id = ${file.id}`, file.id)
        )
      return [yield* faulty("corrupt"), yield* faulty("missing")] as const
    }))
    const scientist = await w.run(["files", "recheck", corrupt], w.tokens.scientist)
    expect(scientist.code).toBe(3)
    const rechecked = await w.run(["files", "recheck", corrupt, "--reason", "rewritten from the spool", "--json"], w.tokens.operator)
    expect(rechecked.code, rechecked.stderr).toBe(0)
    expect(JSON.parse(rechecked.stdout)).toMatchObject({ rawDataFileId: corrupt, state: "filed" })
    const again = await w.run(["files", "recheck", corrupt], w.tokens.operator)
    expect([again.code, again.stderr]).toEqual([3, expect.stringContaining("is filed")])
    const withoutLost = await w.run(["files", "give-up", missing, "--reason", "disk failed"], w.tokens.operator)
    expect([withoutLost.code, withoutLost.stderr]).toEqual([2, expect.stringContaining("--lost")])
    const givenUp = await w.run(["files", "give-up", missing, "--reason", "disk failed", "--lost"], w.tokens.operator)
    expect([givenUp.code, givenUp.stdout]).toEqual([0, expect.stringContaining("recorded as lost (missing)")])
    const twice = await w.run(["files", "give-up", missing, "--reason", "disk failed", "--lost"], w.tokens.operator)
    expect([twice.code, twice.stderr]).toEqual([3, expect.stringContaining("given up already")])
    const rows = await w.db(Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string; state: string; released: boolean }>`
        select id, state::text as state, source_released_at is not null as released from raw_data_file where id in (${corrupt}, ${missing})`))
    expect(Object.fromEntries(rows.map((r) => [r.id, [r.state, r.released]]))).toEqual({
      [corrupt]: ["filed", false],
      [missing]: ["missing", true]
    })
  }, 120_000)
})
