/**
 * Repair from the other archive of the site: a copy found CORRUPT after a byte flipped at rest, an
 * object deleted behind the platform's back (MISSING), no good copy left at all, and a repair
 * killed between its write and its record or run twice at once, converging on two good copies.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as Repair from "../../src/lifecycle/Repair.js"
import { runSitesFor, runSitesUntil } from "./ArchiveWorld.js"
import { flipByte } from "./AuditWorld.js"
import { layer } from "./LifecycleWorld.js"
import {
  archiveCopies,
  archivedAtTwoArchives,
  assertBackToTarget,
  cologne,
  markAs,
  metric,
  noBadCopies,
  objectAt,
  packageStatus
} from "./RepairWorld.js"

describe("Repair from the other archive", () => {
  it.scopedLive(
    "rewrites a copy found CORRUPT after a byte flipped at rest from the other archive, and records it",
    () =>
      Effect.gen(function* () {
        const { dir, pkg, topology } = yield* archivedAtTwoArchives
        yield* flipByte(objectAt(dir, "cologne-archive", pkg.relativePath))
        const badId = yield* markAs(pkg, "cologne-archive", "CORRUPT")
        // Still ARCHIVED, but shown below its target of two good copies.
        assert.strictEqual(yield* packageStatus(pkg.packageId), "completed")
        assert.deepStrictEqual(yield* Repair.belowTarget(2), [{ id: pkg.packageId, status: "completed", goodCopies: 1, badCopies: 1 }])
        assert.strictEqual(yield* Repair.belowTargetCount(2), 1)
        assert.strictEqual(yield* metric(topology, "ccat_packages_below_copy_target"), 1)
        assert.strictEqual(yield* metric(topology, "ccat_copies_repaired_total", { location: "cologne-archive" }), 0)
        yield* runSitesUntil(cologne, noBadCopies(pkg.packageId))
        yield* assertBackToTarget(dir, pkg, badId, "cologne-archive", "cologne-archive-2")
        assert.strictEqual(yield* metric(topology, "ccat_packages_below_copy_target"), 0)
        assert.strictEqual(yield* metric(topology, "ccat_copies_repaired_total", { location: "cologne-archive" }), 1)
        assert.strictEqual(yield* metric(topology, "ccat_copies_repaired_total", { location: "cologne-archive-2" }), 0)
        // Nothing left to plan.
        assert.strictEqual(yield* Repair.plan("cologne"), 0)
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive("rewrites an object deleted behind the platform's back (MISSING)", () =>
    Effect.gen(function* () {
      const { dir, pkg } = yield* archivedAtTwoArchives
      yield* Effect.promise(() => fs.rm(objectAt(dir, "cologne-archive-2", pkg.relativePath)))
      const badId = yield* markAs(pkg, "cologne-archive-2", "MISSING")
      yield* runSitesUntil(cologne, noBadCopies(pkg.packageId))
      yield* assertBackToTarget(dir, pkg, badId, "cologne-archive-2", "cologne-archive")
    }).pipe(Effect.provide(layer)), 120_000)

  it.scopedLive("with no good copy left, does nothing harmful and the package shows below its target", () =>
    Effect.gen(function* () {
      const { dir, pkg } = yield* archivedAtTwoArchives
      for (const location of ["cologne-archive", "cologne-archive-2"]) {
        yield* flipByte(objectAt(dir, location, pkg.relativePath))
        yield* markAs(pkg, location, "CORRUPT")
      }
      const before = yield* archiveCopies(pkg.packageId)
      const bytesBefore = yield* Effect.promise(() => fs.readFile(objectAt(dir, "cologne-archive", pkg.relativePath)))
      assert.strictEqual(yield* Repair.plan("cologne"), 0)
      // A job sent anyway (an operator's, a stale one) finds no source and changes nothing.
      yield* Repair.work("cologne", { packageId: pkg.packageId })
      yield* runSitesFor(cologne, 1500)
      assert.deepStrictEqual(yield* archiveCopies(pkg.packageId), before)
      assert.isTrue((yield* Effect.promise(() => fs.readFile(objectAt(dir, "cologne-archive", pkg.relativePath)))).equals(bytesBefore))
      assert.strictEqual(yield* packageStatus(pkg.packageId), "completed")
      assert.deepStrictEqual(yield* Repair.belowTarget(2), [{ id: pkg.packageId, status: "completed", goodCopies: 0, badCopies: 2 }])
    }).pipe(Effect.provide(layer)), 120_000)

  it.scopedLive("converges after a kill between the write and the record, and a job run twice repairs once", () =>
    Effect.gen(function* () {
      const { dir, pkg } = yield* archivedAtTwoArchives
      const bad = objectAt(dir, "cologne-archive", pkg.relativePath)
      yield* flipByte(bad)
      const badId = yield* markAs(pkg, "cologne-archive", "CORRUPT")
      // What a repair killed after its put leaves: the good bytes in place, the row still CORRUPT.
      yield* Effect.promise(() => fs.copyFile(objectAt(dir, "cologne-archive-2", pkg.relativePath), bad))
      assert.strictEqual((yield* archiveCopies(pkg.packageId)).find((c) => c.id === badId)!.status, "CORRUPT")
      yield* Repair.work("cologne", { packageId: pkg.packageId })
      yield* Repair.work("cologne", { packageId: pkg.packageId })
      yield* assertBackToTarget(dir, pkg, badId, "cologne-archive", "cologne-archive-2")
      assert.strictEqual((yield* archiveCopies(pkg.packageId)).length, 3)
      // Two repairs of the same package racing: one records, the other finds nothing left to do.
      yield* flipByte(objectAt(dir, "cologne-archive-2", pkg.relativePath))
      const second = yield* markAs(pkg, "cologne-archive-2", "CORRUPT")
      yield* Effect.all([Repair.work("cologne", { packageId: pkg.packageId }), Repair.work("cologne", { packageId: pkg.packageId })], {
        concurrency: 2
      }).pipe(
        Effect.either
      )
      yield* Repair.work("cologne", { packageId: pkg.packageId })
      yield* assertBackToTarget(dir, pkg, second, "cologne-archive-2", "cologne-archive")
      assert.strictEqual((yield* archiveCopies(pkg.packageId)).length, 4)
    }).pipe(Effect.provide(layer)), 120_000)
})
