/**
 * The tar headers we write, read back by our reader and by GNU tar: pax records for long and
 * non-ASCII names and for sizes beyond ustar's 8 GiB, which a 50 GB package or bundle needs.
 */
import { ArchiveReader, TarFormat } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { tempDir } from "./support.js"

const huge = 10 * 1024 ** 3 + 17
const names = ["plain/name.txt", `${"d".repeat(120)}/${"f".repeat(200)}.fits`, "Ωmega/日本語.dat"]

describe("TarFormat", () => {
  it.scoped("pax records carry long and non-ASCII names and sizes over 8 GiB, for our reader and GNU tar", () =>
    Effect.gen(function* () {
      const headers = names.map((name, i) =>
        TarFormat.encodeHeader({ name, type: "file", size: i === 0 ? huge : 0, mode: 0o644, mtime: 1_700_000_000 })
      )
      // Only the first header: its 10 GiB body is not there, which is enough for a listing.
      const reader = yield* ArchiveReader.make(Stream.make(headers[0]))
      const first = yield* reader.next
      assert.deepStrictEqual(Option.getOrThrow(first), { name: names[0], type: "file", size: huge })

      const rest = yield* ArchiveReader.make(Stream.make(headers[1], headers[2], TarFormat.trailer()))
      assert.strictEqual(Option.getOrThrow(yield* rest.next).name, names[1])
      assert.strictEqual(Option.getOrThrow(yield* rest.next).name, names[2])
      assert.isTrue(Option.isNone(yield* rest.next))

      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => tempDir("tarformat")),
        (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
      )
      const file = path.join(dir, "h.tar")
      yield* Effect.promise(() => fs.writeFile(file, Buffer.concat([headers[0]])))
      const listing = yield* Effect.promise(() =>
        new Promise<string>((resolve) => execFile("tar", ["-tvf", file], (_e, stdout) => resolve(stdout)))
      )
      assert.include(listing, String(huge))
      assert.include(listing, names[0])
      yield* Effect.promise(() => fs.writeFile(file, Buffer.concat([headers[1], headers[2], TarFormat.trailer()])))
      const names2 = yield* Effect.promise(() =>
        new Promise<string>((resolve, reject) => execFile("tar", ["-tf", file], (e, stdout) => (e ? reject(e) : resolve(stdout))))
      )
      assert.deepStrictEqual(names2.trim().split("\n"), names.slice(1))
    }))

  it("a damaged header is refused by its checksum", () => {
    const h = TarFormat.encodeHeader({ name: "a", type: "file", size: 1, mode: 0o644, mtime: 0 })
    h[0] = "b".charCodeAt(0)
    assert.isString(TarFormat.decodeHeader(h))
  })
})
