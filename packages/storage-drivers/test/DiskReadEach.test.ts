/**
 * The disk driver's `readEach`: whole objects and ranges of every size class read byte for byte
 * into a few reused buffers, slots shared one after another but never by two reads at once, and
 * a read stopped by its consumer, interrupted, or cut short by a shrinking file leaving nothing
 * open or running. Real files on the real filesystem.
 */
import type { StorageDriver } from "@ccat/core"
import { Disk } from "@ccat/storage-drivers"
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as FileIo from "../src/internal/FileIo.js"
import { MiB, openFds, scratchRoot } from "./DiskBytes.js"

const root = scratchRoot("ccat-disk-read-each-")

describe("Disk readEach", () => {
  it.live("readEach reads whole objects and ranges of every size class byte for byte into reused buffers", () =>
    Effect.gen(function* () {
      const d = yield* Disk.make({ root: path.join(root, "each") })
      const chunk = FileIo.readChunkBytes
      for (const size of [1, chunk - 1, chunk, chunk + 1, (FileIo.readAheadChunks + 3) * chunk + 12_345]) {
        const bytes = randomBytes(size)
        const key = `e/${size}.bin`
        yield* d.put(key, Stream.make(bytes))
        const read = (range?: StorageDriver.ByteRange) =>
          Effect.gen(function* () {
            const parts: Array<Buffer> = []
            const buffers = new Set<ArrayBufferLike>()
            const n = yield* d.readEach(key, (part) =>
              Effect.sync(() => {
                parts.push(Buffer.from(part))
                buffers.add(part.buffer)
              }), { range })
            const got = Buffer.concat(parts)
            assert.strictEqual(n, got.length)
            return { got, buffers: buffers.size, parts: parts.length }
          })
        const whole = yield* read()
        assert.isTrue(whole.got.equals(bytes), `whole object of ${size} bytes`)
        // a few buffers serve any number of parts: nothing is allocated per part
        assert.isAtMost(whole.buffers, FileIo.readAheadChunks + 2)
        if (whole.parts > FileIo.readAheadChunks + 2) assert.isBelow(whole.buffers, whole.parts)
        for (const range of [{ start: 0, end: 1 }, { start: size - 1 }, { start: Math.floor(size / 3), end: size * 2 }]) {
          const got = (yield* read(range)).got
          assert.isTrue(got.equals(bytes.subarray(range.start, range.end)), `range ${range.start}-${range.end} of ${size}`)
        }
      }
    }))

  it.live("readEach calls one after another reuse the same slots; calls at once never share one; the spares stay bounded", () =>
    Effect.gen(function* () {
      const d = yield* Disk.make({ root: path.join(root, "slots") })
      const chunk = FileIo.readChunkBytes
      // sizes that leave stale bytes of a larger object in a reused slot past a smaller one's end
      const objects = [1, chunk - 1, 3 * chunk + 5, 7 * chunk + 12_345, 2].map((size, i) => ({
        key: `s/${i}.bin`,
        bytes: randomBytes(size)
      }))
      for (const o of objects) yield* d.put(o.key, Stream.make(o.bytes))
      const read = (key: string, pause: boolean) =>
        Effect.gen(function* () {
          const parts: Array<Buffer> = []
          const buffers = new Set<ArrayBufferLike>()
          yield* d.readEach(key, (part) =>
            // a pause before taking the bytes lets another read's thread-pool reads land meanwhile
            Effect.zipRight(
              pause ? Effect.sleep("2 millis") : Effect.void,
              Effect.sync(() => {
                parts.push(Buffer.from(part))
                buffers.add(part.buffer)
              })
            ))
          return { got: Buffer.concat(parts), buffers }
        })
      // one after another: byte for byte, and no slot beyond what the first calls allocated
      const seen = new Set<ArrayBufferLike>()
      for (let round = 0; round < 3; round++) {
        for (const o of objects) {
          const r = yield* read(o.key, false)
          assert.isTrue(r.got.equals(o.bytes), `${o.key}, round ${round}`)
          if (round > 0) { for (const b of r.buffers) assert.isTrue(seen.has(b), "a slot of an earlier call") }
          for (const b of r.buffers) seen.add(b)
        }
      }
      assert.isAtMost(seen.size, FileIo.spareSlotsKept)
      // at once, each pausing: every read sees only its own bytes, and no two hold the same slot
      const results = yield* Effect.forEach([...objects, ...objects], (o) => read(o.key, true), { concurrency: "unbounded" })
      results.forEach((r, i) => assert.isTrue(r.got.equals(objects[i % objects.length]!.bytes), `concurrent read ${i}`))
      const big = results.filter((_, i) => objects[i % objects.length]!.bytes.length > chunk)
      for (let i = 0; i < big.length; i++) {
        for (let j = i + 1; j < big.length; j++) {
          for (const b of big[i]!.buffers) assert.isFalse(big[j]!.buffers.has(b), "two reads at once shared a slot")
        }
      }
      assert.isAtMost(FileIo.spareSlotCount(), FileIo.spareSlotsKept)
    }))

  it.live("readEach interrupted with reads running gives its slots back once they ended, to the next read", () =>
    Effect.gen(function* () {
      const d = yield* Disk.make({ root: path.join(root, "slots-stop") })
      const bytes = randomBytes(12 * MiB)
      yield* d.put("s/big.bin", Stream.make(bytes))
      const started = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(d.readEach("s/big.bin", () => Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)))
      yield* Deferred.await(started)
      const during = FileIo.spareSlotCount()
      // the interruption ends once the reads it left running have landed, and gives every slot back
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(FileIo.spareSlotCount(), Math.min(during + FileIo.readEachSlots, FileIo.spareSlotsKept))
      // the next read gets them again, and reads its own bytes into them
      const parts: Array<Buffer> = []
      yield* d.readEach("s/big.bin", (part) => Effect.sync(() => void parts.push(Buffer.from(part))))
      assert.isTrue(Buffer.concat(parts).equals(bytes))
      assert.isAtMost(FileIo.spareSlotCount(), FileIo.spareSlotsKept)
    }))

  it.live("readEach stopped by its consumer or interrupted leaves no descriptor open and no read running; a shrinking file ends early", () =>
    Effect.gen(function* () {
      const loc = path.join(root, "each-stop")
      const d = yield* Disk.make({ root: loc })
      const bytes = randomBytes(20 * MiB + 3)
      yield* d.put("s/big.bin", Stream.make(bytes))
      const before = openFds()
      const stopped = yield* Effect.flip(d.readEach("s/big.bin", () => Effect.fail("enough")))
      assert.strictEqual(stopped, "enough")
      assert.strictEqual(openFds(), before)
      // interrupted once the first part arrived, so reads ahead of it are running
      const reading = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(d.readEach("s/big.bin", () => Effect.zipRight(Deferred.succeed(reading, undefined), Effect.never)))
      yield* Deferred.await(reading)
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(openFds(), before)
      // cut the file after the first part: what is read is a prefix of the original, no byte
      // skipped, and no read goes past the new end
      const parts: Array<Buffer> = []
      const n = yield* d.readEach("s/big.bin", (part) =>
        Effect.sync(() => {
          if (parts.length === 0) fs.truncateSync(path.join(loc, "s", "big.bin"), 5 * MiB + 1)
          parts.push(Buffer.from(part))
        }))
      const read = Buffer.concat(parts)
      assert.strictEqual(n, read.length)
      assert.isAtMost(read.length, 5 * MiB + 1 + (FileIo.readAheadChunks + 1) * FileIo.readChunkBytes)
      assert.isTrue(read.equals(bytes.subarray(0, read.length)), "a prefix of the original, no byte skipped")
    }))
})
