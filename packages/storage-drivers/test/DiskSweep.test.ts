/**
 * The disk driver's sweep of temporary files killed writers left (issue 6), on a real folder:
 * old leftovers of both writers (the driver's own and the local transfer adapter's) go, fresh
 * ones and every committed object stay, and a stalled write whose file was swept fails without
 * storing anything. Files are made old with `utimes`, not by waiting.
 */
import { StorageDriver, TemporaryNames } from "@ccat/core"
import { StorageDriverSuite } from "@ccat/core/testing"
import { Disk } from "@ccat/storage-drivers"
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"

const root = fs.mkdtempSync(path.join(os.tmpdir(), "ccat-disk-sweep-"))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

const text = (s: string) => Stream.make(new TextEncoder().encode(s))
const reason = <A>(e: Effect.Effect<A, { readonly reason: string }>) =>
  Effect.match(e, { onFailure: (err) => err.reason, onSuccess: () => "success" })

const hours = (n: number) => n * 3600_000
/** Writes a file and sets its modification time `ageMs` in the past. */
const leftover = (file: string, bytes: number, ageMs: number) => {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, Buffer.alloc(bytes, 7))
  const when = new Date(Date.now() - ageMs)
  fs.utimesSync(file, when, when)
}
/** Every regular file under a folder, relative, sorted. */
const filesUnder = (dir: string) =>
  (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as Array<fs.Dirent>)
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort()

