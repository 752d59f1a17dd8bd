/**
 * One bundle of two packages written in Chile's buffer and not sent yet, on a fresh ops-db with
 * the real HTTP API beside the workers: the start of the tests of what happens to a bundle whose
 * transfer fails or whose tar goes bad, and of an operator's retry.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as path from "node:path"
import * as JobQueue from "../../src/engine/JobQueue.js"
import * as Bundling from "../../src/lifecycle/Bundling.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import * as Stages from "../../src/lifecycle/Stages.js"
import * as Storages from "../../src/lifecycle/Storages.js"
import * as Harness from "../ApiHarness.js"
import { fileObservation, observatory, policyLayer, runUntil, syncTopology, topologyIn } from "./LifecycleWorld.js"

/** The lifecycle world plus the real HTTP API on the same fresh ops-db. */
export const layer = Layer.mergeAll(JobQueue.layer, Storages.layer()).pipe(Layer.provideMerge(Harness.layer()))

/** Every stage at both sites. */
export const everySite = [["chile", Stages.all], ["cologne", Stages.all]] as const

/** A transfer attempt as the tests compare it. */
export interface AttemptRow {
  readonly id: string
  readonly attempt: number
  readonly status: string
  readonly errorReason: string | null
  readonly previousAttemptId: string | null
}

/** Every transfer attempt, oldest first. */
export const attempts = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    sql<
      AttemptRow
    >`select id, attempt, status::text as status, error_reason, previous_attempt_id from data_transfer order by attempt, created_at`
)

/** How many packages are archived (completed). */
export const archivedPackages = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ n: number }>`select count(*)::int as n from raw_data_package where status = 'completed'`
).pipe(Effect.map((r) => r[0].n))

/**
 * Files two packages (two modules) and runs Chile until both are written and bundled together;
 * returns the bundle and its tar's file in the buffer.
 */
export const oneBundleOfTwoPackages = (dir: string) =>
  Effect.gen(function* () {
    const topology = topologyIn(dir)
    yield* syncTopology(topology)
    const sql = yield* SqlClient.SqlClient
    const obs = yield* observatory
    yield* fileObservation(topology, obs, [{ path: "det/a.fits", bytes: 60_000 }, { path: "hk/h.dat", bytes: 4_000, module: 1 }])
    const written = Effect.map(
      sql<{ n: number }>`select count(*)::int as n from raw_data_package where status = 'in_progress' and checksum is not null`,
      (r) => r[0].n === 2
    )
    const bundleCopy = sql<{ bundleId: string; path: string }>`
      select c.data_transfer_package_id as bundle_id, c.path from physical_copy c join data_location l on l.id = c.data_location_id
      where l.name = 'chile-buffer' and c.data_transfer_package_id is not null and c.status = 'PRESENT'`
    // Packaging first, bundling after: both packages wait when the bundle is planned, so they share it.
    yield* runUntil([["chile", [Packaging.stage]]], written).pipe(Effect.provide(policyLayer(topology)))
    yield* runUntil([["chile", [Bundling.stage]]], Effect.map(bundleCopy, (c) => c.length === 1)).pipe(
      Effect.provide(policyLayer(topology))
    )
    const [copy] = yield* bundleCopy
    return { topology, bundleId: copy.bundleId, file: path.join(dir, "locations", "chile-buffer", copy.path) }
  })
