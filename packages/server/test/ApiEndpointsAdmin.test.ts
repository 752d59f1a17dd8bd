/**
 * Every endpoint of the administration groups of the contract called through the derived client
 * against the real server: the catalog, accounts, grants and tokens, the science catalog, health,
 * readiness and the API's documents. The last test checks that each endpoint of these groups was
 * called.
 */
import { Fixtures } from "@ccat/core/testing"
import { it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { randomUUID } from "node:crypto"
import { expect } from "vitest"
import * as EndpointGroups from "./ApiEndpointGroups.js"
import * as Harness from "./ApiHarness.js"

const { mark, missed } = EndpointGroups.calls(EndpointGroups.adminGroups)

it.layer(Harness.layer(), { timeout: 60_000 })("every administration endpoint", (it) => {
  it.effect("the catalog, accounts, grants and tokens, administered through the API", () =>
    Effect.gen(function* () {
      const admin = yield* Harness.client(yield* Harness.tokenFor({ role: "admin" }))
      const observatory = yield* admin.admin.createObservatory({ payload: { name: `Obs ${randomUUID()}` } })
      const telescope = yield* admin.admin.createTelescope({ payload: { observatoryId: observatory.id, name: "FYST" } })
      const instrument = yield* admin.admin.createInstrument({ payload: { telescopeId: telescope.id, name: "CHAI" } })
      const module = yield* admin.admin.createInstrumentModule({ payload: { instrumentId: instrument.id, name: "LFA" } })
      const program = yield* admin.admin.createObservingProgram({ payload: { name: `prog-${randomUUID()}` } })
      const obsUnit = yield* admin.admin.createObsUnit({
        payload: { observingProgramId: program.id, instrumentId: instrument.id, name: "scan", target: "Orion" }
      })
      const taken = yield* Effect.either(admin.admin.createInstrument({ payload: { telescopeId: telescope.id, name: "CHAI" } }))
      expect(Either.isLeft(taken) && taken.left._tag === "Conflict" && taken.left.reason).toBe("AlreadyExists")
      const orphan = yield* Effect.either(admin.admin.createTelescope({ payload: { observatoryId: randomUUID(), name: "X" } }))
      expect(Either.isLeft(orphan) && orphan.left._tag === "Unprocessable" && orphan.left.field).toBe("observatoryId")
      expect((yield* admin.admin.listInstruments()).map((i) => i.id)).toContain(instrument.id)
      expect((yield* admin.admin.listInstrumentModules({ urlParams: { instrumentId: instrument.id } })).map((m) => m.id)).toEqual([
        module.id
      ])

      const name = `chai-${Fixtures.suffix()}`
      yield* admin.admin.createAccount({ payload: { name, displayName: "CHAI computer", role: "instrument" } })
      expect((yield* admin.admin.listAccounts()).map((a) => a.name)).toContain(name)
      yield* admin.admin.grant({ payload: { account: name, instrumentId: instrument.id } })
      yield* admin.admin.grant({ payload: { account: name, instrumentId: instrument.id } })
      const wrongGrant = yield* Effect.either(admin.admin.grant({ payload: { account: name, programId: program.id } }))
      expect(Either.isLeft(wrongGrant) && wrongGrant.left._tag).toBe("Unprocessable")
      const created = yield* admin.tokens.create({ payload: { account: name, label: "CHAI DAQ" } })
      expect(created.token).toMatch(/^ccat_[A-Za-z0-9]+_[A-Za-z0-9]+$/)
      expect(created.info.account).toBe(name)

      const chai = yield* Harness.client(created.token)
      const me = yield* chai.tokens.whoami()
      expect([me.account, me.role, me.instrumentIds]).toEqual([name, "instrument", [instrument.id]])
      expect((yield* chai.admin.listObsUnits({ urlParams: {} })).map((u) => u.id)).toEqual([obsUnit.id])
      const listed = yield* admin.tokens.list({ urlParams: { account: name } })
      expect(listed.map((t) => [t.id, t.label, t.revokedAt])).toEqual([[created.info.id, "CHAI DAQ", null]])
      expect(JSON.stringify(listed)).not.toContain(created.token.split("_")[2])
      const revoked = yield* admin.tokens.revoke({ path: { id: created.info.id } })
      expect(revoked.revokedAt).not.toBeNull()
      const refused = yield* Effect.either(chai.tokens.whoami())
      expect(Either.isLeft(refused) && refused.left._tag === "Unauthorized" && refused.left.reason).toBe("Revoked")
      const noAccount = yield* Effect.either(admin.tokens.create({ payload: { account: "nobody-here" } }))
      expect(Either.isLeft(noAccount) && noAccount.left._tag).toBe("Unprocessable")
      const noToken = yield* Effect.either(admin.tokens.revoke({ path: { id: randomUUID() as any } }))
      expect(Either.isLeft(noToken) && noToken.left._tag).toBe("NotFound")
      // taking access back (AccessRevocation.test.ts covers it in depth)
      const access = yield* admin.admin.listAccess()
      expect(access.find((a) => a.account === name)?.instruments.map((i) => i.id)).toEqual([instrument.id])
      expect((yield* admin.admin.revokeGrant({ urlParams: { account: name, instrumentId: instrument.id } })).revoked).toBe(true)
      expect((yield* admin.admin.updateAccount({ path: { name }, payload: { active: false } })).active).toBe(false)
      mark("admin.listAccess", "admin.revokeGrant", "admin.updateAccount")
      mark(
        "admin.createObservatory",
        "admin.createTelescope",
        "admin.createInstrument",
        "admin.createInstrumentModule",
        "admin.createObservingProgram",
        "admin.createObsUnit",
        "admin.listInstruments",
        "admin.listInstrumentModules",
        "admin.listObsUnits",
        "admin.createAccount",
        "admin.listAccounts",
        "admin.grant",
        "tokens.create",
        "tokens.whoami",
        "tokens.list",
        "tokens.revoke"
      )
    }))

  it.effect("the science catalog: sources, modes, programs, sub-programs, module bands, ObsUnit links, ObsCore's publisher", () =>
    Effect.gen(function* () {
      // Catalog.test.ts and ObsCoreView.test.ts cover these in depth.
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const admin = yield* Harness.client(yield* Harness.tokenFor({ role: "admin" }))
      const s = Fixtures.suffix()
      const source = yield* admin.catalog.createSource({ payload: { name: `M87 ${s}`, raDeg: 187.7059, decDeg: 12.3911 } })
      expect((yield* admin.catalog.getSource({ path: { id: source.id } })).decDeg).toBe(12.3911)
      expect((yield* admin.catalog.listSources({ urlParams: { name: `m87 ${s}` } })).items).toHaveLength(1)
      const mode = yield* admin.catalog.createObservingMode({ payload: { name: `pointing-${s}` } })
      expect((yield* admin.catalog.getObservingMode({ path: { id: mode.id } })).id).toBe(mode.id)
      expect((yield* admin.catalog.listObservingModes()).map((m) => m.id)).toContain(mode.id)
      expect((yield* admin.catalog.listPrograms()).map((p) => p.id)).toContain(world.program.id)
      expect(
        (yield* admin.catalog.updateProgram({ path: { id: world.program.id }, payload: { proprietaryPeriodDays: 365 } }))
          .proprietaryPeriodDays
      ).toBe(365)
      expect((yield* admin.catalog.getProgram({ path: { id: world.program.id } })).proprietaryPeriodDays).toBe(365)
      const sub = yield* admin.catalog.createSubProgram({ payload: { observingProgramId: world.program.id, name: "wide" } })
      expect((yield* admin.catalog.getSubProgram({ path: { id: sub.id } })).name).toBe("wide")
      expect((yield* admin.catalog.listSubPrograms({ urlParams: { programId: world.program.id } })).map((p) => p.id)).toEqual([sub.id])
      expect(
        (yield* admin.catalog.updateInstrumentModule({
          path: { id: world.modules[0].id },
          payload: { band: { minHz: 250e9, maxHz: 310e9 } }
        })).emMin
      ).toBeCloseTo(0.000967, 6)
      expect((yield* admin.catalog.getInstrumentModule({ path: { id: world.modules[0].id } })).emMax).toBeCloseTo(0.0011992, 6)
      const linked = yield* admin.catalog.updateObsUnit({
        path: { id: world.obsUnit.id },
        payload: { sourceId: source.id, observingModeId: mode.id, subObservingProgramId: sub.id }
      })
      expect((yield* admin.catalog.getObsUnit({ path: { id: linked.id } })).sourceId).toBe(source.id)
      const publisher = yield* admin.catalog.updatePublisher({ payload: { collection: "CCAT" } })
      expect(yield* admin.catalog.getPublisher()).toEqual(publisher)
      mark(
        "catalog.createSource",
        "catalog.getSource",
        "catalog.listSources",
        "catalog.createObservingMode",
        "catalog.getObservingMode",
        "catalog.listObservingModes",
        "catalog.listPrograms",
        "catalog.updateProgram",
        "catalog.getProgram",
        "catalog.createSubProgram",
        "catalog.getSubProgram",
        "catalog.listSubPrograms",
        "catalog.updateInstrumentModule",
        "catalog.getInstrumentModule",
        "catalog.updateObsUnit",
        "catalog.getObsUnit",
        "catalog.updatePublisher",
        "catalog.getPublisher"
      )
    }))

  it.effect("health, readiness, the OpenAPI document and the docs page", () =>
    Effect.gen(function* () {
      const client = yield* Harness.client()
      expect((yield* client.system.health()).status).toBe("ok")
      expect((yield* client.system.ready()).ready).toBe(true)
      const openapi = yield* Harness.raw("GET", "/api/v1/openapi.json")
      expect(openapi.status).toBe(200)
      expect(Object.keys(openapi.json.paths)).toEqual(
        expect.arrayContaining(["/api/v1/observations", "/api/v1/observations/{id}/files", "/api/v1/tokens"])
      )
      expect(openapi.json.paths["/api/v1/observations"].post.description).toContain("Roles: instrument, admin.")
      const docs = yield* Harness.raw("GET", "/api/v1/docs")
      expect(docs.status).toBe(200)
      expect(docs.json).toContain("<h1>CCAT Data Center API</h1>")
      expect(docs.json).toContain("/api/v1/observations/{id}/close")
      expect(docs.json).not.toMatch(/<script[^>]+src=|<link[^>]+href="http/)
      mark("system.health", "system.ready")
    }))

  it.effect("each endpoint of these groups was called above, and each group of the contract is one endpoint file's", () =>
    Effect.sync(() => {
      expect(missed()).toEqual({ endpoints: [], groups: [] })
    }))
})
