/**
 * Every endpoint of the data groups of the contract called through the derived client against
 * the real server: observations and files with filters and cursor pagination, packages, bundles
 * and transfer attempts, locations and availability, physical copies, staging, retries (checked
 * transitions with their events), status, integrity and data products. The last test checks that
 * each endpoint of these groups was called.
 */
import { Repositories, Transitions } from "@ccat/core"
import { Fixtures } from "@ccat/core/testing"
import { it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { randomUUID } from "node:crypto"
import { expect } from "vitest"
import * as EndpointGroups from "./ApiEndpointGroups.js"
import * as Harness from "./ApiHarness.js"

const { mark, missed } = EndpointGroups.calls(EndpointGroups.dataGroups)

it.layer(Harness.layer(), { timeout: 60_000 })("every data endpoint", (it) => {
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

  it.effect("transfer attempts of a location: those from it and those to it, in one page order across pages", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const eou = yield* Fixtures.executedObsUnit(world).pipe(Effect.orDie)
      const pkg = yield* Fixtures.rawDataPackage(world, eou).pipe(Effect.orDie)
      const bundle = yield* Fixtures.dataTransferPackage([pkg]).pipe(Effect.orDie)
      const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
      const attempt = (previous: { readonly id: string; readonly attempt: number } | undefined, from: string, to: string) =>
        Repositories.dataTransfers.insert({
          dataTransferPackageId: bundle.id,
          rawDataPackageId: null,
          routeId: null,
          fromLocationId: from as never,
          toLocationId: to as never,
          previousAttemptId: (previous?.id ?? null) as never,
          attempt: (previous?.attempt ?? 0) + 1,
          adapter: "rsync"
        }).pipe(Effect.orDie)
      // out to Cologne, back to Chile, out again: Cologne's buffer is the end of the first and
      // third and the start of the second
      const first = yield* attempt(undefined, world.chileBuffer.id, world.cologneBuffer.id)
      const second = yield* attempt(first, world.cologneBuffer.id, world.chileBuffer.id)
      const made = [first, second, yield* attempt(second, world.chileBuffer.id, world.cologneBuffer.id)]
      const all = (locationId: string) =>
        Effect.gen(function* () {
          const seen: Array<string> = []
          let cursor: string | undefined
          for (let i = 0; i < 10; i++) {
            const page = yield* operator.transfers.listAttempts({
              urlParams: { bundleId: bundle.id, locationId: locationId as never, limit: 1, cursor }
            })
            seen.push(...page.items.map((a) => a.id))
            if (page.nextCursor === null) return seen
            cursor = page.nextCursor
          }
          return seen
        })
      expect(yield* all(world.cologneBuffer.id)).toEqual(made.map((a) => a.id))
      expect(yield* all(world.chileBuffer.id)).toEqual(made.map((a) => a.id))
      expect(yield* all(world.archive.id)).toEqual([])
      const outOnly = yield* operator.transfers.listAttempts({ urlParams: { locationId: world.cologneBuffer.id, status: "failed" } })
      expect(outOnly.items).toEqual([])
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

  it.effect("each endpoint of these groups was called above, and each group of the contract is one endpoint file's", () =>
    Effect.sync(() => {
      expect(missed()).toEqual({ endpoints: [], groups: [] })
    }))
})
