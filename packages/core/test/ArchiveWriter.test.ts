/**
 * The archive writer of @ccat/core/node, as a pipeline uses it: a package written from local
 * files (long names through pax headers, a non-ASCII name, empty files, a file large enough to be
 * streamed and to be checked on the hashing worker) reads back with PackageReader and with the
 * real GNU tar, byte for byte. A file that changes while the package is written, differs from its
 * record, or is gone refuses the package, naming it, and leaves nothing; so does bad input.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Stream from "effect/Stream"
import { execFile } from "node:child_process"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { Checksum, PackageLayout, PackageManifest } from "../src/index.js"
import * as ArchiveWriter from "../src/node/ArchiveWriter.js"
import * as MemberVerifier from "../src/node/internal/MemberVerifier.js"
import * as PackageFile from "../src/node/PackageFile.js"
import * as PackageWriter from "../src/node/PackageWriter.js"

const tar = async (...args: ReadonlyArray<string>) => (await promisify(execFile)("tar", [...args], { maxBuffer: 16 * 1024 * 1024 })).stdout

const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-archive-writer-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

const ids = () => ({ packageId: randomUUID(), executedObsUnitId: randomUUID(), instrumentModuleId: randomUUID() })

const sha256 = (bytes: Uint8Array) => Checksum.make("sha256", createHash("sha256").update(bytes).digest("hex"))

/** Files under `dir/in` by their package paths, with their bytes. */
const writeFiles = (dir: string, specs: ReadonlyArray<readonly [string, number]>) =>
  Effect.promise(() =>
    Promise.all(specs.map(async ([relativePath, size]) => {
      const bytes = randomBytes(size)
      const file = path.join(dir, "in", relativePath)
      await fs.mkdir(path.dirname(file), { recursive: true })
      await fs.writeFile(file, bytes)
      return { path: file, relativePath, bytes }
    }))
  )

/** The manifest of a new package of `files`, each recorded with its size and checksum. */
const manifestOf = (files: ReadonlyArray<{ readonly relativePath: string; readonly bytes: Uint8Array }>) =>
  new PackageManifest.PackageManifest({
    version: PackageManifest.formatVersion,
    packageId: randomUUID() as never,
    executedObsUnitId: randomUUID() as never,
    instrumentModuleId: randomUUID() as never,
    files: files.map((f) =>
      new PackageManifest.PackagedFile({
        id: randomUUID() as never,
        relativePath: f.relativePath as never,
        sizeBytes: f.bytes.length,
        checksum: sha256(f.bytes)
      })
    )
  })

const longName = `scan-0001/${"detector-array-".repeat(8)}/${"x".repeat(120)}.fits`

/** What is in a folder, apart from `keep`. */
const entries = (dir: string, keep: ReadonlyArray<string>) =>
  Effect.promise(async () => (await fs.readdir(dir)).filter((e) => !keep.includes(e)))

