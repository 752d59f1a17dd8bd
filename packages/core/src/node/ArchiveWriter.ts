/**
 * The one streaming pass that writes a package or bundle tar: the manifest first, then each
 * member's bytes checked against its recorded size and checksum as they flow into the tar. It is
 * a pull-based Effect Stream, so the destination's pace reaches back to the source and memory
 * stays at a few chunks whatever the archive's size; the bytes are a pure function of the
 * manifest, the members' bytes and `mtime`, so a retry writes the same archive. A member that
 * grew, shrank or changed while it was read fails the stream with a `MemberFault` before the
 * archive could end: a consumer that keeps only what reached the end never keeps a truncated tar.
 *
 * The lifecycle's packager streams it into a storage's `put`; `PackageWriter` writes it to a
 * file from local files.
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { createHash } from "node:crypto"
import * as Checksum from "../Checksum.js"
import * as SmallReads from "../internal/SmallReads.js"
import * as PackageLayout from "../PackageLayout.js"
import * as PackageManifest from "../PackageManifest.js"
import type * as StorageDriver from "../StorageDriver.js"
import * as StorageError from "../StorageError.js"
import * as TarFormat from "../TarFormat.js"
import * as FolderArchive from "./FolderArchive.js"
import * as ArchiveOutput from "./internal/ArchiveOutput.js"
import * as MemberVerifier from "./internal/MemberVerifier.js"

/** Why one member cannot go into an archive. */
export type FaultKind = "Corrupt" | "Missing"

/** A member whose bytes at the source disagree with the record, or which is gone. */
export class MemberFault extends Data.TaggedError("MemberFault")<{
  readonly index: number
  readonly kind: FaultKind
  readonly detail: string
  readonly actualSize?: number | undefined
  readonly actualChecksum?: Checksum.Checksum | undefined
}> {}

/** A missing source object is reported as a NotFound StorageError (the port's rule). */
const isMissing = (e: unknown): e is StorageError.StorageError => StorageError.isStorageError(e) && e.reason === "NotFound"

/**
 * Reads member `index` from `body` without writing it anywhere, counting and hashing its bytes:
 * its fault if its size or checksum differs from the record or it is gone, none if it matches.
 * How a writer names every faulty member after the first one failed the archive.
 */
export const checkMember = <E>(
  index: number,
  member: PackageManifest.Member,
  body: Stream.Stream<Uint8Array, E>
): Effect.Effect<Option.Option<MemberFault>, E> =>
  Effect.suspend(() => {
    const { algorithm } = Checksum.parse(member.checksum)
    const hash = createHash(Checksum.nodeHashName[algorithm])
    let bytes = 0
    const fault = (kind: FaultKind, detail: string, actualChecksum?: Checksum.Checksum) =>
      Option.some(new MemberFault({ index, kind, detail, actualSize: bytes, actualChecksum }))
    return Stream.runFoldWhile(body, false, (over) => !over, (_, part) => {
      bytes += part.length
      if (bytes > member.sizeBytes) return true
      hash.update(part)
      return false
    }).pipe(
      Effect.map((over) => {
        if (over) return fault("Corrupt", `more than the recorded ${member.sizeBytes} bytes`)
        if (bytes !== member.sizeBytes) return fault("Corrupt", `${bytes} bytes, recorded ${member.sizeBytes}`)
        const actual = Checksum.make(algorithm, hash.digest("hex"))
        return actual === member.checksum ? Option.none() : fault("Corrupt", `checksum ${actual}, recorded ${member.checksum}`, actual)
      }),
      Effect.catchIf(
        isMissing,
        () => Effect.succeed(Option.some(new MemberFault({ index, kind: "Missing", detail: "not found at the source" })))
      )
    )
  })

/**
 * Whether an archive is large enough (64 MiB of members, or 256 members) for a worker's start
 * to pay off: one verifying members, or one reading them from a local folder.
 */
export const worthOffloading = (manifest: PackageManifest.Manifest): boolean => {
  const list = PackageManifest.members(manifest)
  return list.length >= 256 || list.reduce((n, m) => n + m.sizeBytes, 0) >= 64 * 1024 * 1024
}

/** Files up to this size are read ahead, whole, while earlier members are written. */
const readAheadBytes = MemberVerifier.slotBytes
/** How many members ahead are read: bounds read-ahead memory at 16 MiB whatever the archive's size. */
const readAheadFiles = 16
/** Reads of small members running at once. */
const readers = 8

/**
 * A small member's bytes, read ahead. At most `limit + 1` bytes are kept: one more than recorded
 * is enough for verification to call it Corrupt, however large the file has become.
 */
const collectAtMost = <E>(body: Stream.Stream<Uint8Array, E>, limit: number): Effect.Effect<Array<Uint8Array>, E> =>
  Stream.runFoldWhile(body, { parts: [] as Array<Uint8Array>, bytes: 0 }, (acc) => acc.bytes <= limit, (acc, part) => {
    acc.parts.push(part)
    acc.bytes += part.length
    return acc
  }).pipe(Effect.map((acc) => acc.parts))

