import { StorageDriver } from "@ccat/core"
import { StorageDriverSuite } from "@ccat/core/testing"
import { Disk } from "@ccat/storage-drivers"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"

const root = fs.mkdtempSync(path.join(os.tmpdir(), "ccat-disk-"))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

StorageDriverSuite.run({ name: "disk", layer: Disk.layer({ root: path.join(root, "suite") }) })

const text = (s: string) => Stream.make(new TextEncoder().encode(s))
const reason = <A>(e: Effect.Effect<A, { readonly reason: string }>) =>
  Effect.match(e, { onFailure: (err) => err.reason, onSuccess: () => "success" })

describe("Disk", () => {
  it.live("refuses symlinks that lead outside the root, allows those inside", () =>
    Effect.gen(function* () {
      const loc = path.join(root, "symlinks")
      const outside = fs.mkdtempSync(path.join(os.tmpdir(), "ccat-outside-"))
      fs.writeFileSync(path.join(outside, "secret.txt"), "secret")
      const d = yield* Disk.make({ root: loc })
      fs.symlinkSync(outside, path.join(loc, "escape"))
      fs.symlinkSync(path.join(outside, "secret.txt"), path.join(loc, "secret-link"))
      assert.strictEqual(yield* reason(d.stat("escape/secret.txt")), "PermissionDenied")
      assert.strictEqual(yield* reason(d.put("escape/new.txt", text("x"))), "PermissionDenied")
      assert.strictEqual(yield* reason(d.stat("secret-link")), "PermissionDenied")
      assert.strictEqual(yield* reason(Stream.runDrain(d.get("secret-link"))), "PermissionDenied")
      assert.isFalse(fs.existsSync(path.join(outside, "new.txt")))
      fs.mkdirSync(path.join(loc, "real"))
      fs.symlinkSync(path.join(loc, "real"), path.join(loc, "alias"))
      yield* d.put("alias/ok.txt", text("fine"))
      assert.strictEqual(fs.readFileSync(path.join(loc, "real", "ok.txt"), "utf8"), "fine")
      fs.rmSync(outside, { recursive: true, force: true })
    }))

  it.live("reports free space for retention decisions", () =>
    Effect.gen(function* () {
      const d = yield* Disk.make({ root: path.join(root, "space") })
      const space = yield* d.space()
      assert.isAbove(space.totalBytes, 0)
      assert.isAtLeast(space.totalBytes, space.freeBytes)
      const statfs = fs.statfsSync(root)
      assert.approximately(space.freeBytes, statfs.bavail * statfs.bsize, 512 * 1024 * 1024)
    }))

  it.live("leaves no temporary files behind after failed writes", () =>
    Effect.gen(function* () {
      const loc = path.join(root, "tmpfiles")
      const d = yield* Disk.make({ root: loc })
      yield* Effect.exit(d.put("a/b.bin", Stream.concat(text("partial"), Stream.fail("boom"))))
      const left = fs.readdirSync(loc, { recursive: true }).map(String)
      assert.deepStrictEqual(left.filter((f) => f.includes(Disk.temporaryPrefix)), [])
      assert.strictEqual(yield* reason(d.put(`x/${Disk.temporaryPrefix}y`, text("x"))), "PermissionDenied")
    }))

  it.live("declares what it can do", () =>
    Effect.gen(function* () {
      const d = yield* StorageDriver.StorageDriver
      assert.deepStrictEqual(d.capabilities, {
        rangeRead: true,
        list: true,
        nativeCopy: true,
        nearline: false,
        presign: false,
        sweepTemporary: true
      })
    }).pipe(Effect.provide(Disk.layer({ root: path.join(root, "caps") }))))
})
