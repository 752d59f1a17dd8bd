/**
 * Taking access back through the API, against the real server and ops-db: an account disabled
 * and enabled, a grant taken back, the last admin kept, who can do what listed, tokens created
 * with the default lifetime or none, and every change in the event log with who made it, in the
 * same transaction as the change.
 */
import { Fixtures } from "@ccat/core/testing"
import { it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import { expect } from "vitest"
import * as Tokens from "../src/auth/Tokens.js"
import * as Harness from "./ApiHarness.js"

const sha = () => `sha256:${createHash("sha256").update(randomBytes(16)).digest("hex")}`

/** A one-file filing for the fixture world's instrument. */
const filing = (world: Fixtures.World) => ({
  id: randomUUID(),
  obsUnitId: world.obsUnit.id,
  startAt: new Date("2026-05-01T03:00:00Z"),
  sourceLocation: world.source.name,
  files: [{ id: randomUUID(), module: "280GHz", relativePath: `scan-${randomUUID()}/det0000.fits`, sizeBytes: 1000, checksum: sha() }]
})

/** The access events of one account or token, oldest first. */
const eventsOf = (id: string) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql<{ entityKind: string; fromState: string | null; toState: string; actor: string; details: Record<string, unknown> }>`
      select entity_kind::text as entity_kind, from_state, to_state, actor, details from event_log where entity_id = ${id} order by id`
  ).pipe(Effect.orDie)

const accountId = (name: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string }>`select id from account where name = ${name}`).pipe(
    Effect.map((r) => r[0]!.id),
    Effect.orDie
  )

