/**
 * The local transfer adapter's temporary names: the ones the disk driver's sweep recognises
 * (`TemporaryNames`, defined once), short enough for any final name the filesystem allows.
 * The names are seen as the kernel reports them (inotify through `fs.watch`), not guessed.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { watch } from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as LocalTransfer from "../src/node/LocalTransfer.js"
import * as TemporaryNames from "../src/TemporaryNames.js"
import * as TransferAdapterSuite from "../src/testing/TransferAdapterSuite.js"
import * as TransferEndpoint from "../src/TransferEndpoint.js"

describe("LocalTransfer temporary names", () => {
  it.live("writes under a name the sweep recognises, also for a final name of 250 characters, and leaves none", () =>
    Effect.gen(function* () {
      const d = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-local-tmp-")))
      const base = `${"n".repeat(246)}.bin`
      const sum = yield* Effect.promise(() => TransferAdapterSuite.writeRandomFile(path.join(d, "src", base), 3_000_000))
      yield* Effect.promise(() => fs.mkdir(path.join(d, "dst")))
      const seen: Array<string> = []
      const watcher = watch(path.join(d, "dst"), (_event, name) => {
        if (name !== null && !seen.includes(name)) seen.push(name)
      })
      const result = yield* LocalTransfer.make().transfer({
        source: TransferEndpoint.local(path.join(d, "src", base)),
        destination: TransferEndpoint.local(path.join(d, "dst", base)),
        kind: "file"
      }).pipe(Effect.ensuring(Effect.sync(() => watcher.close())))
      assert.strictEqual(result.checksum, sum)
      const temporary = seen.filter((n) => n !== base)
      assert.isAbove(temporary.length, 0, `the copy went through a temporary name (seen: ${seen.join(", ")})`)
      for (const name of temporary) {
        assert.isTrue(TemporaryNames.isTemporary(name), name)
        assert.isAtMost(Buffer.byteLength(name), 255, name)
      }
      assert.deepStrictEqual(yield* Effect.promise(() => fs.readdir(path.join(d, "dst"))), [base])
      yield* Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
    }))

  it("tells temporary names from ordinary ones", () => {
    for (const name of [
      TemporaryNames.disk("a.tar", "0a1b2c3d4e5f"),
      TemporaryNames.part("a.tar", "0a1b2c3d4e5f"),
      TemporaryNames.part("x".repeat(300), "ff")
    ]) {
      assert.isTrue(TemporaryNames.isTemporary(name), name)
      assert.isAtMost(name.length, 100, name)
    }
    for (const name of [
      "a.tar",
      "a.part",
      ".hidden",
      "ccat-tmp-x",
      ".a.ccat-.part",
      ".a.ccat-XYZ.part",
      "x.ccat-0a.part",
      ".a.ccat-0a.part.txt"
    ]) {
      assert.isFalse(TemporaryNames.isTemporary(name), name)
    }
  })
})
