/**
 * The packager and unpacker on real disk locations, with GNU tar as the independent reader:
 * round trip, structure, long and non-ASCII paths, empty files, corrupt and missing sources,
 * atomicity under failure and interruption, bundles, and deterministic plans and bytes.
 */
import { type Ids, PackageManifest } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Packager from "../../src/lifecycle/Packager.js"
import * as Unpacker from "../../src/lifecycle/Unpacker.js"
import * as DiskLocation from "./DiskLocation.js"
import { fileAll, gnuTar, listFiles, sha256File, tempDir, uuid } from "./support.js"

const longDir = `${"very-long-directory-name-".repeat(5)}x/${"nested-".repeat(8)}y`
const specs = [
  { path: "top.txt", size: 1000 },
  { path: "a/b/c.dat", size: 1024 * 1024 + 3 },
  { path: "a/empty.dat", size: 0 },
  { path: "a/b/d/e.fits", size: 3 * 1024 * 1024 },
  { path: `${longDir}/${"file-with-a-long-name-".repeat(4)}.fits`, size: 5000 },
  { path: "réseau/ñandú-μ.txt", size: 512 },
  { path: "a/b/block.bin", size: 1024 }
]

/** Real SOURCE, BUFFER and PROCESSING folders for one test, removed when it ends. */
const setup = (name: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const root = await tempDir(name)
      const dirs = { source: path.join(root, "source"), buffer: path.join(root, "buffer"), processing: path.join(root, "processing") }
      for (const d of Object.values(dirs)) await fs.mkdir(d)
      return {
        root,
        ...dirs,
        source: DiskLocation.make(dirs.source),
        buffer: DiskLocation.make(dirs.buffer),
        processing: DiskLocation.make(dirs.processing),
        dirs
      }
    }),
    (env) => Effect.promise(() => fs.rm(env.root, { recursive: true, force: true }))
  )

const packOne = (
  files: ReadonlyArray<Packager.FileToPlan>,
  locations: { source: Packager.Source<never>; buffer: DiskLocationService },
  key = "pkg/p.tar"
) =>
  Packager.pack({
    packageId: uuid<Ids.RawDataPackageId>(),
    executedObsUnitId: files[0].executedObsUnitId,
    instrumentModuleId: files[0].instrumentModuleId,
    files,
    source: locations.source,
    destination: locations.buffer,
    key
  })
type DiskLocationService = ReturnType<typeof DiskLocation.make>

