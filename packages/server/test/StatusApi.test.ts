/**
 * The status group against the real server on a real ops-db: the snapshot's counts, stages,
 * failed items, location fill and circuit, and route throughput, from rows made the way the
 * lifecycle makes them (checked transitions with their events); what scientists see; and the
 * event history of one item with cursor pages and program visibility.
 */
import { Repositories, Transitions } from "@ccat/core"
import { Fixtures } from "@ccat/core/testing"
import { it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { randomUUID } from "node:crypto"
import { expect } from "vitest"
import * as Harness from "./ApiHarness.js"

/** Sets a finished attempt's outcome, as the transfer worker records it, `agoSeconds` ago. */
const finish = (id: string, outcome: { status: "completed" | "failed"; bytes?: number; ms?: number; error?: string; agoSeconds: number }) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`
    update data_transfer set status = ${outcome.status}, bytes_transferred = ${outcome.bytes ?? 0}, duration_ms = ${outcome.ms ?? null},
      error_message = ${outcome.error ?? null}, error_reason = ${outcome.error === undefined ? null : "Unreachable"},
      started_at = now() - make_interval(secs => ${outcome.agoSeconds + (outcome.ms ?? 0) / 1000}),
      finished_at = now() - make_interval(secs => ${outcome.agoSeconds}), updated_at = now() - make_interval(secs => ${outcome.agoSeconds})
    where id = ${id}`).pipe(Effect.orDie)

