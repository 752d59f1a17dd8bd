/**
 * Archives laid out by a worker thread from a folder's files: byte for byte what the writer on
 * this thread makes (small and large members, a member spanning chunks, several header batches,
 * pax names), also when the writer gives every chunk back to be filled again; a member gone,
 * grown, shrunk, rotten, a folder or a named pipe fails the stream with its fault before the archive's end;
 * keys the disk driver refuses (a symlink out of the folder, a dangling one, a writer's temporary
 * name) fail with the folder's error; a stream dropped half way stops its worker.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Stream from "effect/Stream"
import { execFileSync } from "node:child_process"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Checksum, LentBytes, PackageLayout, PackageManifest, type StorageDriver, TemporaryNames } from "../src/index.js"
import * as ArchiveWriter from "../src/node/ArchiveWriter.js"
import * as PackageFile from "../src/node/PackageFile.js"

const tempDir = Effect.acquireRelease(
  Effect.promise(async () => fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), "ccat-folder-archive-")))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

const sha256 = (bytes: Uint8Array) => Checksum.make("sha256", createHash("sha256").update(bytes).digest("hex"))

/** Files under `root` by key, with their bytes. */
const writeFiles = (root: string, specs: ReadonlyArray<readonly [string, number]>) =>
  Effect.promise(() =>
    Promise.all(specs.map(async ([key, size]) => {
      const bytes = randomBytes(size)
      await fs.mkdir(path.dirname(path.join(root, key)), { recursive: true })
      await fs.writeFile(path.join(root, key), bytes)
      return { key, bytes }
    }))
  )

const manifestOf = (files: ReadonlyArray<{ readonly key: string; readonly bytes: Uint8Array }>) =>
  new PackageManifest.PackageManifest({
    version: PackageManifest.formatVersion,
    packageId: randomUUID() as never,
    executedObsUnitId: randomUUID() as never,
    instrumentModuleId: randomUUID() as never,
    files: files.map((f) =>
      new PackageManifest.PackagedFile({
        id: randomUUID() as never,
        relativePath: f.key as never,
        sizeBytes: f.bytes.length,
        checksum: sha256(f.bytes)
      })
    )
  })

/** What a folder's failure callback makes: the problem, with the key, for the test to look at. */
interface Refused {
  readonly _tag: "Refused"
  readonly key: string
  readonly problem: StorageDriver.FolderProblem
}

const fromFolder = (root: string, manifest: PackageManifest.Manifest, keys: ReadonlyArray<string>) =>
  ArchiveWriter.archive({
    manifest,
    mtime: 1_700_000_000,
    body: () => Stream.die("read through the folder, never through body"),
    folder: { root, keys, failure: (key, problem): Refused => ({ _tag: "Refused", key, problem }) },
    offload: true
  })

/** The archive's bytes in one buffer; with `giveBack`, each chunk is copied and given back at once. */
const collect = <E>(stream: Stream.Stream<Uint8Array, E>, giveBack = false) =>
  Stream.runFold(stream, { parts: [] as Array<Buffer>, lent: 0 }, (acc, part) => {
    if (LentBytes.isLent(part)) acc.lent++
    acc.parts.push(Buffer.from(part))
    if (giveBack) LentBytes.giveBack(part)
    return acc
  }).pipe(Effect.map((acc) => ({ bytes: Buffer.concat(acc.parts), lent: acc.lent })))

/** The failure a stream ends with, and how many bytes it handed over before. */
const failureOf = <E>(stream: Stream.Stream<Uint8Array, E>) =>
  Effect.gen(function* () {
    let delivered = 0
    const exit = yield* Effect.exit(Stream.runForEach(stream, (part) => Effect.sync(() => void (delivered += part.length))))
    assert.isTrue(Exit.isFailure(exit))
    return { error: Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : undefined, delivered }
  })

