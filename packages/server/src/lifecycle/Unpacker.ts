/**
 * Unpacking (issue 6, items 4 and 6): a RawDataPackage tar becomes its files at a PROCESSING
 * location (staging), and a DataTransferPackage bundle becomes its RawDataPackage tars at the
 * destination buffer. One streaming pass reads the archive (hashing it when its checksum is
 * known), reads the manifest (the first member), and streams every member into the destination's
 * atomic `put` with the manifest's checksum, so each member is verified (size and checksum) in
 * the same pass that writes it, and a corrupt one never appears under its name.
 *
 * How a worker calls it: `unpackFrom(buffer, bundleKey, { destination: buffer, prefix,
 * checksum: bundle.checksum })` at the destination site, then one PhysicalCopy per returned
 * member; `unpackFrom(archive, packageKey, { destination: processing, prefix: "<request>/",
 * checksum: package.checksum, overwrite: true })` when staging. An `UnpackError` means the archive
 * is bad (delete it and transfer again); a `StorageError` is a location's problem. On any failure
 * the members this call wrote are deleted again, so a retry starts clean.
 */
import { ArchiveReader, Checksum, PackageManifest, PackageReader, StorageDriver, StorageError } from "@ccat/core"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as HashOffload from "./internal/HashOffload.js"

/** A member the archive's bytes disagree about (the package reader's record of one). */
export const BadMember = PackageReader.BadMember
/** A member the archive's bytes disagree about. */
export type BadMember = PackageReader.BadMember

/**
 * Why an archive could not be unpacked. Corrupt: bytes disagree with the manifest or the
 * archive's checksum (transfer it again). Malformed: not an archive we wrote (no manifest, bad
 * headers, members the manifest does not list). Both cross the job queue, hence Schema.
 */
export class UnpackError extends Schema.TaggedError<UnpackError>("@ccat/server/UnpackError")("UnpackError", {
  reason: Schema.Literal("Corrupt", "Malformed"),
  /** The package or bundle id, once the manifest was read. */
  archiveId: Schema.optional(Schema.String),
  members: Schema.Array(BadMember),
  description: Schema.String
}) {
  override get message(): string {
    const named = this.members.map((m) => `${m.relativePath} (${m.id}): ${m.detail}`).join("; ")
    return `archive ${this.archiveId ?? "(unknown)"} not unpacked: ${this.reason}: ${this.description}${named === "" ? "" : `: ${named}`}`
  }
}

/** One member written to the destination, verified. */
export interface UnpackedMember {
  readonly id: string
  readonly relativePath: string
  /** Its key at the destination. */
  readonly key: string
  readonly sizeBytes: number
  readonly checksum: Checksum.Checksum
}

/** What an unpack did. */
export interface Unpacked {
  readonly manifest: PackageManifest.Manifest
  readonly members: ReadonlyArray<UnpackedMember>
  /** Bytes of the archive read. */
  readonly sizeBytes: number
  /** The archive's checksum, when `checksum` was given (then equal to it). */
  readonly checksum: Checksum.Checksum | undefined
}

/** Where and how members are written. */
export interface UnpackOptions {
  readonly destination: StorageDriver.Service
  /** Prepended to each member's relative path to make its key (e.g. `"req-42/"`). Default none. */
  readonly prefix?: string | undefined
  /** The archive's recorded checksum: verified in the same pass; a mismatch fails Corrupt. */
  readonly checksum?: Checksum.Checksum | undefined
  /** The archive's recorded size, checked with the checksum. */
  readonly sizeBytes?: number | undefined
  /** Replace existing members (idempotent retries: each put is atomic). Default false. */
  readonly overwrite?: boolean | undefined
}

/** Archives at least this large (or of unknown size) are hashed on a worker thread. */
const offloadBytes = 64 * 1024 * 1024

const isPutCorrupt = (e: unknown): e is StorageError.StorageError =>
  StorageError.isStorageError(e) && e.reason === "Corrupt" && e.method === "put"

const malformed = (description: string, archiveId?: string) => new UnpackError({ reason: "Malformed", archiveId, members: [], description })

/**
 * Unpacks a tar stream (ours: manifest first) into the destination, verifying every member
 * against the manifest and, when given, the archive against its checksum and size.
 */
