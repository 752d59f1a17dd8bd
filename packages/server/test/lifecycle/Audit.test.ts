/**
 * Fixity audits at rest on real storage: a package archived by the archiving stage on disk and on
 * the virtual tape library gets one byte flipped behind the platform's back; one audit cycle finds
 * it (CORRUPT, an event by audit), verifies the good copies afresh, oldest first, paced to the
 * location's budget; an object deleted behind the platform's back becomes MISSING.
 */
import { Topology } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Audit from "../../src/lifecycle/Audit.js"
import * as Pacer from "../../src/lifecycle/internal/Pacer.js"
import { editLocations, locationNamed, runSitesUntil, topologyFrom } from "./ArchiveWorld.js"
import { archivedPackages, archiveRoot, copyAt, findingEvents, flipByte, flipByteOnTape, statusOf, verifiedDaysAgo } from "./AuditWorld.js"
import { layer, observatory, policyLayer, syncTopology, tempDir } from "./LifecycleWorld.js"

/** The demo topology with an audit policy (and tape at the archive when asked). */
const auditTopology = (dir: string, audit: Record<string, unknown>, tape = false) =>
  topologyFrom(dir, (raw) => {
    const edited = tape
      ? editLocations(raw, (l) =>
        l.type === "LONG_TERM_ARCHIVE"
          ? { ...l, technology: "tape", driver: { ...(l.driver as object), library: "virtual", keepOnline: false } }
          : l)
      : raw
    return { ...edited, policy: { ...edited.policy, audit } }
  })

