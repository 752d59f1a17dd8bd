/**
 * Archived data for the TAP tests, made through the API like an admin would: three programs,
 * each with one observation of two modules whose packages are ARCHIVED. `open` is public (its
 * proprietary period has ended), `embargoed` is within a ten-year period, `closed` never becomes
 * public. Each has its own Source, instrument name and observing night, so a cone, a time range
 * or an instrument finds exactly one of them.
 */
import { Fixtures } from "@ccat/core/testing"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Harness from "../ApiHarness.js"

/** One seeded program and its archived observation. */
export interface Seeded {
  readonly world: Fixtures.World
  readonly observationId: string
  readonly source: string
  readonly ra: number
  readonly dec: number
  readonly instrument: string
  readonly start: string
  readonly end: string
}

const one = (
  input: {
    readonly source: string | null
    readonly ra: number
    readonly dec: number
    readonly periodDays: number | null
    readonly instrument: string
    readonly start: string
    readonly end: string
  }
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const admin = yield* Harness.client(yield* Harness.tokenFor({ role: "admin" }))
    const w = yield* Fixtures.world
    const name = input.source === null ? "" : `${input.source} ${Fixtures.suffix()}`
    if (input.source !== null) {
      const source = yield* admin.catalog.createSource({ payload: { name, raDeg: input.ra, decDeg: input.dec } })
      yield* admin.catalog.updateObsUnit({ path: { id: w.obsUnit.id }, payload: { sourceId: source.id } })
    }
    yield* admin.catalog.updateProgram({ path: { id: w.program.id }, payload: { proprietaryPeriodDays: input.periodDays } })
    yield* admin.catalog.updateInstrumentModule({
      path: { id: w.modules[0].id },
      payload: { band: { minHz: 250e9, maxHz: 310e9 }, dataproductType: "timeseries", fovDeg: 1.3, resolutionArcsec: 23 }
    })
    yield* sql`update instrument set name = ${input.instrument} where id = ${w.instrument.id}`
    const eou = yield* Fixtures.executedObsUnit(w)
    yield* sql`update executed_obs_unit set start_at = ${input.start}, end_at = ${input.end} where id = ${eou.id}`
    for (const module of w.modules) {
      const pkg = yield* Fixtures.rawDataPackage(w, eou)
      yield* sql`update raw_data_package set instrument_module_id = ${module.id}, status = 'completed', size_bytes = 4096, checksum = ${Fixtures.checksum()} where id = ${pkg.id}`
    }
    return {
      world: w,
      observationId: eou.id,
      source: name,
      ra: input.ra,
      dec: input.dec,
      instrument: input.instrument,
      start: input.start,
      end: input.end
    } satisfies Seeded
  }).pipe(Effect.orDie)

/** Seeds the three programs. */
export const seed = Effect.gen(function* () {
  const open = yield* one({
    source: "Orion KL",
    ra: 83.80867,
    dec: -5.37264,
    periodDays: 0,
    instrument: "Prime-Cam",
    start: "2026-03-02T01:00:00Z",
    end: "2026-03-02T02:30:00Z"
  })
  const embargoed = yield* one({
    source: "Deep56",
    ra: 24.5,
    dec: -32.5,
    periodDays: 3650,
    instrument: "CHAI",
    start: "2026-06-10T04:00:00Z",
    end: "2026-06-10T05:00:00Z"
  })
  const closed = yield* one({
    source: "Sgr B2",
    ra: 266.835,
    dec: -28.3850,
    periodDays: null,
    instrument: "Mod-Cam",
    start: "2026-08-20T22:00:00Z",
    end: "2026-08-20T23:00:00Z"
  })
  return { open, embargoed, closed }
})
