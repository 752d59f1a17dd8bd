/**
 * Reading a package without the server: a RawDataPackage or DataTransferPackage tar, from any
 * byte stream (a file, a download, a storage driver's `get`), checked against the manifest it
 * carries as its first member. Analysis code can verify an archived package it holds, list what
 * is in it, or read one member, with the same rules the lifecycle's unpacker applies: the
 * manifest comes first, every member it lists is present once with its recorded size and
 * checksum, and nothing else is in the archive. One streaming pass; memory stays at a few chunks
 * whatever the package's size. `@ccat/core/node`'s `PackageFile` opens a path.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as ArchiveReader from "./ArchiveReader.js"
import * as Checksum from "./Checksum.js"
import * as PackageManifest from "./PackageManifest.js"
import { type Hasher, type HasherFactory, runtimeHasher } from "./StorageHasher.js"

/** A member the archive's bytes disagree about, and how. */
export class BadMember extends Schema.Class<BadMember>("BadMember")({
  id: Schema.String,
  relativePath: Schema.String,
  detail: Schema.String
}) {}

/**
 * Why a package could not be read or did not verify. Malformed: not a package (no manifest
 * first, bad tar headers, members the manifest does not list). Corrupt: bytes disagree with the
 * manifest or with the archive's recorded checksum; `members` names each bad member. Unreadable:
 * the bytes could not be had at all (a missing file).
 */
export class PackageReadError extends Schema.TaggedError<PackageReadError>("@ccat/core/PackageReadError")("PackageReadError", {
  reason: Schema.Literal("Malformed", "Corrupt", "Unreadable"),
  /** The package or bundle id, once the manifest was read. */
  archiveId: Schema.optional(Schema.String),
  members: Schema.Array(BadMember),
  description: Schema.String
}) {
  override get message(): string {
    const named = this.members.map((m) => `${m.relativePath} (${m.id}): ${m.detail}`).join("; ")
    return `package ${this.archiveId ?? "(unknown)"}: ${this.reason}: ${this.description}${named === "" ? "" : `: ${named}`}`
  }
}

/** How bytes are hashed; default the runtime's own crypto (`StorageHasher.runtimeHasher`). */
export interface ReadOptions {
  readonly hasher?: HasherFactory | undefined
}

/** What `verify` checks besides the members. */
export interface VerifyOptions extends ReadOptions {
  /** The archive's recorded checksum (the catalog's package checksum): a mismatch is Corrupt. */
  readonly checksum?: Checksum.Checksum | undefined
  /** The archive's recorded size, checked with the checksum. */
  readonly sizeBytes?: number | undefined
}

/** A package whose every member matched its manifest. */
export interface Verified {
  readonly manifest: PackageManifest.Manifest
  /** The package or bundle id. */
  readonly archiveId: string
  /** The manifest's members, each read and found to have its recorded size and checksum. */
  readonly members: ReadonlyArray<PackageManifest.Member>
  /** Bytes of the archive read. */
  readonly sizeBytes: number
  /** The archive's checksum, when `checksum` was given (then equal to it). */
  readonly checksum: Checksum.Checksum | undefined
}

const malformed = (description: string, archiveId?: string) =>
  new PackageReadError({ reason: "Malformed", archiveId, members: [], description })

const hasherFor = (options: ReadOptions | undefined, algorithm: Checksum.Algorithm): Effect.Effect<Hasher, PackageReadError> => {
  const factory = options?.hasher ?? runtimeHasher
  return factory === undefined
    ? Effect.fail(
      new PackageReadError({ reason: "Unreadable", members: [], description: "this runtime has no built-in crypto: pass a hasher" })
    )
    : Effect.sync(() => factory(algorithm))
}

const isMalformed = (e: unknown): e is ArchiveReader.MalformedArchive => e instanceof ArchiveReader.MalformedArchive

const fromArchive = <A, E, R>(effect: Effect.Effect<A, E | ArchiveReader.MalformedArchive, R>) =>
  Effect.catchIf(effect, isMalformed, (e) => malformed(e.detail))

