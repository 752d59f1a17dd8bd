/**
 * `stilts taplint` (Debian's `stilts`), the IVOA's own validator of TAP services, against the
 * live `/tap` of an in-process server holding archived data: capabilities, availability, the
 * tableset against TAP_SCHEMA, metadata queries, sync GET and POST, async UWS jobs, ObsCore's
 * columns and error documents. It reports no errors. taplint is a Java program: one run here
 * takes about half a minute, so this file runs it once, bounded.
 */
import { it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import { writeFileSync } from "node:fs"
import { expect } from "vitest"
import * as Harness from "../ApiHarness.js"
import * as TapWorld from "./TapWorld.js"

const taplint = (url: string) =>
  Effect.async<{ readonly code: number | null; readonly output: string }>((resume) => {
    const child = execFile("stilts", ["taplint", `tapurl=${url}`, "report=EW", "maxrepeat=5", "truncate=400"], { timeout: 240_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) =>
      resume(Effect.succeed({ code: error === null ? 0 : typeof error.code === "number" ? error.code : null, output: `${stdout}${stderr}` })))
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
})
