/**
 * Every denial the API makes, proved against the real server: 401 for each way a token can be
 * unusable, 403 for every endpoint and every role it does not declare (read from the contract
 * itself, so a new endpoint is covered the day it is added), 403 for filing another instrument's
 * data, and 403/404 for another program's data.
 */
import { Api, ApiSecurity } from "@ccat/core"
import { Fixtures } from "@ccat/core/testing"
import type * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import { it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { randomBytes, randomUUID } from "node:crypto"
import { expect } from "vitest"
import * as Tokens from "../src/auth/Tokens.js"
import * as Harness from "./ApiHarness.js"

const roles = ["instrument", "scientist", "operator", "admin"] as const

const endpoints = Object.values(Api.Api.groups).flatMap((g) =>
  (Object.values(g.endpoints) as Array<HttpApiEndpoint.HttpApiEndpoint.AnyWithProps>).map((e) => ({
    group: g.identifier,
    endpoint: e,
    roles: ApiSecurity.rolesOf(e)
  }))
)
const secured = endpoints.filter((e) => e.roles !== undefined)
const concrete = (path: string) => path.replace(/:[A-Za-z]+/g, randomUUID())

it.layer(Harness.layer(), { timeout: 60_000 })("authentication and roles", (it) => {
  it.effect("every endpoint but health and readiness declares its roles", () =>
    Effect.sync(() => {
      expect(endpoints.filter((e) => e.roles === undefined).map((e) => `${e.group}.${e.endpoint.name}`)).toEqual([
        "system.health",
        "system.ready"
      ])
      expect(secured.length).toBeGreaterThan(30)
    }))

  it.effect("401 without a token, with a malformed, unknown, revoked or expired token, and for a disabled account, on every secured endpoint", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const revokedAccount = yield* Tokens.ensureAccount({ name: `rev-${Fixtures.suffix()}`, role: "admin" }).pipe(Effect.orDie)
      const revoked = yield* Tokens.issue({ accountId: revokedAccount.id }).pipe(Effect.orDie)
      yield* Tokens.revoke(revoked.info.id).pipe(Effect.orDie)
      const expired = yield* Tokens.issue({ accountId: revokedAccount.id, expiresAt: new Date(Date.now() - 1000) }).pipe(Effect.orDie)
      const disabledAccount = yield* Tokens.ensureAccount({ name: `off-${Fixtures.suffix()}`, role: "admin" }).pipe(Effect.orDie)
      const disabled = yield* Tokens.issue({ accountId: disabledAccount.id }).pipe(Effect.orDie)
      yield* sql`update account set active = false where id = ${disabledAccount.id}`.pipe(Effect.orDie)
      const unknown = `ccat_${revoked.info.prefix.slice(0, 4)}ZZZZZZZZ_${randomBytes(20).toString("hex")}`
      const wrongSecret = `ccat_${disabled.info.prefix}_${"A".repeat(40)}`
      const cases: Array<[string | undefined, string]> = [
        [undefined, "MissingToken"],
        ["not-a-token", "MalformedToken"],
        [unknown, "UnknownToken"],
        [wrongSecret, "UnknownToken"],
        [revoked.token, "Revoked"],
        [expired.token, "Expired"],
        [disabled.token, "AccountDisabled"]
      ]
      for (const e of secured) {
        for (const [token, reason] of cases) {
          const r = yield* Harness.raw(e.endpoint.method, concrete(e.endpoint.path), {
            token,
            body: e.endpoint.method === "GET" || e.endpoint.method === "DELETE" ? undefined : "{}"
          })
          expect([e.endpoint.path, r.status, r.json?._tag, r.json?.reason]).toEqual([e.endpoint.path, 401, "Unauthorized", reason])
        }
      }
    }))

  it.effect("403 for every role an endpoint does not declare, before the body is read", () =>
    Effect.gen(function* () {
      const tokens = Object.fromEntries(
        yield* Effect.forEach(roles, (role) => Effect.map(Harness.tokenFor({ role }), (t) => [role, t] as const))
      )
      let denials = 0
      for (const e of secured) {
        for (const role of roles.filter((r) => !e.roles!.includes(r))) {
          const r = yield* Harness.raw(e.endpoint.method, concrete(e.endpoint.path), {
            token: tokens[role],
            body: e.endpoint.method === "GET" || e.endpoint.method === "DELETE" ? undefined : "not even json"
          })
          expect([`${e.group}.${e.endpoint.name}`, role, r.status, r.json?._tag, r.json?.reason]).toEqual([
            `${e.group}.${e.endpoint.name}`,
            role,
            403,
            "Forbidden",
            "Role"
          ])
          expect(r.json.allowedRoles).toEqual(e.roles)
          denials++
        }
      }
      expect(denials).toBeGreaterThan(40)
    }))

  it.effect("an instrument account cannot file, add to or close another instrument's observations, nor see them", () =>
    Effect.gen(function* () {
      const mine = yield* Fixtures.world.pipe(Effect.orDie)
      const theirs = yield* Fixtures.world.pipe(Effect.orDie)
      const theirObservation = yield* Fixtures.executedObsUnit(theirs).pipe(Effect.orDie)
      const theirFile = yield* Fixtures.rawDataFile(theirs, theirObservation).pipe(Effect.orDie)
      const client = yield* Harness.client(yield* Harness.tokenFor({ role: "instrument", instrumentIds: [mine.instrument.id] }))
      const before = yield* Harness.counts()
      const file = yield* Effect.either(
        client.observations.file({ payload: { id: randomUUID(), obsUnitId: theirs.obsUnit.id, startAt: new Date() } })
      )
      expect(Either.isLeft(file) && file.left._tag === "Forbidden" && file.left.reason).toBe("Instrument")
      // Their observation's id under my own ObsUnit: refused for the stored observation's
      // instrument before anything is compared, so no differing field tells what they filed.
      const probe = yield* Effect.either(
        client.observations.file({ payload: { id: theirObservation.id, obsUnitId: mine.obsUnit.id, startAt: new Date() } })
      )
      expect(Either.isLeft(probe) && probe.left._tag === "Forbidden" && probe.left.reason).toBe("Instrument")
      expect(JSON.stringify(Either.isLeft(probe) ? probe.left : {})).not.toMatch(/startAt|obsUnitId|fields/)
      const files = [{ id: randomUUID(), module: "280GHz", relativePath: "x.fits", sizeBytes: 1, checksum: Fixtures.checksum() }]
      const add = yield* Effect.either(
        client.observations.addFiles({ path: { id: theirObservation.id }, payload: { sourceLocation: theirs.source.name, files } })
      )
      expect(Either.isLeft(add) && add.left._tag === "Forbidden" && add.left.reason).toBe("Instrument")
      const close = yield* Effect.either(
        client.observations.close({ path: { id: theirObservation.id }, payload: { endAt: new Date(), status: "completed" } })
      )
      expect(Either.isLeft(close) && close.left._tag).toBe("Forbidden")
      expect(yield* Harness.counts()).toEqual(before)
      const get = yield* Effect.either(client.observations.get({ path: { id: theirObservation.id } }))
      expect(Either.isLeft(get) && get.left._tag).toBe("NotFound")
      const getFile = yield* Effect.either(client.files.get({ path: { id: theirFile.id } }))
      expect(Either.isLeft(getFile) && getFile.left._tag).toBe("NotFound")
      const list = yield* client.observations.list({ urlParams: {} })
      expect(list.items.map((o) => o.id)).not.toContain(theirObservation.id)
      // An instrument account with no grant files nothing at all.
      const ungranted = yield* Harness.client(yield* Harness.tokenFor({ role: "instrument" }))
      const none = yield* Effect.either(
        ungranted.observations.file({ payload: { id: randomUUID(), obsUnitId: mine.obsUnit.id, startAt: new Date() } })
      )
      expect(Either.isLeft(none) && none.left._tag).toBe("Forbidden")
    }))

  it.effect("a scientist sees and stages only its programs' data: 404 on reads, 403 on staging, own staging requests only", () =>
    Effect.gen(function* () {
      const mine = yield* Fixtures.world.pipe(Effect.orDie)
      const theirs = yield* Fixtures.world.pipe(Effect.orDie)
      const myObservation = yield* Fixtures.executedObsUnit(mine).pipe(Effect.orDie)
      const theirObservation = yield* Fixtures.executedObsUnit(theirs).pipe(Effect.orDie)
      const theirPackage = yield* Fixtures.rawDataPackage(theirs, theirObservation).pipe(Effect.orDie)
      const scientist = yield* Harness.client(yield* Harness.tokenFor({ role: "scientist", programIds: [mine.program.id] }))
      const other = yield* Harness.client(yield* Harness.tokenFor({ role: "scientist", programIds: [mine.program.id] }))
      expect((yield* scientist.observations.get({ path: { id: myObservation.id } })).id).toBe(myObservation.id)
      const get = yield* Effect.either(scientist.observations.get({ path: { id: theirObservation.id } }))
      expect(Either.isLeft(get) && get.left._tag).toBe("NotFound")
      const pkg = yield* Effect.either(scientist.packages.get({ path: { id: theirPackage.id } }))
      expect(Either.isLeft(pkg) && pkg.left._tag).toBe("NotFound")
      const listed = yield* scientist.observations.list({ urlParams: {} })
      expect(listed.items.map((o) => o.id)).toEqual([myObservation.id])
      const before = yield* Harness.counts()
      const stage = yield* Effect.either(
        scientist.staging.create({ payload: { location: theirs.processing.name, observationIds: [theirObservation.id] } })
      )
      expect(Either.isLeft(stage) && stage.left._tag === "Forbidden" && stage.left.reason).toBe("Program")
      const stagePkg = yield* Effect.either(
        scientist.staging.create({ payload: { location: mine.processing.name, packageIds: [theirPackage.id] } })
      )
      expect(Either.isLeft(stagePkg) && stagePkg.left._tag).toBe("Forbidden")
      expect(yield* Harness.counts()).toEqual(before)
      const request = yield* scientist.staging.create({ payload: { location: mine.processing.name, observationIds: [myObservation.id] } })
      const peek = yield* Effect.either(other.staging.get({ path: { id: request.id } }))
      expect(Either.isLeft(peek) && peek.left._tag).toBe("NotFound")
      expect((yield* other.staging.list({ urlParams: {} })).items).toEqual([])
    }))
})
