/**
 * Runs the filing example against a real server on a real ops-db: a scan of 1,203 files is
 * filed (observation, files in batches of 1,000, close) through @ccat/client's outbox; the
 * server then holds exactly those files with their sizes and checksums, and running the example
 * again for the same scan files nothing twice.
 */
import { Fixtures } from "@ccat/core/testing"
import { it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { expect } from "vitest"
import * as Harness from "../../packages/server/test/ApiHarness.js"
import { fileScan } from "./fileScan.js"

it.layer(Harness.layer(), { timeout: 120_000 })("examples/file-observation", (it) => {
  it.scoped("files a scan with its files through the outbox, and a second run files nothing twice", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const token = yield* Harness.tokenFor({ role: "instrument", instrumentIds: [world.instrument.id] })
      const baseUrl = yield* Harness.BaseUrl
      const root = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-example-")))
      yield* Effect.addFinalizer(() => Effect.promise(() => fs.rm(root, { recursive: true, force: true })))
      const scanDir = path.join(root, "source", "2026-05-01", "scan-0017")
      const checksums = new Map<string, string>()
      for (let i = 0; i < 1203; i++) {
        const rel = `2026-05-01/scan-0017/${i < 3 ? "housekeeping" : "detectors"}/part-${String(i).padStart(5, "0")}.dat`
        const bytes = randomBytes(64 + (i % 50))
        yield* Effect.promise(() => fs.mkdir(path.dirname(path.join(root, "source", rel)), { recursive: true }))
        yield* Effect.promise(() => fs.writeFile(path.join(root, "source", rel), bytes))
        checksums.set(rel, `sha256:${createHash("sha256").update(bytes).digest("hex")}`)
      }
      const options = {
        baseUrl,
        token,
        obsUnitId: world.obsUnit.id,
        sourceLocation: world.source.name,
        sourceRoot: path.join(root, "source"),
        scanDir,
        module: "280GHz",
        outboxDir: path.join(root, "outbox"),
        startAt: new Date("2026-05-01T03:00:00Z"),
        endAt: new Date("2026-05-01T03:40:00Z")
      }
      const result = yield* Effect.promise(() => fileScan(options))
      expect(result.files).toBe(1203)

      const client = yield* Harness.client(token)
      const observation = yield* client.observations.get({ path: { id: result.observationId as any } })
      expect([observation.status, observation.endAt !== null, observation.metadata.scan]).toEqual([
        "completed",
        true,
        "2026-05-01/scan-0017"
      ])
      const filed = new Map<string, string>()
      let cursor: string | undefined
      do {
        const page: { items: ReadonlyArray<{ relativePath: string; checksum: string }>; nextCursor: string | null } = yield* client.files
          .list({ urlParams: { observationId: result.observationId as any, limit: 1000, ...(cursor ? { cursor } : {}) } })
        for (const f of page.items) filed.set(f.relativePath, f.checksum)
        cursor = page.nextCursor ?? undefined
      } while (cursor !== undefined)
      expect(filed).toEqual(checksums)

      const before = yield* Harness.counts()
      const again = yield* Effect.promise(() => fileScan(options))
      expect(again.observationId).toBe(result.observationId)
      expect(yield* Harness.counts()).toEqual(before)
    }))
})
