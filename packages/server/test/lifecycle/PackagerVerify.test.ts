/**
 * How the packager checks members against their filing, on this thread (a small package) or on
 * a worker (a large one: from a disk location the worker reads the files itself, from any other
 * source it compares the checksums of what this thread reads): a corrupt small file is still
 * named (the first by the worker, the others by the re-read after it), files that grew or shrank
 * between filing and packaging, or while being read, are refused, every way writes
 * byte-identical archives, and nothing is left at the destination after a refusal.
 */
import { Checksum, type Ids, PackageLayout, PackageManifest, StorageDriver } from "@ccat/core"
import { ArchiveWriter } from "@ccat/core/node"
import { Disk } from "@ccat/storage-drivers"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Packager from "../../src/lifecycle/Packager.js"
import { type FiledFile, fileAll, gnuTar, sha256File, tempDir, uuid } from "./support.js"

/** Real SOURCE and BUFFER disk locations (the disk driver as a site runs it), removed at the end. */
const setup = (name: string) =>
  Effect.acquireRelease(
    Effect.gen(function* () {
      const root = yield* Effect.promise(() => tempDir(name))
      const dirs = { source: path.join(root, "source"), buffer: path.join(root, "buffer") }
      const source = yield* Disk.make({ root: dirs.source, name: "source" })
      const buffer = yield* Disk.make({ root: dirs.buffer, name: "buffer" })
      return { root, dirs, source, buffer }
    }),
    (env) => Effect.promise(() => fs.rm(env.root, { recursive: true, force: true }))
  )

/** Many small files and, with `big`, one file that makes the package large enough for the verifying worker. */
const manySmall = (count: number, big: boolean) => [
  ...(big ? [{ path: "obs/big.fits", size: 64 * 1024 * 1024 + 11 }] : []),
  ...Array.from({ length: count }, (_, i) => ({
    path: `obs/small/${i % 7}/part-${String(i).padStart(4, "0")}.dat`,
    size: 1 + ((i * 7919) % (300 * 1024))
  }))
]

const packOne = (
  files: ReadonlyArray<Packager.FileToPlan>,
  source: Packager.Source<never>,
  destination: StorageDriver.Service,
  key = "pkg/p.tar"
) =>
  Packager.pack({
    packageId: uuid<Ids.RawDataPackageId>(),
    executedObsUnitId: files[0].executedObsUnitId,
    instrumentModuleId: files[0].instrumentModuleId,
    files,
    source,
    destination,
    key
  })

const flipByte = (file: string, at: number) =>
  Effect.promise(async () => {
    const fh = await fs.open(file, "r+")
    try {
      const one = Buffer.alloc(1)
      await fh.read(one, 0, 1, at)
      one[0] ^= 0x5a
      await fh.write(one, 0, 1, at)
    } finally {
      await fh.close()
    }
  })

const nothingLeft = (dir: string) =>
  Effect.promise(async () => (await fs.readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name))

