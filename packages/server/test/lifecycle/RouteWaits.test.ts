/**
 * Bundles waiting for a place on a full route: the wait names the route, and the end of an
 * attempt wakes as many of them as the route has places free, the longest waiting first, and no
 * job that waits for anything else.
 */
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import { JobQueue } from "../../src/engine/JobQueue.js"
import * as Routes from "../../src/lifecycle/Routes.js"
import { queueName } from "../../src/lifecycle/Stage.js"
import * as TransferAttempts from "../../src/lifecycle/TransferAttempts.js"
import { layer, syncTopology, tempDir, topologyIn } from "./LifecycleWorld.js"

describe("waits for a place on a route", () => {
  it.scopedLive("an ended attempt wakes the route's longest waiting bundles, as many as it has places free", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const dir = yield* tempDir
      const topology = topologyIn(dir, {}, [{ from: "chile", to: "cologne", adapter: "local", maxConcurrentTransfers: 2 }])
      yield* syncTopology(topology)
      const [route] = yield* Routes.leaving("chile")
      const queue = queueName("chile", TransferAttempts.name)
      yield* (yield* JobQueue).ensureQueue(queue, Routes.queues.transfer)
      // Three bundles wait for the route, one for another route, one for a backoff (no route named).
      const waiting = Array.from({ length: 3 }, () => randomUUID())
      for (const id of waiting) yield* TransferAttempts.later("chile", id, 30_000, "route full", route!.id)
      const elsewhere = randomUUID()
      yield* TransferAttempts.later("chile", elsewhere, 30_000, "route full", randomUUID())
      const backoff = randomUUID()
      yield* TransferAttempts.later("chile", backoff, 30_000, "backoff after attempt 1")
      const due = sql<{ bundleId: string }>`
        select data ->> 'bundleId' as bundle_id from pgboss.job where name = ${queue} and start_after <= now() order by created_on`

      yield* TransferAttempts.wakeForRoute("chile", route!)
      // Nothing runs on the route: both places are free, so the two longest waiting go now.
      assert.deepStrictEqual((yield* due).map((r) => r.bundleId), waiting.slice(0, 2))
      yield* TransferAttempts.wakeForRoute("chile", { ...route!, maxConcurrentTransfers: 0 })
      assert.strictEqual((yield* due).length, 2, "a route with no place free wakes nobody")
      yield* TransferAttempts.wakeForRoute("chile", route!)
      assert.deepStrictEqual((yield* due).map((r) => r.bundleId), waiting, "the third once places are free again")
      const still = yield* sql<{ bundleId: string }>`
        select data ->> 'bundleId' as bundle_id from pgboss.job where name = ${queue} and start_after > now() order by created_on`
      assert.deepStrictEqual(still.map((r) => r.bundleId), [elsewhere, backoff])
    }).pipe(Effect.provide(layer)), 60_000)
})