describe("Audit", () => {
  it.scopedLive(
    "finds a byte flipped in an archived package on disk within one cycle; verifies the good copies afresh, oldest first",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = auditTopology(dir, { bytesPerSecond: "100 MB", cycleDays: 30 })
        yield* syncTopology(topology)
        yield* Effect.gen(function* () {
          const [bad, older, newer] = yield* archivedPackages(topology, yield* observatory, [40_000, 30_000, 20_000])
          const copies = {
            bad: yield* copyAt("cologne-archive", bad.packageId),
            older: yield* copyAt("cologne-archive", older.packageId),
            newer: yield* copyAt("cologne-archive", newer.packageId)
          }
          yield* verifiedDaysAgo(copies.bad.id, 40)
          yield* verifiedDaysAgo(copies.older.id, 60)
          yield* verifiedDaysAgo(copies.newer.id, 31)
          yield* flipByte(path.join(archiveRoot(dir), copies.bad.path))
          // one copy per job (the budget is smaller than any package): the oldest goes first
          const archive = yield* locationNamed("cologne-archive")
          const first = yield* Audit.auditLocation("cologne", archive.id, { jobSeconds: 1e-6 })
          assert.strictEqual(first.copies, 1)
          assert.strictEqual(first.good, 1)
          assert.isAbove((yield* copyAt("cologne-archive", older.packageId)).verifiedAt!.getTime(), Date.now() - 60_000)
          assert.isBelow((yield* copyAt("cologne-archive", newer.packageId)).verifiedAt!.getTime(), Date.now() - 30 * 86_400_000)
          // the stage runs the rest of the cycle: the flipped copy is CORRUPT, the other verified now
          yield* runSitesUntil([["cologne", [Audit.stage]]], Effect.map(statusOf(copies.bad.id), (s) => s === "CORRUPT"))
          const [event] = yield* findingEvents(copies.bad.id, "CORRUPT")
          assert.strictEqual(event.details.by, "audit")
          assert.strictEqual(event.actor, "worker:cologne")
          assert.include(event.details.detail, copies.bad.path)
          yield* runSitesUntil(
            [["cologne", [Audit.stage]]],
            Effect.map(copyAt("cologne-archive", newer.packageId), (c) => c.verifiedAt!.getTime() > Date.now() - 60_000)
          )
          assert.strictEqual((yield* copyAt("cologne-archive", newer.packageId)).status, "PRESENT")
          // nothing else is due: the buffers' copies were verified when written; a CORRUPT copy is repair's, not re-read
          const again = yield* Audit.auditLocation("cologne", archive.id)
          assert.strictEqual(again.copies, 0)
        }).pipe(Effect.provide(policyLayer(topology)))
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive(
    "reads at most one job's budget, paced to the location's bytes per second by its own accounting",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        // the location's own setting wins over the policy's
        const topology = topologyFrom(dir, (raw) => ({
          ...editLocations(raw, (l) => (l.name === "cologne-archive" ? { ...l, audit: { bytesPerSecond: "400 KB" } } : l)),
          policy: { ...raw.policy, audit: { bytesPerSecond: "1 GB" } }
        }))
        yield* syncTopology(topology)
        yield* Effect.gen(function* () {
          const pkgs = yield* archivedPackages(topology, yield* observatory, [150_000, 150_000, 150_000])
          for (const p of pkgs) yield* verifiedDaysAgo((yield* copyAt("cologne-archive", p.packageId)).id, 100)
          const archive = yield* locationNamed("cologne-archive")
          const report = yield* Audit.auditLocation("cologne", archive.id, { jobSeconds: 1 }).pipe(
            Effect.provideService(Audit.LocationAudits, Audit.locationAuditsOf(topology))
          )
          assert.strictEqual(report.bytesPerSecond, 400_000)
          // a budget of 400 KB per job: two packages of ~152 KB, not the third
          assert.strictEqual(report.copies, 2)
          assert.isAtMost(report.bytes, 400_000)
          // paced: no more than the budget over the time it took, give or take the last part read
          const largest = Math.max(...pkgs.map((p) => p.sizeBytes))
          assert.isAtMost(report.bytes, (400_000 * report.elapsedMillis) / 1000 + largest)
        }).pipe(Effect.provide(policyLayer(topology)))
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive(
    "a job interrupted while reading still records the copies it had read good; the copy cut short stays due",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyFrom(dir, (raw) => ({
          ...editLocations(raw, (l) => (l.name === "cologne-archive" ? { ...l, audit: { bytesPerSecond: "200 KB" } } : l)),
          policy: { ...raw.policy, audit: {} }
        }))
        yield* syncTopology(topology)
        yield* Effect.gen(function* () {
          // the small copy is read first (oldest) in about 50 ms, the large one takes about 2 s
          const [small, large] = yield* archivedPackages(topology, yield* observatory, [10_000, 400_000])
          const smallCopy = yield* copyAt("cologne-archive", small.packageId)
          const largeCopy = yield* copyAt("cologne-archive", large.packageId)
          yield* verifiedDaysAgo(smallCopy.id, 100)
          yield* verifiedDaysAgo(largeCopy.id, 95)
          const archive = yield* locationNamed("cologne-archive")
          const job = yield* Effect.fork(
            Audit.auditLocation("cologne", archive.id).pipe(
              Effect.provideService(Audit.LocationAudits, Audit.locationAuditsOf(topology))
            )
          )
          // the large copy's file open: the small one was read (copies are read in turn)
          const largeFile = yield* Effect.promise(() => fs.realpath(path.join(archiveRoot(dir), largeCopy.path)))
          const opened = Effect.promise(async () => {
            for (const fd of await fs.readdir("/proc/self/fd")) {
              if ((await fs.readlink(`/proc/self/fd/${fd}`).catch(() => "")) === largeFile) return true
            }
            return false
          })
          yield* opened.pipe(Effect.repeat({ until: (open) => open, schedule: Schedule.spaced("5 millis") }), Effect.timeout("20 seconds"))
          yield* Fiber.interrupt(job)
          assert.isAbove((yield* copyAt("cologne-archive", small.packageId)).verifiedAt!.getTime(), Date.now() - 60_000)
          assert.isBelow((yield* copyAt("cologne-archive", large.packageId)).verifiedAt!.getTime(), Date.now() - 90 * 86_400_000)
        }).pipe(Effect.provide(policyLayer(topology)))
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.scopedLive("an archived object deleted behind the platform's back becomes MISSING through the audit", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const topology = auditTopology(dir, {})
      yield* syncTopology(topology)
      yield* Effect.gen(function* () {
        const [pkg] = yield* archivedPackages(topology, yield* observatory, [10_000])
        const copy = yield* copyAt("cologne-archive", pkg.packageId)
        yield* verifiedDaysAgo(copy.id, 100)
        yield* Effect.promise(() => fs.rm(path.join(archiveRoot(dir), copy.path)))
        const report = yield* Audit.auditLocation("cologne", (yield* locationNamed("cologne-archive")).id)
        assert.strictEqual(report.missing, 1)
        assert.strictEqual(yield* statusOf(copy.id), "MISSING")
        assert.strictEqual((yield* findingEvents(copy.id, "MISSING"))[0].details.by, "audit")
      }).pipe(Effect.provide(policyLayer(topology)))
    }).pipe(Effect.provide(layer)), 120_000)

  it.scopedLive(
    "finds a byte flipped on virtual tape: recalls the due copies in one batch, then reads them",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = auditTopology(dir, { tapeCycleDays: 200 }, true)
        yield* syncTopology(topology)
        yield* Effect.gen(function* () {
          const [bad, good] = yield* archivedPackages(topology, yield* observatory, [30_000, 20_000])
          const badCopy = yield* copyAt("cologne-archive", bad.packageId)
          const goodCopy = yield* copyAt("cologne-archive", good.packageId)
          const original = yield* Effect.promise(() => fs.readFile(path.join(dir, "locations", "cologne-buffer", bad.relativePath)))
          yield* flipByteOnTape(path.join(archiveRoot(dir), "library"), original)
          // due by the disk cycle (90 days) but not by the tape cycle: nothing is read yet
          yield* verifiedDaysAgo(badCopy.id, 100)
          yield* verifiedDaysAgo(goodCopy.id, 100)
          const archive = yield* locationNamed("cologne-archive")
          assert.strictEqual((yield* Audit.auditLocation("cologne", archive.id)).copies, 0)
          yield* verifiedDaysAgo(badCopy.id, 300)
          yield* verifiedDaysAgo(goodCopy.id, 250)
          yield* runSitesUntil([["cologne", [Audit.stage]]], Effect.map(statusOf(badCopy.id), (s) => s === "CORRUPT"))
          assert.strictEqual((yield* findingEvents(badCopy.id, "CORRUPT"))[0].details.by, "audit")
          yield* runSitesUntil(
            [["cologne", [Audit.stage]]],
            Effect.map(copyAt("cologne-archive", good.packageId), (c) => c.verifiedAt!.getTime() > Date.now() - 60_000)
          )
          assert.strictEqual(yield* statusOf(goodCopy.id), "PRESENT")
        }).pipe(Effect.provide(policyLayer(topology)))
      }).pipe(Effect.provide(layer)),
    120_000
  )

  it.effect("the pacer holds a budget by the Effect clock: 10 MB at 1 MB/s take 10 s, with no burst after a stall", () =>
    Effect.gen(function* () {
      const pacer = yield* Pacer.make(1_000_000)
      const reader = yield* Effect.fork(Effect.forEach(Array.from({ length: 10 }), () => pacer.take(1_000_000), { discard: true }))
      yield* TestClock.adjust("9 seconds")
      assert.isTrue((yield* Fiber.poll(reader))._tag === "None")
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(reader)
      assert.strictEqual(pacer.taken(), 10_000_000)
      assert.strictEqual(yield* pacer.elapsedMillis, 10_000)
      // a minute without reading earns one second of credit, not a minute's burst
      yield* TestClock.adjust("60 seconds")
      const after = yield* Effect.fork(Effect.forEach(Array.from({ length: 5 }), () => pacer.take(1_000_000), { discard: true }))
      yield* TestClock.adjust("1 second")
      assert.isTrue((yield* Fiber.poll(after))._tag === "None")
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(after)
    }))

  it("configuration: policy.audit defaults, a location's overrides, and field-named errors", () => {
    const t = topologyFrom("/tmp/ccat-audit-config")
    assert.deepStrictEqual({ ...t.policy.audit }, { bytesPerSecond: 100e6, cycleDays: 90, tapeCycleDays: 365, inventoryEveryHours: 24 })
    const bad = Topology.decode({
      sites: [{
        name: "x",
        shortName: "x",
        locations: [{
          name: "a",
          type: "BUFFER",
          technology: "disk",
          driver: { root: "/a" },
          audit: { cycleDays: 0, bytesPerSecond: "fast" }
        }]
      }],
      policy: { audit: { inventoryEveryHours: -1, budget: 3 } }
    })
    assert.isTrue(bad._tag === "Left")
    const problems = bad._tag === "Left" ? bad.left.problems.join("\n") : ""
    assert.include(problems, "sites[0].locations[0].audit.cycleDays")
    assert.include(problems, "sites[0].locations[0].audit.bytesPerSecond")
    assert.include(problems, "policy.audit.inventoryEveryHours")
    assert.include(problems, "policy.audit.budget")
    // a budget that cannot read the largest package within one audit job is refused, naming the field
    const slow = Topology.decode({
      sites: [{
        name: "x",
        shortName: "x",
        locations: [{ name: "a", type: "BUFFER", technology: "disk", driver: { root: "/a" }, audit: { bytesPerSecond: "1 KB" } }]
      }],
      policy: { maxPackageBytes: "50 GB", audit: { bytesPerSecond: "100 KB" } }
    })
    assert.isTrue(slow._tag === "Left")
    const slowProblems = slow._tag === "Left" ? slow.left.problems.join("\n") : ""
    assert.include(slowProblems, "policy.audit.bytesPerSecond: too small to read a package")
    assert.include(slowProblems, "sites[0].locations[0].audit.bytesPerSecond: too small")
    const settings = Audit.settingsOf(t.policy.audit, new Topology.LocationAuditConfig({ cycleDays: 7 }))
    assert.deepStrictEqual(settings, { bytesPerSecond: 100e6, cycleDays: 7, tapeCycleDays: 365, inventoryEveryHours: 24 })
  })
})
