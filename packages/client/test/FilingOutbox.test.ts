import { assert, describe, it } from "@effect/vitest"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Effect from "effect/Effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { FilingOutbox, Outbox } from "../src/index.js"

const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-filing-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

const observation = {
  id: "4f6c1c51-1f7e-4b8e-9a57-3f0c1a1d2e01",
  obsUnitId: "a0a0a0a0-1f7e-4b8e-9a57-3f0c1a1d2e01",
  startAt: new Date("2026-11-26T01:02:03Z"),
  sourceLocation: "chile-source",
  files: [{
    id: "b1b1b1b1-1f7e-4b8e-9a57-3f0c1a1d2e01",
    module: "chai",
    relativePath: "raw/scan-0001.fits",
    sizeBytes: 1024,
    checksum: `sha256:${"ab".repeat(32)}`
  }]
}

describe("FilingOutbox", () => {
  it.scoped("stores filings in the contract's encoded form, in order, and reads them back typed", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      yield* Effect.scoped(Effect.gen(function* () {
        // nothing listens on port 9: the filings wait
        const filing = yield* FilingOutbox.make({ directory: dir, client: { baseUrl: "http://127.0.0.1:9" }, retry: { base: "1 hour" } })
        yield* filing.fileObservation(observation)
        yield* filing.addFiles(observation.id, { sourceLocation: "chile-source", files: observation.files })
        yield* filing.closeObservation(observation.id, { endAt: new Date("2026-11-26T02:00:00Z"), status: "completed" })
        assert.strictEqual(yield* filing.outbox.pending, 3)
      })).pipe(Effect.provide(FetchHttpClient.layer))

      const stored = yield* Effect.scoped(Effect.gen(function* () {
        const seen: Array<FilingOutbox.StoredCall> = []
        const outbox = yield* Outbox.make({
          directory: dir,
          schema: FilingOutbox.StoredCall,
          deliver: (c: FilingOutbox.StoredCall) => Effect.sync(() => seen.push(c))
        })
        yield* outbox.flush()
        return seen
      }))
      assert.deepStrictEqual(stored.map((c) => `${c.group}.${c.endpoint}`), [
        "observations.file",
        "observations.addFiles",
        "observations.close"
      ])
      assert.strictEqual((stored[0]!.request.payload as { startAt: string }).startAt, "2026-11-26T01:02:03.000Z")
      const decoded = yield* FilingOutbox.decodeCall(stored[0]!)
      assert.deepStrictEqual(decoded.payload, observation)
      assert.deepStrictEqual((yield* FilingOutbox.decodeCall(stored[1]!)).path, { id: observation.id })
    }))

  it.scoped("refuses a filing the contract would refuse before it reaches the disk", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const filing = yield* FilingOutbox.make({ directory: dir, client: { baseUrl: "http://127.0.0.1:9" } })
      const error = yield* Effect.flip(
        filing.fileObservation({ ...observation, files: [{ ...observation.files[0]!, relativePath: "../etc/passwd" }] })
      )
      assert.strictEqual(error._tag, "ParseError")
      const badId = yield* Effect.flip(filing.addFiles("not-a-uuid", { sourceLocation: "chile-source", files: observation.files }))
      assert.strictEqual(badId._tag, "ParseError")
      assert.strictEqual(yield* filing.outbox.pending, 0)
    }).pipe(Effect.provide(FetchHttpClient.layer)))

  it.scoped("queues an observation larger than a request as its batches and its close, in order, keyed by the observation", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const files = Array.from({ length: 10_001 }, (_, i) => ({
        ...observation.files[0]!,
        id: `b1b1b1b1-1f7e-4b8e-9a57-${String(i).padStart(12, "0")}`,
        relativePath: `raw/scan-${i}.fits`
      }))
      const big = { ...observation, endAt: new Date("2026-11-26T02:00:00Z"), quality: "good" as const, files }
      yield* Effect.scoped(Effect.gen(function* () {
        const filing = yield* FilingOutbox.make({ directory: dir, client: { baseUrl: "http://127.0.0.1:9" }, retry: { base: "1 hour" } })
        const first = yield* filing.fileObservation(big)
        assert.strictEqual(first.key, big.id)
        assert.strictEqual(yield* filing.outbox.pending, 3)
      })).pipe(Effect.provide(FetchHttpClient.layer))
      const stored = yield* Effect.scoped(Effect.gen(function* () {
        const seen: Array<FilingOutbox.StoredCall> = []
        const outbox = yield* Outbox.make({
          directory: dir,
          schema: FilingOutbox.StoredCall,
          deliver: (c: FilingOutbox.StoredCall) => Effect.sync(() => seen.push(c))
        })
        yield* outbox.flush()
        return seen
      }))
      assert.deepStrictEqual(stored.map((c) => c.endpoint), ["file", "addFiles", "close"])
      const opened = (yield* FilingOutbox.decodeCall(stored[0]!)).payload as { endAt?: unknown; files: Array<unknown> }
      assert.strictEqual(opened.endAt, undefined)
      assert.strictEqual(opened.files.length, 10_000)
      assert.strictEqual(((yield* FilingOutbox.decodeCall(stored[1]!)).payload as { files: Array<unknown> }).files.length, 1)
      assert.deepStrictEqual((yield* FilingOutbox.decodeCall(stored[2]!)).payload, {
        endAt: big.endAt,
        status: "completed",
        quality: "good"
      })
    }))
})