describe("Packager and Unpacker", () => {
  it.scoped("round trip: GNU tar lists and extracts the package identically, and the unpacker verifies every file", () =>
    Effect.gen(function* () {
      const env = yield* setup("roundtrip")
      const files = yield* Effect.promise(() => fileAll(env.dirs.source, specs))
      const ordered = Packager.plan(files)[0].files
      const written = yield* packOne(ordered, env)
      const tarPath = path.join(env.dirs.buffer, "pkg/p.tar")
      assert.strictEqual(written.checksum, yield* Effect.promise(() => sha256File(tarPath)))
      assert.strictEqual(written.sizeBytes, (yield* Effect.promise(() => fs.stat(tarPath))).size)

      const listing = yield* Effect.promise(() => gnuTar(["-tvf", tarPath]))
      const names = listing.trim().split("\n").map((l) => l.split(/\s+/).slice(5).join(" "))
      assert.strictEqual(names[0], PackageManifest.manifestName)
      for (const f of files) assert.include(names, f.relativePath)
      assert.include(names, "a/b/d/")

      const extracted = path.join(env.root, "extracted")
      yield* Effect.promise(() => fs.mkdir(extracted))
      yield* Effect.promise(() => gnuTar(["-xf", tarPath, "-C", extracted]))
      assert.deepStrictEqual(
        yield* Effect.promise(() => listFiles(extracted)),
        [...files.map((f) => f.relativePath), PackageManifest.manifestName].sort()
      )
      for (const f of files) {
        const back = yield* Effect.promise(() => fs.readFile(path.join(extracted, f.relativePath)))
        assert.isTrue(Buffer.compare(back, f.bytes) === 0, f.relativePath)
      }
      const manifest = PackageManifest.decode(yield* Effect.promise(() => fs.readFile(path.join(extracted, PackageManifest.manifestName))))
      assert.isTrue(Either.isRight(manifest))

      const unpacked = yield* Unpacker.unpackFrom(env.buffer, "pkg/p.tar", {
        destination: env.processing,
        prefix: "req-1/",
        checksum: written.checksum,
        sizeBytes: written.sizeBytes
      })
      assert.strictEqual(unpacked.checksum, written.checksum)
      assert.strictEqual(unpacked.members.length, files.length)
      for (const f of files) {
        const staged = path.join(env.dirs.processing, "req-1", f.relativePath)
        assert.strictEqual(yield* Effect.promise(() => sha256File(staged)), f.checksum)
      }
    }))

  it.scoped("the bytes are deterministic: packing the same files again gives the same checksum", () =>
    Effect.gen(function* () {
      const env = yield* setup("determinism")
      const files = yield* Effect.promise(() => fileAll(env.dirs.source, specs.slice(0, 3)))
      const args = {
        packageId: uuid<Ids.RawDataPackageId>(),
        executedObsUnitId: files[0].executedObsUnitId,
        instrumentModuleId: files[0].instrumentModuleId,
        files,
        source: env.source,
        destination: env.buffer
      }
      const one = yield* Packager.pack({ ...args, key: "one.tar" })
      const two = yield* Packager.pack({ ...args, key: "one.tar", overwrite: true })
      assert.strictEqual(one.checksum, two.checksum)
    }))

  it.scoped("a flipped byte at the source fails Corrupt naming every bad file, and nothing is left in the buffer", () =>
    Effect.gen(function* () {
      const env = yield* setup("corrupt")
      const files = Packager.plan(yield* Effect.promise(() => fileAll(env.dirs.source, specs)))[0].files
      const victims = [files[1], files[files.length - 1]]
      for (const v of victims) {
        const p = path.join(env.dirs.source, v.relativePath)
        const bytes = yield* Effect.promise(() => fs.readFile(p))
        bytes[Math.floor(bytes.length / 2)] ^= 0xff
        yield* Effect.promise(() => fs.writeFile(p, bytes))
      }
      const error = yield* Effect.flip(packOne(files, env))
      assert.strictEqual(error._tag, "PackagingError")
      if (error._tag !== "PackagingError") return
      assert.strictEqual(error.reason, "Corrupt")
      assert.deepStrictEqual([...error.corruptIds].sort(), victims.map((v) => v.id).sort())
      assert.include(error.message, victims[0].relativePath)
      assert.deepStrictEqual(yield* Effect.promise(() => fs.readdir(env.dirs.buffer, { recursive: true })), ["pkg"])
    }))

  it.scoped("in a package large enough to verify files on a worker thread, a flipped byte is still Corrupt and named", () =>
    Effect.gen(function* () {
      const env = yield* setup("corrupt-large")
      const files = yield* Effect.promise(() =>
        fileAll(env.dirs.source, [{ path: "big/a.fits", size: 40 * 1024 * 1024 }, { path: "big/b.fits", size: 30 * 1024 * 1024 + 7 }])
      )
      const good = yield* packOne(files, env, "good.tar")
      assert.strictEqual(good.checksum, yield* Effect.promise(() => sha256File(path.join(env.dirs.buffer, "good.tar"))))
      const p = path.join(env.dirs.source, files[1].relativePath)
      const fh = yield* Effect.promise(() => fs.open(p, "r+"))
      yield* Effect.promise(() => fh.write(Buffer.from([files[1].bytes[12345678] ^ 0x01]), 0, 1, 12345678).finally(() => fh.close()))
      const error = yield* Effect.flip(packOne(files, env))
      assert.deepStrictEqual(error._tag === "PackagingError" ? error.corruptIds : [], [files[1].id])
      assert.isFalse(yield* env.buffer.exists("pkg/p.tar"))
    }))

  it.scoped("a file with more or fewer bytes than filed is Corrupt", () =>
    Effect.gen(function* () {
      const env = yield* setup("size")
      const files = yield* Effect.promise(() =>
        fileAll(env.dirs.source, [{ path: "x/longer.dat", size: 100 }, { path: "x/shorter.dat", size: 100 }])
      )
      yield* Effect.promise(() => fs.appendFile(path.join(env.dirs.source, "x/longer.dat"), "!"))
      yield* Effect.promise(() => fs.truncate(path.join(env.dirs.source, "x/shorter.dat"), 50))
      const error = yield* Effect.flip(packOne(files, env))
      assert.strictEqual(error._tag, "PackagingError")
      if (error._tag !== "PackagingError") return
      assert.deepStrictEqual([...error.corruptIds].sort(), files.map((f) => f.id).sort())
      assert.strictEqual(error.members.find((m) => m.id === files[1].id)?.actualSize, 50)
    }))

  it.scoped("a file deleted from SOURCE fails Missing naming it", () =>
    Effect.gen(function* () {
      const env = yield* setup("missing")
      const files = yield* Effect.promise(() => fileAll(env.dirs.source, specs.slice(0, 3)))
      yield* Effect.promise(() => fs.rm(path.join(env.dirs.source, files[1].relativePath)))
      const error = yield* Effect.flip(packOne(files, env))
      assert.strictEqual(error._tag, "PackagingError")
      if (error._tag !== "PackagingError") return
      assert.strictEqual(error.reason, "Missing")
      assert.deepStrictEqual(error.missingIds, [files[1].id])
      assert.isFalse(yield* env.buffer.exists("pkg/p.tar"))
    }))

  it.scoped("unsafe, duplicate and reserved paths are refused before anything is read", () =>
    Effect.gen(function* () {
      const env = yield* setup("invalid")
      const [f] = yield* Effect.promise(() => fileAll(env.dirs.source, [{ path: "a.dat", size: 1 }]))
      const reserved = { ...f, relativePath: PackageManifest.manifestName as typeof f.relativePath }
      const e1 = yield* Effect.flip(packOne([f, f], env))
      const e2 = yield* Effect.flip(packOne([reserved], env))
      const e3 = yield* Effect.flip(packOne([f, { ...f, id: uuid(), relativePath: "a.dat/b" as typeof f.relativePath }], env))
      for (const e of [e1, e2, e3]) assert.strictEqual(e._tag === "PackagingError" ? e.reason : e._tag, "Invalid")
    }))

  it.scoped("an interrupted pack leaves nothing under the final name, nor a temporary file", () =>
    Effect.gen(function* () {
      const env = yield* setup("interrupt")
      const files = yield* Effect.promise(() => fileAll(env.dirs.source, [{ path: "big.dat", size: 8 * 1024 * 1024 }]))
      // The source stalls after its first bytes: the package is mid-write when interrupted.
      const stalling: Packager.Source<never> = (key) => env.source.get(key).pipe(Stream.take(1), Stream.concat(Stream.never), Stream.orDie)
      const fiber = yield* Effect.fork(packOne(files, { source: stalling, buffer: env.buffer }))
      const pkgDir = path.join(env.dirs.buffer, "pkg")
      let temp: Array<string> = []
      for (let i = 0; i < 200 && temp.length === 0; i++) {
        yield* Effect.promise(() => new Promise((r) => setTimeout(r, 10)))
        temp = yield* Effect.promise(() => fs.readdir(pkgDir).catch(() => []))
      }
      assert.strictEqual(temp.length, 1)
      assert.isTrue(temp[0].startsWith(".p.tar.tmp-"))
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(yield* Effect.promise(() => fs.readdir(pkgDir)), [])
    }))

  it.scoped("a corrupt member inside a package fails the unpack Corrupt naming it, and leaves nothing staged", () =>
    Effect.gen(function* () {
      const env = yield* setup("badtar")
      const files = Packager.plan(yield* Effect.promise(() => fileAll(env.dirs.source, specs)))[0].files
      const written = yield* packOne(files, env)
      const tarPath = path.join(env.dirs.buffer, "pkg/p.tar")
      const bytes = yield* Effect.promise(() => fs.readFile(tarPath))
      const victim = files.find((f) => f.relativePath === "a/b/d/e.fits")!
      bytes[bytes.indexOf(Buffer.from(victim.bytes.subarray(0, 64))) + 1000] ^= 1
      yield* Effect.promise(() => fs.writeFile(tarPath, bytes))
      const error = yield* Effect.flip(
        Unpacker.unpackFrom(env.buffer, "pkg/p.tar", { destination: env.processing, checksum: written.checksum })
      )
      assert.strictEqual(error._tag, "UnpackError")
      if (error._tag !== "UnpackError") return
      assert.strictEqual(error.reason, "Corrupt")
      assert.deepStrictEqual(error.members.map((m) => m.id), [victim.id])
      assert.deepStrictEqual(yield* Effect.promise(() => listFiles(env.dirs.processing)), [])
      // The same bytes without the manifest first are not one of our archives.
      const notOurs = yield* Effect.flip(
        Unpacker.unpack(Stream.make(new Uint8Array(bytes.subarray(1024))), { destination: env.processing })
      )
      assert.strictEqual(notOurs._tag === "UnpackError" ? notOurs.reason : notOurs._tag, "Malformed")
    }))

  it.scoped("the unpacker reads what GNU tar writes in pax format (manifest first)", () =>
    Effect.gen(function* () {
      const env = yield* setup("gnu")
      const files = yield* Effect.promise(() => fileAll(env.dirs.source, specs.filter((s) => s.size > 0)))
      const manifest = new PackageManifest.PackageManifest({
        version: PackageManifest.formatVersion,
        packageId: uuid(),
        executedObsUnitId: files[0].executedObsUnitId,
        instrumentModuleId: files[0].instrumentModuleId,
        files: files.map((f) =>
          new PackageManifest.PackagedFile({ id: f.id, relativePath: f.relativePath, sizeBytes: f.sizeBytes, checksum: f.checksum })
        )
      })
      yield* Effect.promise(() => fs.writeFile(path.join(env.dirs.source, PackageManifest.manifestName), PackageManifest.encode(manifest)))
      const tarPath = path.join(env.dirs.buffer, "gnu.tar")
      yield* Effect.promise(() =>
        gnuTar(["--format=pax", "-cf", tarPath, "-C", env.dirs.source, PackageManifest.manifestName, ...files.map((f) => f.relativePath)])
      )
      const unpacked = yield* Unpacker.unpackFrom(env.buffer, "gnu.tar", { destination: env.processing })
      assert.strictEqual(unpacked.members.length, files.length)
      for (const f of files) {
        assert.strictEqual(yield* Effect.promise(() => sha256File(path.join(env.dirs.processing, f.relativePath))), f.checksum)
      }
    }))

  it.scoped("a bundle of packages is written, split back into byte-identical packages, and a corrupt package is refused", () =>
    Effect.gen(function* () {
      const env = yield* setup("bundle")
      const planned = Packager.plan(yield* Effect.promise(() => fileAll(env.dirs.source, specs)), { maxPackageBytes: 2 * 1024 * 1024 })
      const packages: Array<Packager.PackageToBundle & { readonly sourceKey: string }> = []
      for (const [i, p] of planned.entries()) {
        const key = Packager.packageKey(p)
        const w = yield* packOne(p.files, env, key)
        packages.push({
          id: w.archiveId as Ids.RawDataPackageId,
          relativePath: `pkgs/${i}.tar` as Packager.PackageToBundle["relativePath"],
          sizeBytes: w.sizeBytes,
          checksum: w.checksum,
          sourceKey: key
        })
      }
      const bundle = yield* Packager.bundle({
        bundleId: uuid(),
        packages,
        source: env.buffer,
        destination: env.buffer,
        key: "bundles/b.tar"
      })
      const arrived = DiskLocation.make(path.join(env.root, "arrived"))
      const split = yield* Unpacker.unpackFrom(env.buffer, "bundles/b.tar", { destination: arrived, checksum: bundle.checksum })
      assert.strictEqual(split.manifest._tag, "DataTransferPackage")
      for (const p of packages) assert.strictEqual(yield* arrived.checksum(p.relativePath), p.checksum)
      // A package that changed in the buffer since it was recorded is not bundled.
      yield* Effect.promise(() => fs.appendFile(path.join(env.dirs.buffer, packages[0].sourceKey), "x"))
      const error = yield* Effect.flip(
        Packager.bundle({ bundleId: uuid(), packages, source: env.buffer, destination: env.buffer, key: "bundles/c.tar" })
      )
      assert.deepStrictEqual(error._tag === "PackagingError" ? error.corruptIds : [], [packages[0].id])
      assert.isFalse(yield* env.buffer.exists("bundles/c.tar"))
    }))
})

