/**
 * The figure-based conditions on a real ops-db: a route whose attempts have all failed for two
 * hours (its circuit and its destination's), a staging request waiting longer than its stage
 * allows, audit findings, and a location over its fill threshold. Each is raised under the
 * rules' name and labels (`circuit`, `finding`, `stage`); each is told only once it has held for
 * its `for`, so the fill, gone again within its half hour, is never told at all; and a closed
 * circuit's resolution follows its incident to the sink that was told.
 */
import { Fixtures, TestDatabase } from "@ccat/core/testing"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Either from "effect/Either"
import * as Notifier from "../../src/alerts/Notifier.js"
import * as NotifierConfig from "../../src/alerts/NotifierConfig.js"
import * as Peers from "./Peers.js"

const told = (bodies: ReadonlyArray<any>) =>
  bodies.flatMap((b) => b.body.notifications as Array<any>).map((n) => ({
    status: n.status,
    alertname: n.alertname,
    severity: n.severity,
    labels: n.labels
  }))

describe("the notifier's figure-based conditions", () => {
  it.scopedLive(
    "open circuits, an old staging backlog and audit findings are told under the rules' names and labels; a fill that clears within its for is never told",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const hook = yield* Peers.recorder()
        yield* hook.start
        const decoded = yield* NotifierConfig.decode({
          conditions: { for: { CcatAuditFindings: 0 } },
          sinks: [{ name: "hook", type: "webhook", url: hook.url }]
        }, "/")
        assert.isTrue(Either.isRight(decoded))
        const notifier = yield* Notifier.make(Either.getOrThrow(decoded)).pipe(Effect.provide(FetchHttpClient.layer))
        const w = yield* Fixtures.world.pipe(Effect.orDie)

        // Three failed attempts on a route, the first three hours ago, the last two: both circuits open two hours.
        const [route] = yield* sql<{ id: string }>`
        insert into route (from_site_id, to_site_id, adapter) values (${w.chile.id}, ${w.cologne.id}, 'rsync') returning id`
        for (const hoursAgo of [3, 2.5, 2]) {
          const bundle = yield* Fixtures.dataTransferPackage([]).pipe(Effect.orDie)
          yield* sql`
          insert into data_transfer (data_transfer_package_id, route_id, from_location_id, to_location_id, adapter, status,
            started_at, finished_at, error_reason, error_message, retryable)
          values (${bundle.id}, ${route.id}, ${w.chileBuffer.id}, ${w.cologneBuffer.id}, 'rsync', 'failed',
            now() - make_interval(secs => ${hoursAgo * 3600 + 10}), now() - make_interval(secs => ${hoursAgo * 3600}),
            'Unavailable', 'connection refused', true)`
        }
        // A staging request untouched for 13 hours (the stage allows 12).
        yield* sql`
        insert into staging_request (account_id, data_location_id, status, created_at, updated_at)
        values (${w.scientist.id}, ${w.processing.id}, 'pending', now() - interval '13 hours', now() - interval '13 hours')`
        // A CORRUPT copy in the archive and a dark object in Cologne's buffer.
        const eou = yield* Fixtures.executedObsUnit(w).pipe(Effect.orDie)
        const archived = yield* Fixtures.rawDataPackage(w, eou).pipe(Effect.orDie)
        yield* Fixtures.physicalCopy(w.archive, archived, "CORRUPT").pipe(Effect.orDie)
        yield* sql`insert into dark_object (data_location_id, path, size_bytes) values (${w.cologneBuffer.id}, 'stray/file.bin', 10)`
        // Chile's buffer 97 % full: above the 90 % a location without a retention threshold alerts at.
        const buffered = yield* Fixtures.rawDataPackage(w, eou).pipe(Effect.orDie)
        const copy = yield* Fixtures.physicalCopy(w.chileBuffer, buffered).pipe(Effect.orDie)
        yield* sql`update data_location set capacity_bytes = 4200 where id = ${w.chileBuffer.id}`

        const first = yield* notifier.pass
        assert.sameMembers(first.evaluation.opened.map((o) => o.alertname), [
          "CcatCircuitOpen",
          "CcatCircuitOpen",
          "CcatStageBacklogOld",
          "CcatAuditFindings",
          "CcatAuditFindings",
          "CcatLocationFull"
        ])
        const sent = told(hook.bodies)
        const pick = (alertname: string, label: string, value: string) =>
          sent.filter((n) => n.alertname === alertname && n.labels[label] === value)
        assert.strictEqual(sent.length, 5, JSON.stringify(sent))
        const [routeCircuit] = pick("CcatCircuitOpen", "circuit", "route")
        assert.deepInclude(routeCircuit, { status: "firing", severity: "warning" })
        assert.deepInclude(routeCircuit.labels, { from: w.chile.name, to: w.cologne.name, adapter: "rsync" })
        assert.strictEqual(pick("CcatCircuitOpen", "circuit", "location")[0].labels.location, w.cologneBuffer.name)
        assert.strictEqual(pick("CcatStageBacklogOld", "stage", "staging").length, 1)
        assert.deepInclude(pick("CcatAuditFindings", "finding", "corrupt")[0], { severity: "critical" })
        assert.strictEqual(pick("CcatAuditFindings", "finding", "corrupt")[0].labels.location, w.archive.name)
        assert.deepInclude(pick("CcatAuditFindings", "finding", "dark")[0], { severity: "warning" })
        assert.strictEqual(pick("CcatLocationFull", "location", w.chileBuffer.name).length, 0)

        // The fill clears within its half hour: resolved, and never told.
        yield* sql`update physical_copy set status = 'DELETED' where id = ${copy.id}`
        // A completed attempt closes both circuits.
        const bundle = yield* Fixtures.dataTransferPackage([]).pipe(Effect.orDie)
        yield* sql`
        insert into data_transfer (data_transfer_package_id, route_id, from_location_id, to_location_id, adapter, status,
          started_at, finished_at, bytes_transferred, duration_ms)
        values (${bundle.id}, ${route.id}, ${w.chileBuffer.id}, ${w.cologneBuffer.id}, 'rsync', 'completed', now() - interval '1 second', now(), 10, 1000)`
        const second = yield* notifier.pass
        assert.sameMembers(second.evaluation.resolved.map((r) => r.alertname), ["CcatCircuitOpen", "CcatCircuitOpen", "CcatLocationFull"])
        const after = told(hook.bodies).slice(sent.length)
        assert.sameMembers(after.map((n) => `${n.status} ${n.alertname} ${n.labels.circuit}`), [
          "resolved CcatCircuitOpen route",
          "resolved CcatCircuitOpen location"
        ])
        const [fill] = yield* sql<{ deliveries: number }>`
        select count(d.*)::int as deliveries from alert_incident i left join alert_delivery d on d.incident_id = i.id where i.alertname = 'CcatLocationFull'`
        assert.strictEqual(fill.deliveries, 0)
      }).pipe(Effect.provide(TestDatabase.layer)),
    60_000
  )
})
