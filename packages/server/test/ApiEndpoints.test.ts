/**
 * Every endpoint of the contract called through the derived client against the real server:
 * reads with filters and cursor pagination, locations and availability, physical copies,
 * bundles and transfer attempts, staging, retries (checked transitions with their events),
 * tokens and the catalog. The last test checks that each endpoint of the contract was called.
 */
import { Api, Transitions } from "@ccat/core"
import { Fixtures } from "@ccat/core/testing"
import { it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { randomUUID } from "node:crypto"
import { expect } from "vitest"
import * as Harness from "./ApiHarness.js"

const called = new Set<string>()
const mark = (...names: Array<string>) => names.forEach((n) => called.add(n))

it.layer(Harness.layer(), { timeout: 60_000 })("every endpoint", (it) => {
  it.effect("observations and files: list with filters and cursor pages, get", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const instrument = yield* Harness.client(yield* Harness.tokenFor({ role: "instrument", instrumentIds: [world.instrument.id] }))
      const ids: Array<string> = []
      for (let i = 0; i < 5; i++) {
        const id = randomUUID()
        ids.push(id)
        yield* instrument.observations.file({
          payload: {
            id,
            obsUnitId: world.obsUnit.id,
            startAt: new Date(Date.UTC(2026, 4, 1, i)),
            endAt: new Date(Date.UTC(2026, 4, 1, i, 30)),
            quality: i === 0 ? "good" : "unassessed",
            sourceLocation: world.source.name,
            files: Array.from({ length: 3 }, (_, j) => ({
              id: randomUUID(),
              module: "280GHz",
              relativePath: `o${i}/f${j}.fits`,
              sizeBytes: j,
              checksum: Fixtures.checksum()
            }))
          }
        })
      }
      const open = randomUUID()
      yield* instrument.observations.file({ payload: { id: open, obsUnitId: world.obsUnit.id, startAt: new Date(Date.UTC(2026, 4, 2)) } })
      const added = yield* instrument.observations.addFiles({
        path: { id: open as any },
        payload: {
          sourceLocation: world.source.name,
          files: [{ id: randomUUID(), module: "350GHz", relativePath: "open/a.fits", sizeBytes: 5, checksum: Fixtures.checksum() }]
        }
      })
      expect(added.files[0].instrumentModuleId).toBe(world.modules[1].id)
      const closed = yield* instrument.observations.close({
        path: { id: open as any },
        payload: { endAt: new Date(Date.UTC(2026, 4, 2, 1)), status: "failed", quality: "bad" }
      })
      expect([closed.status, closed.quality]).toEqual(["failed", "bad"])
      const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
      const seen: Array<string> = []
      let cursor: string | undefined
      do {
        const page = yield* operator.observations.list({
          urlParams: { programId: world.program.id, limit: 2, ...(cursor ? { cursor } : {}) }
        })
        expect(page.items.length).toBeLessThanOrEqual(2)
        seen.push(...page.items.map((o) => o.id))
        cursor = page.nextCursor ?? undefined
      } while (cursor !== undefined)
      expect(seen).toEqual([...ids, open])
      expect(
        (yield* operator.observations.list({ urlParams: { quality: "good", instrumentId: world.instrument.id } })).items.map((o) => o.id)
      ).toEqual([ids[0]])
      expect((yield* operator.observations.list({ urlParams: { status: "failed", obsUnitId: world.obsUnit.id } })).items.map((o) => o.id))
        .toEqual([open])
      expect(
        (yield* operator.observations.list({
          urlParams: { obsUnitId: world.obsUnit.id, status: "completed", startFrom: new Date(Date.UTC(2026, 4, 1, 3)) }
        })).items
      ).toHaveLength(2)
      expect((yield* operator.observations.get({ path: { id: ids[2] as any } })).id).toBe(ids[2])

      const files: Array<string> = []
      cursor = undefined
      do {
        const filePage: { items: ReadonlyArray<{ id: string; executedObsUnitId: string }>; nextCursor: string | null } = yield* operator
          .files.list({ urlParams: { limit: 4, state: "filed", ...(cursor ? { cursor } : {}) } })
        files.push(...filePage.items.filter((f) => ids.includes(f.executedObsUnitId)).map((f) => f.id))
        cursor = filePage.nextCursor ?? undefined
      } while (cursor !== undefined)
      expect(new Set(files).size).toBe(15)
      const ofOne = yield* operator.files.list({ urlParams: { observationId: ids[1] as any, moduleId: world.modules[0].id } })
      // Files filed in one request share their filing time; the id orders them among themselves.
      expect(ofOne.items.map((f) => f.relativePath).sort()).toEqual(["o1/f0.fits", "o1/f1.fits", "o1/f2.fits"])
      expect((yield* operator.files.get({ path: { id: ofOne.items[0].id } })).relativePath).toBe(ofOne.items[0].relativePath)
      const bad = yield* Effect.either(operator.files.list({ urlParams: { cursor: "garbage" } }))
      expect(Either.isLeft(bad) && bad.left._tag === "Unprocessable" && bad.left.field).toBe("cursor")
      mark(
        "observations.file",
        "observations.addFiles",
        "observations.close",
        "observations.list",
        "observations.get",
        "files.list",
        "files.get"
      )
    }))

  it.effect("packages with their journey, bundles, transfer attempts and physical copies; retries", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const eou = yield* Fixtures.executedObsUnit(world).pipe(Effect.orDie)
      const pkg = yield* Fixtures.rawDataPackage(world, eou).pipe(Effect.orDie)
      const bundle = yield* Fixtures.dataTransferPackage([pkg]).pipe(Effect.orDie)
      const attempt = yield* Fixtures.dataTransfer(world, bundle).pipe(Effect.orDie)
      const copy = yield* Fixtures.physicalCopy(world.chileBuffer, pkg).pipe(Effect.orDie)
      const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
      const scientist = yield* Harness.client(yield* Harness.tokenFor({ role: "scientist", programIds: [world.program.id] }))

      const listed = yield* scientist.packages.list({ urlParams: { observationId: eou.id, journey: "WAITING" } })
      expect(listed.items.map((p) => [p.id, p.journey])).toEqual([[pkg.id, "WAITING"]])
      expect((yield* scientist.packages.list({ urlParams: { observationId: eou.id, journey: "FAILED" } })).items).toEqual([])
      expect((yield* scientist.packages.get({ path: { id: pkg.id } })).status).toBe("pending")
      expect((yield* operator.transfers.listBundles({ urlParams: { packageId: pkg.id } })).items.map((b) => b.packageIds)).toEqual([[
        pkg.id
      ]])
      expect((yield* operator.transfers.getBundle({ path: { id: bundle.id } })).packageIds).toEqual([pkg.id])
      expect(
        (yield* operator.transfers.listAttempts({ urlParams: { bundleId: bundle.id, locationId: world.cologneBuffer.id } })).items.map((
          a
        ) => a.id)
      ).toEqual([attempt.id])
      expect((yield* operator.transfers.getAttempt({ path: { id: attempt.id } })).adapter).toBe("bbcp")
      expect((yield* operator.locations.listCopies({ urlParams: { packageId: pkg.id, status: "PRESENT" } })).items.map((c) => c.id))
        .toEqual([copy.id])

      // Retry: refused while not failed, then failed → pending through Transitions, with its event.
      const early = yield* Effect.either(operator.operations.retry({ payload: { entity: "RawDataPackage", id: pkg.id } }))
      expect(Either.isLeft(early) && early.left._tag === "Conflict" && early.left.reason).toBe("StateConflict")
      yield* Transitions.transition({
        entity: "RawDataPackage",
        id: pkg.id,
        from: "pending",
        to: "failed",
        set: { errorMessage: "disk full" }
      }).pipe(Effect.orDie)
      expect((yield* operator.packages.get({ path: { id: pkg.id } })).journey).toBe("FAILED")
      const retried = yield* operator.operations.retry({ payload: { entity: "RawDataPackage", id: pkg.id, reason: "disk replaced" } })
      expect([retried.from, retried.to]).toEqual(["failed", "pending"])
      const after = yield* operator.packages.get({ path: { id: pkg.id } })
      expect([after.status, after.errorMessage]).toEqual(["pending", null])
      const sql = yield* SqlClient.SqlClient
      const events = yield* sql<
        { fromState: string; toState: string; actor: string }
      >`select from_state, to_state, actor from event_log where entity_id = ${pkg.id} order by id`.pipe(Effect.orDie)
      expect(events.at(-1)).toMatchObject({ fromState: "failed", toState: "pending" })
      expect(events.at(-1)!.actor).toMatch(/^operator-/)

      // A failed transfer attempt is final: its retry is a new attempt linked to it, once.
      yield* Transitions.transition({ entity: "DataTransfer", id: attempt.id, from: "pending", to: "failed" }).pipe(Effect.orDie)
      const again = yield* operator.operations.retry({ payload: { entity: "DataTransfer", id: attempt.id } })
      const next = yield* operator.transfers.getAttempt({ path: { id: again.newAttemptId as any } })
      expect([next.attempt, next.previousAttemptId, next.status]).toEqual([2, attempt.id, "pending"])
      const twice = yield* Effect.either(operator.operations.retry({ payload: { entity: "DataTransfer", id: attempt.id } }))
      expect(Either.isLeft(twice) && twice.left._tag).toBe("Conflict")
      const missing = yield* Effect.either(operator.operations.retry({ payload: { entity: "StagingRequest", id: randomUUID() } }))
      expect(Either.isLeft(missing) && missing.left._tag).toBe("NotFound")
      mark(
        "packages.list",
        "packages.get",
        "transfers.listBundles",
        "transfers.getBundle",
        "transfers.listAttempts",
        "transfers.getAttempt",
        "locations.listCopies",
        "operations.retry"
      )
    }))

  it.effect("sites and locations, availability flags; staging requests created and followed", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const eou = yield* Fixtures.executedObsUnit(world).pipe(Effect.orDie)
      const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
      const scientist = yield* Harness.client(yield* Harness.tokenFor({ role: "scientist", programIds: [world.program.id] }))
      expect((yield* scientist.locations.listSites()).map((s) => s.id)).toEqual(expect.arrayContaining([world.chile.id, world.cologne.id]))
      const locations = yield* scientist.locations.list({ urlParams: { siteId: world.cologne.id } })
      expect(locations.map((l) => l.type)).toEqual(expect.arrayContaining(["BUFFER", "LONG_TERM_ARCHIVE", "PROCESSING"]))
      expect(locations.every((l) => !("driverConfig" in l))).toBe(true)
      expect((yield* scientist.locations.list({ urlParams: { type: "SOURCE", siteId: world.chile.id } })).map((l) => l.id)).toEqual([
        world.source.id
      ])
      expect((yield* scientist.locations.get({ path: { id: world.archive.id } })).name).toBe(world.archive.name)
      const paused = yield* operator.locations.setAvailability({
        path: { id: world.chileBuffer.id },
        payload: { writable: false, reason: "disk swap" }
      })
      expect([paused.readable, paused.writable, paused.deletable]).toEqual([true, false, true])
      const resumed = yield* operator.locations.setAvailability({
        path: { id: world.chileBuffer.id },
        payload: { writable: true, deletable: false }
      })
      expect([resumed.writable, resumed.deletable]).toEqual([true, false])
      const nothing = yield* Effect.either(operator.locations.setAvailability({ path: { id: world.chileBuffer.id }, payload: {} }))
      expect(Either.isLeft(nothing) && nothing.left._tag).toBe("Unprocessable")

      const before = yield* Harness.counts()
      const wrongType = yield* Effect.either(
        scientist.staging.create({ payload: { location: world.archive.name, observationIds: [eou.id] } })
      )
      expect(Either.isLeft(wrongType) && wrongType.left._tag === "Unprocessable" && wrongType.left.reason).toBe("WrongLocationType")
      const unknown = yield* Effect.either(
        scientist.staging.create({ payload: { location: world.processing.name, observationIds: [randomUUID()] } })
      )
      expect(Either.isLeft(unknown) && unknown.left._tag === "Unprocessable" && unknown.left.field).toBe("observationIds[0]")
      const empty = yield* Effect.either(scientist.staging.create({ payload: { location: world.processing.name } }))
      expect(Either.isLeft(empty) && empty.left._tag).toBe("Unprocessable")
      expect(yield* Harness.counts()).toEqual(before)
      const request = yield* scientist.staging.create({ payload: { location: world.processing.name, observationIds: [eou.id] } })
      expect([request.status, request.items.map((i) => i.executedObsUnitId)]).toEqual(["pending", [eou.id]])
      expect((yield* scientist.staging.get({ path: { id: request.id } })).id).toBe(request.id)
      expect((yield* scientist.staging.list({ urlParams: { status: "pending" } })).items.map((r) => r.id)).toEqual([request.id])
      expect((yield* operator.staging.list({ urlParams: {} })).items.map((r) => r.id)).toContain(request.id)
      // Not staged yet: no files, and the page says why (StagingFiles.test.ts follows one to completion).
      const files = yield* scientist.staging.files({ path: { id: request.id }, urlParams: {} })
      expect([files.status, files.items, files.nextCursor]).toEqual(["pending", [], null])
      // Still being served: releasing it is refused (StagingRelease.test.ts releases served ones).
      const early = yield* Effect.either(scientist.staging.release({ path: { id: request.id } }))
      expect(Either.isLeft(early) && early.left._tag === "Conflict" && early.left.reason).toBe("StateConflict")
      expect((yield* scientist.staging.get({ path: { id: request.id } })).releasedAt).toBeNull()
      mark(
        "locations.listSites",
        "locations.list",
        "locations.get",
        "locations.setAvailability",
        "staging.create",
        "staging.get",
        "staging.list",
        "staging.files",
        "staging.release"
      )
    }))

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

  it.effect("status snapshot and an item's events (StatusApi.test.ts covers them in depth)", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const eou = yield* Fixtures.executedObsUnit(world).pipe(Effect.orDie)
      const pkg = yield* Fixtures.rawDataPackage(world, eou).pipe(Effect.orDie)
      const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
      const status = yield* operator.status.get({ urlParams: {} })
      expect(status.scope).toBe("full")
      expect(status.locations.map((l) => l.id)).toEqual(expect.arrayContaining([world.source.id, world.archive.id]))
      expect((yield* operator.status.events({ urlParams: { entity: "RawDataPackage", id: pkg.id } })).items.map((e) => e.toState)).toEqual([
        "pending"
      ])
      mark("status.get", "status.events")
    }))

  it.effect("integrity view (IntegrityApi.test.ts covers it in depth)", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
      const integrity = yield* operator.integrity.get({ urlParams: { belowTargetLimit: 10 } })
      expect(integrity.scope).toBe("full")
      expect(integrity.locations.map((l) => l.id)).toEqual(expect.arrayContaining([world.source.id, world.archive.id]))
      mark("integrity.get")
      // A package with no bad archive copy has nothing to repair (Repair.test.ts covers repairs).
      const eou = yield* Fixtures.executedObsUnit(world)
      const pkg = yield* Fixtures.rawDataPackage(world, eou)
      const nothing = yield* Effect.either(operator.packages.repair({ path: { id: pkg.id } }))
      expect(Either.isLeft(nothing) && nothing.left._tag).toBe("Conflict")
      mark("packages.repair")
      // Only a SOURCE copy found changed or gone is released by hand (SourcePathOwner.test.ts releases one).
      const copy = yield* Fixtures.physicalCopy(world.archive, pkg)
      const notSource = yield* Effect.either(operator.operations.releaseSourcePath({ path: { id: copy.id }, payload: { reason: "test" } }))
      expect(Either.isLeft(notSource) && notSource.left._tag === "Conflict" && notSource.left.message).toContain(
        "not a file's copy at its SOURCE location"
      )
      const missing = yield* Effect.either(
        operator.operations.releaseSourcePath({ path: { id: randomUUID() }, payload: { reason: "test" } })
      )
      expect(Either.isLeft(missing) && missing.left._tag).toBe("NotFound")
      mark("operations.releaseSourcePath")
      // Only a file packaging found corrupt or missing is rechecked or given up (FaultyFiles.test.ts settles some).
      const filed = yield* Fixtures.rawDataFile(world, eou)
      const notFaulty = yield* Effect.either(operator.operations.recheckFile({ path: { id: filed.id }, payload: {} }))
      expect(Either.isLeft(notFaulty) && notFaulty.left._tag === "Conflict" && notFaulty.left.message).toContain(
        "only a file packaging found corrupt or missing"
      )
      const unknown = yield* Effect.either(
        operator.operations.giveUpFile({ path: { id: randomUUID() }, payload: { reason: "test", lost: true } })
      )
      expect(Either.isLeft(unknown) && unknown.left._tag).toBe("NotFound")
      mark("operations.recheckFile", "operations.giveUpFile")
    }))

  it.effect("data products (science/DataProducts.test.ts files and archives them)", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const scientist = yield* Harness.client(yield* Harness.tokenFor({ role: "scientist", programIds: [world.program.id] }))
      const payload = {
        id: randomUUID(),
        name: `map ${randomUUID()}`,
        pipeline: "mapmaker",
        pipelineVersion: "1.0",
        calibLevel: 2 as const,
        dataproductType: "image" as const,
        location: world.archive.name,
        inputs: [{ observationId: randomUUID() }],
        files: [{ id: randomUUID(), relativePath: "map.fits", sizeBytes: 1, checksum: Fixtures.checksum() }]
      }
      const wrongLocation = yield* Effect.either(scientist.dataProducts.file({ payload }))
      expect(Either.isLeft(wrongLocation) && wrongLocation.left._tag === "Unprocessable" && wrongLocation.left.message).toContain(
        "PROCESSING"
      )
      const unknown = yield* Effect.either(scientist.dataProducts.get({ path: { id: payload.id } }))
      expect(Either.isLeft(unknown) && unknown.left._tag).toBe("NotFound")
      const listed = yield* scientist.dataProducts.list({ urlParams: { programId: world.program.id, calibLevel: 2, limit: 10 } })
      expect(listed).toEqual({ items: [], nextCursor: null })
      const badCursor = yield* Effect.either(scientist.dataProducts.list({ urlParams: { cursor: "not-ours" } }))
      expect(Either.isLeft(badCursor) && badCursor.left._tag).toBe("Unprocessable")
      mark("dataProducts.file", "dataProducts.get", "dataProducts.list")
    }))

  it.effect("each endpoint of the contract was called above", () =>
    Effect.sync(() => {
      const all = Object.values(Api.Api.groups).flatMap((g) => Object.keys(g.endpoints).map((e) => `${g.identifier}.${e}`))
      expect(all.filter((e) => !called.has(e))).toEqual([])
    }))
})
