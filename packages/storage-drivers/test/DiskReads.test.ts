/**
 * The disk driver's reads at their thresholds: objects read with one `read` and through the read
 * stream, ranges on both sides of the limit, a read stopped early or interrupted, a file that
 * shrinks while it is read, and `readAtMost` natively and derived. Real files on the real
 * filesystem; the expected bytes are compared with what was written.
 */
import { StorageDriver } from "@ccat/core"
import { Disk } from "@ccat/storage-drivers"
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as FileIo from "../src/internal/FileIo.js"
import { collect, MiB, openFds, reason, scratchRoot } from "./DiskBytes.js"

const root = scratchRoot("ccat-disk-reads-")

describe("Disk reads", () => {
  it.live("reads objects on both sides of the one-read limit, whole and in ranges", () =>
    Effect.gen(function* () {
      const d = yield* Disk.make({ root: path.join(root, "reads") })
      for (const size of [1, FileIo.wholeReadBytes, FileIo.wholeReadBytes + 1, 3 * FileIo.wholeReadBytes + 12_345]) {
        const bytes = randomBytes(size)
        const key = `r/${size}.bin`
        yield* d.put(key, Stream.make(bytes))
        assert.isTrue((yield* collect(d.get(key))).equals(bytes), `whole object of ${size} bytes`)
        const ranges = [
          { start: 0, end: 1 },
          { start: size - 1 },
          { start: Math.floor(size / 3), end: Math.min(size, Math.floor(size / 3) + FileIo.wholeReadBytes + 7) },
          { start: 1, end: size * 2 }
        ]
        for (const range of ranges) {
          const got = yield* collect(d.get(key, { range }))
          assert.isTrue(got.equals(bytes.subarray(range.start, range.end)), `range ${range.start}-${range.end} of ${size}`)
        }
      }
    }))

  it.live("a large read stopped early or interrupted leaves no descriptor open and no read running", () =>
    Effect.gen(function* () {
      const d = yield* Disk.make({ root: path.join(root, "early") })
      const bytes = randomBytes(20 * MiB + 3)
      yield* d.put("e/big.bin", Stream.make(bytes))
      const before = openFds()
      // the first chunk only: the reads ahead of it are waited for, then the descriptor closes
      const first = yield* collect(d.get("e/big.bin").pipe(Stream.take(1)))
      assert.isTrue(first.equals(bytes.subarray(0, first.length)))
      assert.strictEqual(openFds(), before)
      // interrupted once the first chunk arrived, so reads ahead of it are running
      const reading = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        Stream.runDrain(d.get("e/big.bin").pipe(Stream.tap(() => Effect.zipRight(Deferred.succeed(reading, undefined), Effect.never))))
      )
      yield* Deferred.await(reading)
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(openFds(), before)
      // and the whole object still reads back whole, from every offset class
      assert.isTrue((yield* collect(d.get("e/big.bin"))).equals(bytes))
      const range = { start: FileIo.readChunkBytes - 1, end: 3 * FileIo.readChunkBytes * FileIo.readAheadChunks + 5 }
      assert.isTrue((yield* collect(d.get("e/big.bin", { range }))).equals(bytes.subarray(range.start, range.end)))
    }))

  it.live("a file that shrinks while it is read ends early instead of reading past its new end", () =>
    Effect.gen(function* () {
      const loc = path.join(root, "shrink")
      const minimal = yield* Disk.makeMinimal({ root: loc })
      const d = yield* Disk.make({ root: loc })
      const original = randomBytes(24 * MiB)
      yield* d.put("s/f.bin", Stream.make(original))
      let seen = 0
      const read = yield* collect(
        minimal.get("s/f.bin" as never, undefined).pipe(Stream.tap((c) =>
          Effect.sync(() => {
            seen += c.length
            // after the first chunk, cut the file to 5 MiB + 1
            if (seen === c.length) fs.truncateSync(path.join(loc, "s", "f.bin"), 5 * MiB + 1)
          })
        ))
      )
      assert.isAtMost(read.length, 5 * MiB + 1 + FileIo.readAheadChunks * FileIo.readChunkBytes)
      assert.isBelow(read.length, 24 * MiB)
      // what was read is the file's start, with no gap: reads issued before the cut still hold
      // the old bytes, and the reads after it stop at the new end
      assert.isTrue(read.equals(original.subarray(0, read.length)), "a prefix of the original, no byte skipped")
    }))

  it.live("a disk service has its folder for other threads' reads; a copy of the driver or of the service has none", () =>
    Effect.gen(function* () {
      const loc = path.join(root, "folder")
      const minimal = yield* Disk.makeMinimal({ root: loc })
      const service = StorageDriver.make(minimal)
      assert.strictEqual(StorageDriver.localFolder(service)?.root, fs.realpathSync(loc))
      // a copy that changes what a read returns must be read through, never around
      assert.isUndefined(StorageDriver.localFolder({ ...service, get: service.get }))
      assert.isUndefined(StorageDriver.localFolder(StorageDriver.make({ ...minimal, get: minimal.get })))
      const failure = StorageDriver.localFolder(service)!.failure
      assert.strictEqual(failure("get", "k", { reason: "PermissionDenied", description: "out" }).reason, "PermissionDenied")
      assert.strictEqual(failure("get", "k", { code: "EACCES", description: "denied" }).reason, "PermissionDenied")
      assert.strictEqual(failure("get", "k", { code: "EIO", description: "i/o error" }).reason, "Unavailable")
    }))

  it.live("readAtMost gives a small object whole and a larger one's first limit + 1 bytes, natively and derived", () =>
    Effect.gen(function* () {
      const loc = path.join(root, "atmost")
      const native = yield* Disk.make({ root: loc })
      // the same location through the lifted service's derivation from get
      const minimal = yield* Disk.makeMinimal({ root: loc })
      const derived = StorageDriver.make({ ...minimal, readAtMost: undefined })
      const bytes = randomBytes(3 * MiB + 5)
      yield* native.put("m/obj.bin", Stream.make(bytes))
      yield* native.put("m/empty.bin", Stream.empty)
      for (const d of [native, derived]) {
        for (const limit of [0, 1, 1000, bytes.length - 1, bytes.length, bytes.length + 10]) {
          const got = Buffer.from(yield* d.readAtMost("m/obj.bin", limit))
          assert.isTrue(got.equals(bytes.subarray(0, Math.min(bytes.length, limit + 1))), `limit ${limit}`)
        }
        assert.strictEqual((yield* d.readAtMost("m/empty.bin", 10)).length, 0)
        assert.strictEqual(yield* reason(d.readAtMost("m/missing.bin", 10)), "NotFound")
        assert.strictEqual(yield* reason(d.readAtMost("m", 10)), "NotFound")
        assert.strictEqual(yield* reason(d.readAtMost("../outside", 10)), "PermissionDenied")
        assert.strictEqual(yield* reason(d.readAtMost("m/obj.bin", -1)), "PermissionDenied")
      }
      const outside = fs.mkdtempSync(path.join(os.tmpdir(), "ccat-atmost-outside-"))
      fs.writeFileSync(path.join(outside, "secret"), "secret")
      fs.symlinkSync(path.join(outside, "secret"), path.join(loc, "m", "leak"))
      assert.strictEqual(yield* reason(native.readAtMost("m/leak", 10)), "PermissionDenied")
      fs.rmSync(outside, { recursive: true, force: true })
    }))
})
