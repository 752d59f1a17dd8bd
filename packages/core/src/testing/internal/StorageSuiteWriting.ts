/**
 * The conformance cases on writing and managing objects: overwrite rules, deletion, listing in
 * pages, concurrent writers, failed writes leaving nothing, copies, sweeps of temporary files,
 * presigned URLs, and refusals of unsafe keys and undeclared operations.
 */
import { assert } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as Checksum from "../../Checksum.js"
import { minimumSweepAge, StorageDriver } from "../../StorageDriver.js"
import { bodyOf, bytesOf, digestOf } from "../StorageTestBodies.js"
import { decode, MiB, reasonOf, type Run, text } from "./StorageSuiteRun.js"

/** Registers the writing and management cases of one run. */
export const writing = ({ it, key, listKeys, timeout }: Run): void => {
  const driver = StorageDriver
  it.effect("deletes idempotently", () =>
    Effect.gen(function* () {
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
    Effect.gen(function* () {
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
    Effect.gen(function* () {
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
    Effect.gen(function* () {
      const d = yield* driver
      // the body fails part-way
      const failing = Stream.concat(
        bodyOf(3 * MiB, 3),
        Stream.fail("source went away" as const) as Stream.Stream<Uint8Array, "source went away">
      )
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
    Effect.gen(function* () {
      const d = yield* driver
      const src = key("copy/source.bin")
      const put = yield* d.put(src, bodyOf(MiB + 17, 21))
      const copied = yield* d.copy(src, key("copy/target.bin"))
      assert.strictEqual(copied.size, put.size)
      assert.strictEqual((yield* digestOf(d.get(key("copy/target.bin")))).checksum, put.checksum)
      assert.strictEqual(yield* reasonOf(d.copy(src, key("copy/target.bin"))), "AlreadyExists")
      yield* d.copy(src, key("copy/target.bin"), { overwrite: true })
    }), timeout)

  it.effect(
    "sweeps temporary files without touching committed objects or a write in progress, or refuses with Unsupported",
    () =>
      Effect.gen(function* () {
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
        const writing = yield* Effect.fork(d.put(
          key("sweep/while-writing.bin"),
          Stream.concat(
            bodyOf(64 * 1024, 5),
            Stream.unwrap(Effect.as(Deferred.await(gate), bodyOf(64 * 1024, 6)))
          )
        ))
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
      }),
    timeout
  )

  it.effect("presigns GET and PUT URLs that work without credentials, or refuses with Unsupported", () =>
    Effect.gen(function* () {
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
    Effect.gen(function* () {
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
}
