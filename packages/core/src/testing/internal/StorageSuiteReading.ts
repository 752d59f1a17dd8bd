/**
 * The conformance cases on reading: round trips small, empty and large (bounded memory), byte
 * ranges, part-by-part reads, missing objects, recall and release.
 */
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Checksum from "../../Checksum.js"
import { StorageDriver } from "../../StorageDriver.js"
import { bodyOf, bytesOf, digestOf } from "../StorageTestBodies.js"
import { decode, hasher, MiB, peakRss, reasonOf, type Run, text } from "./StorageSuiteRun.js"

/** Registers the reading cases of one run. */
export const reading = ({ it, key, options, large, timeout }: Run): void => {
  const driver = StorageDriver
  it.effect("declares a name and its capabilities", () =>
    Effect.gen(function* () {
      const d = yield* driver
      assert.isString(d.name)
      assert.isAbove(d.name.length, 0)
      for (const c of ["rangeRead", "list", "nativeCopy", "nearline", "presign", "sweepTemporary"] as const) {
        assert.isBoolean(d.capabilities[c], c)
      }
    }))

  it.effect("round-trips an empty object", () =>
    Effect.gen(function* () {
      const d = yield* driver
      const info = yield* d.put(key("empty"), Stream.empty)
      assert.strictEqual(info.size, 0)
      assert.strictEqual(info.checksum, Checksum.make("sha256", hasher("sha256").digest()))
      assert.strictEqual((yield* d.stat(key("empty"))).size, 0)
      assert.strictEqual((yield* bytesOf(d.get(key("empty")))).length, 0)
      assert.strictEqual(yield* d.checksum(key("empty")), info.checksum)
    }), timeout)

  it.effect("round-trips a small object byte for byte, with its checksum", () =>
    Effect.gen(function* () {
      const d = yield* driver
      const body = "Spectra from the FYST: \u00e9\u00e8 \u{1f52d}\n".repeat(300)
      const expected = yield* digestOf(text(body))
      const info = yield* d.put(key("small/spectrum.txt"), text(body), { checksum: expected.checksum })
      assert.strictEqual(info.checksum, expected.checksum)
      assert.strictEqual(info.size, expected.size)
      assert.strictEqual(decode(yield* bytesOf(d.get(key("small/spectrum.txt")))), body)
      const stat = yield* d.stat(key("small/spectrum.txt"))
      assert.strictEqual(stat.size, expected.size)
      if (stat.checksum !== undefined) assert.strictEqual(stat.checksum, expected.checksum)
      assert.strictEqual(yield* d.checksum(key("small/spectrum.txt")), expected.checksum)
      yield* d.verify(key("small/spectrum.txt"), expected.checksum)
      const other = Checksum.make("sha256", "0".repeat(64))
      assert.strictEqual(yield* reasonOf(d.verify(key("small/spectrum.txt"), other)), "Corrupt")
    }), timeout)

  it.effect(`round-trips a streamed ${large} byte object with matching checksums in bounded memory`, () =>
    Effect.gen(function* () {
      const d = yield* driver
      const seed = 7
      const before = peakRss()
      let peak = before
      const sample = <E2>(s: Stream.Stream<Uint8Array, E2>) =>
        Stream.tap(s, () => Effect.sync(() => {
          peak = Math.max(peak, peakRss())
        }))
      // The expected digest is taken from the body as the driver reads it, so the body is made
      // and hashed once, not twice: each chunk must carry its own offset (bodyOf stamps it), so
      // these are the body's bytes read once and in order; otherwise it is computed apart.
      const sent = hasher("sha256")
      let sentBytes = 0
      let readOnceInOrder = true
      const record = (s: Stream.Stream<Uint8Array>) =>
        Stream.tap(s, (c) =>
          Effect.sync(() => {
            if (c.length >= 8 && new DataView(c.buffer, c.byteOffset, c.length).getFloat64(0) !== sentBytes + seed) readOnceInOrder = false
            sent.update(c)
            sentBytes += c.length
          }))
      const info = yield* d.put(key("large.bin"), bodyOf(large, seed).pipe(record, sample), { sizeHint: large })
      const expected = readOnceInOrder && sentBytes === large
        ? { checksum: Checksum.make("sha256", sent.digest()) }
        : yield* digestOf(bodyOf(large, seed))
      assert.strictEqual(info.size, large)
      assert.strictEqual(info.checksum, expected.checksum)
      const back = yield* digestOf(d.get(key("large.bin")).pipe(sample))
      assert.strictEqual(back.size, large)
      assert.strictEqual(back.checksum, expected.checksum)
      // verify reads with readEach, so its buffers are exercised at size too
      yield* d.verify(key("large.bin"), expected.checksum)
      const grown = peak - before
      if (options.boundedMemory !== false && large >= 512 * MiB) {
        assert.isBelow(grown, 512 * MiB, `resident memory grew by ${Math.round(grown / MiB)} MiB`)
      }
      yield* d.delete(key("large.bin"))
    }), timeout)

  it.effect("reads byte ranges, or refuses them with Unsupported", () =>
    Effect.gen(function* () {
      const d = yield* driver
      yield* d.put(key("range.txt"), text("0123456789abcdef"))
      if (!d.capabilities.rangeRead) {
        assert.strictEqual(yield* reasonOf(bytesOf(d.get(key("range.txt"), { range: { start: 2, end: 5 } }))), "Unsupported")
        return
      }
      assert.strictEqual(decode(yield* bytesOf(d.get(key("range.txt"), { range: { start: 2, end: 5 } }))), "234")
      assert.strictEqual(decode(yield* bytesOf(d.get(key("range.txt"), { range: { start: 10 } }))), "abcdef")
      assert.strictEqual(decode(yield* bytesOf(d.get(key("range.txt"), { range: { start: 14, end: 99 } }))), "ef")
      assert.strictEqual(decode(yield* bytesOf(d.get(key("range.txt"), { range: { start: 16 } }))), "")
      assert.strictEqual(decode(yield* bytesOf(d.get(key("range.txt"), { range: { start: 3, end: 3 } }))), "")
    }), timeout)

  it.effect("reads part by part with readEach: in order, each part intact until its consumer ends", () =>
    Effect.gen(function* () {
      const d = yield* driver
      // past several read buffers and not a multiple of any, so parts of every kind occur
      const size = 5 * MiB + 12_345
      const expected = yield* digestOf(bodyOf(size, 11))
      yield* d.put(key("each.bin"), bodyOf(size, 11))
      const h = hasher("sha256")
      let parts = 0
      // the consumer waits before it hashes (long enough for a read on the thread pool to
      // land): a driver that refilled a buffer before the part's consumer ended would hash
      // other bytes and fail the checksum
      const read = yield* d.readEach(key("each.bin"), (part) =>
        Effect.zipRight(
          Effect.sleep("10 millis"),
          Effect.sync(() => {
            parts++
            h.update(part)
          })
        ))
      assert.strictEqual(read, size)
      assert.isAbove(parts, 0)
      assert.strictEqual(Checksum.make("sha256", h.digest()), expected.checksum)

      yield* d.put(key("each.txt"), text("0123456789abcdef"))
      const collect = (range?: { start: number; end?: number }) =>
        Effect.gen(function* () {
          const got: Array<string> = []
          const n = yield* d.readEach(key("each.txt"), (part) => Effect.sync(() => void got.push(decode(part.slice()))), { range })
          assert.strictEqual(n, got.join("").length)
          return got.join("")
        })
      assert.strictEqual(yield* collect(), "0123456789abcdef")
      if (d.capabilities.rangeRead) {
        assert.strictEqual(yield* collect({ start: 2, end: 5 }), "234")
        assert.strictEqual(yield* collect({ start: 14, end: 99 }), "ef")
        assert.strictEqual(yield* collect({ start: 3, end: 3 }), "")
      } else {
        assert.strictEqual(yield* reasonOf(collect({ start: 2, end: 5 })), "Unsupported")
      }
      assert.strictEqual(yield* reasonOf(d.readEach(key("no/such/object"), () => Effect.void)), "NotFound")
      // the consumer's own failure ends the read with that failure, untouched and not retried
      let calls = 0
      const refused = yield* Effect.flip(d.readEach(key("each.bin"), () =>
        Effect.suspend(() => {
          calls++
          return Effect.fail("consumer refused" as const)
        })))
      assert.strictEqual(refused, "consumer refused")
      assert.strictEqual(calls, 1)
      yield* d.delete(key("each.bin"))
    }), timeout)

  it.effect("readEach of many objects, one after another and at once, gives each only its own bytes", () =>
    Effect.gen(function* () {
      const d = yield* driver
      // a driver may keep its buffers from one read for the next (an audit reads thousands of
      // objects in a row): a smaller object after a larger one must not see the larger's bytes
      const sizes = [3 * MiB + 17, 1, MiB - 1, 2 * MiB, 5]
      const objects = sizes.map((size, i) => ({ name: key(`many/${i}.bin`), size, seed: 40 + i }))
      const expected = new Map<string, Checksum.Checksum>()
      for (const o of objects) {
        yield* d.put(o.name, bodyOf(o.size, o.seed))
        expected.set(o.name, (yield* digestOf(bodyOf(o.size, o.seed))).checksum)
      }
      const digest = (name: string, pause: boolean) =>
        Effect.suspend(() => {
          const h = hasher("sha256")
          return d.readEach(
            name,
            (part) => Effect.zipRight(pause ? Effect.sleep("1 millis") : Effect.void, Effect.sync(() => h.update(part)))
          ).pipe(
            Effect.map((n) => ({ n, checksum: Checksum.make("sha256", h.digest()) }))
          )
        })
      for (const round of [1, 2]) {
        for (const o of objects) {
          const got = yield* digest(o.name, false)
          assert.strictEqual(got.n, o.size, `${o.name}, round ${round}`)
          assert.strictEqual(got.checksum, expected.get(o.name), `${o.name}, round ${round}`)
        }
      }
      const together = yield* Effect.forEach(objects, (o) => digest(o.name, true), { concurrency: "unbounded" })
      together.forEach((got, i) => assert.strictEqual(got.checksum, expected.get(objects[i]!.name), `${objects[i]!.name} at once`))
      for (const o of objects) yield* d.delete(o.name)
    }), timeout)

  it.effect("reports a missing object as NotFound, and deleting it succeeds", () =>
    Effect.gen(function* () {
      const d = yield* driver
      const missing = key("no/such/object")
      assert.strictEqual(yield* reasonOf(d.stat(missing)), "NotFound")
      assert.strictEqual(yield* reasonOf(bytesOf(d.get(missing))), "NotFound")
      assert.strictEqual(yield* reasonOf(d.checksum(missing)), "NotFound")
      assert.strictEqual(yield* reasonOf(d.copy(missing, key("no/copy"))), "NotFound")
      assert.isFalse(yield* d.exists(missing))
      yield* d.delete(missing)
    }), timeout)

  it.effect("keeps an existing object unless overwrite is asked for", () =>
    Effect.gen(function* () {
      const d = yield* driver
      const k = key("overwrite.txt")
      yield* d.put(k, text("first"))
      assert.strictEqual(yield* reasonOf(d.put(k, text("second, longer"))), "AlreadyExists")
      assert.strictEqual(decode(yield* bytesOf(d.get(k))), "first")
      const before = (yield* d.stat(k)).identity
      const info = yield* d.put(k, text("third"), { overwrite: true })
      assert.strictEqual(info.size, 5)
      assert.strictEqual(decode(yield* bytesOf(d.get(k))), "third")
      assert.isTrue(yield* d.exists(k))
      // An identity, where a driver gives one, is stable while the object is unchanged and
      // changes when it is written again: cleanup relies on it to never delete other bytes.
      const after = (yield* d.stat(k)).identity
      if (before !== undefined || after !== undefined) {
        assert.notStrictEqual(after, before, "stat's identity did not change when the object was overwritten")
        assert.strictEqual((yield* d.stat(k)).identity, after, "stat's identity changed while the object did not")
      }
    }), timeout)

  it.effect(
    "recalls and releases: an object released is still stored, reads back intact, and a nearline one is offline",
    () =>
      Effect.gen(function* () {
        const d = yield* driver
        const k = key("release/kept.txt")
        yield* d.put(k, text("kept on the medium"))
        yield* d.recall([k])
        yield* d.release([k, key("release/never-written.txt")])
        const info = yield* d.stat(k)
        assert.strictEqual(info.size, 18)
        if (d.capabilities.nearline) assert.strictEqual(info.online, false, "a released nearline object is offline until recalled")
        assert.strictEqual(decode(yield* bytesOf(d.get(k))), "kept on the medium")
      }),
    timeout
  )
}
