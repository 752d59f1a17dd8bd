/**
 * The manifest's direct encoder against Schema's (the reference): the same bytes for packages
 * and bundles, so archives stay byte-identical to those written before it; and the direct record
 * checks that replaced per-member schema validation, refusing what the schema refuses with an
 * Invalid PackagingError before anything is read or written.
 */
import { type Checksum, type Ids, PackageManifest, type RelativePath } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Packager from "../../src/lifecycle/Packager.js"
import * as DiskLocation from "./DiskLocation.js"
import { tempDir, uuid } from "./support.js"

const sum = (c: string) => `sha256:${c.repeat(64)}` as Checksum.Checksum
const path = (p: string) => p as RelativePath.RelativePath

const files = [
  { id: uuid() as Ids.RawDataFileId, relativePath: path("a/b/c.fits"), sizeBytes: 0, checksum: sum("a") },
  { id: uuid() as Ids.RawDataFileId, relativePath: path('réseau/ñandú "quoted" \u2028 μ.txt'), sizeBytes: 2 ** 40, checksum: sum("b") },
  { id: uuid() as Ids.RawDataFileId, relativePath: path("x"), sizeBytes: 17, checksum: `md5:${"c".repeat(32)}` as Checksum.Checksum }
]

describe("PackageManifest encoding", () => {
  it("encodes packages and bundles to exactly the bytes of Schema's encoder", () => {
    const pkg = new PackageManifest.PackageManifest({
      version: PackageManifest.formatVersion,
      packageId: uuid() as Ids.RawDataPackageId,
      executedObsUnitId: uuid() as Ids.ExecutedObsUnitId,
      instrumentModuleId: uuid() as Ids.InstrumentModuleId,
      files: files.map((f) => new PackageManifest.PackagedFile(f))
    })
    const bundle = new PackageManifest.BundleManifest({
      version: PackageManifest.formatVersion,
      bundleId: uuid() as Ids.DataTransferPackageId,
      packages: files.map((f) => new PackageManifest.BundledPackage({ ...f, id: uuid() as Ids.RawDataPackageId }))
    })
    const empty = new PackageManifest.BundleManifest({
      version: PackageManifest.formatVersion,
      bundleId: uuid() as Ids.DataTransferPackageId,
      packages: []
    })
    for (const manifest of [pkg, bundle, empty]) {
      const text = new TextDecoder().decode(PackageManifest.encode(manifest))
      assert.strictEqual(text, PackageManifest.encodeWithSchema(manifest) + "\n")
      const decoded = PackageManifest.decode(PackageManifest.encode(manifest))
      assert.isTrue(decoded._tag === "Right")
    }
  })

  it("checks records by the schema's rules", () => {
    assert.isUndefined(PackageManifest.recordProblem(files[0]))
    const bad = [
      { ...files[0], id: "not-a-uuid" },
      { ...files[0], sizeBytes: -1 },
      { ...files[0], sizeBytes: 1.5 },
      { ...files[0], sizeBytes: Number.NaN },
      { ...files[0], checksum: "sha256:abc" },
      { ...files[0], relativePath: "../escape" },
      { ...files[0], relativePath: "/abs" }
    ]
    for (const record of bad) assert.isString(PackageManifest.recordProblem(record as PackageManifest.Member), JSON.stringify(record))
  })

  it.scoped("a pack with a bad record fails Invalid and writes nothing", () =>
    Effect.gen(function* () {
      const root = yield* Effect.acquireRelease(
        Effect.promise(() => tempDir("manifest-invalid")),
        (dir) => Effect.promise(() => import("node:fs/promises").then((fs) => fs.rm(dir, { recursive: true, force: true })))
      )
      const destination = DiskLocation.make(root)
      const source: Packager.Source<never> = () => Stream.die("the source must not be read")
      const error = yield* Effect.flip(Packager.pack({
        packageId: uuid() as Ids.RawDataPackageId,
        executedObsUnitId: uuid() as Ids.ExecutedObsUnitId,
        instrumentModuleId: uuid() as Ids.InstrumentModuleId,
        files: [files[0], { ...files[2], sizeBytes: -5 }],
        source,
        destination,
        key: "p.tar"
      }))
      assert.strictEqual(error.reason, "Invalid")
      assert.include(error.message, "size -5")
      assert.isFalse(yield* destination.exists("p.tar"))
    }))
})
