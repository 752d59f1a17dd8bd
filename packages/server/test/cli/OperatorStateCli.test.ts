/**
 * The operator commands that show the data center's state, as an operator runs them: the real
 * `ccat` process against a real `ccat serve` (OperatorCliWorld). The status summary, observations,
 * packages, bundles with their attempts and copies, in human and `--json` output, and what a
 * scientist sees of them.
 */
import { describe, expect, it } from "vitest"
import * as OperatorCliWorld from "./OperatorCliWorld.js"

const { json } = OperatorCliWorld
const w = OperatorCliWorld.forSuite()

describe("ccat operator commands: state", () => {
  it("status: the summary for people and the snapshot as JSON; counts only for a scientist", async () => {
    const { failed, failedAttempt } = w
    const [human, machine, scientist] = await Promise.all([
      w.run(["status"], w.tokens.operator),
      w.run(["status", "--json", "--failed", "5"], w.tokens.operator),
      w.run(["status"], w.tokens.scientist)
    ])
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout).toMatch(/waiting to package\s+5 files\s+11.0 kB/)
    // The written package is in a (pending) bundle already: in transfer, no longer waiting to be bundled.
    expect(human.stdout).toMatch(/waiting to bundle\s+0 packages/)
    expect(human.stdout).toMatch(/in transfer\s+1 bundles/)
    expect(human.stdout).toContain(`RawDataPackage  ${failed}  failed`)
    expect(human.stdout).toContain("no BUFFER with room at chile")
    expect(human.stdout).toMatch(new RegExp(`${w.world.chileBuffer.name}\\s+BUFFER\\s+disk\\s+rwd\\s+1\\s+4.10 kB`))
    const s = json(machine)
    expect(s.scope).toBe("full")
    expect(s.counts.files).toEqual({ filed: 6, packaged: 0, corrupt: 0, missing: 0 })
    expect(s.failed.map((f: any) => f.id)).toEqual(expect.arrayContaining([failed, failedAttempt]))
    expect(typeof s.at).toBe("string")
    expect(scientist.code).toBe(0)
    expect(scientist.stdout).toContain("sees counts only")
    expect(scientist.stdout).not.toContain(failed)
  })

  it("observations list with filters and --limit, show with files, packages and copies", async () => {
    const { failed, files, observations, written } = w
    const [all, limited, byState, shown, shownJson] = await Promise.all([
      w.run(["observations", "list", "--instrument", "Prime-Cam", "--json"], w.tokens.operator),
      w.run(["observations", "list", "--program", w.world.program.id, "--limit", "1"], w.tokens.operator),
      w.run(["observations", "list", "--since", "2026-05-01T00:30:00Z", "--state", "completed", "--json"], w.tokens.operator),
      w.run(["observations", "show", observations[0]], w.tokens.operator),
      w.run(["observations", "show", observations[0], "--json"], w.tokens.scientist)
    ])
    expect(json(all).items.map((o: any) => o.id)).toEqual(observations)
    expect(limited.code, limited.stderr).toBe(0)
    expect(limited.stdout).toContain(observations[0])
    expect(limited.stdout).not.toContain(observations[1])
    expect(limited.stdout).toContain("raise --limit")
    expect(json(byState).items.map((o: any) => o.id)).toEqual([observations[1]])
    expect(shown.code, shown.stderr).toBe(0)
    expect(shown.stdout).toContain("scan0/f2.fits")
    expect(shown.stdout).toMatch(new RegExp(`${written}\\s.*in_progress\\s+TRANSFERRING`))
    expect(shown.stdout).toMatch(new RegExp(`${w.world.chileBuffer.name}\\s+PRESENT`))
    // A scientist of the program sees the observation but not the copies (operators only).
    const s = json(shownJson)
    expect(s.files.map((f: any) => f.id).sort()).toEqual(files.slice(0, 3).sort())
    expect(s.packages.map((p: any) => p.id).sort()).toEqual([written, failed].sort())
    expect(s.copies).toBeNull()
  })

  it("packages, bundles with their attempts, copies", async () => {
    const { bundle, failed, failedAttempt, written } = w
    const [failedList, pkg, bundles, shownBundle, copies] = await Promise.all([
      w.run(["packages", "list", "--status", "failed", "--json"], w.tokens.operator),
      w.run(["packages", "show", written], w.tokens.operator),
      w.run(["bundles", "list", "--package", written, "--json"], w.tokens.operator),
      w.run(["bundles", "show", bundle], w.tokens.operator),
      w.run(["copies", "list", "--location", w.world.chileBuffer.name, "--status", "PRESENT"], w.tokens.operator)
    ])
    expect(json(failedList).items.map((p: any) => [p.id, p.journey, p.errorMessage])).toEqual([[
      failed,
      "FAILED",
      "no BUFFER with room at chile"
    ]])
    expect(pkg.code, pkg.stderr).toBe(0)
    expect(pkg.stdout).toContain(`package ${written}  in_progress (TRANSFERRING)`)
    expect(pkg.stdout).toMatch(/history \(3\)[\s\S]*pending\s+scheduled\s+planner:chile[\s\S]*scheduled\s+in_progress\s+worker:chile/)
    expect(pkg.stdout).toContain(bundle)
    expect(json(bundles).items.map((b: any) => [b.id, b.packageIds])).toEqual([[bundle, [written]]])
    expect(shownBundle.code, shownBundle.stderr).toBe(0)
    expect(shownBundle.stdout).toMatch(
      new RegExp(`1\\s+${failedAttempt}\\s+${w.world.chileBuffer.name}\\s+${w.world.cologneBuffer.name}\\s+bbcp\\s+failed`)
    )
    expect(shownBundle.stdout).toContain("ssh: connection refused")
    expect(copies.code, copies.stderr).toBe(0)
    expect(copies.stdout).toContain(`package ${written}`)
  })
})
