/**
 * `ccat integrity` as an operator runs it: the real `ccat` process against a real `ccat serve`
 * (default policy: one good archive copy per package) on a real ops-db holding the integrity
 * rows of IntegrityRows. The table for people, `--json`, the totals a scientist sees, bad input.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as IntegrityRows from "../IntegrityRows.js"
import * as CliWorld from "./CliWorld.js"

let w: CliWorld.CliWorld
let rows: IntegrityRows.Arranged

beforeAll(async () => {
  w = await CliWorld.start()
  rows = await w.db(IntegrityRows.arrange(w.world))
}, 120_000)
afterAll(async () => {
  await w?.close()
})

describe("ccat integrity", () => {
  it("per location figures and the packages below target, for people and as JSON; totals only for a scientist; bad input", async () => {
    const [human, machine, scientist, bad] = await Promise.all([
      w.run(["integrity"], w.tokens.operator),
      w.run(["integrity", "--json", "--packages", "5"], w.tokens.operator),
      w.run(["integrity"], w.tokens.scientist),
      w.run(["integrity", "--packages", "5000"], w.tokens.operator)
    ])
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout).toContain("audit cycle 90 days, 1 good archive copy per package")
    expect(human.stdout).toContain(
      "Totals: 8 copies, 5 audited within the cycle, 1 never verified, 1 corrupt, 1 missing, 1 dark, 1 repaired; 1 packages below target"
    )
    // COPIES AUDITED LAST-AUDIT LAG CORRUPT MISSING DARK REPAIRED LAST-INVENTORY
    const instant = "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ"
    expect(human.stdout).toMatch(
      new RegExp(`${rows.archive.name}\\s+LONG_TERM_ARCHIVE\\s+s3\\s+4\\s+3\\s+${instant}\\s+240 h 0 min\\s+1\\s+1\\s+1\\s+1\\s+${instant}`)
    )
    expect(human.stdout).toMatch(
      new RegExp(
        `${rows.secondArchive.name}\\s+LONG_TERM_ARCHIVE\\s+disk\\s+4\\s+2\\s+${instant}\\s+never \\(1 unverified\\), else 2400 h 0 min\\s+0\\s+0\\s+0\\s+0\\s+-`
      )
    )
    expect(human.stdout).toContain("Packages below target (1 of 1, by id)")
    expect(human.stdout).toMatch(new RegExp(`${rows.packages.missing}\\s+0\\s+1\\s+.*${rows.archive.name} MISSING`))
    expect(human.stdout).toContain(`${rows.secondArchive.name} PRESENT (never verified)`)
    expect(human.stdout).not.toContain(rows.packages.corrupt)

    expect(machine.code, machine.stderr).toBe(0)
    const r = JSON.parse(machine.stdout)
    expect(r.scope).toBe("full")
    expect(r.totals).toEqual({
      copies: 8,
      audited: 5,
      unverifiedCopies: 1,
      corrupt: 1,
      missing: 1,
      dark: 1,
      repaired: 1,
      packagesBelowTarget: 1
    })
    expect(r.locations.find((l: any) => l.id === rows.archive.id)).toMatchObject(IntegrityRows.expected.archive)
    expect(r.locations.find((l: any) => l.id === rows.secondArchive.id)).toMatchObject(IntegrityRows.expected.secondArchive)
    expect(r.packagesBelowTarget.items.map((p: any) => [p.id, p.goodCopies, p.target])).toEqual([[rows.packages.missing, 0, 1]])
    expect(typeof r.at).toBe("string")

    expect(scientist.code, scientist.stderr).toBe(0)
    expect(scientist.stdout).toContain("sees totals only")
    expect(scientist.stdout).toContain("1 packages below target")
    expect(scientist.stdout).not.toContain(rows.archive.name)

    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain("--packages must be from 0 to 1000, not 5000")
  }, 120_000)
})
