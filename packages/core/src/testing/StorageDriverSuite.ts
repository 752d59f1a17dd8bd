/**
 * The StorageDriver conformance suite: written once, run by every driver (ours and an
 * integrator's) with its own layer, so "a driver" means the same thing everywhere (STYLE §2).
 *
 *   StorageDriverSuite.run({ name: "disk", layer: Disk.layer({ root }) })
 *
 * It runs on the real clock and real I/O. Every test works under its own random prefix, so the
 * suite can share a location (a bucket, a folder) with other tests.
 */
import { assert, describe, layer } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as Checksum from "../Checksum.js"
import { minimumSweepAge, StorageDriver } from "../StorageDriver.js"
import { StorageError } from "../StorageError.js"
import { runtimeHasher } from "../StorageHasher.js"
import { bodyOf, bytesOf, digestOf } from "./StorageTestBodies.js"

export { bodyOf, bytesOf, digestOf }

/** How to run the suite against one driver. */
export interface Options<E> {
  /** Shown in the test names, e.g. "s3 (radosgw 16.2.15)". */
  readonly name: string
  /** Provides the driver under test; built once for the whole suite. */
  readonly layer: Layer.Layer<StorageDriver, E>
  /**
   * Size of the streamed round trip. Default: env CCAT_CONFORMANCE_LARGE_BYTES, else 2 GiB.
   * Drivers that cannot hold that much in a test (an in-memory example) pass less.
   */
  readonly largeBytes?: number | undefined
  /** Keys created by the pagination test; more than 1,000 so listing must page. Default 1005. */
  readonly listKeys?: number | undefined
  /** Whether to check that memory stays bounded during the large round trip. Default true. */
  readonly boundedMemory?: boolean | undefined
  /** Per-test timeout in milliseconds. Default 300 000. */
  readonly timeout?: number | undefined
}

const MiB = 1024 * 1024

/** The size of the streamed round trip when the driver's test does not choose one. */
export const defaultLargeBytes = (): number => {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env
  const fromEnv = Number(env?.CCAT_CONFORMANCE_LARGE_BYTES)
  return Number.isFinite(fromEnv) && fromEnv > 0 ? fromEnv : 2 * 1024 * MiB
}

const hasher = runtimeHasher!

const text = (s: string): Stream.Stream<Uint8Array> => Stream.make(new TextEncoder().encode(s))
const decode = (u: Uint8Array) => new TextDecoder().decode(u)

/** The reason an effect failed with, or "success". */
const reasonOf = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.exit(effect).pipe(Effect.map((exit) => {
    if (Exit.isSuccess(exit)) return "success"
    const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
    return failure instanceof StorageError ? failure.reason : `other: ${String(exit.cause)}`
  }))

const run_ = () => `conformance-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`

const peakRss = () => {
  const proc = (globalThis as { process?: { memoryUsage?: () => { rss: number } } }).process
  return proc?.memoryUsage?.().rss ?? 0
}