it.layer(Harness.layer(), { timeout: 60_000 })("status", (it) => {
  it.effect("one snapshot: counts, stages, failed items with reasons, location fill and circuit, route throughput", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      yield* sql`update data_location set capacity_bytes = 10000 where id = ${world.chileBuffer.id}`.pipe(Effect.orDie)
      const route = yield* Repositories.routes.insert({
        fromSiteId: world.chile.id,
        toSiteId: world.cologne.id,
        viaSiteId: null,
        adapter: "rsync",
        options: {},
        priority: 0
      }).pipe(Effect.orDie)
      const eou = yield* Fixtures.executedObsUnit(world).pipe(Effect.orDie)
      // Three files waiting to be packaged (1024 bytes each); one found corrupt by the packager.
      const files = yield* Effect.forEach([1, 2, 3, 4], () => Fixtures.rawDataFile(world, eou)).pipe(Effect.orDie)
      yield* Transitions.transition({
        entity: "RawDataFile",
        id: files[3].id,
        from: "filed",
        to: "corrupt",
        actor: "worker:chile",
        details: { detail: "checksum mismatch at the source" }
      }).pipe(Effect.orDie)

      // A package written to Chile's buffer, waiting for a bundle; another failed with its reason.
      const waiting = yield* Fixtures.rawDataPackage(world, eou).pipe(Effect.orDie)
      yield* sql`update raw_data_package set status = 'in_progress', size_bytes = 4096, checksum = ${Fixtures.checksum()} where id = ${waiting.id}`
        .pipe(Effect.orDie)
      yield* Fixtures.physicalCopy(world.chileBuffer, waiting).pipe(Effect.orDie)
      const broken = yield* Fixtures.rawDataPackage(world, eou).pipe(Effect.orDie)
      yield* Transitions.transition({
        entity: "RawDataPackage",
        id: broken.id,
        from: "pending",
        to: "failed",
        set: { errorMessage: "buffer full" }
      }).pipe(Effect.orDie)
      // A package arrived in Cologne's buffer, waiting for the archive.
      const arrived = yield* Fixtures.rawDataPackage(world, eou).pipe(Effect.orDie)
      yield* sql`update raw_data_package set status = 'in_progress', size_bytes = 4096, checksum = ${Fixtures.checksum()} where id = ${arrived.id}`
        .pipe(Effect.orDie)
      yield* Fixtures.physicalCopy(world.cologneBuffer, arrived).pipe(Effect.orDie)

      // Transfers on the route: two completed in the last hour (4000 bytes in 2 s), one 3 h ago,
      // then three failures in a row towards Cologne's buffer, which open both circuits.
      const bundle = yield* Fixtures.dataTransferPackage([arrived]).pipe(Effect.orDie)
      const attempt = () =>
        Repositories.dataTransfers.insert({
          dataTransferPackageId: bundle.id,
          rawDataPackageId: null,
          routeId: route.id,
          fromLocationId: world.chileBuffer.id,
          toLocationId: world.cologneBuffer.id,
          previousAttemptId: null,
          attempt: 1,
          adapter: "rsync"
        }).pipe(Effect.orDie)
      yield* finish((yield* attempt()).id, { status: "completed", bytes: 1000, ms: 1000, agoSeconds: 1200 })
      yield* finish((yield* attempt()).id, { status: "completed", bytes: 3000, ms: 1000, agoSeconds: 600 })
      yield* finish((yield* attempt()).id, { status: "completed", bytes: 5000, ms: 5000, agoSeconds: 3 * 3600 })
      const failures = [yield* attempt(), yield* attempt(), yield* attempt()]
      for (const [i, f] of failures.entries()) {
        yield* finish(f.id, { status: "failed", error: `ssh: connect to cologne refused (${i})`, agoSeconds: 30 - i * 10 })
      }

      const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
      const s = yield* operator.status.get({ urlParams: {} })
      expect(s.scope).toBe("full")
      expect(s.counts.files).toEqual({ filed: 3, packaged: 0, corrupt: 1, missing: 0 })
      expect(s.counts.packages).toEqual({ pending: 0, scheduled: 0, in_progress: 2, completed: 0, failed: 1 })
      expect(s.counts.packageJourneys).toEqual({ WAITING: 0, TRANSFERRING: 2, ARCHIVED: 0, FAILED: 1 })
      expect(s.counts.transfers).toEqual({ pending: 0, scheduled: 0, in_progress: 0, completed: 3, failed: 3 })
      expect(s.counts.bundles.pending).toBe(1)
      expect(s.counts.copies.PRESENT).toBe(2)
      expect(s.stages.waitingToPackage).toEqual({ count: 3, bytes: 3 * 1024 })
      expect(s.stages.waitingToBundle).toEqual({ count: 1, bytes: 4096 })
      expect(s.stages.waitingToArchive).toEqual({ count: 1, bytes: 4096 })
      expect(s.stages.inTransfer.count).toBe(1)
      expect(s.stages.waitingToDelete).toEqual({ count: 0, bytes: 0 })

      // Failed items, newest first, each with its reason.
      expect(s.failed.map((f) => [f.entity, f.id])).toEqual([
        ["RawDataPackage", broken.id],
        ["RawDataFile", files[3].id],
        ["DataTransfer", failures[2].id],
        ["DataTransfer", failures[1].id],
        ["DataTransfer", failures[0].id]
      ])
      const byId = new Map(s.failed.map((f) => [f.id, f]))
      expect(byId.get(files[3].id)).toMatchObject({
        entity: "RawDataFile",
        state: "corrupt",
        errorMessage: "checksum mismatch at the source"
      })
      expect(byId.get(broken.id)).toMatchObject({ entity: "RawDataPackage", state: "failed", errorMessage: "buffer full" })
      expect(byId.get(failures[2].id)!.errorMessage).toBe("ssh: connect to cologne refused (2)")
      expect(s.failedTotals).toMatchObject({ RawDataFile: 1, RawDataPackage: 1, DataTransfer: 3, StagingRequest: 0 })
      const few = yield* operator.status.get({ urlParams: { failedLimit: 2 } })
      expect(few.failed.map((f) => f.id)).toEqual([broken.id, files[3].id])
      expect(few.failedTotals.DataTransfer).toBe(3)

      // The copies of one observation: its files', its packages' and its bundles' (none of another).
      const ofObservation = yield* operator.locations.listCopies({ urlParams: { observationId: eou.id } })
      expect(ofObservation.items.map((c) => c.rawDataPackageId).sort()).toEqual([waiting.id, arrived.id].sort())
      expect((yield* operator.locations.listCopies({ urlParams: { observationId: randomUUID() as any } })).items).toEqual([])

      // Locations: fill against capacity, and the breaker towards Cologne's buffer.
      const chileBuffer = s.locations.find((l) => l.id === world.chileBuffer.id)!
      expect(chileBuffer).toMatchObject({
        siteId: world.chile.id,
        siteName: world.chile.name,
        type: "BUFFER",
        presentCopies: 1,
        presentBytes: 4096,
        usedBytes: 4096,
        capacityBytes: 10000
      })
      expect(chileBuffer.fillFraction).toBeCloseTo(0.4096)
      expect(chileBuffer.circuit.state).toBe("closed")
      const cologneBuffer = s.locations.find((l) => l.id === world.cologneBuffer.id)!
      expect(cologneBuffer.capacityBytes).toBeNull()
      expect(cologneBuffer.fillFraction).toBeNull()
      expect(cologneBuffer.circuit.state).toBe("open")
      expect(cologneBuffer.circuit.reason).toContain("ssh: connect to cologne refused (2)")
      expect(cologneBuffer.lastFailure?.transferId).toBe(failures[2].id)
      expect(s.locations.map((l) => l.id)).toEqual(expect.arrayContaining([world.source.id, world.archive.id, world.processing.id]))

      // The route: bytes and speed over the hour and the day, failed attempts, its circuit.
      const r = s.routes.find((x) => x.id === route.id)!
      expect([r.fromSite, r.toSite, r.viaSite, r.adapter]).toEqual([world.chile.name, world.cologne.name, null, "rsync"])
      expect(r.lastHour).toEqual({ transfers: 2, bytes: 4000, bytesPerSecond: 2000, averageBytesPerSecond: 4000 / 3600, failedAttempts: 3 })
      expect(r.last24Hours).toEqual({
        transfers: 3,
        bytes: 9000,
        bytesPerSecond: 9000 / 7,
        averageBytesPerSecond: 9000 / 86400,
        failedAttempts: 3
      })
      expect(r.circuit.state).toBe("open")
      expect(r.circuit.retryInMs).toBeGreaterThan(0)

      // A retried attempt is history: only its new attempt could need attention.
      yield* operator.operations.retry({ payload: { entity: "DataTransfer", id: failures[0].id } })
      const after = yield* operator.status.get({ urlParams: {} })
      expect(after.failedTotals.DataTransfer).toBe(2)
      expect(after.failed.some((f) => f.id === failures[0].id)).toBe(false)
      expect(after.counts.transfers.pending).toBe(1)
    }))

  it.effect("scientists and instrument accounts see counts only; the snapshot never writes", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      // tokens first: issuing one is an event of its own
      const tokens = {
        scientist: [
          yield* Harness.tokenFor({ role: "scientist", programIds: [world.program.id] }),
          yield* Harness.tokenFor({ role: "scientist" })
        ],
        instrument: [
          yield* Harness.tokenFor({ role: "instrument", instrumentIds: [world.instrument.id] }),
          yield* Harness.tokenFor({ role: "instrument" })
        ]
      }
      const operator = yield* Harness.tokenFor({ role: "operator" })
      const before = yield* Harness.counts(["event_log", "raw_data_file", "data_transfer", "physical_copy"])
      for (const role of ["scientist", "instrument"] as const) {
        const c = yield* Harness.client(tokens[role][0]!)
        const s = yield* c.status.get({ urlParams: {} })
        expect(s.scope).toBe("counts")
        expect([s.failed, s.locations, s.routes]).toEqual([[], [], []])
        expect(Object.values(s.failedTotals).every((n) => n === 0)).toBe(true)
        expect(s.counts.files.corrupt).toBeGreaterThan(0)
        // The raw JSON names no id, path or error text of anything.
        const raw = yield* Harness.raw("GET", "/api/v1/status", { token: tokens[role][1]! })
        expect(raw.status).toBe(200)
        expect(JSON.stringify(raw.json)).not.toMatch(/[0-9a-f]{8}-[0-9a-f]{4}-/)
        expect(JSON.stringify(raw.json)).not.toContain("refused")
      }
      const none = yield* Harness.raw("GET", "/api/v1/status")
      expect([none.status, none.json._tag, none.json.reason]).toEqual([401, "Unauthorized", "MissingToken"])
      const bad = yield* Harness.raw("GET", "/api/v1/status?failedLimit=5000", { token: operator })
      expect(bad.status).toBe(400)
      expect(yield* Harness.counts(["event_log", "raw_data_file", "data_transfer", "physical_copy"])).toEqual(before)
      const [{ n }] = yield* sql<{ n: number }>`select count(*)::int as n from event_log`.pipe(Effect.orDie)
      expect(n).toBe(before.event_log)
    }))

  it.effect("events: one item's history oldest first, in cursor pages, within the caller's programs", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const other = yield* Fixtures.world.pipe(Effect.orDie)
      const eou = yield* Fixtures.executedObsUnit(world).pipe(Effect.orDie)
      const pkg = yield* Fixtures.rawDataPackage(world, eou).pipe(Effect.orDie)
      // A package holds its files (a retry of one with nothing to package again is refused).
      const file = yield* Fixtures.rawDataFile(world, eou).pipe(Effect.orDie)
      yield* Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql`update raw_data_file set raw_data_package_id = ${pkg.id} where id = ${file.id}`
      ).pipe(Effect.orDie)
      const steps = [["pending", "scheduled"], ["scheduled", "in_progress"], ["in_progress", "failed"]] as const
      for (const [from, to] of steps) {
        yield* Transitions.transition({
          entity: "RawDataPackage",
          id: pkg.id,
          from,
          to,
          actor: "worker:chile",
          details: to === "failed" ? { error: "tar: short write" } : {}
        }).pipe(Effect.orDie)
      }
      const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
      yield* operator.operations.retry({ payload: { entity: "RawDataPackage", id: pkg.id, reason: "disk replaced" } })

      const all = yield* operator.status.events({ urlParams: { entity: "RawDataPackage", id: pkg.id } })
      expect(all.items.map((e) => [e.fromState, e.toState])).toEqual([
        [null, "pending"],
        ["pending", "scheduled"],
        ["scheduled", "in_progress"],
        ["in_progress", "failed"],
        ["failed", "pending"]
      ])
      expect(all.items[3].details).toEqual({ error: "tar: short write" })
      expect(all.items[4].details).toMatchObject({ retry: true, reason: "disk replaced" })
      expect(all.items[4].actor).toMatch(/^operator-/)
      expect(all.nextCursor).toBeNull()
      const paged: Array<number> = []
      let cursor: string | undefined
      do {
        const page = yield* operator.status.events({
          urlParams: { entity: "RawDataPackage", id: pkg.id, limit: 2, ...(cursor ? { cursor } : {}) }
        })
        expect(page.items.length).toBeLessThanOrEqual(2)
        paged.push(...page.items.map((e) => e.id))
        cursor = page.nextCursor ?? undefined
      } while (cursor !== undefined)
      expect(paged).toEqual(all.items.map((e) => e.id))

      // A scientist of the program reads it; one of another program gets a 404, as for an unknown id.
      const mine = yield* Harness.client(yield* Harness.tokenFor({ role: "scientist", programIds: [world.program.id] }))
      expect((yield* mine.status.events({ urlParams: { entity: "RawDataPackage", id: pkg.id } })).items).toHaveLength(5)
      const theirs = yield* Harness.client(yield* Harness.tokenFor({ role: "scientist", programIds: [other.program.id] }))
      const hidden = yield* Effect.either(theirs.status.events({ urlParams: { entity: "RawDataPackage", id: pkg.id } }))
      expect(Either.isLeft(hidden) && hidden.left._tag).toBe("NotFound")
      // Bundles and attempts are operators' business, whatever the program.
      const bundle = yield* Fixtures.dataTransferPackage([pkg]).pipe(Effect.orDie)
      const bundleEvents = yield* Effect.either(mine.status.events({ urlParams: { entity: "DataTransferPackage", id: bundle.id } }))
      expect(Either.isLeft(bundleEvents) && bundleEvents.left._tag).toBe("NotFound")
      expect((yield* operator.status.events({ urlParams: { entity: "DataTransferPackage", id: bundle.id } })).items.map((e) => e.toState))
        .toEqual(["pending"])
      // The wrong entity for an id, an unknown id, a cursor that is not ours.
      const wrongKind = yield* Effect.either(operator.status.events({ urlParams: { entity: "DataTransfer", id: pkg.id } }))
      expect(Either.isLeft(wrongKind) && wrongKind.left._tag === "NotFound" && wrongKind.left.message).toContain("DataTransfer")
      const unknown = yield* Effect.either(operator.status.events({ urlParams: { entity: "RawDataFile", id: randomUUID() } }))
      expect(Either.isLeft(unknown) && unknown.left._tag).toBe("NotFound")
      const garbage = yield* Effect.either(
        operator.status.events({ urlParams: { entity: "RawDataPackage", id: pkg.id, cursor: "garbage" } })
      )
      expect(Either.isLeft(garbage) && garbage.left._tag === "Unprocessable" && garbage.left.field).toBe("cursor")
      const badKind = yield* Harness.raw("GET", `/api/v1/events?entity=Telescope&id=${pkg.id}`, {
        token: yield* Harness.tokenFor({ role: "operator" })
      })
      expect(badKind.status).toBe(400)
    }))
})
