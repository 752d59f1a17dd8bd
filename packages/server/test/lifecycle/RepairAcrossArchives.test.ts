/**
 * Repair across a site's archives: into a third archive when the bad copy's own is not writable
 * (refused and counted while none is), and between a disk and a tape archive in both directions,
 * the tape copy written again as a new tape file rather than trusted from the catalog.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Repair from "../../src/lifecycle/Repair.js"
import * as Storages from "../../src/lifecycle/Storages.js"
import { addLocation, locationNamed, runSitesUntil, topologyFrom } from "./ArchiveWorld.js"
import { flipByte } from "./AuditWorld.js"
import { layer, tempDir } from "./LifecycleWorld.js"
import {
  archiveCopies,
  archivedTwice,
  cologne,
  diskArchive,
  live,
  markAs,
  metric,
  noBadCopies,
  objectAt,
  repairedEvent
} from "./RepairWorld.js"

describe("Repair across archives", () => {
  it.scopedLive("repairs into another archive of the site when the bad copy's archive is not writable", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const topology = topologyFrom(dir, (raw) => ({
        ...addLocation(
          addLocation(raw, "cologne", diskArchive(dir, "cologne-archive-2", 1)),
          "cologne",
          diskArchive(dir, "cologne-archive-3", 2)
        ),
        policy: { ...raw.policy, archiveCopies: 2 }
      }))
      const pkg = yield* archivedTwice(dir, topology)
      const sql = yield* SqlClient.SqlClient
      yield* flipByte(objectAt(dir, "cologne-archive", pkg.relativePath))
      const badId = yield* markAs(pkg, "cologne-archive", "CORRUPT")
      // No archive can take the copy: the job fails (and is retried), counted, nothing changes.
      yield* sql`update data_location set writable = false where name in ('cologne-archive', 'cologne-archive-3')`
      const failedBefore = (yield* metric(topology, "ccat_repair_failures_total", { site: "cologne" })) ?? 0
      const refused = yield* Repair.work("cologne", { packageId: pkg.packageId }).pipe(Effect.flip)
      assert.match(String(refused), /no LONG_TERM_ARCHIVE at cologne is writable with room/)
      assert.strictEqual(yield* metric(topology, "ccat_repair_failures_total", { site: "cologne" }), failedBefore + 1)
      assert.strictEqual((yield* archiveCopies(pkg.packageId)).find((c) => c.id === badId)!.status, "CORRUPT")
      yield* sql`update data_location set writable = true where name = 'cologne-archive-3'`
      yield* runSitesUntil(cologne, noBadCopies(pkg.packageId))
      const alive = live(yield* archiveCopies(pkg.packageId))
      assert.deepStrictEqual(alive.map((c) => c.location), ["cologne-archive-2", "cologne-archive-3"])
      const [event] = yield* repairedEvent(badId)
      assert.deepStrictEqual(event.details, {
        action: "repaired",
        replacement: alive[1].id,
        source: "cologne-archive-2",
        repairedAt: "cologne-archive-3",
        badObjectRemoved: true
      })
      // cologne-archive is still deletable: the bad object is gone from it.
      assert.isFalse(
        yield* Effect.promise(() => fs.access(objectAt(dir, "cologne-archive", pkg.relativePath)).then(() => true, () => false))
      )
      const good = yield* Effect.promise(() => fs.readFile(objectAt(dir, "cologne-archive-2", pkg.relativePath)))
      assert.isTrue(good.equals(yield* Effect.promise(() => fs.readFile(objectAt(dir, "cologne-archive-3", pkg.relativePath)))))
    }).pipe(Effect.provide(layer)), 120_000)

  it.scopedLive(
    "repairs a disk archive copy from a tape archive (recalled), and a tape copy on tape (a new tape file, never trusting the catalog)",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyFrom(dir, (raw) => ({
          ...addLocation(raw, "cologne", {
            name: "cologne-tape",
            type: "LONG_TERM_ARCHIVE",
            technology: "tape",
            priority: 1,
            driver: {
              root: path.join(dir, "locations", "cologne-tape"),
              library: "virtual",
              volumes: 2,
              volumeBytes: "2 MB",
              drives: 1,
              mountLatency: "20 millis",
              seekLatency: "5 millis",
              keepOnline: false
            },
            retention: { keepForever: true }
          }),
          policy: { ...raw.policy, archiveCopies: 2 }
        }))
        const pkg = yield* archivedTwice(dir, topology)
        assert.deepStrictEqual(live(yield* archiveCopies(pkg.packageId)).map((c) => c.location), ["cologne-archive", "cologne-tape"])
        const onDisk = objectAt(dir, "cologne-archive", pkg.relativePath)
        const original = yield* Effect.promise(() => fs.readFile(onDisk))
        yield* flipByte(onDisk)
        const diskBad = yield* markAs(pkg, "cologne-archive", "CORRUPT")
        yield* runSitesUntil(cologne, noBadCopies(pkg.packageId))
        assert.isTrue((yield* Effect.promise(() => fs.readFile(onDisk))).equals(original))
        assert.strictEqual((yield* repairedEvent(diskBad))[0].details.source, "cologne-tape")
        // The tape copy found bad: written again on tape (its catalog's checksum is not taken for the bytes).
        const onTape = Effect.promise(async () => {
          const library = path.join(dir, "locations", "cologne-tape", "library")
          const vols = (await fs.readdir(library)).filter((f) => f.endsWith(".vol"))
          let total = 0
          for (const v of vols) total += (await fs.stat(path.join(library, v))).size
          return total
        })
        const tapeBefore = yield* onTape
        const tapeBad = yield* markAs(pkg, "cologne-tape", "CORRUPT")
        yield* runSitesUntil(cologne, noBadCopies(pkg.packageId))
        assert.isAtLeast(yield* onTape, tapeBefore + pkg.sizeBytes)
        assert.strictEqual((yield* repairedEvent(tapeBad))[0].details.source, "cologne-archive")
        const alive = live(yield* archiveCopies(pkg.packageId))
        assert.deepStrictEqual(alive.map((c) => [c.location, c.status]), [["cologne-archive", "PRESENT"], ["cologne-tape", "PRESENT"]])
        const storages = yield* Storages.Storages
        const tape = yield* storages.of(yield* locationNamed("cologne-tape"))
        yield* tape.recall([pkg.relativePath])
        assert.strictEqual((yield* tape.verify(pkg.relativePath, pkg.checksum)).size, pkg.sizeBytes)
        assert.deepStrictEqual(yield* Repair.belowTarget(2), [])
      }).pipe(Effect.provide(layer)),
    120_000
  )
})