/** How the archive's members are read and stamped. */
export interface ArchiveInput<E> {
  readonly manifest: PackageManifest.Manifest
  /** The bytes of member `index` at the source. */
  readonly body: (index: number, member: PackageManifest.Member) => Stream.Stream<Uint8Array, E>
  /** Modification time of every entry, in seconds since the epoch; fixed so retries are byte-identical. */
  readonly mtime: number
  /**
   * A small member's bytes in one call (at most `limit + 1` of them), where the source can do
   * that cheaper than a stream; read-ahead uses it instead of `body`.
   */
  readonly whole?: ((index: number, member: PackageManifest.Member, limit: number) => Effect.Effect<Uint8Array, E>) | undefined
  /**
   * Work on a worker of the stream's own (true: it compares the members' checksums, or with
   * `folder` reads them too) or on this thread (false). Default: `worthOffloading` (64 MiB or 256
   * members), below which a worker's start costs more than it saves. The bytes written are the
   * same either way.
   */
  readonly offload?: boolean | undefined
  /**
   * The members are files in a folder on this machine (`StorageDriver.LocalFolder`): when the
   * archive is offloaded, a worker of its own reads, checks and lays them out there
   * (`FolderArchive`) instead of `body` and `whole` on this thread. The bytes are the same.
   */
  readonly folder?: {
    readonly root: string
    /** Each member's key in the folder, in archive order. */
    readonly keys: ReadonlyArray<string>
    /** The error for a problem met reading `key` there other than a missing file. */
    readonly failure: (key: string, problem: StorageDriver.FolderProblem) => E
  } | undefined
}

const waitFor = (p: Promise<void> | undefined): Effect.Effect<void> => p === undefined ? Effect.void : Effect.promise(() => p)

/**
 * The archive's bytes: the manifest entry, then for each member its parent directories (once
 * each, so extraction keeps the structure and modes), header, verified bytes and padding; then
 * the end-of-archive blocks. A pure function of the manifest, the member bytes and `mtime`.
 *
 * One pull loop in plain code: each step writes as many small members as have been read into
 * the output (a size check, a copy, the checksum handed to the verifier), and effects run only
 * to wait (for a read, for the verifier's room) or to stream a large member. Per-member
 * effects, fibers and stream combinators cost about a millisecond of CPU per file, which
 * dominated packages of many small files. A checksum the verifier finds wrong fails the
 * archive at the next step, and always before its end.
 */
