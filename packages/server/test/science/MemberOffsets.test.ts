/**
 * The offsets the packager records for each member are where the archive writer puts it: for
 * short, long and non-ASCII names (pax headers), nested folders (folder headers before a
 * member), sizes on and off the block boundary, and empty files.
 */
import { Checksum, Ids, PackageLayout, PackageManifest, RelativePath, TarFormat } from "@ccat/core"
import { ArchiveWriter } from "@ccat/core/node"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { createHash, randomBytes, randomUUID } from "node:crypto"

const specs: ReadonlyArray<readonly [string, number]> = [
  ["a.dat", 1],
  ["det/b.fits", 512],
  ["det/deep/er/c.fits", 70_001],
  [`det/${"x".repeat(120)}.fits`, 3],
  ["det/ünï/€.fits", 1024],
  ["hk/empty.dat", 0],
  ["hk/z.dat", 300_000]
]

describe("member offsets", () => {
  it.effect("each member's header and data sit at the offsets computed from the manifest alone", () =>
    Effect.gen(function* () {
      const bodies = specs.map(([, size]) => randomBytes(size))
      const manifest = new PackageManifest.PackageManifest({
        version: 1,
        packageId: randomUUID() as Ids.RawDataPackageId,
        executedObsUnitId: randomUUID() as Ids.ExecutedObsUnitId,
        instrumentModuleId: randomUUID() as Ids.InstrumentModuleId,
        files: specs.map(([p], i) => new PackageManifest.PackagedFile({
          id: randomUUID() as Ids.RawDataFileId,
          relativePath: p as RelativePath.RelativePath,
          sizeBytes: bodies[i]!.length,
          checksum: Checksum.make("sha256", createHash("sha256").update(bodies[i]!).digest("hex"))
        }))
      })
      const tar = Buffer.concat([...Chunk.toReadonlyArray(
        yield* Stream.runCollect(ArchiveWriter.archive({
          manifest,
          body: (i) => Stream.make(new Uint8Array(bodies[i]!)),
          mtime: 1_700_000_000
        }))
      )])
      assert.strictEqual(tar.length, PackageLayout.archiveSize(manifest))
      const offsets = PackageLayout.memberOffsets(manifest)
      assert.strictEqual(offsets.length, specs.length)
      offsets.forEach((o, i) => {
        assert.strictEqual(o.headerOffset % TarFormat.blockSize, 0)
        assert.isTrue(tar.subarray(o.dataOffset, o.dataOffset + bodies[i]!.length).equals(bodies[i]!), specs[i]![0])
        // the block just before the data is the member's ustar header, with its size
        const header = TarFormat.decodeHeader(tar.subarray(o.dataOffset - TarFormat.blockSize, o.dataOffset))
        assert.notStrictEqual(typeof header, "string")
        if (typeof header !== "string") {
          assert.strictEqual(header.size, bodies[i]!.length)
          assert.strictEqual(TarFormat.entryType(header.typeflag), "file")
        }
        // and the member's own header starts at headerOffset: a pax header for long or non-ASCII names
        const first = TarFormat.decodeHeader(tar.subarray(o.headerOffset, o.headerOffset + TarFormat.blockSize))
        assert.notStrictEqual(typeof first, "string")
        const needsPax = specs[i]![0].length > 100 || !/^[\x20-\x7e]*$/.test(specs[i]![0])
        if (typeof first !== "string") assert.strictEqual(first.typeflag, needsPax ? "x" : "0", specs[i]![0])
      })
    }))
})
