/**
 * `ccat packages repair ID` as an operator runs it: the real `ccat` process against a real
 * `ccat serve` on a real ops-db. The copies are recorded as the lifecycle and an audit would
 * leave them: a package archived at cologne, its archive copy found CORRUPT, with and without a
 * good copy left in cologne's buffer.
 */
import { Fixtures } from "@ccat/core/testing"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as CliWorld from "./CliWorld.js"

let w: CliWorld.CliWorld
let healthy: string
let repairable: string
let lost: string
let corruptCopy: string

beforeAll(async () => {
  w = await CliWorld.start()
  const ids = await w.db(Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const eou = yield* Fixtures.executedObsUnit(w.world)
    const archived = (copies: ReadonlyArray<readonly [string, string]>) =>
      Effect.gen(function* () {
        const pkg = yield* Fixtures.rawDataPackage(w.world, eou)
        const checksum = Fixtures.checksum()
        yield* sql`update raw_data_package set status = 'completed', size_bytes = 4096, checksum = ${checksum} where id = ${pkg.id}`
        const out: Array<string> = []
        for (const [locationId, status] of copies) {
          const [row] = yield* sql<{ id: string }>`
            insert into physical_copy (raw_data_package_id, data_location_id, path, size_bytes, checksum, status, verified_at)
            values (${pkg.id}, ${locationId}, ${pkg.relativePath}, 4096, ${checksum}, ${status}, now()) returning id`
          out.push(row.id)
        }
        return { id: pkg.id, copies: out }
      })
    const a = yield* archived([[w.world.archive.id, "PRESENT"]])
    const b = yield* archived([[w.world.archive.id, "CORRUPT"], [w.world.cologneBuffer.id, "PRESENT"]])
    const c = yield* archived([[w.world.archive.id, "MISSING"]])
    return { healthy: a.id, repairable: b.id, lost: c.id, corruptCopy: b.copies[0] }
  }))
  healthy = ids.healthy
  repairable = ids.repairable
  lost = ids.lost
  corruptCopy = ids.corruptCopy
}, 180_000)
afterAll(async () => {
  await w?.close()
})

describe("ccat packages repair", () => {
  it("starts a repair now, and says why when there is nothing to repair or nothing to repair from", async () => {
    const [started, asJson, nothing, noSource, notAnId, scientist] = await Promise.all([
      w.run(["packages", "repair", repairable], w.tokens.operator),
      w.run(["packages", "repair", repairable, "--json"], w.tokens.operator),
      w.run(["packages", "repair", healthy], w.tokens.operator),
      w.run(["packages", "repair", lost], w.tokens.operator),
      w.run(["packages", "repair", "not-an-id"], w.tokens.operator),
      w.run(["packages", "repair", randomUUID()], w.tokens.scientist)
    ])
    expect(started.code, started.stderr).toBe(0)
    expect(started.stdout).toContain(`package ${repairable}: 1 bad archive copy`)
    expect(started.stdout).toMatch(new RegExp(`${corruptCopy}\\s+CORRUPT\\s+.+\\s+${w.world.archive.name}`))
    expect(started.stdout).toContain(`from ${w.world.cologneBuffer.name}`)
    expect(asJson.code, asJson.stderr).toBe(0)
    const body = JSON.parse(asJson.stdout)
    expect(body.packageId).toBe(repairable)
    expect(body.badCopies.map((b: any) => [b.id, b.status])).toEqual([[corruptCopy, "CORRUPT"]])
    expect(body.sites.map((s: any) => s.sources)).toEqual([[w.world.cologneBuffer.name]])
    expect(body.withoutSource).toEqual([])
    expect([nothing.code, nothing.stderr]).toEqual([3, expect.stringContaining("nothing to repair")])
    expect([noSource.code, noSource.stderr]).toEqual([2, expect.stringContaining("no good copy")])
    expect(notAnId.code).toBe(2)
    expect(scientist.code).toBe(3)
  }, 120_000)
})