/** Opens the archive and reads its manifest (the first member); the reader is left after it. */
const openManifest = <E>(tar: Stream.Stream<Uint8Array, E>) =>
  Effect.gen(function* () {
    const reader = yield* ArchiveReader.make(tar)
    const first = yield* Effect.catchIf(reader.next, isMalformed, (e) => malformed(`not a tar archive: ${e.detail}`))
    if (Option.isNone(first) || first.value.name !== PackageManifest.manifestName || first.value.type !== "file") {
      return yield* malformed(`the first member is not ${PackageManifest.manifestName}`)
    }
    if (first.value.size > PackageManifest.maxManifestBytes) return yield* malformed(`${first.value.size}-byte manifest`)
    const decoded = PackageManifest.decode(yield* reader.readBody)
    if (Either.isLeft(decoded)) return yield* malformed(decoded.left)
    return { reader, manifest: decoded.right }
  })

/** A package's manifest: what it holds, with each member's size and checksum. Reads only the first member. */
export const manifest = <E>(tar: Stream.Stream<Uint8Array, E>): Effect.Effect<PackageManifest.Manifest, E | PackageReadError> =>
  fromArchive(Effect.scoped(Effect.map(openManifest(tar), (opened) => opened.manifest)))

/** A walk over an archive's members past its manifest, each file paired with its manifest entry. */
export interface MemberWalk<E> {
  /**
   * The next file and the manifest's member of its path; None at the archive's end. Directories
   * are passed over; a member the manifest does not list, or the same member twice, fails with
   * the walk's `malformed` error.
   */
  readonly next: Effect.Effect<Option.Option<{ readonly entry: ArchiveReader.Entry; readonly member: PackageManifest.Member }>, E>
  /** The paths paired so far: what is listed and not here once the walk ends is absent. */
  readonly seen: ReadonlySet<string>
}

/**
 * Walks `reader` (left after the manifest) against `manifest`, with the rules every reader of a
 * package applies (this one's `verify` and the lifecycle's unpacker); `malformed` makes the
 * caller's error for an archive that is not the package its manifest describes.
 */
export const walkMembers = <E, M>(
  reader: ArchiveReader.ArchiveReader<E>,
  manifest: PackageManifest.Manifest,
  malformed: (description: string, archiveId: string) => M
): MemberWalk<E | ArchiveReader.MalformedArchive | M> => {
  const archiveId = PackageManifest.archiveId(manifest)
  const byPath = new Map(PackageManifest.members(manifest).map((m) => [m.relativePath as string, m]))
  const seen = new Set<string>()
  const next = Effect.gen(function* () {
    while (true) {
      const read = yield* reader.next
      if (Option.isNone(read)) return Option.none()
      const entry = read.value
      if (entry.type === "directory") continue
      const member = byPath.get(entry.name)
      if (entry.type !== "file" || member === undefined) {
        return yield* Effect.fail(malformed(`member ${JSON.stringify(entry.name)} is not in the manifest`, archiveId))
      }
      if (seen.has(entry.name)) return yield* Effect.fail(malformed(`member ${JSON.stringify(entry.name)} appears twice`, archiveId))
      seen.add(entry.name)
      return Option.some({ entry, member })
    }
  })
  return { next, seen }
}

/** Hashes a stream's bytes as they pass, counting them. */
const hashing = <E>(body: Stream.Stream<Uint8Array, E>, hasher: Hasher, count: (n: number) => void) =>
  Stream.mapChunks(body, (chunk) => {
    for (const part of chunk) {
      hasher.update(part)
      count(part.length)
    }
    return chunk
  })

/**
 * Reads the whole package and checks every member against its manifest: present once, its
 * recorded size, its recorded checksum; and the archive against `checksum` and `sizeBytes` when
 * given. Every bad member is named (the pass goes on after the first); a member the manifest
 * does not list, or the same member twice, is Malformed at once.
 */
