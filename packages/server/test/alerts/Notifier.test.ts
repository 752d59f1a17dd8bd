/**
 * The built-in notifier against real peers: a package driven to FAILED by the real packaging
 * stage reaches a real Alertmanager (read back through its API, and through what Alertmanager
 * itself notifies), a webhook and a real SMTP peer exactly once, though two notifiers (two server
 * processes) evaluate and deliver at the same time; the operator's retry through the API resolves
 * it, and the resolution follows, once. A sink that is down gets the notification when it is
 * back; a sink's rate limit holds, and what waited goes out in one message when the window allows.
 */
import { Transitions } from "@ccat/core"
import { Fixtures, TestDatabase, waitUntil } from "@ccat/core/testing"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as fs from "node:fs/promises"
import * as Notifier from "../../src/alerts/Notifier.js"
import * as NotifierConfig from "../../src/alerts/NotifierConfig.js"
import * as JobQueue from "../../src/engine/JobQueue.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import * as Storages from "../../src/lifecycle/Storages.js"
import * as Harness from "../ApiHarness.js"
import { fileObservation, observatory, policyLayer, runUntil, syncTopology, tempDir, topologyIn } from "../lifecycle/LifecycleWorld.js"
import * as Peers from "./Peers.js"

const configOf = (raw: unknown) =>
  Effect.flatMap(
    NotifierConfig.decode(raw, "/"),
    (r) => (Either.isRight(r) ? Effect.succeed(r.right) : Effect.dieMessage(r.left.join("\n")))
  )

const notifierOf = (raw: unknown) => Effect.flatMap(configOf(raw), Notifier.make).pipe(Effect.provide(FetchHttpClient.layer))

const webhookItems = (bodies: ReadonlyArray<any>) => bodies.flatMap((b) => b.body.notifications as Array<any>)

