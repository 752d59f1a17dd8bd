/**
 * The integrity group against the real server on a real ops-db, with a policy requiring two
 * archive copies: every figure of two archives (copies, audited, last audit, lag, never-verified
 * copies, corrupt, missing, dark, repaired, last inventory), the packages below target with
 * their bad copies, the limit, the same figures as gauges on /metrics, what scientists and
 * instrument accounts see, and who is refused.
 */
import { Topology } from "@ccat/core"
import { Fixtures } from "@ccat/core/testing"
import { it } from "@effect/vitest"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { expect } from "vitest"
import { LifecyclePolicy } from "../src/lifecycle/Packaging.js"
import * as Harness from "./ApiHarness.js"
import * as IntegrityRows from "./IntegrityRows.js"

const policy = Layer.succeed(LifecyclePolicy, new Topology.PolicyConfig({ archiveCopies: 2 }))

it.layer(Harness.layer().pipe(Layer.provide(policy)), { timeout: 60_000 })("integrity", (it) => {
  it.effect("every figure per location, the packages below target with their bad copies, and who sees what", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const rows = yield* IntegrityRows.arrange(world)
      const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
      const r = yield* operator.integrity.get({ urlParams: {} })
      const at = DateTime.toEpochMillis(r.at)
      expect([r.scope, r.auditCycleDays, r.copyTarget]).toEqual(["full", 90, 2])

      const a = r.locations.find((l) => l.id === rows.archive.id)!
      const a2 = r.locations.find((l) => l.id === rows.secondArchive.id)!
      expect(a).toMatchObject({ ...IntegrityRows.expected.archive, name: rows.archive.name, type: "LONG_TERM_ARCHIVE", auditCycleDays: 90 })
      expect(a2).toMatchObject({ ...IntegrityRows.expected.secondArchive, name: rows.secondArchive.name, lastInventoryAt: null })
      const days = (s: number | null) => (s === null ? null : s / 86400)
      expect(days(a.auditLagSeconds)).toBeCloseTo(IntegrityRows.expected.lagDays.archive, 3)
      expect(days(a2.auditLagSeconds)).toBeCloseTo(IntegrityRows.expected.lagDays.secondArchive, 3)
      expect((at - DateTime.toEpochMillis(a.lastAuditAt!)) / 1000).toBeCloseTo(IntegrityRows.expected.lastAuditAgo.archive, -1)
      expect((at - DateTime.toEpochMillis(a2.lastAuditAt!)) / 1000).toBeCloseTo(IntegrityRows.expected.lastAuditAgo.secondArchive, -1)
      expect((at - DateTime.toEpochMillis(a.lastInventoryAt!)) / 1000).toBeCloseTo(3600, -1)
      // A location without copies: nothing audited, no lag, nothing found.
      const source = r.locations.find((l) => l.id === world.source.id)!
      expect(source).toMatchObject({
        copies: 0,
        audited: 0,
        lastAuditAt: null,
        auditLagSeconds: null,
        unverifiedCopies: 0,
        corrupt: 0,
        dark: 0
      })

      // Target 2: the corrupt package keeps one good copy, the missing one none; both are listed by id.
      expect(r.packagesBelowTarget.total).toBe(2)
      const byId = [...r.packagesBelowTarget.items].sort((x, y) => (x.id < y.id ? -1 : 1))
      expect(r.packagesBelowTarget.items).toEqual(byId)
      const corrupt = r.packagesBelowTarget.items.find((p) => p.id === rows.packages.corrupt)!
      expect(corrupt).toEqual({
        id: rows.packages.corrupt,
        goodCopies: 1,
        target: 2,
        badCopies: [{ copyId: rows.copies.corrupt, location: rows.archive.name, status: "CORRUPT", verified: true, checksumMatches: true }]
      })
      const missing = r.packagesBelowTarget.items.find((p) => p.id === rows.packages.missing)!
      expect(missing.goodCopies).toBe(0)
      expect(missing.badCopies).toEqual(expect.arrayContaining([
        { copyId: rows.copies.missing, location: rows.archive.name, status: "MISSING", verified: true, checksumMatches: true },
        { copyId: rows.copies.unverified, location: rows.secondArchive.name, status: "PRESENT", verified: false, checksumMatches: true }
      ]))
      expect(missing.badCopies).toHaveLength(2)
      expect(r.totals).toEqual({
        copies: 8,
        audited: 5,
        unverifiedCopies: 1,
        corrupt: 1,
        missing: 1,
        dark: 1,
        repaired: 1,
        packagesBelowTarget: 2
      })

      const one = yield* operator.integrity.get({ urlParams: { belowTargetLimit: 1 } })
      expect([one.packagesBelowTarget.total, one.packagesBelowTarget.items.map((p) => p.id)]).toEqual([2, [byId[0].id]])
      const admin = yield* Harness.client(yield* Harness.tokenFor({ role: "admin" }))
      expect((yield* admin.integrity.get({ urlParams: {} })).totals).toEqual(r.totals)

      // The same figures as gauges on /metrics, per location.
      const metrics = yield* Harness.raw("GET", "/metrics")
      const sample = (name: string, location: string) => {
        const line = String(metrics.json).split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(`location="${location}"`))
        return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1))
      }
      expect([
        sample("ccat_location_corrupt_copies", rows.archive.name),
        sample("ccat_location_missing_copies", rows.archive.name),
        sample("ccat_location_dark_objects", rows.archive.name),
        sample("ccat_location_unverified_copies", rows.secondArchive.name),
        sample("ccat_location_corrupt_copies", world.source.name)
      ]).toEqual([1, 1, 1, 1, 0])
      expect(sample("ccat_location_audit_lag_seconds", rows.secondArchive.name)! / 86400).toBeCloseTo(100, 2)
      expect(sample("ccat_location_audit_lag_seconds", world.source.name)).toBeUndefined()

      // Scientists and instrument accounts: the totals, no locations, no package ids.
      for (const role of ["scientist", "instrument"] as const) {
        const other = yield* Harness.client(yield* Harness.tokenFor({ role }))
        const seen = yield* other.integrity.get({ urlParams: {} })
        expect([seen.scope, seen.locations, seen.packagesBelowTarget]).toEqual(["totals", [], { total: 2, items: [] }])
        expect(seen.totals).toEqual(r.totals)
      }
    }))

  it.effect("refuses a missing or bad token and an out-of-range limit, changing nothing", () =>
    Effect.gen(function* () {
      // the token first: issuing one is an event of its own
      const token = yield* Harness.tokenFor({ role: "operator" })
      const before = yield* Harness.counts(["event_log", "physical_copy", "dark_object"])
      expect((yield* Harness.raw("GET", "/api/v1/integrity")).status).toBe(401)
      expect((yield* Harness.raw("GET", "/api/v1/integrity", { token: "ccat_notatokenatall_000000000000000000000000000000" })).status).toBe(
        401
      )
      for (const limit of ["-1", "1001", "ten"]) {
        const refused = yield* Harness.raw("GET", `/api/v1/integrity?belowTargetLimit=${limit}`, { token })
        expect(refused.status).toBe(400)
        expect(JSON.stringify(refused.json)).toContain("belowTargetLimit")
      }
      expect(yield* Harness.counts(["event_log", "physical_copy", "dark_object"])).toEqual(before)
    }))
})