export const verify = Effect.fn("PackageReader.verify")(function* <E>(tar: Stream.Stream<Uint8Array, E>, options: VerifyOptions = {}) {
  let archiveBytes = 0
  const whole = options.checksum === undefined ? undefined : yield* hasherFor(options, Checksum.parse(options.checksum).algorithm)
  const counted = whole === undefined
    ? Stream.mapChunks(tar, (chunk) => {
      for (const part of chunk) archiveBytes += part.length
      return chunk
    })
    : hashing(tar, whole, (n) => (archiveBytes += n))
  return yield* fromArchive(Effect.scoped(Effect.gen(function* () {
    const { manifest, reader } = yield* openManifest(counted)
    const archiveId = PackageManifest.archiveId(manifest)
    const listed = PackageManifest.members(manifest)
    const walk = walkMembers(reader, manifest, malformed)
    const bad: Array<BadMember> = []
    const badMember = (m: PackageManifest.Member, detail: string) =>
      bad.push(new BadMember({ id: m.id, relativePath: m.relativePath, detail }))
    while (true) {
      const next = yield* walk.next
      if (Option.isNone(next)) break
      const { entry, member } = next.value
      if (entry.size !== member.sizeBytes) {
        badMember(member, `${entry.size} bytes in the archive, ${member.sizeBytes} in the manifest`)
        continue
      }
      const { algorithm } = Checksum.parse(member.checksum)
      const hasher = yield* hasherFor(options, algorithm)
      yield* Stream.runDrain(hashing(reader.body(), hasher, () => {}))
      const actual = Checksum.make(algorithm, hasher.digest())
      if (actual !== member.checksum) badMember(member, `checksum ${actual}, recorded ${member.checksum}`)
    }
    for (const m of listed) if (!walk.seen.has(m.relativePath)) badMember(m, "listed in the manifest, absent from the archive")
    yield* reader.drain
    if (bad.length > 0) {
      return yield* new PackageReadError({
        reason: "Corrupt",
        archiveId,
        members: bad,
        description: `${bad.length} of ${listed.length} members do not match the manifest`
      })
    }
    let checksum: Checksum.Checksum | undefined
    if (options.checksum !== undefined && whole !== undefined) {
      checksum = Checksum.make(Checksum.parse(options.checksum).algorithm, whole.digest())
      if (checksum !== options.checksum) {
        return yield* new PackageReadError({
          reason: "Corrupt",
          archiveId,
          members: [],
          description: `archive checksum ${checksum}, recorded ${options.checksum}`
        })
      }
    }
    if (options.sizeBytes !== undefined && archiveBytes !== options.sizeBytes) {
      return yield* new PackageReadError({
        reason: "Corrupt",
        archiveId,
        members: [],
        description: `archive has ${archiveBytes} bytes, recorded ${options.sizeBytes}`
      })
    }
    yield* Effect.annotateCurrentSpan({ archiveId, members: listed.length, sizeBytes: archiveBytes })
    return { manifest, archiveId, members: listed, sizeBytes: archiveBytes, checksum } satisfies Verified
  })))
})

/**
 * The bytes of one member, found by its relative path, checked against the manifest as they
 * flow: more or fewer bytes than recorded, or another checksum, fail the stream Corrupt at its
 * end, so a consumer that reaches the end without failure has the recorded bytes. A path the
 * manifest does not list fails Malformed before any byte.
 */
export const readMember = <E>(
  tar: Stream.Stream<Uint8Array, E>,
  relativePath: string,
  options: ReadOptions = {}
): Stream.Stream<Uint8Array, E | PackageReadError> =>
  Stream.unwrapScoped(fromArchive(Effect.gen(function* () {
    const { manifest, reader } = yield* openManifest(tar)
    const archiveId = PackageManifest.archiveId(manifest)
    const member = PackageManifest.members(manifest).find((m) => m.relativePath === relativePath)
    if (member === undefined) return yield* malformed(`no member ${JSON.stringify(relativePath)} in the manifest`, archiveId)
    const corrupt = (detail: string) =>
      new PackageReadError({
        reason: "Corrupt",
        archiveId,
        members: [new BadMember({ id: member.id, relativePath, detail })],
        description: "the member does not match the manifest"
      })
    while (true) {
      const next = yield* reader.next
      if (Option.isNone(next)) return yield* corrupt("listed in the manifest, absent from the archive")
      if (next.value.name !== relativePath || next.value.type !== "file") continue
      if (next.value.size !== member.sizeBytes) {
        return yield* corrupt(`${next.value.size} bytes in the archive, ${member.sizeBytes} in the manifest`)
      }
      const { algorithm } = Checksum.parse(member.checksum)
      const hasher = yield* hasherFor(options, algorithm)
      const checked = Stream.suspend(() => {
        const actual = Checksum.make(algorithm, hasher.digest())
        return actual === member.checksum ? Stream.empty : Stream.fail(corrupt(`checksum ${actual}, recorded ${member.checksum}`))
      })
      const body: Stream.Stream<Uint8Array, E | PackageReadError> = Stream.concat(
        Stream.catchAll(
          hashing(reader.body(), hasher, () => {}),
          (e): Stream.Stream<never, E | PackageReadError> => isMalformed(e) ? Stream.fail(malformed(e.detail, archiveId)) : Stream.fail(e)
        ),
        checked
      )
      return body
    }
  })))