export const unpack = Effect.fn("Unpacker.unpack")(function* <E>(tar: Stream.Stream<Uint8Array, E>, options: UnpackOptions) {
  const prefix = options.prefix ?? ""
  let archiveBytes = 0
  const expected = options.checksum
  const written: Array<UnpackedMember> = []
  const run = Effect.scoped(Effect.gen(function* () {
    // The archive's hash runs on a worker for large archives, beside the members' hashes in put.
    const hasher = expected === undefined
      ? undefined
      : options.sizeBytes === undefined || options.sizeBytes >= offloadBytes
      ? yield* HashOffload.make
      : HashOffload.local()
    if (hasher !== undefined && expected !== undefined) yield* hasher.begin(Checksum.nodeHashName[Checksum.parse(expected).algorithm])
    const counted = tar.pipe(Stream.mapChunksEffect((chunk) => {
      for (const part of chunk) archiveBytes += part.length
      return hasher === undefined ? Effect.succeed(chunk) : Effect.as(Effect.forEach(chunk, hasher.update, { discard: true }), chunk)
    }))
    const reader = yield* ArchiveReader.make(counted)
    const first = yield* reader.next
    if (Option.isNone(first) || first.value.name !== PackageManifest.manifestName || first.value.type !== "file") {
      return yield* malformed(`the first member is not ${PackageManifest.manifestName}`)
    }
    if (first.value.size > PackageManifest.maxManifestBytes) return yield* malformed(`${first.value.size}-byte manifest`)
    const decoded = PackageManifest.decode(yield* reader.readBody)
    if (Either.isLeft(decoded)) return yield* malformed(decoded.left)
    const manifest = decoded.right
    const archiveId = PackageManifest.archiveId(manifest)
    const walk = PackageReader.walkMembers(reader, manifest, malformed)
    const bad = (member: PackageManifest.Member, detail: string, description: string) =>
      new UnpackError({
        reason: "Corrupt",
        archiveId,
        members: [new BadMember({ id: member.id, relativePath: member.relativePath, detail })],
        description
      })
    while (true) {
      const next = yield* walk.next
      if (Option.isNone(next)) break
      const { entry, member } = next.value
      if (entry.size !== member.sizeBytes) {
        return yield* bad(member, `${entry.size} bytes in the archive, ${member.sizeBytes} in the manifest`, "a member has the wrong size")
      }
      const key = prefix + member.relativePath
      const info = yield* options.destination.put(key, reader.body(), {
        checksum: member.checksum,
        overwrite: options.overwrite ?? false,
        sizeHint: member.sizeBytes
      }).pipe(Effect.catchIf(isPutCorrupt, (e) => bad(member, e.description ?? e.message, "a member does not match its checksum")))
      written.push({ id: member.id, relativePath: member.relativePath, key, sizeBytes: info.size, checksum: member.checksum })
    }
    const absent = PackageManifest.members(manifest).filter((m) => !walk.seen.has(m.relativePath))
    if (absent.length > 0) {
      return yield* new UnpackError({
        reason: "Corrupt",
        archiveId,
        members: absent.map((m) =>
          new BadMember({ id: m.id, relativePath: m.relativePath, detail: "listed in the manifest, absent from the archive" })
        ),
        description: "members are missing"
      })
    }
    yield* reader.drain
    let checksum: Checksum.Checksum | undefined
    if (expected !== undefined && hasher !== undefined) {
      checksum = Checksum.make(Checksum.parse(expected).algorithm, yield* hasher.digest)
      if (checksum !== expected) {
        return yield* new UnpackError({
          reason: "Corrupt",
          archiveId,
          members: [],
          description: `archive checksum ${checksum}, recorded ${expected}`
        })
      }
    }
    if (options.sizeBytes !== undefined && archiveBytes !== options.sizeBytes) {
      return yield* new UnpackError({
        reason: "Corrupt",
        archiveId,
        members: [],
        description: `archive has ${archiveBytes} bytes, recorded ${options.sizeBytes}`
      })
    }
    yield* Effect.annotateCurrentSpan({ archiveId, members: written.length, sizeBytes: archiveBytes })
    return { manifest, members: [...written], sizeBytes: archiveBytes, checksum } satisfies Unpacked
  }))
  return yield* run.pipe(
    Effect.catchIf((e): e is ArchiveReader.MalformedArchive => e instanceof ArchiveReader.MalformedArchive, (e) => malformed(e.detail)),
    Effect.onError(() => Effect.forEach(written, (m) => Effect.ignore(options.destination.delete(m.key)), { discard: true }))
  )
})

/** Unpacks the archive stored under `key` at `source` (a buffer, an archive, a tape). */
export const unpackFrom = (source: StorageDriver.Service, key: string, options: UnpackOptions) => unpack(source.get(key), options)
