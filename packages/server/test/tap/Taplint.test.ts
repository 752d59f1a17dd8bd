/**
 * `stilts taplint` (Debian's `stilts`), the IVOA's own validator of TAP services, against the
 * live `/tap` of an in-process server holding archived data: capabilities, availability, the
 * tableset against TAP_SCHEMA, metadata queries, sync GET and POST, async UWS jobs, ObsCore's
 * columns and error documents. It reports no errors. taplint is a Java program: one run here
 * takes about half a minute, so this file runs it once, bounded. Then `stilts tapquery` (the
 * engine TOPCAT runs) with a scientist's token, exactly as docs/science-access.md shows it:
 * the token in a Java argument file, answered to `/tap/auth`'s Basic challenge.
 */
import { it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { expect } from "vitest"
import * as Harness from "../ApiHarness.js"
import * as Tap from "./TapClient.js"
import * as TapWorld from "./TapWorld.js"

const taplint = (url: string) =>
  Effect.async<{ readonly code: number | null; readonly output: string }>((resume) => {
    const child = execFile(
      "stilts",
      ["taplint", `tapurl=${url}`, "report=EW", "maxrepeat=5", "truncate=400"],
      { timeout: 240_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) =>
        resume(
          Effect.succeed({ code: error === null ? 0 : typeof error.code === "number" ? error.code : null, output: `${stdout}${stderr}` })
        )
    )
    return Effect.sync(() => child.kill())
  })

const stilts = (args: ReadonlyArray<string>) =>
  Effect.async<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }>((resume) => {
    const child = execFile(
      "stilts",
      args,
      { timeout: 120_000 },
      (error, stdout, stderr) =>
        resume(Effect.succeed({ code: error === null ? 0 : typeof error.code === "number" ? error.code : null, stdout, stderr }))
    )
    return Effect.sync(() => child.kill())
  })

it.layer(Harness.layer(), { timeout: 300_000 })("taplint", (it) => {
  it.effect("reports no errors against the live service", () =>
    Effect.gen(function* () {
      yield* TapWorld.seed
      const started = Date.now()
      const { output } = yield* taplint(`${yield* Harness.BaseUrl}/tap`)
      if (process.env.TAPLINT_OUT !== undefined) writeFileSync(process.env.TAPLINT_OUT, output)
      console.log(`taplint took ${((Date.now() - started) / 1000).toFixed(1)} s; ${/Totals:.*$/m.exec(output)?.[0] ?? "no totals"}`)
      const errors = output.split("\n").filter((line) => /^E-/.test(line))
      expect(errors).toEqual([])
      expect(output).toMatch(/Totals: Errors: 0;/)
    }), 300_000)

  it.effect(
    "selected shapes are DALI values: votlint passes them and stilts tapquery reads them as arrays",
    () =>
      Effect.gen(function* () {
        const adql = "SELECT TOP 1 s_region, POINT('ICRS', s_ra, s_dec) AS p, CIRCLE(s_ra, s_dec, 1) AS c, " +
          "POLYGON('ICRS', 10, 0, 0, 0, 0, 10) AS poly, CENTROID(BOX('ICRS', 359.9, 0, 2, 2)) AS centre FROM ivoa.obscore " +
          "WHERE target_name LIKE 'Orion KL%' AND s_fov IS NOT NULL"
        const answer = yield* Tap.query(adql)
        expect(
          [...answer.text.matchAll(/<FIELD ([^>]*)>/g)].map((m) =>
            /xtype="([^"]+)"/.exec(m[1]!)?.[1] + " " + /arraysize="([^"]+)"/.exec(m[1]!)?.[1]
          )
        )
          .toEqual(["adql:REGION *", "point 2", "circle 3", "polygon *", "point 2"])
        // s_region is ObsCore's STC-S (taplint holds it to char); the shapes are DALI's, the polygon turned counter-clockwise
        expect(Tap.rows(answer.text)).toEqual([[
          "Circle ICRS 83.80867 -5.37264 0.65",
          "83.80867 -5.37264",
          "83.80867 -5.37264 1",
          "0 10 0 0 10 0",
          "359.9 0"
        ]])
        const dir = mkdtempSync(path.join(tmpdir(), "ccat-votlint-"))
        try {
          writeFileSync(path.join(dir, "regions.vot"), answer.text)
          const lint = yield* stilts(["votlint", "validate=true", `votable=${path.join(dir, "regions.vot")}`])
          expect([lint.code, `${lint.stdout}${lint.stderr}`]).toEqual([0, ""])
        } finally {
          rmSync(dir, { recursive: true, force: true })
        }
        const read = yield* stilts(["tapquery", `tapurl=${yield* Harness.BaseUrl}/tap`, `adql=${adql}`, "sync=true", "ofmt=csv", "out=-"])
        expect([read.code, read.stdout.trim().split("\n")]).toEqual([0, [
          "s_region,p,c,poly,centre",
          `Circle ICRS 83.80867 -5.37264 0.65,"(83.80867, -5.37264)","(83.80867, -5.37264, 1.0)","(0.0, 10.0, 0.0, 0.0, 10.0, 0.0)","(359.9, 0.0)"`
        ]])
      }),
    120_000
  )

  it.effect(
    "stilts tapquery with a scientist's token answers /tap/auth's Basic challenge and sees its program",
    () =>
      Effect.gen(function* () {
        const { open, embargoed } = yield* TapWorld.seed
        const token = yield* Harness.tokenFor({ role: "scientist", programIds: [embargoed.world.program.id] })
        const url = `${yield* Harness.BaseUrl}/tap/auth`
        // the doc's argument file: the token stays out of the command line (and `ps`)
        const dir = mkdtempSync(path.join(tmpdir(), `ccat-stilts-${randomBytes(3).toString("hex")}-`))
        const argfile = path.join(dir, "ccat-stilts")
        writeFileSync(argfile, `-Dstar.basicauth.user=token\n-Dstar.basicauth.password=${token}\n`, { mode: 0o600 })
        const adql =
          `adql=SELECT obs_id FROM ivoa.obscore WHERE obs_id IN ('${open.observationId}', '${embargoed.observationId}', '00000000-0000-4000-8000-000000000000') ORDER BY t_min`
        const ids = (csv: string) => [...new Set(csv.trim().split("\n").slice(1).map((l) => l.trim()))]
        try {
          // asynchronous (stilts' default, and TOPCAT's): the job's URLs stay under /tap/auth
          const run = yield* stilts([`-J@${argfile}`, "tapquery", `tapurl=${url}`, adql, "ofmt=csv", "out=-"])
          expect([run.code, /error/i.test(run.stderr)]).toEqual([0, false])
          expect(ids(run.stdout)).toEqual([open.observationId, embargoed.observationId])
          const refused = yield* stilts(["tapquery", `tapurl=${url}`, adql, "sync=true", "ofmt=csv", "out=-"])
          expect(refused.code).not.toBe(0)
          expect(refused.stdout).toBe("")
          expect(refused.stderr).toMatch(/star\.basicauth\.user/)
          expect(refused.stderr).toMatch(/answers callers with a token only/)
        } finally {
          rmSync(dir, { recursive: true, force: true })
        }
      }),
    180_000
  )
})