/** Registers the conformance tests for one driver in the current vitest file. */
export const run = <E>(options: Options<E>): void => {
  const large = options.largeBytes ?? defaultLargeBytes()
  const listKeys = options.listKeys ?? 1005
  const timeout = options.timeout ?? 300_000
  const prefix = run_()
  const key = (name: string) => `${prefix}/${name}`
  const driver = StorageDriver

  describe(`StorageDriver conformance: ${options.name}`, () => {
    layer(options.layer, { timeout: "5 minutes", excludeTestServices: true })((it) => {
      it.effect("declares a name and its capabilities", () =>
        Effect.gen(function*() {
          const d = yield* driver
          assert.isString(d.name)
          assert.isAbove(d.name.length, 0)
          for (const c of ["rangeRead", "list", "nativeCopy", "nearline", "presign", "sweepTemporary"] as const) {
            assert.isBoolean(d.capabilities[c], c)
          }
        }))

      it.effect("round-trips an empty object", () =>
        Effect.gen(function*() {
          const d = yield* driver
          const info = yield* d.put(key("empty"), Stream.empty)
          assert.strictEqual(info.size, 0)
          assert.strictEqual(info.checksum, Checksum.make("sha256", hasher("sha256").digest()))
          assert.strictEqual((yield* d.stat(key("empty"))).size, 0)
          assert.strictEqual((yield* bytesOf(d.get(key("empty")))).length, 0)
          assert.strictEqual(yield* d.checksum(key("empty")), info.checksum)
        }), timeout)

      it.effect("round-trips a small object byte for byte, with its checksum", () =>
        Effect.gen(function*() {
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
        Effect.gen(function*() {
          const d = yield* driver
          const expected = yield* digestOf(bodyOf(large, 7))
          const before = peakRss()
          let peak = before
          const sample = <E2>(s: Stream.Stream<Uint8Array, E2>) =>
            Stream.tap(s, () => Effect.sync(() => {
              peak = Math.max(peak, peakRss())
            }))
          const info = yield* d.put(key("large.bin"), bodyOf(large, 7).pipe(sample), { sizeHint: large })
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
        Effect.gen(function*() {
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
        Effect.gen(function*() {
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
            Effect.zipRight(Effect.sleep("10 millis"), Effect.sync(() => {
              parts++
              h.update(part)
            })))
          assert.strictEqual(read, size)
          assert.isAbove(parts, 0)
          assert.strictEqual(Checksum.make("sha256", h.digest()), expected.checksum)

          yield* d.put(key("each.txt"), text("0123456789abcdef"))
          const collect = (range?: { start: number; end?: number }) =>
            Effect.gen(function*() {
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
        Effect.gen(function*() {
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
              return d.readEach(name, (part) =>
                Effect.zipRight(pause ? Effect.sleep("1 millis") : Effect.void, Effect.sync(() => h.update(part)))).pipe(
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
        Effect.gen(function*() {
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
        Effect.gen(function*() {
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

      it.effect("recalls and releases: an object released is still stored, reads back intact, and a nearline one is offline", () =>
        Effect.gen(function*() {
          const d = yield* driver
          const k = key("release/kept.txt")
          yield* d.put(k, text("kept on the medium"))
          yield* d.recall([k])
          yield* d.release([k, key("release/never-written.txt")])
          const info = yield* d.stat(k)
          assert.strictEqual(info.size, 18)
          if (d.capabilities.nearline) assert.strictEqual(info.online, false, "a released nearline object is offline until recalled")
          assert.strictEqual(decode(yield* bytesOf(d.get(k))), "kept on the medium")
        }), timeout)

      it.effect("deletes idempotently", () =>
        Effect.gen(function*() {
          const d = yield* driver
          const k = key("delete-me.txt")
          yield* d.put(k, text("bye"))
          yield* d.delete(k)
          yield* d.delete(k)
          assert.strictEqual(yield* reasonOf(d.stat(k)), "NotFound")
          assert.isFalse(yield* d.exists(k))
          // the key is free again
          yield* d.put(k, text("again"))
          assert.strictEqual(decode(yield* bytesOf(d.get(k))), "again")
        }), timeout)

      it.effect(`lists ${listKeys} keys in pages of at most 1,000, in order, or refuses with Unsupported`, () =>
        Effect.gen(function*() {
          const d = yield* driver
          if (!d.capabilities.list) {
            assert.strictEqual(yield* reasonOf(d.list({ prefix: key("many/") })), "Unsupported")
            return
          }
          const names = Array.from({ length: listKeys }, (_, i) => `${key("many")}/f${String(i).padStart(5, "0")}`)
          yield* Effect.forEach(names, (k) => d.put(k, text(k), { overwrite: true }), { concurrency: 32, discard: true })
          yield* d.put(key("many-but-not-under-prefix"), text("x"))
          const first = yield* d.list({ prefix: `${key("many")}/` })
          assert.strictEqual(first.items.length, Math.min(1000, listKeys))
          assert.isDefined(first.cursor)
          const second = yield* d.list({ prefix: `${key("many")}/`, cursor: first.cursor })
          assert.strictEqual(second.items.length, listKeys - 1000)
          assert.isUndefined(second.cursor)
          const keys = [...first.items, ...second.items].map((i) => i.key)
          assert.deepStrictEqual(keys, names)
          assert.strictEqual(first.items[0]!.size, names[0]!.length)
          // small pages and the derived stream agree
          const paged = yield* d.list({ prefix: `${key("many")}/`, limit: 7 })
          assert.deepStrictEqual(paged.items.map((i) => i.key), names.slice(0, 7))
          const again = yield* d.list({ prefix: `${key("many")}/`, limit: 7, cursor: paged.cursor })
          assert.deepStrictEqual(again.items.map((i) => i.key), names.slice(7, 14))
          const all = yield* Stream.runCollect(d.listAll({ prefix: `${key("many")}/` }))
          assert.strictEqual(Chunk.size(all), listKeys)
          assert.strictEqual(yield* reasonOf(d.list({ limit: 1001 })), "PermissionDenied")
        }), timeout)

      it.effect("lets one of two concurrent writers of a key win, never a torn object", () =>
        Effect.gen(function*() {
          const d = yield* driver
          const size = 8 * MiB + 123
          const a = yield* digestOf(bodyOf(size, 11))
          const b = yield* digestOf(bodyOf(size, 12))
          for (const overwrite of [true, false]) {
            const k = key(`race-${overwrite}.bin`)
            const results = yield* Effect.all([
              reasonOf(d.put(k, bodyOf(size, 11), { overwrite })),
              reasonOf(d.put(k, bodyOf(size, 12), { overwrite }))
            ], { concurrency: 2 })
            assert.include(results, "success", `overwrite ${overwrite}: ${results.join(", ")}`)
            for (const r of results) assert.oneOf(r, ["success", "AlreadyExists"])
            const stored = yield* digestOf(d.get(k))
            assert.strictEqual(stored.size, size)
            assert.oneOf(stored.checksum, [a.checksum, b.checksum])
          }
        }), timeout)

      it.effect("leaves nothing under the final name when a write fails, is interrupted or is corrupt", () =>
        Effect.gen(function*() {
          const d = yield* driver
          // the body fails part-way
          const failing = Stream.concat(bodyOf(3 * MiB, 3), Stream.fail("source went away" as const) as Stream.Stream<Uint8Array, "source went away">)
          const k1 = key("interrupted/failed.bin")
          const exit = yield* Effect.exit(d.put(k1, failing))
          assert.isTrue(Exit.isFailure(exit))
          assert.strictEqual(yield* reasonOf(d.stat(k1)), "NotFound")
          // the writer is interrupted while the body is still flowing
          const k2 = key("interrupted/killed.bin")
          let sent = 0
          const endless = Stream.concat(bodyOf(6 * MiB, 4), Stream.never as Stream.Stream<Uint8Array>).pipe(
            Stream.tap((c) => Effect.sync(() => {
              sent += c.length
            }))
          )
          const fiber = yield* Effect.fork(d.put(k2, endless))
          while (sent < 6 * MiB) yield* Effect.sleep("20 millis")
          yield* Effect.sleep("100 millis")
          yield* Fiber.interrupt(fiber)
          assert.strictEqual(yield* reasonOf(d.stat(k2)), "NotFound")
          // the body is not what the caller said it is
          const k3 = key("interrupted/corrupt.bin")
          const wrong = Checksum.make("sha256", "f".repeat(64))
          assert.strictEqual(yield* reasonOf(d.put(k3, bodyOf(2 * MiB, 5), { checksum: wrong })), "Corrupt")
          assert.strictEqual(yield* reasonOf(d.stat(k3)), "NotFound")
          // an overwrite that fails keeps the previous object whole
          const k4 = key("interrupted/previous.txt")
          yield* d.put(k4, text("previous"))
          const bad = yield* Effect.exit(d.put(k4, failing, { overwrite: true }))
          assert.isTrue(Exit.isFailure(bad))
          assert.strictEqual(decode(yield* bytesOf(d.get(k4))), "previous")
          if (d.capabilities.list) {
            const listed = yield* d.list({ prefix: key("interrupted/") })
            assert.deepStrictEqual(listed.items.map((i) => i.key), [k4])
          }
        }), timeout)

      it.effect("copies objects, keeping overwrite rules", () =>
        Effect.gen(function*() {
          const d = yield* driver
          const src = key("copy/source.bin")
          const put = yield* d.put(src, bodyOf(MiB + 17, 21))
          const copied = yield* d.copy(src, key("copy/target.bin"))
          assert.strictEqual(copied.size, put.size)
          assert.strictEqual((yield* digestOf(d.get(key("copy/target.bin")))).checksum, put.checksum)
          assert.strictEqual(yield* reasonOf(d.copy(src, key("copy/target.bin"))), "AlreadyExists")
          yield* d.copy(src, key("copy/target.bin"), { overwrite: true })
        }), timeout)

      it.effect("sweeps temporary files without touching committed objects or a write in progress, or refuses with Unsupported", () =>
        Effect.gen(function*() {
          const d = yield* driver
          if (!d.capabilities.sweepTemporary) {
            assert.strictEqual(yield* reasonOf(d.sweepTemporary()), "Unsupported")
            return
          }
          // names that look a little like temporary ones but are ordinary keys
          const keys = ["sweep/ccat-tmp-a", "sweep/a.part", "sweep/.hidden", "sweep/deep/er/b.ccat-0a.part.txt"].map(key)
          const stored = yield* Effect.forEach(keys, (k, i) => d.put(k, bodyOf(1000 + i, i)))
          // a write in progress while the sweep runs: its temporary file is fresh, so it survives
          const gate = yield* Deferred.make<void>()
          const writing = yield* Effect.fork(d.put(key("sweep/while-writing.bin"), Stream.concat(
            bodyOf(64 * 1024, 5),
            Stream.unwrap(Effect.as(Deferred.await(gate), bodyOf(64 * 1024, 6)))
          )))
          yield* Effect.sleep("200 millis")
          const swept = yield* d.sweepTemporary({ olderThan: minimumSweepAge })
          for (const n of [swept.files, swept.bytes, swept.failed]) assert.isTrue(Number.isSafeInteger(n) && n >= 0, `${n}`)
          yield* Deferred.succeed(gate, undefined)
          const written = yield* Fiber.join(writing)
          assert.strictEqual(written.size, 128 * 1024)
          for (const [i, k] of keys.entries()) {
            assert.strictEqual((yield* digestOf(d.get(k))).checksum, stored[i]!.checksum, k)
          }
          // too young an age could take a live write's file: refused, nothing removed
          assert.strictEqual(yield* reasonOf(d.sweepTemporary({ olderThan: "59 minutes" })), "PermissionDenied")
          assert.strictEqual(yield* reasonOf(d.sweepTemporary({ olderThan: -1 })), "PermissionDenied")
          assert.isTrue(yield* d.exists(key("sweep/while-writing.bin")))
        }), timeout)

      it.effect("presigns GET and PUT URLs that work without credentials, or refuses with Unsupported", () =>
        Effect.gen(function*() {
          const d = yield* driver
          if (!d.capabilities.presign) {
            assert.strictEqual(yield* reasonOf(d.presign(key("presign/x"))), "Unsupported")
            return
          }
          // a plain HTTP client, no credentials: what a scientist's browser or a batch job has
          const fetch = (globalThis as unknown as {
            readonly fetch: (url: string, init?: { readonly method?: string; readonly body?: Uint8Array }) => Promise<{
              readonly status: number
              readonly arrayBuffer: () => Promise<ArrayBuffer>
            }>
          }).fetch
          const stored = yield* d.put(key("presign/obj.bin"), bodyOf(MiB + 3, 31))
          const url = yield* d.presign(key("presign/obj.bin"), { expiresIn: "10 minutes" })
          const got = yield* Effect.promise(async () => {
            const res = await fetch(url)
            return { status: res.status, bytes: new Uint8Array(await res.arrayBuffer()) }
          })
          assert.strictEqual(got.status, 200)
          assert.strictEqual((yield* digestOf(Stream.make(got.bytes))).checksum, stored.checksum)
          // a GET URL reads: it cannot replace the object
          const misused = yield* Effect.promise(() => fetch(url, { method: "PUT", body: new TextEncoder().encode("overwritten") }))
          assert.isFalse(misused.status >= 200 && misused.status < 300, `a PUT with a GET URL answered ${misused.status}`)
          assert.strictEqual((yield* digestOf(d.get(key("presign/obj.bin")))).checksum, stored.checksum)
          // a URL is for its key only: the same URL naming another object does not read it (a
          // URL that does not name its key, an opaque token, cannot be renamed this way)
          yield* d.put(key("presign/other.bin"), text("another object, not shared"))
          if (url.includes("obj.bin")) {
            const renamed = url.split("obj.bin").join("other.bin")
            const other = yield* Effect.promise(async () => {
              const res = await fetch(renamed)
              return { status: res.status, text: decode(new Uint8Array(await res.arrayBuffer())) }
            })
            assert.isFalse(other.status >= 200 && other.status < 300, `a URL renamed to another key answered ${other.status}`)
            assert.notInclude(other.text, "another object, not shared")
          }
          assert.strictEqual(yield* reasonOf(d.presign(key("presign/missing.bin"))), "NotFound")
          const upload = yield* d.presign(key("presign/uploaded.bin"), { method: "PUT", expiresIn: "1 minute" })
          const body = new TextEncoder().encode("through a presigned PUT")
          const sent = yield* Effect.promise(() => fetch(upload, { method: "PUT", body }))
          assert.strictEqual(sent.status, 200)
          assert.strictEqual(decode(yield* bytesOf(d.get(key("presign/uploaded.bin")))), "through a presigned PUT")
          assert.strictEqual(yield* reasonOf(d.presign("../escape")), "PermissionDenied")
        }), timeout)

      it.effect("refuses unsafe keys and undeclared operations", () =>
        Effect.gen(function*() {
          const d = yield* driver
          for (const bad of ["../escape", "/etc/passwd", "a/../../b", "a//b", "./a", ""]) {
            assert.strictEqual(yield* reasonOf(d.put(bad, text("x"))), "PermissionDenied", bad)
            assert.strictEqual(yield* reasonOf(d.stat(bad)), "PermissionDenied", bad)
            assert.strictEqual(yield* reasonOf(bytesOf(d.get(bad))), "PermissionDenied", bad)
          }
          if (!d.capabilities.presign) assert.strictEqual(yield* reasonOf(d.presign(key("x"))), "Unsupported")
          const space = yield* reasonOf(d.space())
          assert.oneOf(space, ["success", "Unsupported"])
        }), timeout)
    })
  })
}