describe("the built-in notifier", () => {
  it.scopedLive(
    "a package FAILED by the packaging stage: Alertmanager, the webhook and the SMTP peer are told once, though two notifiers run; after the retry the resolution follows, once",
    () =>
      Effect.gen(function* () {
        const amReceiver = yield* Peers.recorder()
        yield* amReceiver.start
        const am = yield* Peers.alertmanager(amReceiver.url)
        const hook = yield* Peers.recorder()
        yield* hook.start
        const mail = yield* Peers.smtp
        const raw = {
          interval: "1 seconds",
          retry: { initial: "200 millis", max: "1 seconds" },
          conditions: { for: { CcatPackageFailed: 0 } },
          sinks: [
            { name: "am", type: "alertmanager", url: am.url },
            { name: "hook", type: "webhook", url: hook.url },
            { name: "mail", type: "email", host: "127.0.0.1", port: mail.port, from: "ccat@example.org", to: ["ops@example.org"] }
          ]
        }
        // Two server processes' notifiers on the same ops-db.
        const one = yield* notifierOf(raw)
        const two = yield* notifierOf(raw)
        const both = Effect.all([one.pass, two.pass, one.pass, two.pass], { concurrency: "unbounded" })

        // Every file of a package corrupt at the SOURCE: the packaging stage fails the package.
        const dir = yield* tempDir
        const sql = yield* SqlClient.SqlClient
        const topology = topologyIn(dir)
        yield* syncTopology(topology)
        const obs = yield* observatory
        const { files } = yield* fileObservation(topology, obs, [{ path: "det/a.fits", bytes: 20_000 }])
        const original = yield* Effect.promise(() => fs.readFile(files[0].absolutePath))
        const rotten = Buffer.from(original)
        rotten[100] ^= 0x01
        yield* Effect.promise(() => fs.writeFile(files[0].absolutePath, rotten))
        const failed = sql<{ id: string }>`select id from raw_data_package where status = 'failed'`
        yield* runUntil([["chile", [Packaging.stage]]], Effect.map(failed, (r) => r.length === 1)).pipe(
          Effect.provide(policyLayer(topology))
        )
        const [{ id: pkgId }] = yield* failed

        yield* both
        yield* one.pass
        const active = (yield* am.alerts).filter((a) => a.labels.alertname === "CcatPackageFailed")
        assert.strictEqual(active.length, 1)
        assert.strictEqual(active[0].labels.id, pkgId)
        assert.strictEqual(active[0].labels.severity, "critical")
        assert.include(active[0].annotations.description, "det/a.fits")
        assert.deepStrictEqual(webhookItems(hook.bodies).map((n) => [n.alertname, n.status, n.labels.id]), [[
          "CcatPackageFailed",
          "firing",
          pkgId
        ]])
        const firstMails = yield* mail.messages
        assert.strictEqual(firstMails.length, 1)
        assert.include(firstMails[0], "FIRING")
        assert.include(firstMails[0], "CcatPackageFailed")
        assert.include(firstMails[0], pkgId)
        // Alertmanager tells its own receiver, once.
        yield* waitUntil("Alertmanager's own notification", Effect.sync(() => amReceiver.bodies.length > 0), 15_000)

        // More passes change nothing while the package stays FAILED.
        yield* both
        assert.strictEqual(hook.bodies.length, 1)
        assert.strictEqual((yield* mail.messages).length, 1)
        const [incident] = yield* sql<{ n: number; resolved: number }>`
          select count(*)::int as n, count(resolved_at)::int as resolved from alert_incident where alertname = 'CcatPackageFailed'`
        assert.deepStrictEqual([incident.n, incident.resolved], [1, 0])

        // The instrument team restores the file; the operator's retry through the API succeeds.
        yield* Effect.promise(() => fs.writeFile(files[0].absolutePath, original))
        const operator = yield* Harness.client(yield* Harness.tokenFor({ role: "operator" }))
        const retried = yield* operator.operations.retry({ payload: { entity: "RawDataPackage", id: pkgId, reason: "file restored" } })
        assert.deepStrictEqual([retried.from, retried.to], ["failed", "pending"])

        yield* both
        yield* one.pass
        assert.deepStrictEqual(webhookItems(hook.bodies).map((n) => [n.status, n.labels.id]), [["firing", pkgId], ["resolved", pkgId]])
        assert.isNotNull(webhookItems(hook.bodies)[1].endsAt)
        // the maildir's names order two messages of one second by chance: found by content
        const mails = yield* mail.messages
        assert.strictEqual(mails.length, 2)
        const resolvedMail = mails.find((m) => !m.includes("FIRING"))
        assert.isDefined(resolvedMail, mails.join("\n---\n"))
        assert.include(resolvedMail, "RESOLVED")
        assert.include(resolvedMail, pkgId)
        assert.deepStrictEqual((yield* am.alerts).filter((a) => a.labels.alertname === "CcatPackageFailed"), [])
        yield* waitUntil(
          "Alertmanager's resolved notification",
          Effect.sync(() => amReceiver.bodies.some((b) => b.body.status === "resolved")),
          15_000
        )
        yield* both
        assert.strictEqual(hook.bodies.length, 2)
        assert.strictEqual((yield* mail.messages).length, 2)
        const told = amReceiver.bodies.flatMap((b) =>
          (b.body.alerts as Array<any>).filter((a) => a.labels.id === pkgId).map((a) => a.status)
        )
        assert.deepStrictEqual(told, ["firing", "resolved"])
        // The incident's history is in the event log: opened, then resolved, by the notifier, once each.
        const [{ id: incidentId }] = yield* sql<{ id: string }>`select id from alert_incident where labels->>'id' = ${pkgId}`
        const events = yield* operator.status.events({ urlParams: { entity: "AlertIncident", id: incidentId } })
        assert.deepStrictEqual(events.items.map((e) => [e.fromState, e.toState, e.actor, e.details.alertname]), [
          [null, "open", "notifier", "CcatPackageFailed"],
          ["open", "resolved", "notifier", "CcatPackageFailed"]
        ])
        const deliveries = yield* sql<{ sink: string; kind: string; attempts: number }>`
          select sink, kind, attempts from alert_delivery where delivered_at is not null order by sink, kind`
        assert.deepStrictEqual(deliveries.map((d) => `${d.sink}:${d.kind}:${d.attempts}`), [
          "am:firing:1",
          "am:resolved:1",
          "hook:firing:1",
          "hook:resolved:1",
          "mail:firing:1",
          "mail:resolved:1"
        ])
      }).pipe(Effect.provide(Layer.mergeAll(JobQueue.layer, Storages.layer()).pipe(Layer.provideMerge(Harness.layer())))),
    120_000
  )

  it.scopedLive(
    "a webhook that is down is told once it is back; its rate limit holds what is due beyond it, which then goes out in one message",
    () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const hook = yield* Peers.recorder()
        const notifier = yield* notifierOf({
          interval: "1 seconds",
          retry: { initial: "200 millis", max: "400 millis" },
          conditions: { for: { CcatPackageFailed: 0 } },
          sinks: [{ name: "late-hook", type: "webhook", url: hook.url, rateLimit: { messages: 1, per: "3 seconds" } }]
        })
        const world = yield* Fixtures.world.pipe(Effect.orDie)
        const failPackage = Effect.gen(function* () {
          const eou = yield* Fixtures.executedObsUnit(world).pipe(Effect.orDie)
          const pkg = yield* Fixtures.rawDataPackage(world, eou).pipe(Effect.orDie)
          yield* Transitions.transition({
            entity: "RawDataPackage",
            id: pkg.id,
            from: "pending",
            to: "failed",
            set: { errorMessage: "lost by hand" }
          })
          return pkg.id as string
        })
        const first = yield* failPackage

        // Nothing listens yet: the delivery fails, is kept, and says why.
        const pass = yield* notifier.pass
        assert.deepStrictEqual(pass.rounds.map((r) => r.round.outcome), ["failed"])
        const [kept] = yield* sql<{ attempts: number; lastError: string; deliveredAt: Date | null }>`
          select attempts, last_error, delivered_at from alert_delivery where sink = 'late-hook'`
        assert.strictEqual(kept.attempts, 1)
        assert.isNull(kept.deliveredAt)
        assert.include(kept.lastError, "cannot be reached")
        // Named by its origin: a webhook's path is often its secret.
        assert.notInclude(kept.lastError, "/hook")

        // The sink comes back: the next due try delivers it.
        yield* hook.start
        yield* waitUntil("the webhook to be told", Effect.map(notifier.pass, () => hook.bodies.length > 0), 15_000)
        assert.deepStrictEqual(webhookItems(hook.bodies).map((n) => [n.status, n.labels.id]), [["firing", first]])

        // Two more incidents inside the window: held, not dropped.
        const second = yield* failPackage
        const held = yield* notifier.pass
        assert.deepStrictEqual(held.rounds.map((r) => r.round.outcome), ["rate-limited"])
        const third = yield* failPackage
        yield* notifier.pass
        assert.strictEqual(hook.bodies.length, 1)
        const [window] = yield* sql<{ startedAt: Date }>`select window_started_at as started_at from alert_sink where name = 'late-hook'`
        yield* waitUntil("the held notifications", Effect.map(notifier.pass, () => hook.bodies.length > 1), 15_000)
        assert.strictEqual(hook.bodies.length, 2)
        assert.sameMembers(hook.bodies[1].body.notifications.map((n: any) => n.labels.id), [second, third])
        const [sent] = yield* sql<{ at: Date }>`
          select min(delivered_at) as at from alert_delivery d join alert_incident i on i.id = d.incident_id where i.labels->>'id' = ${second}`
        assert.isAtLeast(sent.at.getTime() - window.startedAt.getTime(), 3_000)
        // Each delivery went once.
        const [counts] = yield* sql<{ delivered: number; pending: number }>`
          select count(delivered_at)::int as delivered, count(*) filter (where delivered_at is null)::int as pending from alert_delivery`
        assert.deepStrictEqual([counts.delivered, counts.pending], [3, 0])
      }).pipe(Effect.provide(TestDatabase.layer)),
    60_000
  )

  it.scopedLive("the loop `ccat serve` runs evaluates and delivers on its own, every interval", () =>
    // Scoped inside the database's layer, so the loop stops before the database goes.
    Effect.scoped(Effect.gen(function* () {
      const hook = yield* Peers.recorder()
      yield* hook.start
      const config = yield* configOf({
        interval: "200 millis",
        conditions: { for: { CcatBundleFailed: 0 } },
        sinks: [{ name: "loop-hook", type: "webhook", url: hook.url }]
      })
      yield* Layer.build(Notifier.layer(config))
      const bundle = yield* Fixtures.dataTransferPackage([]).pipe(Effect.orDie)
      yield* Transitions.transition({
        entity: "DataTransferPackage",
        id: bundle.id,
        from: "pending",
        to: "failed",
        set: { errorMessage: "no route" }
      })
      yield* waitUntil("the loop to tell the webhook", Effect.sync(() => hook.bodies.length > 0), 15_000)
      assert.deepStrictEqual(webhookItems(hook.bodies).map((n) => [n.status, n.alertname, n.labels.id]), [[
        "firing",
        "CcatBundleFailed",
        bundle.id
      ]])
    })).pipe(Effect.provide(TestDatabase.layer)), 30_000)
})
