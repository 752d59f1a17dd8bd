/**
 * The built-in tape factory of Storages, from driver options as the ops-db holds them: one
 * driver per location however many jobs ask at once, its catalog and volumes found again by the
 * next process, clear refusals of bad options, and the mtx backend built from configuration
 * (no changer here: a missing or failing `mtx` program must be a clear error that stores nothing).
 */
import { StorageError } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Storages from "../../src/lifecycle/Storages.js"
import { tempDir } from "./LifecycleWorld.js"
import { fileNamesIn } from "./TapeWorld.js"

const tapeAt = (root: string, driver: Record<string, unknown>): Storages.LocationSpec => ({
  id: "00000000-0000-4000-8000-000000000001",
  name: "cologne-tape",
  technology: "tape",
  driverConfig: { root, ...driver }
})

const exists = (p: string) => fs.stat(p).then(() => true, () => false)

const bytesOf = (stream: Stream.Stream<Uint8Array, StorageError.StorageError>) =>
  Effect.map(Stream.runCollect(stream), (chunks) => Buffer.concat(Chunk.toArray(chunks)))

describe("Storages: tape from driver options", () => {
  it.scopedLive(
    "builds one driver per location for many simultaneous requests; the next process finds the catalog and recalls from the volumes",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const root = path.join(dir, "tape")
        const spec = tapeAt(root, {
          library: "virtual",
          volumes: 2,
          volumeBytes: "1 MB",
          drives: 1,
          mountLatency: "20 millis",
          seekLatency: "2 millis",
          keepOnline: false
        })
        const body = randomBytes(300_000)
        const first = yield* Scope.make()
        const storages = yield* Scope.extend(Storages.make(), first)
        const all = yield* Effect.all(Array.from({ length: 8 }, () => storages.of(spec)), { concurrency: "unbounded" })
        assert.isTrue(all.every((s) => s === all[0]), "every request got the same driver")
        const tape = all[0]!
        assert.strictEqual(tape.name, "tape:cologne-tape")
        assert.isTrue(tape.capabilities.nearline)
        const stored = yield* tape.put("pkg/a.tar", Stream.make(new Uint8Array(body)))
        assert.isFalse(stored.online, "keepOnline: false leaves nothing in the cache")
        assert.isTrue(
          yield* Effect.promise(() => exists(path.join(root, "library", "CCAT000.vol"))),
          "the volumes live under <root>/library"
        )
        assert.deepStrictEqual(yield* Effect.promise(() => fileNamesIn(path.join(root, "cache"))), [])
        yield* Scope.close(first, Exit.void)

        // A new process (new storages, new driver) reads the catalog and recalls the object from tape.
        const again = yield* Storages.make()
        const reopened = yield* again.of(spec)
        assert.notStrictEqual(reopened, tape)
        const info = yield* reopened.stat("pkg/a.tar")
        assert.strictEqual(info.size, body.length)
        assert.strictEqual(info.checksum, stored.checksum)
        assert.isFalse(info.online)
        assert.isTrue((yield* bytesOf(reopened.get("pkg/a.tar"))).equals(body))
      }),
    60_000
  )

  it.scoped("refuses bad driver options, naming the location and every option, and creates nothing", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const root = path.join(dir, "tape")
      const storages = yield* Storages.make()
      const error = yield* Effect.flip(storages.of(tapeAt(root, { library: "virtual", seekLatency: "quickly", volumes: -1 })))
      assert.instanceOf(error, StorageError.StorageError)
      assert.strictEqual(error.reason, "Unsupported")
      assert.include(error.message, "cologne-tape: ")
      assert.include(error.message, "driver.seekLatency:")
      assert.include(error.message, "driver.volumes:")
      // a library folder the server cannot create: the error names the location's library
      const blocked = path.join(dir, "blocked")
      yield* Effect.promise(() => fs.writeFile(blocked, "a file where the tape root should be"))
      const unwritable = yield* Effect.flip(storages.of(tapeAt(blocked, { library: "virtual" })))
      assert.strictEqual(unwritable.driver, "virtual-tape:cologne-tape")
      const noLibrary = yield* Effect.flip(storages.of(tapeAt(root, {})))
      assert.include(noLibrary.message, `cologne-tape: driver.library: must be "virtual"`)
      assert.isFalse(yield* Effect.promise(() => exists(root)))
      // a refused build is not cached: fixed options build the driver
      const fixed = yield* storages.of(tapeAt(root, { library: "virtual" }))
      assert.isTrue(fixed.capabilities.nearline)
    }))

  it.scoped("builds the mtx backend from configuration; a missing or failing mtx is a clear StorageError and stores nothing", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const storages = yield* Storages.make()
      const devices = {
        library: "mtx",
        changer: "/dev/ccat-test-sg",
        drives: ["/dev/ccat-test-nst0"],
        labels: ["CCAT01L8"],
        blockSize: "64 KiB"
      }

      const missingRoot = path.join(dir, "missing")
      const missing = yield* storages.of(tapeAt(missingRoot, { ...devices, mtx: path.join(dir, "no-such-dir", "mtx") }))
      assert.strictEqual(missing.name, "tape:cologne-tape")
      assert.isTrue(missing.capabilities.nearline)
      const notInstalled = yield* Effect.flip(missing.put("pkg/a.tar", Stream.make(new Uint8Array(randomBytes(1000)))))
      assert.instanceOf(notInstalled, StorageError.StorageError)
      assert.strictEqual(notInstalled.reason, "Unavailable")
      assert.strictEqual(notInstalled.driver, "mtx-tape:cologne-tape")
      assert.include(notInstalled.message, "mtx cannot be run: it is not installed or not on the PATH")
      assert.strictEqual((yield* Effect.flip(missing.stat("pkg/a.tar"))).reason, "NotFound")
      assert.deepStrictEqual(yield* Effect.promise(() => fileNamesIn(path.join(missingRoot, "cache"))), [])

      // `false` is a real program that fails, as mtx does when it cannot open the changer
      const failingRoot = path.join(dir, "failing")
      const failing = yield* storages.of(tapeAt(failingRoot, { ...devices, mtx: "false" }))
      const failed = yield* Effect.flip(failing.put("pkg/a.tar", Stream.make(new Uint8Array(randomBytes(1000)))))
      assert.strictEqual(failed.reason, "Unavailable")
      assert.strictEqual(failed.driver, "mtx-tape:cologne-tape")
      assert.include(failed.message, "false -f /dev/ccat-test-sg status")
      assert.deepStrictEqual(yield* Effect.promise(() => fileNamesIn(path.join(failingRoot, "cache"))), [])
    }))
})
