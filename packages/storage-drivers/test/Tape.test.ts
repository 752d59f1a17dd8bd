/**
 * The tape driver on the virtual tape library: the shared suite (every read a recall), then
 * what only nearline storage has: recall scheduling, volumes filling up, the catalog.
 */
import { StorageDriverSuite } from "@ccat/core/testing"
import { Tape, VirtualTapeLibrary } from "@ccat/storage-drivers"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll } from "vitest"
import { scratchDir } from "./TapeScratch.js"

const MiB = 1024 * 1024
// 64 MiB is 64 stream chunks through cache, volume and recall: the streaming the round trip
// checks (its bounded-memory assertion starts at 512 MiB, so a larger default checked no more)
const largeBytes = Number(process.env.CCAT_TAPE_LARGE_BYTES ?? 64 * MiB)
// the large object lives in the cache, on a volume and in the recall cache at once
const root = scratchDir("ccat-tape-", 4 * largeBytes + 512 * MiB)
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

StorageDriverSuite.run({
  name: `tape (virtual library, every read a recall; large object ${largeBytes} bytes)`,
  layer: Layer.unwrapScoped(Effect.map(
    VirtualTapeLibrary.make({
      root: path.join(root, "suite-library"),
      volumes: 3,
      capacityBytes: 2 * largeBytes + 256 * MiB,
      drives: 2,
      mountLatency: "5 millis",
      seekLatency: "1 millis"
    }),
    (library) => Tape.layer({ root: path.join(root, "suite"), library, keepOnline: false })
  )),
  largeBytes
})

const reason = <A>(e: Effect.Effect<A, { readonly reason: string }>) =>
  Effect.match(e, { onFailure: (err) => err.reason, onSuccess: () => "success" })

describe("Tape", () => {
  it.scopedLive("recalls a batch volume by volume, in file order, mounting each volume once", () =>
    Effect.gen(function* () {
      const library = yield* VirtualTapeLibrary.make({
        root: path.join(root, "recall-library"),
        volumes: 2,
        capacityBytes: 3 * MiB,
        drives: 1,
        mountLatency: "50 millis",
        seekLatency: "2 millis"
      })
      const tape = yield* Tape.make({ root: path.join(root, "recall"), library })
      const keys = Array.from({ length: 6 }, (_, i) => `obs/${i}.bin`)
      for (const [i, k] of keys.entries()) yield* tape.put(k, StorageDriverSuite.bodyOf(MiB, i))
      const catalog = yield* tape.catalog
      assert.deepStrictEqual(keys.map((k) => [catalog[k]!.volume, catalog[k]!.fileNumber]), [
        ["CCAT000", 0],
        ["CCAT000", 1],
        ["CCAT000", 2],
        ["CCAT001", 0],
        ["CCAT001", 1],
        ["CCAT001", 2]
      ])
      yield* tape.evict(keys)
      assert.isFalse((yield* tape.stat(keys[4]!)).online)
      const before = (yield* library.events).length
      // requested out of order, interleaving volumes
      const requested = [keys[4]!, keys[2]!, keys[0]!, keys[5]!, keys[1]!, keys[3]!]
      const started = Date.now()
      yield* tape.recall(requested)
      const events = (yield* library.events).slice(before)
      const mounts = events.filter((e) => e._tag === "Mount").map((e) => e.volume)
      // the drive still holds CCAT001 from the last write, so only CCAT000 needs a mount
      assert.deepStrictEqual(mounts, ["CCAT000"])
      const reads = events.filter((e) => e._tag === "Read").map((e) => `${e.volume}:${e.fileNumber}`)
      assert.deepStrictEqual(reads, ["CCAT001:0", "CCAT001:1", "CCAT001:2", "CCAT000:0", "CCAT000:1", "CCAT000:2"])
      assert.isAtLeast(Date.now() - started, 50, "a recall waits for the mount")
      for (const k of keys) assert.isTrue((yield* tape.stat(k)).online)
      for (const [i, k] of keys.entries()) {
        assert.strictEqual(
          (yield* StorageDriverSuite.digestOf(tape.get(k))).checksum,
          (yield* StorageDriverSuite.digestOf(StorageDriverSuite.bodyOf(MiB, i))).checksum
        )
      }
    }))

  it.scopedLive("reads an offline object by recalling it: mount, position, read", () =>
    Effect.gen(function* () {
      const library = yield* VirtualTapeLibrary.make({ root: path.join(root, "get-library"), volumes: 1, mountLatency: "100 millis" })
      const tape = yield* Tape.make({ root: path.join(root, "get"), library, keepOnline: false })
      yield* tape.put("a.txt", Stream.make(new TextEncoder().encode("first")))
      yield* tape.put("b.txt", Stream.make(new TextEncoder().encode("second")))
      assert.isFalse((yield* tape.stat("b.txt")).online)
      const bytes = yield* StorageDriverSuite.bytesOf(tape.get("b.txt", { range: { start: 1, end: 4 } }))
      assert.strictEqual(new TextDecoder().decode(bytes), "eco")
      const last = (yield* library.events).slice(-2)
      assert.deepStrictEqual(last.map((e) => [e._tag, e.fileNumber]), [["Seek", 1], ["Read", 1]])
    }))

  it.scopedLive("fills volumes in order and refuses a write no volume has room for", () =>
    Effect.gen(function* () {
      const library = yield* VirtualTapeLibrary.make({ root: path.join(root, "full-library"), volumes: 2, capacityBytes: 2 * MiB })
      const tape = yield* Tape.make({ root: path.join(root, "full"), library })
      yield* tape.put("one", StorageDriverSuite.bodyOf(MiB + MiB / 2, 1))
      yield* tape.put("two", StorageDriverSuite.bodyOf(MiB, 2))
      yield* tape.put("three", StorageDriverSuite.bodyOf(MiB / 4, 3))
      const catalog = yield* tape.catalog
      assert.deepStrictEqual(["one", "two", "three"].map((k) => catalog[k]!.volume), ["CCAT000", "CCAT001", "CCAT000"])
      assert.strictEqual(yield* reason(tape.put("four", StorageDriverSuite.bodyOf(MiB + 1, 4))), "Unavailable")
      assert.strictEqual(yield* reason(tape.stat("four")), "NotFound")
    }))

  it.scopedLive("keeps its catalog across restarts", () =>
    Effect.gen(function* () {
      const libraryRoot = path.join(root, "restart-library")
      const first = yield* Effect.scoped(Effect.gen(function* () {
        const library = yield* VirtualTapeLibrary.make({ root: libraryRoot, volumes: 1 })
        const tape = yield* Tape.make({ root: path.join(root, "restart"), library, keepOnline: false })
        return yield* tape.put("kept.bin", StorageDriverSuite.bodyOf(3 * MiB, 9))
      }))
      const library = yield* VirtualTapeLibrary.make({ root: libraryRoot, volumes: 1 })
      const tape = yield* Tape.make({ root: path.join(root, "restart"), library })
      assert.strictEqual((yield* tape.stat("kept.bin")).checksum, first.checksum)
      assert.strictEqual((yield* StorageDriverSuite.digestOf(tape.get("kept.bin"))).checksum, first.checksum)
      // a new write appends after the existing tape file
      yield* tape.put("next.bin", StorageDriverSuite.bodyOf(MiB, 10))
      assert.strictEqual((yield* tape.catalog)["next.bin"]!.fileNumber, 1)
    }))
})
