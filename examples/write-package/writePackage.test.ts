/**
 * The example on a folder a pipeline produced: the package it writes is verified by the
 * verify-package example (and so by @ccat/core's reader) and extracted by GNU tar byte for byte;
 * an existing package is not replaced, and an id that is not a UUID is refused with nothing
 * written.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import { randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { verifyPackage } from "../verify-package/verifyPackage.js"
import { writePackage } from "./writePackage.js"

describe("examples/write-package", () => {
  it.scoped(
    "packs a folder into a package that verifies and extracts, and refuses to overwrite or take a bad id",
    () =>
      Effect.gen(function* () {
        const dir = yield* Effect.acquireRelease(
          Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-write-example-"))),
          (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
        )
        const folder = path.join(dir, "products")
        const files = new Map([
          ["map.fits", randomBytes(200_000)],
          ["logs/reduce.log", Buffer.from("reduced\n")],
          ["logs/empty.txt", Buffer.alloc(0)]
        ])
        for (const [name, bytes] of files) {
          yield* Effect.promise(() => fs.mkdir(path.dirname(path.join(folder, name)), { recursive: true }))
          yield* Effect.promise(() => fs.writeFile(path.join(folder, name), bytes))
        }
        const tar = path.join(dir, "products.tar")
        const written = yield* writePackage(folder, tar, randomUUID(), randomUUID())
        assert.isTrue(written.ok, written.lines.join("\n"))
        const checksum = written.lines[0].split(" ").at(-1)!
        const verified = yield* verifyPackage(tar, checksum)
        assert.isTrue(verified.ok, verified.lines.join("\n"))
        assert.match(verified.lines[0], /^RawDataPackage .*: 3 members verified/)

        const out = path.join(dir, "out")
        yield* Effect.promise(() => fs.mkdir(out))
        yield* Effect.promise(() => promisify(execFile)("tar", ["-xf", tar, "-C", out]))
        for (const [name, bytes] of files) {
          assert.isTrue((yield* Effect.promise(() => fs.readFile(path.join(out, name)))).equals(bytes), name)
        }

        const again = yield* writePackage(folder, tar, randomUUID(), randomUUID())
        assert.isFalse(again.ok)
        assert.include(again.lines[0], "exists")
        const bad = yield* writePackage(folder, path.join(dir, "bad.tar"), "not-a-uuid", randomUUID())
        assert.isFalse(bad.ok)
        assert.include(bad.lines[0], "Invalid")
        assert.deepStrictEqual((yield* Effect.promise(() => fs.readdir(dir))).sort(), ["out", "products", "products.tar"])
      }),
    60_000
  )
})
