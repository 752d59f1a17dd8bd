/**
 * The science catalog through the real server: Sources, observing modes, programs with their
 * proprietary periods, sub-programs, module bands and ObsUnit links, written by an admin and
 * read back through `@ccat/client` (the Promise facade and the derived Effect client). Bad
 * input (coordinates out of range, half a position, unknown references, a sub-program of
 * another program, taken names) is refused with an error naming the field, and changes nothing.
 */
import { createClient } from "@ccat/client"
import { Fixtures } from "@ccat/core/testing"
import { it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { randomUUID } from "node:crypto"
import { expect } from "vitest"
import * as Harness from "./ApiHarness.js"

const catalogTables = ["source", "observing_mode", "sub_observing_program", "observing_program", "obs_unit", "instrument_module"]

/** The error an effect failed with (its tag, field and message), or a test failure if it succeeded. */
const refusal = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.map(Effect.either(effect), (r) => {
    if (Either.isRight(r)) throw new Error(`expected a refusal, got ${JSON.stringify(r.right)}`)
    return r.left as any
  })

it.layer(Harness.layer(), { timeout: 90_000 })("catalog", (it) => {
  it.effect("sources: created, read back through @ccat/client, listed by name; bad positions and taken names refused, changing nothing", () =>
    Effect.gen(function* () {
      const adminToken = yield* Harness.tokenFor({ role: "admin" })
      const admin = yield* Harness.client(adminToken)
      const baseUrl = yield* Harness.BaseUrl
      const suffix = Fixtures.suffix()
      const ccat = yield* Effect.promise(() => createClient({ baseUrl, token: adminToken, retry: false }))
      const orion = yield* Effect.promise(() =>
        ccat.api.catalog.createSource({ payload: { name: `Orion KL ${suffix}`, raDeg: 83.80867, decDeg: -5.37264 } })
      )
      expect([orion.raDeg, orion.decDeg, orion.solarSystem]).toEqual([83.80867, -5.37264, false])
      const mars = yield* admin.catalog.createSource({ payload: { name: `Mars ${suffix}`, solarSystem: true, description: "a planet" } })
      expect([mars.raDeg, mars.decDeg, mars.solarSystem]).toEqual([null, null, true])
      expect((yield* Effect.promise(() => ccat.api.catalog.getSource({ path: { id: orion.id } }))).name).toBe(`Orion KL ${suffix}`)
      const scientist = yield* Harness.client(yield* Harness.tokenFor({ role: "scientist" }))
      const found = yield* scientist.catalog.listSources({ urlParams: { name: `orion kl ${suffix}` } })
      expect(found.items.map((s) => s.id)).toEqual([orion.id])
      // A name with LIKE's wildcards is matched literally.
      expect((yield* scientist.catalog.listSources({ urlParams: { name: "%" } })).items).toEqual([])
      yield* Effect.promise(() => ccat.close())

      const before = yield* Harness.counts(catalogTables)
      const bad = async (body: unknown) => {
        const r = await fetch(`${baseUrl}/api/v1/sources`, {
          method: "POST",
          headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
          body: JSON.stringify(body)
        })
        return { status: r.status, text: await r.text() }
      }
      const refusals = yield* Effect.promise(() => Promise.all([
        bad({ name: "ra too big", raDeg: 360, decDeg: 0 }),
        bad({ name: "ra negative", raDeg: -0.1, decDeg: 0 }),
        bad({ name: "dec too low", raDeg: 10, decDeg: -90.5 }),
        bad({ name: "half", raDeg: 10 }),
        bad({ name: "nowhere" }),
        bad({ name: "string ra", raDeg: "10", decDeg: 0 }),
        bad({ name: "extra", raDeg: 1, decDeg: 1, epoch: "J2000" }),
        bad({ name: "", raDeg: 1, decDeg: 1 }),
        bad({ name: `Orion KL ${suffix} `, raDeg: 1, decDeg: 1 })
      ]))
      expect(refusals.map((r) => r.status)).toEqual([400, 400, 400, 400, 400, 400, 400, 400, 400])
      expect(refusals[8].text).toContain("must not start or end with spaces")
      expect(refusals[0].text).toContain("ra must be from 0 up to (not including) 360 degrees")
      expect(refusals[2].text).toContain("dec must be from -90 to 90 degrees")
      expect(refusals[3].text).toContain("give both raDeg and decDeg, or neither")
      expect(refusals[4].text).toContain("needs raDeg and decDeg")
      expect(refusals[6].text).toContain("epoch")
      const taken = yield* refusal(admin.catalog.createSource({ payload: { name: `ORION kl ${suffix}`, raDeg: 1, decDeg: 1 } }))
      expect([taken._tag, taken.reason]).toEqual(["Conflict", "AlreadyExists"])
      expect(yield* Harness.counts(catalogTables)).toEqual(before)
      const missing = yield* refusal(scientist.catalog.getSource({ path: { id: randomUUID() as any } }))
      expect(missing._tag).toBe("NotFound")
      // Only admins write the catalog.
      const forbidden = yield* refusal(scientist.catalog.createSource({ payload: { name: "x", raDeg: 1, decDeg: 1 } }))
      expect(forbidden._tag).toBe("Forbidden")
    }))

  it.effect("programs with proprietary periods, sub-programs and observing modes, each seen only by who may see the program", () =>
    Effect.gen(function* () {
      const admin = yield* Harness.client(yield* Harness.tokenFor({ role: "admin" }))
      const s = Fixtures.suffix()
      const open = yield* admin.admin.createObservingProgram({ payload: { name: `open-${s}`, proprietaryPeriodDays: 365 } })
      const closed = yield* admin.admin.createObservingProgram({ payload: { name: `closed-${s}` } })
      expect([open.proprietaryPeriodDays, closed.proprietaryPeriodDays]).toEqual([365, null])
      const changed = yield* admin.catalog.updateProgram({
        path: { id: closed.id },
        payload: { proprietaryPeriodDays: 0, title: "now public" }
      })
      expect([changed.proprietaryPeriodDays, changed.title]).toEqual([0, "now public"])
      const reset = yield* admin.catalog.updateProgram({ path: { id: closed.id }, payload: { proprietaryPeriodDays: null } })
      expect(reset.proprietaryPeriodDays).toBeNull()
      const adminToken = yield* Harness.tokenFor({ role: "admin" })
      const badPeriod = yield* Harness.raw("PATCH", `/api/v1/programs/${closed.id}`, {
        token: adminToken,
        body: JSON.stringify({ proprietaryPeriodDays: -1 })
      })
      expect([badPeriod.status, JSON.stringify(badPeriod.json)]).toEqual([
        400,
        expect.stringContaining("a proprietary period is 0 to 36500 whole days")
      ])
      expect((yield* admin.catalog.getProgram({ path: { id: closed.id } })).proprietaryPeriodDays).toBeNull()
      expect((yield* refusal(admin.catalog.updateProgram({ path: { id: randomUUID() as any }, payload: { title: "x" } })))._tag).toBe(
        "NotFound"
      )

      const field = yield* admin.catalog.createSubProgram({ payload: { observingProgramId: open.id, name: "field-a", title: "Field A" } })
      yield* admin.catalog.createSubProgram({ payload: { observingProgramId: closed.id, name: "field-a" } })
      const before = yield* Harness.counts(catalogTables)
      const dup = yield* refusal(admin.catalog.createSubProgram({ payload: { observingProgramId: open.id, name: "field-a" } }))
      expect([dup._tag, dup.reason]).toEqual(["Conflict", "AlreadyExists"])
      const orphan = yield* refusal(admin.catalog.createSubProgram({ payload: { observingProgramId: randomUUID(), name: "field-b" } }))
      expect([orphan._tag, orphan.field]).toEqual(["Unprocessable", "observingProgramId"])
      const mode = yield* admin.catalog.createObservingMode({ payload: { name: `raster-${s}`, description: "raster map" } })
      const dupMode = yield* refusal(admin.catalog.createObservingMode({ payload: { name: `RASTER-${s}` } }))
      expect(dupMode._tag).toBe("Conflict")
      expect(yield* Harness.counts(catalogTables)).toEqual({ ...before, observing_mode: before.observing_mode + 1 })
      expect((yield* admin.catalog.getObservingMode({ path: { id: mode.id } })).name).toBe(`raster-${s}`)

      const scientist = yield* Harness.client(yield* Harness.tokenFor({ role: "scientist", programIds: [open.id] }))
      expect((yield* scientist.catalog.listPrograms()).map((p) => p.id)).toEqual([open.id])
      expect((yield* scientist.catalog.getProgram({ path: { id: open.id } })).proprietaryPeriodDays).toBe(365)
      expect((yield* refusal(scientist.catalog.getProgram({ path: { id: closed.id } })))._tag).toBe("NotFound")
      expect((yield* scientist.catalog.listSubPrograms({ urlParams: {} })).map((p) => p.id)).toEqual([field.id])
      expect((yield* scientist.catalog.getSubProgram({ path: { id: field.id } })).title).toBe("Field A")
      expect((yield* scientist.catalog.listObservingModes()).map((m) => m.id)).toContain(mode.id)
      const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
      expect((yield* operator.catalog.listSubPrograms({ urlParams: { programId: closed.id } })).map((p) => p.name)).toEqual(["field-a"])
    }))

  it.effect("module bands in Hz or metres, and ObsUnits linked to a Source, sub-program and mode; wrong links refused, changing nothing", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const admin = yield* Harness.client(yield* Harness.tokenFor({ role: "admin" }))
      const s = Fixtures.suffix()
      // 280 GHz ± 10%: the shortest wavelength is that of the highest frequency.
      const module = yield* admin.admin.createInstrumentModule({
        payload: {
          instrumentId: world.instrument.id,
          name: `280GHz-${s}`,
          band: { minHz: 252e9, maxHz: 308e9 },
          dataproductType: "timeseries",
          polStates: "/I/Q/U/",
          fovDeg: 1.3,
          resolutionArcsec: 23
        }
      })
      expect(module.emMin).toBeCloseTo(299_792_458 / 308e9, 12)
      expect(module.emMax).toBeCloseTo(299_792_458 / 252e9, 12)
      expect([module.dataproductType, module.rawCalibLevel, module.polStates, module.fovDeg]).toEqual(["timeseries", 0, "/I/Q/U/", 1.3])
      const updated = yield* admin.catalog.updateInstrumentModule({
        path: { id: world.modules[0].id },
        payload: { band: { emMin: 0.0008, emMax: 0.0012 }, rawCalibLevel: 1 }
      })
      expect([updated.emMin, updated.emMax, updated.rawCalibLevel]).toEqual([0.0008, 0.0012, 1])
      const before = yield* Harness.counts(catalogTables)
      const adminToken = yield* Harness.tokenFor({ role: "admin" })
      const patchModule = (body: unknown) =>
        Harness.raw("PATCH", `/api/v1/instrument-modules/${world.modules[0].id}`, { token: adminToken, body: JSON.stringify(body) })
      const inverted = yield* patchModule({ band: { emMin: 0.002, emMax: 0.001 } })
      expect([inverted.status, JSON.stringify(inverted.json)]).toEqual([400, expect.stringContaining("emMax must not be below emMin")])
      const badPol = yield* patchModule({ polStates: "I,Q" })
      expect([badPol.status, JSON.stringify(badPol.json)]).toEqual([400, expect.stringContaining("polStates is a list like /I/Q/U/")])
      const mixed = yield* patchModule({ band: { emMin: 0.001, maxHz: 3e11 } })
      expect(mixed.status).toBe(400)
      const zeroHz = yield* patchModule({ band: { minHz: 0, maxHz: 3e11 } })
      expect(zeroHz.status).toBe(400)
      expect((yield* admin.catalog.getInstrumentModule({ path: { id: world.modules[0].id } })).emMin).toBe(0.0008)
      const cleared = yield* admin.catalog.updateInstrumentModule({ path: { id: world.modules[1].id }, payload: { band: null } })
      expect([cleared.emMin, cleared.emMax]).toEqual([null, null])

      const source = yield* admin.catalog.createSource({ payload: { name: `Deep56 ${s}`, raDeg: 24.5, decDeg: -32.5 } })
      const mode = yield* admin.catalog.createObservingMode({ payload: { name: `otf-${s}` } })
      const sub = yield* admin.catalog.createSubProgram({ payload: { observingProgramId: world.program.id, name: `wide-${s}` } })
      const other = yield* admin.admin.createObservingProgram({ payload: { name: `other-${s}` } })
      const foreignSub = yield* admin.catalog.createSubProgram({ payload: { observingProgramId: other.id, name: "deep" } })
      const unit = yield* admin.admin.createObsUnit({
        payload: {
          observingProgramId: world.program.id,
          instrumentId: world.instrument.id,
          name: `d56-${s}`,
          sourceId: source.id,
          observingModeId: mode.id,
          subObservingProgramId: sub.id,
          configuration: { scanSpeedDegPerS: 1 }
        }
      })
      expect([unit.target, unit.sourceId, unit.observingModeId, unit.subObservingProgramId]).toEqual([
        `Deep56 ${s}`,
        source.id,
        mode.id,
        sub.id
      ])

      const mid = yield* Harness.counts(catalogTables)
      const create = (extra: Record<string, unknown>) =>
        refusal(
          admin.admin.createObsUnit({
            payload: { observingProgramId: world.program.id, instrumentId: world.instrument.id, name: `bad-${Fixtures.suffix()}`, ...extra }
          })
        )
      const unknownSource = yield* create({ sourceId: randomUUID() })
      expect([unknownSource._tag, unknownSource.field]).toEqual(["Unprocessable", "sourceId"])
      const unknownMode = yield* create({ observingModeId: randomUUID() })
      expect([unknownMode._tag, unknownMode.field]).toEqual(["Unprocessable", "observingModeId"])
      const wrongProgram = yield* create({ subObservingProgramId: foreignSub.id })
      expect([wrongProgram._tag, wrongProgram.field]).toEqual(["Unprocessable", "subObservingProgramId"])
      expect(wrongProgram.message).toContain("belongs to another observing program")
      const relink = yield* refusal(
        admin.catalog.updateObsUnit({ path: { id: unit.id }, payload: { subObservingProgramId: foreignSub.id } })
      )
      expect(relink.field).toBe("subObservingProgramId")
      expect(yield* Harness.counts(catalogTables)).toEqual(mid)
      expect(mid).toEqual({
        ...before,
        source: before.source + 1,
        observing_mode: before.observing_mode + 1,
        sub_observing_program: before.sub_observing_program + 2,
        observing_program: before.observing_program + 1,
        obs_unit: before.obs_unit + 1
      })

      // The Fixture's unit has only free text; linking it keeps the text.
      const linked = yield* admin.catalog.updateObsUnit({ path: { id: world.obsUnit.id }, payload: { sourceId: source.id } })
      expect([linked.target, linked.sourceId]).toEqual(["Deep56", source.id])
      const unlinked = yield* admin.catalog.updateObsUnit({ path: { id: world.obsUnit.id }, payload: { sourceId: null } })
      expect(unlinked.sourceId).toBeNull()
      const scientist = yield* Harness.client(yield* Harness.tokenFor({ role: "scientist", programIds: [world.program.id] }))
      expect((yield* scientist.catalog.getObsUnit({ path: { id: unit.id } })).sourceId).toBe(source.id)
      const stranger = yield* Harness.client(yield* Harness.tokenFor({ role: "scientist" }))
      expect((yield* refusal(stranger.catalog.getObsUnit({ path: { id: unit.id } })))._tag).toBe("NotFound")
      const instrument = yield* Harness.client(yield* Harness.tokenFor({ role: "instrument", instrumentIds: [world.instrument.id] }))
      expect((yield* instrument.catalog.listPrograms()).map((p) => p.id)).toContain(world.program.id)
    }))
})