describe("Disk sweepTemporary", () => {
  it.live("removes old temporary files of both writers anywhere in the location, keeps fresh ones and every object", () =>
    Effect.gen(function* () {
      const loc = path.join(root, "mixed")
      const d = yield* Disk.make({ root: loc })
      // committed objects, some of them old and named much like temporary files
      const objects = ["a/b/data.bin", "ccat-tmp-like", "a/x.part", "a/.hidden", "a/.x.ccat-zz.part", "deep/1/2/3/obs.fits"]
      for (const k of objects) {
        yield* d.put(k, text(`object ${k}`))
        const old = new Date(Date.now() - hours(100))
        fs.utimesSync(path.join(loc, k), old, old)
      }
      // what killed writers left: old ones (to go) and fresh ones (a write may still own them)
      const old = [
        `a/b/${TemporaryNames.disk("data.bin", "0123456789ab")}`,
        TemporaryNames.disk("top", "a1a1a1a1a1a1"),
        `deep/1/2/3/${TemporaryNames.part("obs.fits", "abcdefabcdef")}`,
        `bundle-7/${TemporaryNames.part("pkg.tar", "00ff00ff00ff")}`
      ]
      old.forEach((f, i) => leftover(path.join(loc, f), 1000 * (i + 1), hours(25)))
      const fresh = [`a/b/${TemporaryNames.disk("data.bin", "fedcba987654")}`, `a/${TemporaryNames.part("y", "111111111111")}`]
      fresh.forEach((f) => leftover(path.join(loc, f), 10, hours(2)))
      // rsync's partial-dir is the next attempt's basis: never swept, however old
      leftover(path.join(loc, "bundle-7/.ccat-partial/pkg.tar"), 500, hours(200))
      // a symlink to a folder outside holding an old temporary-looking file: never followed
      const outside = fs.mkdtempSync(path.join(os.tmpdir(), "ccat-sweep-outside-"))
      leftover(path.join(outside, TemporaryNames.disk("secret", "999999999999")), 5, hours(100))
      fs.symlinkSync(outside, path.join(loc, "escape"))

      const swept = yield* d.sweepTemporary()
      assert.deepStrictEqual(swept, { files: 4, bytes: 1000 + 2000 + 3000 + 4000, failed: 0 })
      assert.deepStrictEqual(
        filesUnder(loc),
        [...objects, ...fresh, "bundle-7/.ccat-partial/pkg.tar"].sort()
      )
      for (const k of objects) assert.strictEqual(new TextDecoder().decode(yield* d.readAtMost(k, 100)), `object ${k}`)
      assert.isTrue(fs.existsSync(path.join(outside, TemporaryNames.disk("secret", "999999999999"))))
      fs.rmSync(outside, { recursive: true, force: true })

      // a second sweep finds nothing more; a shorter age takes the fresher leftovers too
      assert.deepStrictEqual(yield* d.sweepTemporary(), { files: 0, bytes: 0, failed: 0 })
      assert.deepStrictEqual(yield* d.sweepTemporary({ olderThan: "1 hour" }), { files: 2, bytes: 20, failed: 0 })
      // listing never shows a temporary name
      assert.deepStrictEqual((yield* d.list()).items.map((i) => i.key), [...objects, "bundle-7/.ccat-partial/pkg.tar"].sort())
    }))

  it.live("refuses keys shaped like temporary names, so a sweep can never take an object for a leftover", () =>
    Effect.gen(function* () {
      const d = yield* Disk.make({ root: path.join(root, "reserved") })
      yield* d.put("source", text("x"))
      for (const k of [TemporaryNames.disk("x", "0a0a0a0a0a0a"), `f/${TemporaryNames.part("x", "0a0a0a0a0a0a")}`]) {
        assert.strictEqual(yield* reason(d.put(k, text("x"))), "PermissionDenied", k)
        assert.strictEqual(yield* reason(d.stat(k)), "PermissionDenied", k)
        assert.strictEqual(yield* reason(d.delete(k)), "PermissionDenied", k)
        assert.strictEqual(yield* reason(d.copy("source", k)), "PermissionDenied", k)
      }
    }))

  it.live("counts a leftover it cannot remove as failed and removes the others", () =>
    Effect.gen(function* () {
      const loc = path.join(root, "stuck")
      const d = yield* Disk.make({ root: loc })
      leftover(path.join(loc, "held", TemporaryNames.disk("x", "cdcdcdcdcdcd")), 3, hours(100))
      leftover(path.join(loc, "free", TemporaryNames.disk("y", "efefefefefef")), 4, hours(100))
      // an immutable folder refuses the unlink even to root, as a read-only or failing disk would
      const held = path.join(loc, "held")
      yield* Effect.acquireRelease(
        Effect.sync(() => execFileSync("chattr", ["+i", held])),
        () => Effect.ignore(Effect.try(() => execFileSync("chattr", ["-i", held])))
      )
      assert.deepStrictEqual(yield* d.sweepTemporary(), { files: 1, bytes: 4, failed: 1 })
      assert.deepStrictEqual(filesUnder(loc), [`held/${TemporaryNames.disk("x", "cdcdcdcdcdcd")}`])
      execFileSync("chattr", ["-i", held])
      assert.deepStrictEqual(yield* d.sweepTemporary(), { files: 1, bytes: 3, failed: 0 }, "the next sweep takes it")
    }).pipe(Effect.scoped))

  it.live("refuses an age under an hour and leaves everything in place", () =>
    Effect.gen(function* () {
      const loc = path.join(root, "young")
      const d = yield* Disk.make({ root: loc })
      leftover(path.join(loc, TemporaryNames.disk("x", "abababababab")), 3, hours(100))
      for (const age of ["59 minutes", 0, "-1 hour", Number.NaN]) {
        assert.strictEqual(yield* reason(d.sweepTemporary({ olderThan: age as never })), "PermissionDenied", String(age))
      }
      assert.strictEqual(filesUnder(loc).length, 1)
    }))

  for (const overwrite of [false, true]) {
    it.live(
      `a stalled write whose temporary file was swept fails and stores nothing (overwrite: ${overwrite})`,
      () =>
        Effect.gen(function* () {
          const loc = path.join(root, `stalled-${overwrite}`)
          const d = yield* Disk.make({ root: loc })
          if (overwrite) yield* d.put("obs/raw.bin", text("the previous object"))
          const gate = yield* Deferred.make<void>()
          // a body that sends 1 MiB, stalls (a dead link), then sends 8 MiB more once released
          const body = Stream.concat(
            StorageDriverSuite.bodyOf(1024 * 1024, 3),
            Stream.unwrap(Effect.as(Deferred.await(gate), StorageDriverSuite.bodyOf(8 * 1024 * 1024, 4)))
          )
          const writing = yield* Effect.fork(d.put("obs/raw.bin", body, { overwrite }))
          // the stall lasts past the sweep's age: made so by dating the file back
          let temporary: Array<string> = []
          while (temporary.length === 0) {
            yield* Effect.sleep("20 millis")
            temporary = filesUnder(loc).filter((f) => TemporaryNames.isTemporary(path.basename(f)))
          }
          const tmp = path.join(loc, temporary[0]!)
          // the writer is idle once the file's size holds still (it may keep bytes back to write
          // them in larger pieces): only then is the dated-back time not moved on by a write
          let size = -1
          for (let still = 0; still < 5; yield* Effect.sleep("40 millis")) {
            const now = fs.statSync(tmp).size
            still = now === size ? still + 1 : 0
            size = now
          }
          const stale = new Date(Date.now() - hours(30))
          fs.utimesSync(tmp, stale, stale)
          const swept = yield* d.sweepTemporary()
          assert.deepStrictEqual(swept, { files: 1, bytes: size, failed: 0 })
          yield* Deferred.succeed(gate, undefined)
          const exit = yield* Fiber.await(writing)
          assert.isTrue(Exit.isFailure(exit), "the write fails")
          if (Exit.isFailure(exit)) {
            const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
            assert.strictEqual((error as { reason?: string } | undefined)?.reason, "Unavailable", String(exit.cause))
            assert.match(String((error as { message?: string }).message), /removed while the write ran/)
          }
          // nothing new under the key, no temporary file either
          assert.deepStrictEqual(filesUnder(loc), overwrite ? ["obs/raw.bin"] : [])
          if (overwrite) assert.strictEqual(new TextDecoder().decode(yield* d.readAtMost("obs/raw.bin", 100)), "the previous object")
          else assert.strictEqual(yield* reason(d.stat("obs/raw.bin")), "NotFound")
          // the caller's next attempt goes through
          const again = yield* d.put("obs/raw.bin", text("again"), { overwrite: true })
          assert.strictEqual(again.size, 5)
        }),
      60_000
    )
  }

  it.live("is declared, lifted and Unsupported where a driver has none", () =>
    Effect.gen(function* () {
      const minimal = yield* Disk.makeMinimal({ root: path.join(root, "lifted") })
      const { sweepTemporary: _, ...without } = minimal
      const plain = StorageDriver.make({ ...without, capabilities: { ...minimal.capabilities, sweepTemporary: false } })
      assert.strictEqual(yield* reason(plain.sweepTemporary()), "Unsupported")
      assert.throws(() => StorageDriver.make({ ...without, capabilities: minimal.capabilities }), /declares sweepTemporary/)
    }))
})
