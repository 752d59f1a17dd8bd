/**
 * The manifest inside every archive the lifecycle writes: a RawDataPackage (a tar of the files of
 * one ExecutedObsUnit and one InstrumentModule) or a DataTransferPackage (a tar of RawDataPackage
 * tars). It is the archive's FIRST member, so whoever reads the archive (the unpacker at a
 * destination buffer or a PROCESSING location, or a person with GNU tar) knows every member's id,
 * size and checksum before its bytes arrive, and can verify each one in the same pass that writes
 * it out. Writing it first costs nothing in one streaming pass: the checksums it lists are the
 * filed ones, known before packaging starts, and a member whose bytes disagree fails the package.
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Checksum from "./Checksum.js"
import * as Ids from "./Ids.js"
import * as RelativePath from "./RelativePath.js"

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
export const archiveId = (manifest: Manifest): string => manifest._tag === "RawDataPackage" ? manifest.packageId : manifest.bundleId

const json = Schema.parseJson(Manifest)
const decodeJson = Schema.decodeUnknownEither(json)

/**
 * The JSON text Schema's encoder writes for a manifest (the reference; `encode` must give the
 * same bytes, and a test holds it to that).
 */
export const encodeWithSchema: (manifest: Manifest) => string = Schema.encodeSync(json)

const member = (m: Member) => ({ id: m.id, relativePath: m.relativePath, sizeBytes: m.sizeBytes, checksum: m.checksum })

/**
 * The same JSON as `encodeWithSchema`, key for key, built directly: the manifest's fields were
 * validated when it was constructed, and re-validating every member while encoding cost about
 * half a millisecond per file in the packaging profile.
 */
const encodeJson = (manifest: Manifest): string =>
  JSON.stringify(
    manifest._tag === "RawDataPackage"
      ? {
        version: manifest.version,
        packageId: manifest.packageId,
        executedObsUnitId: manifest.executedObsUnitId,
        instrumentModuleId: manifest.instrumentModuleId,
        files: manifest.files.map(member),
        _tag: manifest._tag
      }
      : { version: manifest.version, bundleId: manifest.bundleId, packages: manifest.packages.map(member), _tag: manifest._tag }
  )

// a manifest is immutable: its bytes are computed once (the writer needs them for the size
// hint and again for the archive)
const encoded = new WeakMap<Manifest, Uint8Array>()

/** The manifest as the UTF-8 JSON bytes stored in the archive. */
export const encode = (manifest: Manifest): Uint8Array => {
  let bytes = encoded.get(manifest)
  if (bytes === undefined) {
    bytes = new TextEncoder().encode(encodeJson(manifest) + "\n")
    encoded.set(manifest, bytes)
  }
  return bytes
}

/** Reads a manifest from the archive's bytes, or says why they are not one. */
export const decode = (bytes: Uint8Array): Either.Either<Manifest, string> =>
  decodeJson(new TextDecoder().decode(bytes)).pipe(
    Either.mapLeft((e) => `invalid manifest: ${ParseResult.TreeFormatter.formatErrorSync(e)}`)
  )

// Schema.UUID's pattern
const uuid = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/i

/**
 * Why a member's record breaks the manifest schema's rules (id a UUID, size a non-negative
 * integer, a valid checksum and a safe relative path), or undefined. The same rules the schema
 * checks, without its machinery: constructing thousands of members through it cost about a
 * quarter of a millisecond each. Check with this, then construct with validation disabled.
 */
export const recordProblem = (m: Member): string | undefined => {
  if (typeof m.id !== "string" || !uuid.test(m.id)) return `${JSON.stringify(m.id)} is not a UUID`
  if (!Number.isSafeInteger(m.sizeBytes) || m.sizeBytes < 0) return `${m.id}: size ${m.sizeBytes} is not a non-negative integer`
  const checksum = typeof m.checksum === "string" ? Checksum.problem(m.checksum) : "a checksum must be a string"
  if (checksum !== undefined) return `${m.id}: ${checksum}`
  const unsafe = typeof m.relativePath === "string" ? RelativePath.problem(m.relativePath) : "a path must be a string"
  if (unsafe !== undefined) return `${m.id} ${JSON.stringify(m.relativePath)}: ${unsafe}`
  return undefined
}

/** Why an archive's own id is not a UUID, or undefined. */
export const idProblem = (what: string, id: string): string | undefined =>
  typeof id === "string" && uuid.test(id) ? undefined : `${what} ${JSON.stringify(id)} is not a UUID`

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
