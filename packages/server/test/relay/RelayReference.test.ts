/**
 * The main's `GET /api/v1/relay/reference` through the real server: an admin (a relay's token)
 * gets the reference data with token hashes, never secrets; other roles get 403, no token 401.
 */
import { it } from "@effect/vitest"
import { Fixtures } from "@ccat/core/testing"
import * as Effect from "effect/Effect"
import { expect } from "vitest"
import * as Harness from "../ApiHarness.js"

it.layer(Harness.layer(), { timeout: 60_000 })("relay reference", (it) => {
  it.effect("admins get ObsUnits, modules, locations, accounts with grants and token hashes; others are refused", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const instrument = yield* Harness.tokenFor({ role: "instrument", instrumentIds: [world.instrument.id] })
      const admin = yield* Harness.tokenFor({ role: "admin" })
      const r = yield* Harness.raw("GET", "/api/v1/relay/reference", { token: admin })
      expect(r.status).toBe(200)
      expect(r.json.obsUnits).toContainEqual({ id: world.obsUnit.id, instrumentId: world.instrument.id })
      expect(
        r.json.modules.filter((m: { instrumentId: string }) => m.instrumentId === world.instrument.id).map((m: { name: string }) => m.name)
          .sort()
      ).toEqual(["280GHz", "350GHz"])
      expect(r.json.locations).toContainEqual({ id: world.source.id, name: world.source.name, type: "SOURCE" })
      const [, prefix, secret] = instrument.split("_")
      const token = r.json.tokens.find((t: { prefix: string }) => t.prefix === prefix)
      expect(token.secretSha256).toMatch(/^[0-9a-f]{64}$/)
      expect(JSON.stringify(r.json)).not.toContain(secret)
      const account = r.json.accounts.find((a: { id: string }) => a.id === token.accountId)
      expect(account).toMatchObject({ role: "instrument", active: true, instrumentIds: [world.instrument.id] })

      const forbidden = yield* Harness.raw("GET", "/api/v1/relay/reference", { token: instrument })
      expect([forbidden.status, forbidden.json._tag, forbidden.json.reason]).toEqual([403, "Forbidden", "Role"])
      const anonymous = yield* Harness.raw("GET", "/api/v1/relay/reference")
      expect([anonymous.status, anonymous.json._tag, anonymous.json.reason]).toEqual([401, "Unauthorized", "MissingToken"])
    }))
})
