/**
 * The example on a package written by the packager the lifecycle's packaging stage runs: a good
 * package verifies with its recorded checksum; a copy with one changed byte names the bad member;
 * a wrong catalog checksum and a malformed argument are refused.
 */
import { Checksum, type Ids, type RelativePath } from "@ccat/core"
import { Disk } from "@ccat/storage-drivers"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Packager from "../../packages/server/src/lifecycle/Packager.js"
import { verifyPackage } from "./verifyPackage.js"

describe("examples/verify-package", () => {
  it.scoped("verifies a written package and names the bad member of a damaged copy", () =>
    Effect.gen(function* () {
      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-verify-example-"))),
        (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
      )
      const source = yield* Disk.make({ root: path.join(dir, "source") })
      const buffer = yield* Disk.make({ root: path.join(dir, "buffer") })
      const files = yield* Effect.forEach(["scan/a.fits", "scan/b.fits"], (relativePath) =>
        Effect.gen(function* () {
          const bytes = randomBytes(50_000)
          yield* Effect.promise(() => fs.mkdir(path.join(dir, "source", "scan"), { recursive: true }))
          yield* Effect.promise(() => fs.writeFile(path.join(dir, "source", relativePath), bytes))
          return {
            id: randomUUID() as Ids.RawDataFileId,
            relativePath: relativePath as RelativePath.RelativePath,
            sizeBytes: bytes.length,
            checksum: Checksum.make("sha256", createHash("sha256").update(bytes).digest("hex"))
          }
        }))
      const written = yield* Packager.pack({
        packageId: randomUUID() as Ids.RawDataPackageId,
        executedObsUnitId: randomUUID() as Ids.ExecutedObsUnitId,
        instrumentModuleId: randomUUID() as Ids.InstrumentModuleId,
        files,
        source,
        destination: buffer,
        key: "package.tar"
      })
      const tar = path.join(dir, "buffer", "package.tar")

      const good = yield* verifyPackage(tar, written.checksum)
      assert.isTrue(good.ok, good.lines.join("\n"))
      assert.match(good.lines[0], /^RawDataPackage .*: 2 members verified/)

      const bytes = yield* Effect.promise(() => fs.readFile(tar))
      bytes[bytes.length - 1024 - 512 - 100] ^= 0x01 // inside the last member's data, before the padding and trailer
      const damaged = path.join(dir, "damaged.tar")
      yield* Effect.promise(() => fs.writeFile(damaged, bytes))
      const bad = yield* verifyPackage(damaged)
      assert.isFalse(bad.ok)
      assert.match(bad.lines.join("\n"), /Corrupt[\s\S]*BAD scan\/b\.fits/)

      const wrongSum = yield* verifyPackage(tar, Checksum.make("sha256", "0".repeat(64)))
      assert.isFalse(wrongSum.ok)
      assert.match(wrongSum.lines[0], /archive checksum/)
      assert.deepStrictEqual((yield* verifyPackage(tar, "md5:xyz")).lines, ["not a checksum: md5:xyz"])
    }), 60_000)
})
