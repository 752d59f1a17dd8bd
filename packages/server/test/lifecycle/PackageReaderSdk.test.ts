/**
 * The SDK's package reader on archives the real lifecycle wrote: a pipeline developer opens a
 * RawDataPackage and a DataTransferPackage from the chile buffer by their paths (and one through
 * a storage driver's stream) and verifies every member against the manifest, reads one member,
 * and is told which member is bad in a copy with one flipped byte; a truncated copy, a file that
 * is not a package and a missing path are refused with their reasons.
 */
import { PackageLayout, PackageReader } from "@ccat/core"
import { PackageFile } from "@ccat/core/node"
import { Disk } from "@ccat/storage-drivers"
import { assert, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Bundling from "../../src/lifecycle/Bundling.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import { fileObservation, layer, observatory, policyLayer, runUntil, syncTopology, tempDir, topologyIn } from "./LifecycleWorld.js"

const failure = <A>(effect: Effect.Effect<A, PackageReader.PackageReadError>) => Effect.flip(effect)

describe("PackageReader on packages the lifecycle wrote", () => {
  it.scopedLive(
    "verifies a package and a bundle by path and by stream, reads a member, names the bad member of a damaged copy",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const topology = topologyIn(dir)
        yield* syncTopology(topology)
        const obs = yield* observatory
        const { files } = yield* fileObservation(topology, obs, [
          { path: "det/a.fits", bytes: 200_000 },
          { path: "det/deep/b.fits", bytes: 300_000 },
          { path: "hk.dat", bytes: 1000 }
        ])
        const sql = yield* SqlClient.SqlClient
        const bundled = sql<
          { n: number }
        >`select count(*)::int as n from physical_copy where data_transfer_package_id is not null and status = 'PRESENT'`
        yield* runUntil([["chile", [Packaging.stage, Bundling.stage]]], Effect.map(bundled, (r) => r[0].n === 1)).pipe(
          Effect.provide(policyLayer(topology))
        )
        const bufferRoot = path.join(dir, "locations", "chile-buffer")
        const [pkg] = yield* sql<{ id: string; path: string; checksum: string; sizeBytes: string }>`
        select p.id, c.path, p.checksum, p.size_bytes from raw_data_package p join physical_copy c on c.raw_data_package_id = p.id`
        const [bundle] = yield* sql<{ id: string; path: string; checksum: string; sizeBytes: string }>`
        select d.id, c.path, d.checksum, d.size_bytes from data_transfer_package d join physical_copy c on c.data_transfer_package_id = d.id`
        const pkgPath = path.join(bufferRoot, pkg.path)

        // by path, with the catalog's checksum and size of the whole archive
        const verified = yield* PackageFile.verify(pkgPath, { checksum: pkg.checksum as never, sizeBytes: Number(pkg.sizeBytes) })
        assert.strictEqual(verified.archiveId, pkg.id)
        assert.strictEqual(verified.manifest._tag, "RawDataPackage")
        assert.deepStrictEqual(verified.members.map((m) => m.id).sort(), files.map((f) => f.id as string).sort())
        assert.strictEqual(verified.checksum, pkg.checksum)
        assert.strictEqual((yield* PackageFile.manifest(pkgPath))._tag, "RawDataPackage")

        // a bundle is a package of packages: the same reader verifies it
        const bundleVerified = yield* PackageFile.verify(path.join(bufferRoot, bundle.path), { checksum: bundle.checksum as never })
        assert.strictEqual(bundleVerified.archiveId, bundle.id)
        assert.deepStrictEqual(bundleVerified.members.map((m) => m.id), [pkg.id])

        // by stream: the buffer's own storage driver's get
        const disk = yield* Disk.make({ root: bufferRoot })
        const streamed = yield* PackageReader.verify(disk.get(pkg.path))
        assert.strictEqual(streamed.archiveId, pkg.id)

        // one member's bytes, the same as the filed file's
        const a = files.find((f) => f.relativePath.endsWith("det/a.fits"))!
        const read = yield* Stream.runCollect(PackageFile.readMember(pkgPath, a.relativePath))
        assert.isTrue(Buffer.concat(Chunk.toReadonlyArray(read)).equals(yield* Effect.promise(() => fs.readFile(a.absolutePath))))

        // one flipped byte in the middle of b's data: verify names b, and only b; reading b fails, reading a does not
        const original = yield* Effect.promise(() => fs.readFile(pkgPath))
        const b = files.find((f) => f.relativePath.endsWith("det/deep/b.fits"))!
        const bIndex = verified.members.findIndex((m) => m.id === b.id)
        const offset = PackageLayout.memberOffsets(verified.manifest)[bIndex].dataOffset + 1234
        const damaged = Buffer.from(original)
        damaged[offset] ^= 0xff
        const damagedPath = path.join(dir, "damaged.tar")
        yield* Effect.promise(() => fs.writeFile(damagedPath, damaged))
        const corrupt = yield* failure(PackageFile.verify(damagedPath))
        assert.strictEqual(corrupt.reason, "Corrupt")
        assert.strictEqual(corrupt.archiveId, pkg.id)
        assert.deepStrictEqual(corrupt.members.map((m) => [m.id, m.relativePath]), [[b.id, b.relativePath]])
        assert.match(corrupt.members[0].detail, /^checksum sha256:[0-9a-f]{64}, recorded sha256:/)
        const readBad = yield* Effect.flip(Stream.runDrain(PackageFile.readMember(damagedPath, b.relativePath)))
        assert.strictEqual(readBad.reason, "Corrupt")
        yield* Stream.runDrain(PackageFile.readMember(damagedPath, a.relativePath))
        // the whole file against the catalog's checksum fails too, even when asked for that alone
        assert.match((yield* failure(PackageFile.verify(damagedPath, { checksum: pkg.checksum as never }))).message, /Corrupt/)

        // cut off inside b: not a whole archive
        const truncatedPath = path.join(dir, "truncated.tar")
        yield* Effect.promise(() => fs.writeFile(truncatedPath, original.subarray(0, offset)))
        const truncated = yield* failure(PackageFile.verify(truncatedPath))
        assert.strictEqual(truncated.reason, "Malformed")
        assert.match(truncated.description, /archive ends inside/)

        // not a package, an absent member, a missing file
        const notTar = path.join(dir, "notes.txt")
        yield* Effect.promise(() => fs.writeFile(notTar, "just some notes\n".repeat(100)))
        const notPackage = yield* failure(PackageFile.verify(notTar))
        assert.strictEqual(notPackage.reason, "Malformed")
        assert.match(notPackage.description, /^not a tar archive: /)
        const absent = yield* Effect.flip(Stream.runDrain(PackageFile.readMember(pkgPath, "no/such/member.fits")))
        assert.strictEqual(absent.reason, "Malformed")
        const missing = yield* failure(PackageFile.verify(path.join(dir, "nowhere.tar")))
        assert.strictEqual(missing.reason, "Unreadable")
        assert.include(missing.description, "nowhere.tar")
      }).pipe(Effect.provide(layer)),
    120_000
  )
})
