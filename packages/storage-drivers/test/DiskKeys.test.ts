/**
 * The disk driver's key resolution: a folder of the key that is a file, folders created on the
 * first deep put, and a symlink deleted as the link, never its target. Real files on the real
 * filesystem.
 */
import { Disk } from "@ccat/storage-drivers"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as path from "node:path"
import { collect, reason, scratchRoot } from "./DiskBytes.js"

const root = scratchRoot("ccat-disk-keys-")

describe("Disk keys", () => {
  it.live("a folder of the key that is a file: put fails AlreadyExists, get and stat NotFound", () =>
    Effect.gen(function* () {
      const d = yield* Disk.make({ root: path.join(root, "notafolder") })
      yield* d.put("a/file", Stream.make(new Uint8Array([1])))
      assert.strictEqual(yield* reason(d.put("a/file/under", Stream.make(new Uint8Array([2])))), "AlreadyExists")
      assert.strictEqual(yield* reason(d.stat("a/file/under")), "NotFound")
      assert.strictEqual(yield* reason(Stream.runDrain(d.get("a/file/under"))), "NotFound")
      assert.strictEqual(yield* reason(d.stat("missing/deep/key")), "NotFound")
      // creating a deep key whose folders do not exist yet takes the slow path, then the fast one
      yield* d.put("new/deep/folder/k", Stream.make(new Uint8Array([3])))
      yield* d.put("new/deep/folder/k2", Stream.make(new Uint8Array([4])))
      assert.deepStrictEqual([...(yield* collect(d.get("new/deep/folder/k2")))], [4])
    }))

  it.live("a deleted symlink is the link, never its target", () =>
    Effect.gen(function* () {
      const loc = path.join(root, "links")
      const d = yield* Disk.make({ root: loc })
      yield* d.put("real/target.bin", Stream.make(new Uint8Array([7])))
      fs.mkdirSync(path.join(loc, "l"))
      fs.symlinkSync(path.join(loc, "real", "target.bin"), path.join(loc, "l", "link.bin"))
      assert.deepStrictEqual([...(yield* collect(d.get("l/link.bin")))], [7])
      yield* d.delete("l/link.bin")
      assert.isFalse(fs.existsSync(path.join(loc, "l", "link.bin")))
      assert.isTrue(fs.existsSync(path.join(loc, "real", "target.bin")))
    }))
})
