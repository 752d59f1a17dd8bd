import { assert, describe, it } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Accounts from "../src/Accounts.js"
import * as Repositories from "../src/Repositories.js"
import * as Status from "../src/Status.js"
import * as Storage from "../src/Storage.js"
import * as Fixtures from "../src/testing/Fixtures.js"
import * as TestDatabase from "../src/testing/TestDatabase.js"

/** Inserts nothing; reads a row back by id and checks it equals what the insert returned. */
const roundTrip = <A extends { readonly id: unknown }>(repo: Repositories.Repository<any>, row: A) =>
  Effect.gen(function* () {
    const found = yield* repo.findById(row.id as never)
    assert.isTrue(Option.isSome(found), `${repo.table} row is found by id`)
    assert.deepStrictEqual(Option.getOrThrow(found), row, `${repo.table} row reads back as written`)
  })

describe("ops-db entities", () => {
  it.layer(TestDatabase.layer)((it) => {
    it.effect("write and read every entity", () =>
      Effect.gen(function* () {
        const w = yield* Fixtures.world
        for (
          const [repo, row] of [
            [Repositories.observatories, w.observatory],
            [Repositories.telescopes, w.telescope],
            [Repositories.instruments, w.instrument],
            [Repositories.instrumentModules, w.modules[0]],
            [Repositories.observingPrograms, w.program],
            [Repositories.obsUnits, w.obsUnit],
            [Repositories.sites, w.chile],
            [Repositories.dataLocations, w.archive],
            [Repositories.accounts, w.scientist]
          ] as const
        ) {
          yield* roundTrip(repo, row)
        }
        assert.deepStrictEqual(w.obsUnit.configuration, { scan: "raster" })
        assert.deepStrictEqual(w.source.driverConfig, { root: `/data/${w.source.name}` })

        const eou = yield* Fixtures.executedObsUnit(w)
        yield* roundTrip(Repositories.executedObsUnits, eou)
        assert.deepStrictEqual(eou.conditions, { pwvMm: 0.6 })
        assert.isTrue(DateTime.isDateTime(eou.startAt))

        const file = yield* Fixtures.rawDataFile(w, eou)
        yield* roundTrip(Repositories.rawDataFiles, file)
        assert.strictEqual(file.state, "filed", "a file starts filed")
        assert.isNull(file.rawDataPackageId)
        assert.lengthOf(yield* Repositories.rawDataFiles.listBy("executedObsUnitId", eou.id), 1)

        const pkg = yield* Fixtures.rawDataPackage(w, eou)
        yield* roundTrip(Repositories.rawDataPackages, pkg)
        assert.strictEqual(pkg.status, "pending")
        assert.strictEqual(Status.journey(pkg.status), "WAITING")
        const [created] = yield* Repositories.eventLog.listBy("entityId", pkg.id)
        assert.deepStrictEqual(
          [created.entityKind, created.fromState, created.toState, created.actor],
          ["RawDataPackage", null, "pending", "system"],
          "creating a stateful row records its creation event"
        )

        const bundle = yield* Fixtures.dataTransferPackage([pkg])
        yield* roundTrip(Repositories.dataTransferPackages, bundle)
        const members = yield* Repositories.dataTransferPackageMembers.listBy("dataTransferPackageId", bundle.id)
        assert.deepStrictEqual(members.map((m) => m.rawDataPackageId), [pkg.id])

        const route = yield* Repositories.routes.insert({
          fromSiteId: w.chile.id,
          toSiteId: w.cologne.id,
          viaSiteId: null,
          adapter: "bbcp",
          options: { streams: 8 },
          priority: 0
        })
        yield* roundTrip(Repositories.routes, route)
        assert.isFalse(route.isRelay)

        const attempt1 = yield* Fixtures.dataTransfer(w, bundle)
        yield* roundTrip(Repositories.dataTransfers, attempt1)
        assert.strictEqual(attempt1.bytesTransferred, 0)
        const attempt2 = yield* Repositories.dataTransfers.insert({
          dataTransferPackageId: bundle.id,
          rawDataPackageId: null,
          routeId: route.id,
          fromLocationId: w.chileBuffer.id,
          toLocationId: w.cologneBuffer.id,
          previousAttemptId: attempt1.id,
          attempt: 2,
          adapter: "bbcp"
        })
        assert.strictEqual(attempt2.previousAttemptId, attempt1.id)

        const copy = yield* Fixtures.physicalCopy(w.archive, pkg)
        yield* roundTrip(Repositories.physicalCopies, copy)
        const fileCopy = yield* Repositories.physicalCopies.insert({
          rawDataFileId: file.id,
          rawDataPackageId: null,
          dataTransferPackageId: null,
          dataLocationId: w.source.id,
          path: file.relativePath,
          sizeBytes: file.sizeBytes,
          checksum: file.checksum,
          status: "PRESENT",
          verifiedAt: null
        })
        yield* roundTrip(Repositories.physicalCopies, fileCopy)

        const policy = yield* Repositories.retentionPolicies.insert({
          dataLocationId: w.chileBuffer.id,
          minAgeSeconds: 7 * 86400,
          diskUsageThreshold: 0.8,
          requiredArchiveCopies: 2
        })
        yield* roundTrip(Repositories.retentionPolicies, policy)

        const staging = yield* Repositories.stagingRequests.insert({
          accountId: w.scientist.id,
          dataLocationId: w.processing.id,
          expiresAt: DateTime.unsafeMake("2026-06-01T00:00:00Z")
        })
        yield* roundTrip(Repositories.stagingRequests, staging)
        const item = yield* Repositories.stagingRequestItems.insert({
          stagingRequestId: staging.id,
          rawDataPackageId: pkg.id,
          executedObsUnitId: null
        })
        yield* roundTrip(Repositories.stagingRequestItems, item)

        const token = yield* Accounts.generateToken
        const stored = yield* Repositories.apiTokens.insert({
          accountId: w.scientist.id,
          label: "laptop",
          prefix: token.prefix,
          secretSha256: token.secretSha256,
          expiresAt: null,
          revokedAt: null,
          lastUsedAt: null
        })
        yield* roundTrip(Repositories.apiTokens, stored)
        const presented = Accounts.parseToken(token.token)
        assert.isDefined(presented)
        const [byPrefix] = yield* Repositories.apiTokens.listBy("prefix", presented!.prefix)
        assert.strictEqual(yield* Accounts.hashSecret(presented!.secret), byPrefix.secretSha256)
        assert.notInclude(JSON.stringify(Schema.encodeSync(Accounts.ApiToken.json)(stored)), token.secretSha256)

        yield* Repositories.programAccess.insert({ accountId: w.scientist.id, observingProgramId: w.program.id })
        yield* Repositories.instrumentAccess.insert({ accountId: w.scientist.id, instrumentId: w.instrument.id })
        assert.lengthOf(yield* Repositories.programAccess.listBy("accountId", w.scientist.id), 1)
        assert.lengthOf(yield* Repositories.instrumentAccess.listBy("accountId", w.scientist.id), 1)

        // JSON variant for the API: timestamps as ISO strings
        const json = Schema.encodeSync(Storage.PhysicalCopy.json)(copy)
        assert.isString(json.createdAt)
      }))
  })
})