describe("Packager.plan", () => {
  const group = { executedObsUnitId: uuid<Ids.ExecutedObsUnitId>(), instrumentModuleId: uuid<Ids.InstrumentModuleId>() }
  const file = (p: string, size: number, g = group) =>
    ({ id: uuid<Ids.RawDataFileId>(), relativePath: p, sizeBytes: size, checksum: `sha256:${"0".repeat(64)}`, ...g }) as Packager.FileToPlan

  it("splits by group and size, gives a file larger than the limit its own package, and is deterministic", () => {
    const other = { executedObsUnitId: group.executedObsUnitId, instrumentModuleId: uuid<Ids.InstrumentModuleId>() }
    const files = [file("d/1", 40), file("d/2", 40), file("huge", 500), file("a/3", 30), file("d/4", 40), file("m/1", 10, other)]
    const plan = Packager.plan(files, { maxPackageBytes: 100 })
    const shapes = plan.map((p) =>
      `${p.instrumentModuleId === other.instrumentModuleId ? "other" : "main"}:${p.files.map((f) => f.relativePath).join(",")}`
    )
    const main = shapes.filter((s) => s.startsWith("main"))
    assert.deepStrictEqual(main, ["main:a/3,d/1", "main:d/2,d/4", "main:huge"])
    assert.include(shapes, "other:m/1")
    for (const p of plan) assert.isTrue(p.sizeBytes <= 100 || p.files.length === 1)
    const again = Packager.plan([...files].reverse(), { maxPackageBytes: 100 })
    assert.deepStrictEqual(again.map((p) => [p.name, p.files.map((f) => f.id)]), plan.map((p) => [p.name, p.files.map((f) => f.id)]))
    assert.strictEqual(new Set(plan.map((p) => p.name)).size, plan.length)
  })
})