it.layer(Harness.layer(), { timeout: 60_000 })("taking access back", (it) => {
  it.effect("a disabled account's tokens are refused at once and work again once it is enabled; both are logged with the admin's name", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const adminName = `admin-${Fixtures.suffix()}`
      const admin = yield* Harness.tokenFor({ role: "admin", name: adminName })
      const daqName = `daq-${Fixtures.suffix()}`
      const daq = yield* Harness.tokenFor({ role: "instrument", name: daqName, instrumentIds: [world.instrument.id] })
      const asAdmin = yield* Harness.client(admin)
      const asDaq = yield* Harness.client(daq)
      yield* asDaq.observations.file({ payload: filing(world) })

      const off = yield* asAdmin.admin.updateAccount({ path: { name: daqName }, payload: { active: false } })
      expect(off.active).toBe(false)
      const refused = yield* Harness.raw("GET", "/api/v1/tokens/current", { token: daq })
      expect([refused.status, refused.json.reason]).toEqual([401, "AccountDisabled"])
      // switching to the state it is in changes and logs nothing
      yield* asAdmin.admin.updateAccount({ path: { name: daqName }, payload: { active: false } })
      const on = yield* asAdmin.admin.updateAccount({ path: { name: daqName }, payload: { active: true } })
      expect(on.active).toBe(true)
      yield* asDaq.observations.file({ payload: filing(world) })

      const events = yield* eventsOf(yield* accountId(daqName))
      expect(events.map((e) => [e.entityKind, e.fromState, e.toState])).toEqual([
        ["Account", null, "active"],
        ["Account", null, "granted"],
        ["Account", "active", "disabled"],
        ["Account", "disabled", "active"]
      ])
      expect(events.slice(2).map((e) => e.actor)).toEqual([adminName, adminName])
      expect(events[1]!.details).toEqual({ instrumentId: world.instrument.id })

      const unknown = yield* Harness.raw("PATCH", "/api/v1/accounts/no-such-account", {
        token: admin,
        body: JSON.stringify({ active: false })
      })
      expect([unknown.status, unknown.json._tag]).toEqual([404, "NotFound"])
      const bad = yield* Harness.raw("PATCH", `/api/v1/accounts/${daqName}`, { token: admin, body: JSON.stringify({ active: "no" }) })
      expect(bad.status).toBe(400)
    }))

  it.effect("a grant taken back stops filing for that instrument at once; taking it twice says there was none", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const admin = yield* Harness.tokenFor({ role: "admin" })
      const daqName = `daq-${Fixtures.suffix()}`
      const daq = yield* Harness.tokenFor({ role: "instrument", name: daqName, instrumentIds: [world.instrument.id] })
      const asAdmin = yield* Harness.client(admin)
      const asDaq = yield* Harness.client(daq)
      expect((yield* asDaq.tokens.whoami()).instrumentIds).toEqual([world.instrument.id])

      const taken = yield* asAdmin.admin.revokeGrant({ urlParams: { account: daqName, instrumentId: world.instrument.id } })
      expect(taken.revoked).toBe(true)
      expect((yield* asDaq.tokens.whoami()).instrumentIds).toEqual([])
      const before = yield* Harness.counts()
      const refused = yield* Harness.raw("POST", "/api/v1/observations", { token: daq, body: JSON.stringify(filing(world)) })
      expect([refused.status, refused.json.reason]).toEqual([403, "Instrument"])
      expect(yield* Harness.counts()).toEqual(before)
      const again = yield* asAdmin.admin.revokeGrant({ urlParams: { account: daqName, instrumentId: world.instrument.id } })
      expect(again.revoked).toBe(false)
      const events = yield* eventsOf(yield* accountId(daqName))
      expect(events.filter((e) => e.toState === "grant-revoked").length).toBe(1)

      const neither = yield* Harness.raw("DELETE", `/api/v1/grants?account=${daqName}`, { token: admin })
      expect([neither.status, neither.json.reason]).toEqual([422, "Invalid"])
      const nobody = yield* Harness.raw(
        "DELETE",
        `/api/v1/grants?account=nobody-${Fixtures.suffix()}&instrumentId=${world.instrument.id}`,
        { token: admin }
      )
      expect(nobody.status).toBe(404)
    }))

  it.effect("the last active admin cannot be disabled, so someone can always switch accounts back", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      // this suite's other admins are switched off so one remains
      const lastName = `last-${Fixtures.suffix()}`
      const last = yield* Harness.tokenFor({ role: "admin", name: lastName })
      yield* sql`update account set active = false where role = 'admin' and name <> ${lastName}`.pipe(Effect.orDie)
      const refused = yield* Harness.raw("PATCH", `/api/v1/accounts/${lastName}`, { token: last, body: JSON.stringify({ active: false }) })
      expect([refused.status, refused.json.reason]).toEqual([422, "Invalid"])
      expect(refused.json.message).toContain("last active admin")
      const second = `second-${Fixtures.suffix()}`
      yield* Harness.tokenFor({ role: "admin", name: second })
      const asLast = yield* Harness.client(last)
      expect((yield* asLast.admin.updateAccount({ path: { name: lastName }, payload: { active: false } })).active).toBe(false)
      yield* sql`update account set active = true where name = ${lastName}`.pipe(Effect.orDie)
    }))

  it.effect("who can do what: every account with its role, state, named grants and usable tokens; for admins only", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const admin = yield* Harness.tokenFor({ role: "admin" })
      const daqName = `daq-${Fixtures.suffix()}`
      yield* Harness.tokenFor({ role: "instrument", name: daqName, instrumentIds: [world.instrument.id] })
      const sciName = `sci-${Fixtures.suffix()}`
      const sci = yield* Harness.tokenFor({ role: "scientist", name: sciName, programIds: [world.program.id] })
      const access = yield* (yield* Harness.client(admin)).admin.listAccess()
      const daq = access.find((a) => a.account === daqName)!
      expect(daq).toMatchObject({
        role: "instrument",
        active: true,
        usableTokens: 1,
        instruments: [{ id: world.instrument.id, name: world.instrument.name }],
        programs: []
      })
      expect(access.find((a) => a.account === sciName)!.programs).toEqual([{ id: world.program.id, name: world.program.name }])
      const forbidden = yield* Harness.raw("GET", "/api/v1/access", { token: sci })
      expect(forbidden.status).toBe(403)
    }))

  it.effect("a token created without an expiry gets the policy's lifetime; one that never expires only when asked for; issuing and revoking are logged", () =>
    Effect.gen(function* () {
      const adminName = `admin-${Fixtures.suffix()}`
      const admin = yield* Harness.tokenFor({ role: "admin", name: adminName })
      const asAdmin = yield* Harness.client(admin)
      const daqName = `daq-${Fixtures.suffix()}`
      yield* Tokens.ensureAccount({ name: daqName, role: "instrument" }).pipe(Effect.orDie)
      const created = yield* asAdmin.tokens.create({ payload: { account: daqName, label: "DAQ" } })
      const expires = created.info.expiresAt!.epochMillis
      // the demo topology's policy.tokenLifetime is the default, one year
      expect(Math.abs(expires - (Date.now() + 365 * 86_400_000))).toBeLessThan(120_000)
      const service = yield* asAdmin.tokens.create({ payload: { account: daqName, label: "relay", neverExpires: true } })
      expect(service.info.expiresAt).toBeNull()
      const both = yield* Harness.raw("POST", "/api/v1/tokens", {
        token: admin,
        body: JSON.stringify({ account: daqName, neverExpires: true, expiresAt: new Date(Date.now() + 86_400_000).toISOString() })
      })
      expect([both.status, both.json.field]).toEqual([422, "neverExpires"])

      yield* asAdmin.tokens.revoke({ path: { id: created.info.id } })
      yield* asAdmin.tokens.revoke({ path: { id: created.info.id } })
      const events = yield* eventsOf(created.info.id)
      expect(events.map((e) => [e.entityKind, e.fromState, e.toState, e.actor])).toEqual([
        ["ApiToken", null, "active", adminName],
        ["ApiToken", "active", "revoked", adminName]
      ])
      expect(events[0]!.details).toMatchObject({ account: daqName, prefix: created.info.prefix, label: "DAQ" })
      // the log never holds a secret
      expect(JSON.stringify(events)).not.toContain(created.token.split("_").at(-1))
      // an operator reads an account's history through the events endpoint
      const operator = yield* Harness.tokenFor({ role: "operator" })
      const history = yield* (yield* Harness.client(operator)).status.events({ urlParams: { entity: "ApiToken", id: created.info.id } })
      expect(history.items.map((e) => e.toState)).toEqual(["active", "revoked"])
    }))
})