describe("Packager: members checked on a worker thread", () => {
  for (const big of [true, false]) {
    const where = big ? "on a worker" : "on this thread"
    it.scoped(`corrupt small files are Corrupt and named (${where}), and nothing is left in the buffer`, () =>
      Effect.gen(function* () {
        const env = yield* setup("verify-corrupt")
        const files = Packager.plan(yield* Effect.promise(() => fileAll(env.dirs.source, manySmall(big ? 300 : 200, big))))[0].files
        assert.strictEqual(
          ArchiveWriter.worthOffloading(new PackageManifest.PackageManifest({
            version: PackageManifest.formatVersion,
            packageId: uuid(),
            executedObsUnitId: files[0].executedObsUnitId,
            instrumentModuleId: files[0].instrumentModuleId,
            files: files.map((f) =>
              new PackageManifest.PackagedFile({ id: f.id, relativePath: f.relativePath, sizeBytes: f.sizeBytes, checksum: f.checksum })
            )
          })),
          big
        )
        const small = files.filter((f) => f.sizeBytes < 1024 * 1024)
        const victims = [small[40], small[41], small[small.length - 1]]
        for (const v of victims) yield* flipByte(path.join(env.dirs.source, v.relativePath), Math.floor(v.sizeBytes / 2))
        const error = yield* Effect.flip(packOne(files, env.source, env.buffer))
        assert.strictEqual(error._tag, "PackagingError")
        if (error._tag !== "PackagingError") return
        assert.strictEqual(error.reason, "Corrupt")
        assert.deepStrictEqual([...error.corruptIds].sort(), victims.map((v) => v.id).sort())
        const first = error.members.find((m) => m.id === victims[0].id)!
        assert.strictEqual(
          first.actualChecksum,
          Checksum.make(
            "sha256",
            createHash("sha256").update(yield* Effect.promise(() => fs.readFile(path.join(env.dirs.source, victims[0].relativePath))))
              .digest("hex")
          )
        )
        assert.deepStrictEqual(yield* nothingLeft(env.dirs.buffer), [])
      }), 120_000)

    it.scoped(`small files that grew or shrank after filing are Corrupt with their real size (${where})`, () =>
      Effect.gen(function* () {
        const env = yield* setup("verify-size")
        const files = Packager.plan(yield* Effect.promise(() => fileAll(env.dirs.source, manySmall(60, big))))[0].files
        const small = files.filter((f) => f.sizeBytes < 1024 * 1024)
        const [grown, shrunk] = [small[10], small[20]]
        yield* Effect.promise(() => fs.appendFile(path.join(env.dirs.source, grown.relativePath), Buffer.alloc(5000, 1)))
        yield* Effect.promise(() => fs.truncate(path.join(env.dirs.source, shrunk.relativePath), shrunk.sizeBytes - 1))
        const error = yield* Effect.flip(packOne(files, env.source, env.buffer))
        if (error._tag !== "PackagingError") return assert.fail(`expected PackagingError, got ${error._tag}`)
        assert.strictEqual(error.reason, "Corrupt")
        assert.deepStrictEqual([...error.corruptIds].sort(), [grown.id, shrunk.id].sort())
        assert.strictEqual(error.members.find((m) => m.id === shrunk.id)?.actualSize, shrunk.sizeBytes - 1)
        assert.isAbove(error.members.find((m) => m.id === grown.id)!.actualSize!, grown.sizeBytes)
        assert.deepStrictEqual(yield* nothingLeft(env.dirs.buffer), [])
      }), 120_000)
  }

  it.scoped("a file that changes size while the package is being written is refused", () =>
    Effect.gen(function* () {
      const env = yield* setup("verify-during")
      const files = Packager.plan(yield* Effect.promise(() => fileAll(env.dirs.source, manySmall(100, true))))[0].files
      const big = files.find((f) => f.sizeBytes > 1024 * 1024)!
      const late = files[files.length - 1]
      // the source changes files while the package is written: after the large file's first
      // chunk it shrinks, and a small file further on grows
      let chunks = 0
      // a copy of the disk service: read through its `get`, not by a worker from the folder
      const source: StorageDriver.Service = {
        ...env.source,
        get: (key, range) =>
          key === big.relativePath
            ? env.source.get(key, range).pipe(Stream.tap(() =>
              chunks++ === 0
                ? Effect.promise(async () => {
                  await fs.truncate(path.join(env.dirs.source, key), 3 * 1024 * 1024)
                  await fs.appendFile(path.join(env.dirs.source, late.relativePath), "more")
                })
                : Effect.void
            ))
            : env.source.get(key, range)
      }
      const error = yield* Effect.flip(packOne(files, source, env.buffer))
      if (error._tag !== "PackagingError") return assert.fail(`expected PackagingError, got ${error._tag}`)
      assert.strictEqual(error.reason, "Corrupt")
      assert.include(error.corruptIds, big.id)
      assert.isBelow(error.members.find((m) => m.id === big.id)!.actualSize!, big.sizeBytes)
      assert.include(error.corruptIds, late.id)
      assert.deepStrictEqual(yield* nothingLeft(env.dirs.buffer), [])
    }), 120_000)

  it.scoped("the worker and this thread write byte-identical archives, which GNU tar extracts", () =>
    Effect.gen(function* () {
      const env = yield* setup("verify-identical")
      const files: ReadonlyArray<FiledFile> =
        Packager.plan(yield* Effect.promise(() => fileAll(env.dirs.source, manySmall(120, false))))[0].files
      const manifest = new PackageManifest.PackageManifest({
        version: PackageManifest.formatVersion,
        packageId: uuid(),
        executedObsUnitId: files[0].executedObsUnitId,
        instrumentModuleId: files[0].instrumentModuleId,
        files: files.map((f) =>
          new PackageManifest.PackagedFile({ id: f.id, relativePath: f.relativePath, sizeBytes: f.sizeBytes, checksum: f.checksum })
        )
      })
      const folder = StorageDriver.localFolder(env.source)!
      const digestOf = (offload: boolean, fromFolder = false) =>
        Stream.runFold(
          ArchiveWriter.archive({
            manifest,
            body: (i) => env.source.get(files[i].relativePath),
            whole: (i, _m, limit) => env.source.readAtMost(files[i].relativePath, limit),
            folder: fromFolder
              ? { root: folder.root, keys: files.map((f) => f.relativePath), failure: (key, p) => folder.failure("get", key, p) }
              : undefined,
            mtime: 0,
            offload
          }),
          { hash: createHash("sha256"), size: 0 },
          (acc, part) => {
            acc.hash.update(part)
            acc.size += part.length
            return acc
          }
        ).pipe(Effect.map((acc) => ({ digest: acc.hash.digest("hex"), size: acc.size })))
      const here = yield* digestOf(false)
      const worker = yield* digestOf(true)
      assert.deepStrictEqual(worker, here)
      assert.deepStrictEqual(yield* digestOf(true, true), here)
      assert.strictEqual(here.size, PackageLayout.archiveSize(manifest))
      const written = yield* packOne(files, env.source, env.buffer)
      assert.strictEqual(written.checksum, yield* Effect.promise(() => sha256File(path.join(env.dirs.buffer, "pkg/p.tar"))))
      const out = path.join(env.root, "extracted")
      yield* Effect.promise(() => fs.mkdir(out))
      yield* Effect.promise(() => gnuTar(["-xf", path.join(env.dirs.buffer, "pkg/p.tar"), "-C", out]))
      for (const f of files) {
        assert.isTrue(Buffer.from(f.bytes).equals(yield* Effect.promise(() => fs.readFile(path.join(out, f.relativePath)))), f.relativePath)
      }
    }), 120_000)
})
