/**
 * Runs the staging example against a real server and the real archive and staging stages on a
 * real ops-db: an observation's package is archived and staged at cologne-processing, and the
 * example answers every file's local path, checked by size and SHA-256 against what was filed;
 * releasing the request afterwards is recorded and hands out no file any more.
 */
import { describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { expect } from "vitest"
import * as JobQueue from "../../packages/server/src/engine/JobQueue.js"
import * as Archiving from "../../packages/server/src/lifecycle/Archiving.js"
import * as Staging from "../../packages/server/src/lifecycle/Staging.js"
import * as Storages from "../../packages/server/src/lifecycle/Storages.js"
import * as Harness from "../../packages/server/test/ApiHarness.js"
import { arrivedPackage, quickRetries, runSitesUntil, topologyFrom } from "../../packages/server/test/lifecycle/ArchiveWorld.js"
import { observatory, policyLayer, syncTopology, tempDir } from "../../packages/server/test/lifecycle/LifecycleWorld.js"
import { releaseStaging, stageObservations } from "./stageObservations.js"

const world = Layer.mergeAll(JobQueue.layer, Storages.layer()).pipe(Layer.provideMerge(Harness.layer()))

describe("examples/stage-data", () => {
  it.scopedLive("stages an archived observation and answers its files' local paths, verified", () =>
    Effect.gen(function* () {
      const topology = topologyFrom(yield* tempDir)
      yield* syncTopology(topology)
      const obs = yield* observatory
      const pkg = yield* arrivedPackage(topology, obs, [
        { path: "scan/a.fits", bytes: 20_000 },
        { path: "scan/b.fits", bytes: 3_000 },
        { path: "hk.dat", bytes: 50 }
      ])
      const token = yield* Harness.tokenFor({ role: "scientist", programIds: [obs.program.id] })
      const baseUrl = yield* Harness.BaseUrl
      const lines: Array<string> = []
      const completed = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`
        select count(*)::int as n from staging_request where status = 'completed'`).pipe(Effect.map(([r]) => r.n === 1))
      const [result] = yield* Effect.all([
        Effect.promise(() =>
          stageObservations({
            baseUrl,
            token,
            location: "cologne-processing",
            observationIds: [pkg.eou.id],
            verify: true,
            pollBaseMs: 100,
            log: (l) => lines.push(l)
          })
        ),
        runSitesUntil([["cologne", [Archiving.stage, quickRetries(Staging.stage)]]], completed).pipe(Effect.provide(policyLayer(topology)))
      ], { concurrency: "unbounded" })
      expect(result.files.map((f) => f.relativePath).sort()).toEqual(pkg.files.map((f) => f.relativePath).sort())
      for (const f of result.files) expect(f.checksum).toBe(pkg.files.find((w) => w.relativePath === f.relativePath)!.checksum)
      expect(result.expiresAt).not.toBeNull()
      expect(lines.at(-1)).toMatch(/^staged 3 files, kept until .* or until released$/)
      const releasedAt = yield* Effect.promise(() => releaseStaging({ baseUrl, token, requestId: result.requestId }))
      expect(releasedAt).not.toBeNull()
      expect(yield* Effect.promise(() => releaseStaging({ baseUrl, token, requestId: result.requestId }))).toEqual(releasedAt)
    }).pipe(Effect.provide(world)), 120_000)
})