describe("FolderArchive", () => {
  it.scoped("lays out the same bytes as the writer on this thread, also when every chunk is given back", () =>
    Effect.gen(function* () {
      const root = yield* tempDir
      const files = yield* writeFiles(root, [
        ["a.dat", 1],
        ["empty.dat", 0],
        [`scan-0001/${"detector-array-".repeat(8)}/${"x".repeat(120)}.fits`, 700],
        ["scan-0001/größe.dat", 513],
        ["scan-0002/big.fits", 9 * 1024 * 1024 + 3],
        ...Array.from({ length: 1100 }, (_, i) => [`many/${i % 9}/part-${String(i).padStart(4, "0")}.dat`, (i * 37) % 3000] as const)
      ])
      const manifest = manifestOf(files)
      const keys = files.map((f) => f.key)
      const here = yield* collect(ArchiveWriter.archive({
        manifest,
        mtime: 1_700_000_000,
        body: (i) => PackageFile.stream(path.join(root, keys[i])),
        offload: false
      }))
      assert.strictEqual(here.bytes.length, PackageLayout.archiveSize(manifest))
      const kept = yield* collect(fromFolder(root, manifest, keys))
      assert.isTrue(kept.bytes.equals(here.bytes))
      assert.isAbove(kept.lent, 2)
      const givenBack = yield* collect(fromFolder(root, manifest, keys), true)
      assert.isTrue(givenBack.bytes.equals(here.bytes))
    }), 120_000)

  it.scoped(
    "a member gone, grown, shrunk, rotten, a folder or a named pipe fails the stream with its fault, before the archive's end",
    () =>
      Effect.gen(function* () {
        const root = yield* tempDir
        const files = yield* writeFiles(root, [["first.dat", 6000], ["big.fits", 5 * 1024 * 1024], ["m.dat", 4000], ["last.dat", 10]])
        const manifest = manifestOf(files)
        const keys = files.map((f) => f.key)
        const restore = Effect.promise(async () => {
          await fs.rm(path.join(root, "m.dat"), { recursive: true, force: true })
          await fs.writeFile(path.join(root, "m.dat"), files[2].bytes)
        })
        const cases: ReadonlyArray<readonly [string, () => Promise<void>, string, string]> = [
          ["gone", () => fs.rm(path.join(root, "m.dat")), "Missing", "not found at the source"],
          [
            "a folder",
            async () => {
              await fs.rm(path.join(root, "m.dat"))
              await fs.mkdir(path.join(root, "m.dat"))
            },
            "Missing",
            "not found at the source"
          ],
          // opened without waiting for a writer, then found not to be a file
          [
            "a named pipe",
            async () => {
              await fs.rm(path.join(root, "m.dat"))
              execFileSync("mkfifo", [path.join(root, "m.dat")])
            },
            "Missing",
            "not found at the source"
          ],
          ["grown", () => fs.appendFile(path.join(root, "m.dat"), "x"), "Corrupt", "more than the recorded 4000 bytes"],
          ["shrunk", () => fs.truncate(path.join(root, "m.dat"), 3999), "Corrupt", "3999 bytes, recorded 4000"],
          [
            "rotten",
            async () => {
              const rotten = Buffer.from(files[2].bytes)
              rotten[1234] ^= 0x01
              await fs.writeFile(path.join(root, "m.dat"), rotten)
            },
            "Corrupt",
            "checksum sha256:"
          ]
        ]
        for (const [name, change, kind, detail] of cases) {
          yield* restore
          yield* Effect.promise(change)
          const { delivered, error } = yield* failureOf(fromFolder(root, manifest, keys))
          assert.instanceOf(error, ArchiveWriter.MemberFault, name)
          if (!(error instanceof ArchiveWriter.MemberFault)) return
          assert.strictEqual(`${error.index} ${error.kind}`, `2 ${kind}`, name)
          assert.include(error.detail, detail, name)
          if (name === "rotten") {
            const actual = sha256(yield* Effect.promise(() => fs.readFile(path.join(root, "m.dat"))))
            assert.strictEqual(error.actualChecksum, actual)
          }
          assert.isBelow(delivered, PackageLayout.archiveSize(manifest), name)
        }
      }),
    120_000
  )

  it.scoped(
    "keys the disk driver refuses fail with the folder's error: a symlink out, a dangling one, a temporary name",
    () =>
      Effect.gen(function* () {
        const root = yield* tempDir
        const outside = yield* tempDir
        const files = yield* writeFiles(root, [["a.dat", 100], ["inside.dat", 200]])
        yield* Effect.promise(() => fs.writeFile(path.join(outside, "secret"), files[1].bytes))
        // a symlink to a file inside the folder is read like the file
        yield* Effect.promise(() => fs.symlink(path.join(root, "inside.dat"), path.join(root, "link-in.dat")))
        const linked = yield* collect(
          fromFolder(root, manifestOf([files[0], { key: "link-in.dat", bytes: files[1].bytes }]), ["a.dat", "link-in.dat"])
        )
        assert.isAbove(linked.bytes.length, 0)

        yield* Effect.promise(() => fs.symlink(path.join(outside, "secret"), path.join(root, "out.dat")))
        yield* Effect.promise(() => fs.symlink(path.join(root, "nowhere"), path.join(root, "dangling.dat")))
        const temporary = TemporaryNames.disk("m.dat", "abcdef")
        yield* Effect.promise(() => fs.writeFile(path.join(root, temporary), files[1].bytes))
        for (const key of ["out.dat", "dangling.dat", temporary]) {
          const manifest = manifestOf([files[0], { key: "m.dat", bytes: files[1].bytes }])
          const { error } = yield* failureOf(fromFolder(root, manifest, ["a.dat", key]))
          assert.deepInclude(error as Refused, { _tag: "Refused", key }, key)
          assert.strictEqual((error as Refused).problem.reason, "PermissionDenied", key)
        }
      }),
    60_000
  )

  it.scoped(
    "a fault in the last member of a later batch of headers is named by its index, and the archive's end never comes",
    () =>
      Effect.gen(function* () {
        const root = yield* tempDir
        const files = yield* writeFiles(
          root,
          Array.from({ length: 700 }, (_, i) => [`b/${String(i).padStart(3, "0")}.dat`, 100 + i] as const)
        )
        const manifest = manifestOf(files)
        const keys = files.map((f) => f.key)
        yield* Effect.promise(() => fs.appendFile(path.join(root, keys[699]), "x"))
        const { delivered, error } = yield* failureOf(fromFolder(root, manifest, keys))
        assert.instanceOf(error, ArchiveWriter.MemberFault)
        if (!(error instanceof ArchiveWriter.MemberFault)) return
        assert.strictEqual(`${error.index} ${error.kind}`, "699 Corrupt")
        // everything before the last member's bytes may have gone out, never the end-of-archive blocks
        assert.isAtMost(delivered, PackageLayout.archiveSize(manifest) - 1024)
      }),
    60_000
  )

  it.scoped("a stream dropped after its first chunk stops its worker and leaves the files as they were", () =>
    Effect.gen(function* () {
      const root = yield* tempDir
      const files = yield* writeFiles(root, [["big.fits", 24 * 1024 * 1024], ["b.dat", 10]])
      const manifest = manifestOf(files)
      const threads = Effect.promise(async () => (await fs.readdir("/proc/self/task")).length)
      const dropped = Effect.flatMap(
        Stream.runCollect(Stream.take(fromFolder(root, manifest, ["big.fits", "b.dat"]), 1)),
        (first) => Effect.sync(() => assert.strictEqual(first.length, 1))
      )
      yield* dropped
      const before = yield* threads
      for (let round = 0; round < 3; round++) yield* dropped
      // every worker has ended: the stream's scope waited for it
      assert.isAtMost(yield* threads, before)
      assert.isTrue(
        Buffer.from(files[0].bytes).equals(yield* Effect.promise(() => fs.readFile(path.join(root, "big.fits"))))
      )
    }), 60_000)
})