describe("ArchiveWriter and PackageWriter", () => {
  it.scoped(
    "writes a package from files that PackageReader verifies and GNU tar lists and extracts byte for byte",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const files = yield* writeFiles(dir, [
          ["a.dat", 1],
          ["empty.dat", 0],
          [longName, 700],
          ["caf\u00e9/sp\u00e9cial \u2013 name.txt", 3000],
          ["det/big.fits", 3 * 1024 * 1024 + 17],
          ["det/other-empty", 0]
        ])
        const output = path.join(dir, "package.tar")
        const written = yield* PackageWriter.write(output, { ...ids(), files })
        assert.strictEqual(written.sizeBytes, PackageLayout.archiveSize(written.manifest))
        const bytes = yield* Effect.promise(() => fs.readFile(output))
        assert.strictEqual(bytes.length, written.sizeBytes)
        assert.strictEqual(written.checksum, sha256(bytes))

        const verified = yield* PackageFile.verify(output, { checksum: written.checksum, sizeBytes: written.sizeBytes })
        assert.deepStrictEqual(verified.members.length, files.length)
        for (const f of files) {
          const member = Buffer.concat([...Chunk.toReadonlyArray(yield* Stream.runCollect(PackageFile.readMember(output, f.relativePath)))])
          assert.isTrue(member.equals(f.bytes), f.relativePath)
        }

        const listing = yield* Effect.promise(() => tar("-tvf", output))
        assert.include(listing, PackageManifest.manifestName)
        assert.include(listing, longName)
        const out = path.join(dir, "extracted")
        yield* Effect.promise(() => fs.mkdir(out))
        yield* Effect.promise(() => tar("-xf", output, "-C", out))
        for (const f of files) {
          assert.isTrue((yield* Effect.promise(() => fs.readFile(path.join(out, f.relativePath)))).equals(f.bytes), f.relativePath)
        }
        assert.deepStrictEqual(yield* entries(dir, ["in", "extracted", "package.tar"]), [])

        // the same files and ids give the same bytes; an existing package is not replaced unless asked
        const again = yield* Effect.exit(
          PackageWriter.write(output, { ...written.manifest, files: files.map((f, i) => ({ ...f, id: written.manifest.files[i].id })) })
        )
        assert.isTrue(Exit.isFailure(again) && String(again.cause).includes("exists"))
        const replaced = yield* PackageWriter.write(output, {
          ...written.manifest,
          overwrite: true,
          files: files.map((f, i) => ({ ...f, id: written.manifest.files[i].id }))
        })
        assert.strictEqual(replaced.checksum, written.checksum)
      }),
    60_000
  )

  it.scoped(
    "refuses a file that differs from its record, is gone, or has an unsafe path, and leaves nothing",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const files = yield* writeFiles(dir, [["a.dat", 5000], ["b.dat", 6000]])
        const output = path.join(dir, "p.tar")
        const refuse = (f: ReadonlyArray<PackageWriter.LocalFile>, more: Partial<PackageWriter.WriteOptions> = {}) =>
          Effect.flip(PackageWriter.write(output, { ...ids(), files: f, ...more }))

        const recorded = files.map((f) => ({ ...f, sizeBytes: f.bytes.length, checksum: sha256(f.bytes) }))
        yield* Effect.promise(() => fs.appendFile(files[1].path, "x"))
        const grown = yield* refuse(recorded)
        assert.strictEqual(grown.reason, "Corrupt")
        assert.strictEqual(grown.file, files[1].path)
        assert.include(grown.message, "more than the recorded 6000 bytes")

        const changed = yield* refuse([{ ...recorded[0], checksum: sha256(Buffer.from("other")) }])
        assert.strictEqual(changed.reason, "Corrupt")
        assert.include(changed.description, "checksum")

        const gone = yield* refuse([...files, { path: path.join(dir, "in", "nope"), relativePath: "nope" }])
        assert.strictEqual(gone.reason, "Missing")
        const goneLate = yield* refuse([{
          path: path.join(dir, "in", "nope"),
          relativePath: "nope",
          sizeBytes: 3,
          checksum: sha256(Buffer.from("abc"))
        }])
        assert.strictEqual(goneLate.reason, "Missing")

        for (const bad of ["../escape", "/abs", "a//b", PackageManifest.manifestName]) {
          assert.strictEqual((yield* refuse([{ ...files[0], relativePath: bad }])).reason, "Invalid", bad)
        }
        assert.strictEqual((yield* refuse([files[0], { ...files[1], relativePath: files[0].relativePath }])).reason, "Invalid")
        assert.strictEqual((yield* refuse(files, { packageId: "not-a-uuid" })).reason, "Invalid")
        assert.strictEqual(
          (yield* Effect.flip(PackageWriter.write(path.join(dir, "no-such-dir", "p.tar"), { ...ids(), files }))).reason,
          "Unwritable"
        )
        assert.deepStrictEqual(yield* entries(dir, ["in"]), [])
      }),
    60_000
  )

  for (const offload of [false, true]) {
    it.scoped(
      `a file that shrinks or grows while it is being written fails the stream before the end (${offload ? "worker" : "this thread"})`,
      () =>
        Effect.gen(function* () {
          const dir = yield* tempDir
          const files = yield* writeFiles(dir, [["big.dat", 4 * 1024 * 1024], ["late.dat", 2000]])
          const manifest = manifestOf(files)
          for (const change of ["shrink", "grow"] as const) {
            yield* Effect.promise(() => fs.writeFile(files[0].path, files[0].bytes))
            let chunks = 0
            // after the big file's first chunk has been read, it is cut short or added to
            const body = (i: number) =>
              PackageFile.stream(files[i].path).pipe(Stream.tap(() =>
                i === 0 && chunks++ === 0
                  ? Effect.promise(() =>
                    change === "shrink" ? fs.truncate(files[0].path, 1024 * 1024 + 5) : fs.appendFile(files[0].path, "more")
                  )
                  : Effect.void
              ))
            let delivered = 0
            const exit = yield* Effect.exit(
              Stream.runForEach(
                ArchiveWriter.archive({ manifest, body, mtime: 0, offload }),
                (part) => Effect.sync(() => void (delivered += part.length))
              )
            )
            assert.isTrue(Exit.isFailure(exit), change)
            const fault = Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : undefined
            assert.instanceOf(fault, ArchiveWriter.MemberFault)
            if (!(fault instanceof ArchiveWriter.MemberFault)) return
            assert.strictEqual(fault.index, 0)
            assert.strictEqual(fault.kind, "Corrupt")
            assert.include(fault.detail, change === "shrink" ? `bytes, recorded ${files[0].bytes.length}` : "more than the recorded")
            // never the whole archive: the end-of-archive blocks are not reached
            assert.isBelow(delivered, PackageLayout.archiveSize(manifest))
          }
        }),
      60_000
    )
  }

  it.scoped("a corrupt last member fails the archive even when its worker has not caught up by the archive's end", () =>
    Effect.gen(function* () {
      // Small members on a worker forced to start for this archive: this thread publishes them and
      // reaches the end-of-archive blocks long before the new thread has hashed anything, so the
      // end must wait for the verdict rather than ask whether it is in yet.
      for (let round = 0; round < 5; round++) {
        const dir = yield* tempDir
        const files = yield* writeFiles(dir, [["a.dat", 3000], ["b.dat", 5000]])
        const manifest = manifestOf(files)
        const rotten = Buffer.from(files[1].bytes)
        rotten[4321] ^= 0x01
        yield* Effect.promise(() => fs.writeFile(files[1].path, rotten))
        const exit = yield* Effect.exit(
          Stream.runDrain(ArchiveWriter.archive({ manifest, body: (i) => PackageFile.stream(files[i].path), mtime: 0, offload: true }))
        )
        const fault = Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : undefined
        assert.instanceOf(fault, ArchiveWriter.MemberFault, `round ${round}`)
        assert.strictEqual(fault instanceof ArchiveWriter.MemberFault ? `${fault.kind} ${fault.index}` : "", "Corrupt 1")
      }
    }))

  it.scoped("the verifying worker names the first mismatch for every algorithm, as this thread does", () =>
    Effect.gen(function* () {
      const worker = yield* MemberVerifier.make
      const here = MemberVerifier.local()
      const bytes = Buffer.from("the bytes of a member")
      for (const v of [worker, here]) {
        for (const [i, algorithm] of (["sha256", "sha1", "sha512", "md5", "blake2b512"] as const).entries()) {
          const right = Checksum.make(algorithm, createHash(Checksum.nodeHashName[algorithm]).update(bytes).digest("hex"))
          yield* Effect.promise(() => v.room() ?? Promise.resolve())
          v.whole(i, right, [bytes.subarray(0, 5), bytes.subarray(5)])
          yield* Effect.promise(() => v.room() ?? Promise.resolve())
          v.begin(10 + i, right)
          yield* Effect.promise(() => v.update(bytes) ?? Promise.resolve())
          yield* Effect.promise(() => v.room() ?? Promise.resolve())
          v.end()
        }
        yield* Effect.promise(() => v.drained() ?? Promise.resolve())
        assert.isUndefined(v.mismatch())
        const wrong = Checksum.make("sha512", "0".repeat(128))
        v.whole(20, wrong, [bytes])
        v.whole(21, wrong, [bytes])
        yield* Effect.promise(() => v.drained() ?? Promise.resolve())
        assert.deepStrictEqual(v.mismatch(), {
          index: 20,
          actual: Checksum.make("sha512", createHash("sha512").update(bytes).digest("hex"))
        })
      }
    }))
})
