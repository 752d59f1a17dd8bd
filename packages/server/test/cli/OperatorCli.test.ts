/**
 * The operator commands as an operator runs them: the real `ccat` process against a real
 * `ccat serve` (OperatorCliWorld). The state first (the status summary, observations, packages,
 * bundles with their attempts, copies; human and `--json` output, and what a scientist sees of
 * them), then what changes it: a retry, a location taken out of service and back with its
 * history; and bad input, missing or bad tokens and unreachable or silent servers, each with its
 * exit code and message. `ccat staging` is StagingCli.test.ts's.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import * as net from "node:net"
import { describe, expect, it } from "vitest"
import * as OperatorCliWorld from "./OperatorCliWorld.js"

const { json } = OperatorCliWorld
const w = OperatorCliWorld.forSuite()

describe("ccat operator commands", () => {
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

  it("retry: a failed package back to pending, then refused; wrong entity, unknown id, bad input", async () => {
    const { failed, failedAttempt, written } = w
    const retried = await w.run(["retry", "RawDataPackage", failed, "--reason", "buffer emptied"], w.tokens.operator)
    expect(retried.code, retried.stderr).toBe(0)
    expect(retried.stdout.trim()).toBe(`RawDataPackage ${failed}: failed -> pending`)
    const [again, wrongEntity, unknown, notAnId, notAnEntity, attempt, scientist] = await Promise.all([
      w.run(["retry", "RawDataPackage", failed], w.tokens.operator),
      w.run(["retry", "DataTransfer", failed, "--json"], w.tokens.operator),
      w.run(["retry", "StagingRequest", randomUUID()], w.tokens.operator),
      w.run(["retry", "RawDataPackage", "not-an-id"], w.tokens.operator),
      w.run(["retry", "Telescope", failed], w.tokens.operator),
      w.run(["retry", "DataTransfer", failedAttempt, "--json"], w.tokens.operator),
      w.run(["retry", "RawDataPackage", written], w.tokens.scientist)
    ])
    expect([again.code, again.stderr]).toEqual([3, expect.stringContaining("is pending, not failed")])
    expect(wrongEntity.code).toBe(3)
    expect(JSON.parse(wrongEntity.stderr).error).toMatchObject({
      kind: "NotFound",
      exitCode: 3,
      message: expect.stringContaining(`DataTransfer ${failed} does not exist`)
    })
    expect(wrongEntity.stdout).toBe("")
    expect(unknown.code).toBe(3)
    expect([notAnId.code, notAnId.stderr]).toEqual([2, expect.stringContaining("must be a UUID")])
    expect(notAnEntity.code).toBe(2)
    expect(json(attempt)).toMatchObject({
      entity: "DataTransfer",
      id: failedAttempt,
      from: "failed",
      to: "pending",
      newAttemptId: expect.any(String)
    })
    expect([scientist.code, scientist.stderr]).toEqual([3, expect.stringContaining("operator")])
    const events = await w.db(
      Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql<{ toState: string; details: any }>`select to_state, details from event_log where entity_id = ${failed} order by id`
      )
    )
    expect(events.at(-1)).toMatchObject({ toState: "pending", details: { retry: true, reason: "buffer emptied" } })
    expect(events.filter((e) => e.toState === "pending")).toHaveLength(2)
  })

  it("location disable and enable, by name or id; refused without a reason or for an unknown location", async () => {
    const loc = w.world.cologneBuffer
    const off = await w.run(["location", "disable", loc.name, "--write", "--reason", "disk swap"], w.tokens.operator)
    expect(off.code, off.stderr).toBe(0)
    expect(off.stdout.trim()).toBe(`${loc.name}: read yes, write NO, delete yes`)
    const flags = () =>
      w.db(
        Effect.flatMap(
          SqlClient.SqlClient,
          (sql) =>
            sql<
              { readable: boolean; writable: boolean; deletable: boolean }
            >`select readable, writable, deletable from data_location where id = ${loc.id}`
        )
      )
    expect(await flags()).toEqual([{ readable: true, writable: false, deletable: true }])
    const all = await w.run(["location", "disable", loc.id, "--reason", "out of service", "--json"], w.tokens.operator)
    expect(json(all)).toMatchObject({ id: loc.id, readable: false, writable: false, deletable: false })
    const [noReason, unknown, scientist] = await Promise.all([
      w.run(["location", "enable", loc.name], w.tokens.operator),
      w.run(["location", "enable", "nowhere", "--reason", "x"], w.tokens.operator),
      w.run(["location", "enable", loc.name, "--reason", "x"], w.tokens.scientist)
    ])
    expect(noReason.code).toBe(2)
    expect([unknown.code, unknown.stderr]).toEqual([3, expect.stringContaining(`no data location "nowhere"; known:`)])
    expect(scientist.code).toBe(3)
    expect(await flags()).toEqual([{ readable: false, writable: false, deletable: false }])
    const on = await w.run(["location", "enable", loc.name, "--reason", "disk replaced"], w.tokens.operator)
    expect(on.stdout.trim()).toBe(`${loc.name}: read yes, write yes, delete yes`)
    expect(await flags()).toEqual([{ readable: true, writable: true, deletable: true }])
    // Every switch is in the location's history, with who and why; refused ones are not.
    const [history, table, badKind, noKind] = await Promise.all([
      w.run(["events", "--entity", `location:${loc.name}`, "--json"], w.tokens.operator),
      w.run(["events", "--entity", `DataLocation:${loc.id}`], w.tokens.operator),
      w.run(["events", "--entity", `nonsense:${loc.id}`], w.tokens.operator),
      w.run(["events", "--entity", loc.name], w.tokens.operator)
    ])
    expect(history.code, history.stderr).toBe(0)
    expect(json(history).events.map((e: any) => [e.fromState, e.toState, e.details.reason])).toEqual([
      ["read+write+delete", "read+delete", "disk swap"],
      ["read+delete", "unavailable", "out of service"],
      ["unavailable", "read+write+delete", "disk replaced"]
    ])
    expect(json(history).events.every((e: any) => e.actor.startsWith("operator"))).toBe(true)
    expect(table.stdout).toContain(`DataLocation ${loc.id}: 3 events, oldest first`)
    expect(table.stdout).toContain("disk replaced")
    expect([badKind.code, badKind.stderr]).toEqual([2, expect.stringContaining(`unknown kind "nonsense"`)])
    expect([noKind.code, noKind.stderr]).toEqual([2, expect.stringContaining("--entity must be KIND:ID")])
  })

  it("no token, a bad token, an unreachable server, a server that never answers, an unknown id", async () => {
    // A server that accepts connections and never answers: the command gives up, it does not hang.
    const sockets: Array<net.Socket> = []
    const silent = net.createServer((socket) => void sockets.push(socket))
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve))
    const silentUrl = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`
    const [none, bad, down, unknown, badJson, hung, badTimeout] = await Promise.all([
      w.run(["status"]),
      w.run(["packages", "list"], "ccat_XXXXXXXX_" + "0".repeat(40)),
      w.run(["status", "--url", "http://127.0.0.1:9"], w.tokens.operator),
      w.run(["packages", "show", randomUUID()], w.tokens.operator),
      w.run(["observations", "show", randomUUID(), "--json"], w.tokens.operator),
      w.run(["status", "--url", silentUrl], w.tokens.operator, { CCAT_REQUEST_TIMEOUT: "2" }),
      w.run(["status"], w.tokens.operator, { CCAT_REQUEST_TIMEOUT: "0" })
    ])
    for (const s of sockets) s.destroy()
    silent.close()
    expect([hung.code, hung.stderr]).toEqual([1, expect.stringContaining("no answer within 2s")])
    expect([badTimeout.code, badTimeout.stderr]).toEqual([2, expect.stringContaining("CCAT_REQUEST_TIMEOUT")])
    expect([none.code, none.stderr]).toEqual([3, expect.stringContaining("pass --token or set CCAT_TOKEN")])
    expect(bad.code).toBe(3)
    expect([down.code, down.stderr]).toEqual([1, expect.stringContaining("cannot reach the server at http://127.0.0.1:9")])
    expect([unknown.code, unknown.stderr]).toEqual([3, expect.stringContaining("does not exist")])
    expect(badJson.code).toBe(3)
    expect(JSON.parse(badJson.stderr).error.kind).toBe("NotFound")
  })
})