export const archive = <E>(input: ArchiveInput<E>): Stream.Stream<Uint8Array, E | MemberFault> => {
  const offload = input.offload ?? worthOffloading(input.manifest)
  const folder = input.folder
  if (offload && folder !== undefined) {
    return FolderArchive.archive({
      manifest: input.manifest,
      mtime: input.mtime,
      root: folder.root,
      keys: folder.keys,
      failure: folder.failure,
      fault: (f) => new MemberFault(f)
    })
  }
  return Stream.unwrapScoped(Effect.gen(function* () {
    const list = PackageManifest.members(input.manifest)
    const mtime = input.mtime
    const verifier = offload ? yield* MemberVerifier.make : MemberVerifier.local()
    const scope = yield* Effect.scope
    const whole = input.whole
    const reads = yield* SmallReads.start<E>({
      count: list.length,
      isSmall: (i) => list[i].sizeBytes <= readAheadBytes,
      read: (i) =>
        whole !== undefined
          ? Effect.map(Effect.suspend(() => whole(i, list[i], list[i].sizeBytes)), (bytes) => [bytes])
          : collectAtMost(Stream.suspend(() => input.body(i, list[i])), list[i].sizeBytes),
      window: readAheadFiles,
      readers
    })
    const out = new ArchiveOutput.ArchiveOutput()
    for (const part of PackageLayout.manifestEntry(input.manifest, mtime)) out.copy(part)
    const seen = new Set<string>()
    let next = 0
    let finished = false
    interface Large {
      readonly index: number
      readonly member: PackageManifest.Member
      readonly pull: Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<E>>
      readonly scope: Scope.CloseableScope
      bytes: number
    }
    let current: Large | undefined
    type Step = Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<E | MemberFault>>
    const fail = (e: E | MemberFault): Step => Effect.fail(Option.some(e))

    const mismatchFault = (m: MemberVerifier.Mismatch) =>
      new MemberFault({
        index: m.index,
        kind: "Corrupt",
        detail: `checksum ${m.actual}, recorded ${list[m.index].checksum}`,
        actualSize: list[m.index].sizeBytes,
        actualChecksum: m.actual
      })
    // a fault found here at one member: an earlier member may have failed its checksum in the
    // verifier meanwhile, and is named first
    const faultAt = (fault: MemberFault): Step =>
      Effect.flatMap(waitFor(verifier.drained()), () => {
        const m = verifier.mismatch()
        return fail(m !== undefined && m.index < fault.index ? mismatchFault(m) : fault)
      })
    const sizeFault = (index: number, bytes: number) =>
      faultAt(
        new MemberFault({
          index,
          kind: "Corrupt",
          detail: bytes > list[index].sizeBytes
            ? `more than the recorded ${list[index].sizeBytes} bytes`
            : `${bytes} bytes, recorded ${list[index].sizeBytes}`,
          actualSize: bytes
        })
      )
    const sourceFailure = (index: number, e: E): Step =>
      isMissing(e) ? faultAt(new MemberFault({ index, kind: "Missing", detail: "not found at the source" })) : fail(e)
    const memberDone = () => {
      next++
      reads.advance(next)
    }

    const openLarge = (index: number): Step =>
      Effect.gen(function* () {
        const member = list[index]
        const memberScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
        const pull = yield* Scope.extend(Stream.toPull(Stream.suspend(() => input.body(index, member))), memberScope)
        yield* waitFor(verifier.room())
        verifier.begin(index, member.checksum)
        for (const h of PackageLayout.memberHeaders(member, seen, mtime)) out.copy(h)
        current = { index, member, pull, scope: memberScope, bytes: 0 }
        return yield* step
      })

    // hands parts to the verifier (waiting for room as it needs) and to the output
    const feed = (parts: ReadonlyArray<Uint8Array>, from: number): Promise<void> | undefined => {
      for (let i = from; i < parts.length; i++) {
        out.pass(parts[i])
        const wait = verifier.update(parts[i])
        if (wait !== undefined) return wait.then(() => feed(parts, i + 1))
      }
      return undefined
    }

    const readLarge = (m: Large): Step =>
      Effect.matchEffect(m.pull, {
        onFailure: (e): Step => {
          current = undefined
          return Effect.zipRight(
            Scope.close(m.scope, Exit.void),
            Option.isNone(e) ? closeLarge(m) : sourceFailure(m.index, e.value)
          )
        },
        onSuccess: (chunk): Step => {
          for (const part of chunk) m.bytes += part.length
          if (m.bytes > m.member.sizeBytes) return sizeFault(m.index, m.bytes)
          return Effect.zipRight(waitFor(feed(Chunk.toReadonlyArray(chunk), 0)), step)
        }
      })

    // the member's source ended: its size is checked here, its checksum by the verifier
    const closeLarge = (m: Large): Step => {
      if (m.bytes !== m.member.sizeBytes) return sizeFault(m.index, m.bytes)
      return Effect.zipRight(
        waitFor(verifier.room()),
        Effect.suspend(() => {
          verifier.end()
          out.zeros(TarFormat.padding(m.member.sizeBytes).length)
          memberDone()
          return step
        })
      )
    }

    // suspended: whether the verifier has drained is asked when the last member is written, not
    // when the stream is built (then nothing is published yet and it would not wait at all)
    const end: Step = Effect.suspend(() => waitFor(verifier.drained())).pipe(Effect.flatMap((): Step => {
      const m = verifier.mismatch()
      if (m !== undefined) return fail(mismatchFault(m))
      finished = true
      out.zeros(TarFormat.blockSize * 2)
      out.flush()
      return Effect.succeed(Chunk.unsafeFromArray(out.take()))
    }))

    const step: Step = Effect.suspend((): Step => {
      for (;;) {
        const m = verifier.mismatch()
        if (m !== undefined) return fail(mismatchFault(m))
        if (out.hasReady) return Effect.succeed(Chunk.unsafeFromArray(out.take()))
        if (current !== undefined) return readLarge(current)
        if (finished) return Effect.fail(Option.none())
        if (next === list.length) return end
        const index = next
        const member = list[index]
        if (member.sizeBytes > readAheadBytes) return openLarge(index)
        const room = verifier.room()
        if (room !== undefined) return Effect.zipRight(waitFor(room), step)
        const read = reads.take(index)
        if (read === undefined) return Effect.zipRight(reads.ended(index), step)
        if (read._tag === "Failure") {
          const failure = Cause.failureOption(read.cause)
          return Option.isSome(failure) ? sourceFailure(index, failure.value) : Effect.failCause(Cause.map(read.cause, Option.some))
        }
        const parts = read.value
        let bytes = 0
        for (const part of parts) bytes += part.length
        if (bytes !== member.sizeBytes) return sizeFault(index, bytes)
        verifier.whole(index, member.checksum, parts)
        for (const h of PackageLayout.memberHeaders(member, seen, mtime)) out.copy(h)
        for (const part of parts) out.copy(part)
        out.zeros(TarFormat.padding(member.sizeBytes).length)
        memberDone()
      }
    })
    return Stream.repeatEffectChunkOption(step)
  }))
}
