/**
 * pyvo (Debian's `python3-pyvo`), as an astronomer runs it, against the live `/tap` of an
 * in-process server holding archived data: `find_observations.py` finds observations by a cone
 * around a Source (sync), by fields of view (`s_region`) covering it or meeting a POLYGON, by a
 * time range (async, UWS) and by an instrument, anonymously and with a scientist's token, and
 * sees only what each may see.
 */
import { it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { expect } from "vitest"
import * as Harness from "../ApiHarness.js"
import * as TapWorld from "./TapWorld.js"

const script = fileURLToPath(new URL("./find_observations.py", import.meta.url))

interface Found {
  readonly cone: Array<string>
  readonly cone_target: Array<string>
  readonly covering: Array<string>
  readonly meeting: Array<string>
  readonly area: Array<number>
  readonly time: Array<string>
  readonly instrument: Array<string>
  readonly columns: Array<string>
}

interface Case {
  readonly seeded: TapWorld.Seeded
  readonly token?: string
}

// One python process for every case: importing pyvo and astropy is most of a run's cost.
const find = (url: string, cases: ReadonlyArray<Case>) =>
  Effect.async<Array<Found>, Error>((resume) => {
    const spec = cases.map(({ seeded, token }) => ({
      ra: seeded.ra,
      dec: seeded.dec,
      start: seeded.start,
      end: seeded.end,
      instrument: seeded.instrument,
      ...(token === undefined ? {} : { token })
    }))
    // Debian's python, where python3-pyvo lives (a developer's PATH may put another first).
    const child = execFile(
      "/usr/bin/python3",
      [script, url, JSON.stringify(spec)],
      { timeout: 150_000 },
      (error, stdout, stderr) =>
        resume(
          error === null ? Effect.sync(() => JSON.parse(stdout) as Array<Found>) : Effect.fail(new Error(`${error.message}\n${stderr}`))
        )
    )
    return Effect.sync(() => child.kill())
  })

it.layer(Harness.layer(), { timeout: 240_000 })("pyvo", (it) => {
  it.effect("finds observations by a cone around a Source, by time range and by instrument", () =>
    Effect.gen(function* () {
      const world = yield* TapWorld.seed
      const url = `${yield* Harness.BaseUrl}/tap`
      const token = yield* Harness.tokenFor({ role: "scientist", programIds: [world.embargoed.world.program.id] })
      const [open, hidden, granted] = yield* find(url, [
        { seeded: world.open },
        { seeded: world.embargoed },
        { seeded: world.embargoed, token }
      ])
      expect(open!.cone).toEqual([world.open.observationId, world.open.observationId])
      expect(open!.cone_target).toEqual([world.open.source, world.open.source])
      // only the module with a field of view has an s_region
      expect(open!.covering).toEqual([world.open.observationId])
      expect(open!.meeting).toEqual([world.open.observationId])
      // a field of view 1.3° across: 2π(1 - cos 0.65°) steradians
      expect(open!.area[0]).toBeCloseTo(2 * Math.PI * (1 - Math.cos((0.65 * Math.PI) / 180)) * (180 / Math.PI) ** 2, 6)
      expect(open!.time).toEqual([world.open.observationId, world.open.observationId])
      expect(open!.instrument).toEqual([world.open.observationId, world.open.observationId])
      expect(open!.columns).toContain("s_ra")
      expect(open!.columns.filter((c) => c.startsWith("ccat_"))).toEqual([])
      // The embargoed program: nothing anonymously, everything with its scientist's token.
      expect(hidden).toMatchObject({ cone: [], covering: [], meeting: [], time: [], instrument: [] })
      expect([granted!.cone, granted!.time, granted!.instrument].map((ids) => [...new Set(ids)])).toEqual([
        [world.embargoed.observationId],
        [world.embargoed.observationId],
        [world.embargoed.observationId]
      ])
    }).pipe(Effect.orDie), 240_000)
})
