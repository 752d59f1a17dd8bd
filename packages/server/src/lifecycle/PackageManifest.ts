/**
 * The manifest inside every archive the lifecycle writes: a RawDataPackage (a tar of the files of
 * one ExecutedObsUnit and one InstrumentModule) or a DataTransferPackage (a tar of RawDataPackage
 * tars). It is the archive's FIRST member, so whoever reads the archive (the unpacker at a
 * destination buffer or a PROCESSING location, or a person with GNU tar) knows every member's id,
 * size and checksum before its bytes arrive, and can verify each one in the same pass that writes
 * it out. Writing it first costs nothing in one streaming pass: the checksums it lists are the
 * filed ones, known before packaging starts, and a member whose bytes disagree fails the package.
 */
import { Checksum, Ids, RelativePath } from "@ccat/core"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

/** The member name of the manifest; reserved, so no filed file may use it. */
export const manifestName = "MANIFEST.ccat.json"

/** The largest manifest the unpacker reads (about a million members); bounds its memory. */
export const maxManifestBytes = 256 * 1024 * 1024

/** Version of the manifest format, so a future reader can tell old archives apart. */
export const formatVersion = 1

/** One RawDataFile as packaged: what the instrument filed, which the bytes in the tar match. */
export class PackagedFile extends Schema.Class<PackagedFile>("PackagedFile")({
  id: Ids.RawDataFileId,
  relativePath: RelativePath.RelativePath,
  sizeBytes: Schema.NonNegativeInt,
  checksum: Checksum.Checksum
}) {}

/** The manifest of a RawDataPackage tar. */
export class PackageManifest extends Schema.TaggedClass<PackageManifest>("PackageManifest")("RawDataPackage", {
  version: Schema.Literal(formatVersion),
  packageId: Ids.RawDataPackageId,
  executedObsUnitId: Ids.ExecutedObsUnitId,
  instrumentModuleId: Ids.InstrumentModuleId,
  files: Schema.Array(PackagedFile)
}) {}

/** One RawDataPackage inside a bundle, with the size and checksum recorded when it was written. */
export class BundledPackage extends Schema.Class<BundledPackage>("BundledPackage")({
  id: Ids.RawDataPackageId,
  relativePath: RelativePath.RelativePath,
  sizeBytes: Schema.NonNegativeInt,
  checksum: Checksum.Checksum
}) {}

/** The manifest of a DataTransferPackage tar (a bundle of RawDataPackage tars). */
export class BundleManifest extends Schema.TaggedClass<BundleManifest>("BundleManifest")("DataTransferPackage", {
  version: Schema.Literal(formatVersion),
  bundleId: Ids.DataTransferPackageId,
  packages: Schema.Array(BundledPackage)
}) {}

/** Either kind of manifest: the unpacker reads both, and tells them apart by `_tag`. */
export const Manifest = Schema.Union(PackageManifest, BundleManifest)
/** Either kind of manifest. */
export type Manifest = typeof Manifest.Type

/** A member of an archive as the unpacker and the packager see it, whatever its kind. */
export interface Member {
  readonly id: string
  readonly relativePath: RelativePath.RelativePath
  readonly sizeBytes: number
  readonly checksum: Checksum.Checksum
}

/** The members a manifest lists, in archive order. */
export const members = (manifest: Manifest): ReadonlyArray<Member> =>
  manifest._tag === "RawDataPackage" ? manifest.files : manifest.packages

/** The id of the archive a manifest describes (package or bundle id). */
export const archiveId = (manifest: Manifest): string =>
  manifest._tag === "RawDataPackage" ? manifest.packageId : manifest.bundleId

const json = Schema.parseJson(Manifest)
const encodeJson = Schema.encodeSync(json)
const decodeJson = Schema.decodeUnknownEither(json)

/** The manifest as the UTF-8 JSON bytes stored in the archive. */
export const encode = (manifest: Manifest): Uint8Array => new TextEncoder().encode(encodeJson(manifest) + "\n")

/** Reads a manifest from the archive's bytes, or says why they are not one. */
export const decode = (bytes: Uint8Array): Either.Either<Manifest, string> =>
  decodeJson(new TextDecoder().decode(bytes)).pipe(
    Either.mapLeft((e) => `invalid manifest: ${ParseResult.TreeFormatter.formatErrorSync(e)}`)
  )

/**
 * Why a member list cannot be archived, or undefined: unsafe or duplicate paths, a path that is
 * also another member's directory (one would clobber the other on extraction), the reserved name.
 */
export const problem = (list: ReadonlyArray<Member>): string | undefined => {
  const seen = new Set<string>()
  const directories = new Set<string>()
  for (const m of list) {
    const parts = m.relativePath.split("/")
    for (let i = 1; i < parts.length; i++) directories.add(parts.slice(0, i).join("/"))
  }
  for (const m of list) {
    const unsafe = RelativePath.problem(m.relativePath)
    if (unsafe !== undefined) return `${m.id} ${JSON.stringify(m.relativePath)}: ${unsafe}`
    if (m.relativePath === manifestName) return `${m.id}: ${manifestName} is reserved for the manifest`
    if (seen.has(m.relativePath)) return `${m.id}: duplicate path ${JSON.stringify(m.relativePath)}`
    if (directories.has(m.relativePath)) return `${m.id}: ${JSON.stringify(m.relativePath)} is also a directory of another member`
    seen.add(m.relativePath)
  }
  return undefined
}
