/**
 * `ccat staging` as a scientist runs it: the real `ccat` process against a real `ccat serve`
 * (OperatorCliWorld), while the test records the staging worker's outcome. A request followed
 * with `wait` (progress lines, a progress bar on a terminal) to its local paths and released, and
 * a failed request: the server's reason, an operator's retry, a release refused while pending.
 */
import { Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { describe, expect, it } from "vitest"
import { ccatArgs, repoRoot } from "../support.js"
import * as OperatorCliWorld from "./OperatorCliWorld.js"

const { json } = OperatorCliWorld
const w = OperatorCliWorld.forSuite()

describe("ccat staging", () => {
  it("request, show, wait with progress lines until the staging worker's completion, then the local paths", async () => {
    const { observations } = w
    const processing = w.world.processing
    const created = await w.run(
      ["staging", "request", "--location", processing.name, "--observation", observations[0], "--json"],
      w.tokens.scientist
    )
    const request = json(created)
    expect([request.status, request.items.map((i: any) => i.executedObsUnitId)]).toEqual(["pending", [observations[0]]])
    const [shown, early, none, wrongType, notMine] = await Promise.all([
      w.run(["staging", "show", request.id], w.tokens.scientist),
      w.run(["staging", "wait", request.id, "--timeout", "1"], w.tokens.scientist),
      w.run(["staging", "request", "--location", processing.name], w.tokens.scientist),
      w.run(["staging", "request", "--location", w.world.archive.name, "--observation", observations[0]], w.tokens.scientist),
      w.run(["staging", "show", randomUUID()], w.tokens.scientist)
    ])
    expect(shown.code, shown.stderr).toBe(0)
    expect(shown.stdout).toContain(`staging request ${request.id}  pending`)
    expect(shown.stdout).toContain(`location ${processing.name}`)
    expect(shown.stdout).toContain(`observation ${observations[0]}`)
    expect([early.code, early.stderr]).toEqual([1, expect.stringContaining("is still pending")])
    expect([none.code, none.stderr]).toEqual([2, expect.stringContaining("at least one --observation or --package")])
    expect(wrongType.code).toBe(2)
    expect(notMine.code).toBe(3)

    // Wait while the staging worker's outcome is recorded: STAGED copies of the observation's
    // files at the PROCESSING location under <observation>/<path>, then the request completed.
    const waiting = w.spawn(["staging", "wait", request.id, "--interval", "1"], w.tokens.scientist)
    const deadline = Date.now() + 60_000
    while (!waiting.stderr().includes("pending") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200))
    expect(waiting.stderr()).toContain(`${request.id} pending`)
    await w.db(Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ id: string; relativePath: string; sizeBytes: number; checksum: string }>`
        select id, relative_path, size_bytes, checksum from raw_data_file where executed_obs_unit_id = ${observations[0]}`
      for (const [from, to] of [["pending", "scheduled"], ["scheduled", "in_progress"]] as const) {
        yield* Transitions.transition({ entity: "StagingRequest", id: request.id, from, to, actor: "worker:cologne" })
      }
      for (const f of rows) {
        yield* sql`insert into physical_copy ${
          sql.insert({
            rawDataFileId: f.id,
            dataLocationId: processing.id,
            path: `${observations[0]}/${f.relativePath}`,
            sizeBytes: f.sizeBytes,
            checksum: f.checksum,
            status: "STAGED",
            verifiedAt: new Date()
          })
        }`
      }
      yield* Transitions.transition({
        entity: "StagingRequest",
        id: request.id,
        from: "in_progress",
        to: "completed",
        actor: "worker:cologne",
        set: { expiresAt: new Date(Date.now() + 86_400_000) as any }
      })
    }))
    const done = await waiting.done
    expect(done.code, done.stderr).toBe(0)
    expect(done.stderr).toContain(`${request.id} completed`)
    const root = (processing.driverConfig as { root: string }).root
    expect(done.stdout.trim().split("\n").slice(1).sort()).toEqual(
      ["f0", "f1", "f2"].map((f) => `${root}/${observations[0]}/scan0/${f}.fits`)
    )
    const [again, shownDone] = await Promise.all([
      w.run(["staging", "wait", request.id, "--json"], w.tokens.scientist),
      w.run(["staging", "show", request.id, "--json"], w.tokens.scientist)
    ])
    expect(json(again).paths.sort()).toEqual(["f0", "f1", "f2"].map((f) => `${root}/${observations[0]}/scan0/${f}.fits`))
    expect(json(shownDone)).toMatchObject({ request: { id: request.id, status: "completed" }, location: processing.name })
    expect(json(shownDone).files).toHaveLength(3)
    // On a terminal (a pseudo-terminal from util-linux `script`) the wait draws a progress bar.
    const tty = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const command = [process.execPath, ...ccatArgs(["staging", "wait", request.id])].join(" ")
      const child = spawn("script", ["-qec", command, "/dev/null"], {
        cwd: repoRoot,
        env: { ...process.env, DATABASE_URL: "", CCAT_URL: w.url, CCAT_TOKEN: w.tokens.scientist },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let out = ""
      child.stdout.on("data", (c) => (out += c))
      child.once("exit", (code) => resolve({ code, out }))
    })
    expect(tty.code, tty.out).toBe(0)
    expect(tty.out).toContain(`\r[${"#".repeat(30)}] completed`)
    expect(tty.out).toContain(`${root}/${observations[0]}/scan0/f0.fits`)
    // Processing done: the scientist releases it; again is harmless, and nothing is handed out any more.
    const released = await w.run(["staging", "release", request.id], w.tokens.scientist)
    expect([released.code, released.stdout], released.stderr).toEqual([
      0,
      expect.stringContaining("its staged files are no longer kept for it")
    ])
    const [again2, shownReleased] = await Promise.all([
      w.run(["staging", "release", request.id, "--json"], w.tokens.scientist),
      w.run(["staging", "show", request.id, "--json"], w.tokens.scientist)
    ])
    expect(json(again2).releasedAt).toBe(json(shownReleased).request.releasedAt)
    expect(json(shownReleased).files).toEqual([])
  })

  it("a failed request: wait exits 1 with the server's reason; an operator retries it", async () => {
    const { observations } = w
    const created = json(
      await w.run(
        ["staging", "request", "--location", w.world.processing.name, "--observation", observations[1], "--json"],
        w.tokens.scientist
      )
    )
    await w.db(
      Transitions.transition({
        entity: "StagingRequest",
        id: created.id,
        from: "pending",
        to: "failed",
        actor: "worker:cologne",
        set: { errorMessage: "package not archived yet" }
      })
    )
    const [waited, human] = await Promise.all([
      w.run(["staging", "wait", created.id, "--json"], w.tokens.scientist),
      w.run(["staging", "wait", created.id], w.tokens.scientist)
    ])
    expect(waited.code).toBe(1)
    expect(waited.stdout).toBe("")
    expect(JSON.parse(waited.stderr.trim().split("\n").at(-1)!).error).toMatchObject({
      kind: "StagingFailed",
      exitCode: 1,
      message: expect.stringContaining("package not archived yet")
    })
    expect([human.code, human.stderr]).toEqual([
      1,
      expect.stringContaining(`staging request ${created.id} failed: package not archived yet`)
    ])
    const retried = await w.run(["retry", "StagingRequest", created.id, "--reason", "archived now"], w.tokens.operator)
    expect(retried.stdout.trim()).toBe(`StagingRequest ${created.id}: failed -> pending`)
    // Pending again: releasing it now is refused, and changes nothing.
    const early = await w.run(["staging", "release", created.id, "--json"], w.tokens.scientist)
    expect(early.code).toBe(3)
    expect(JSON.parse(early.stderr.trim().split("\n").at(-1)!).error).toMatchObject({
      kind: "Conflict",
      message: expect.stringContaining("pending")
    })
  })
})
