/**
 * The one streaming pass that writes an archive: manifest first, then each member's bytes
 * verified against its recorded size and checksum as they flow into the tar. Everything is a
 * pull-based Effect Stream, so the destination's pace reaches back to the source and memory
 * stays at a few chunks whatever the archive's size.
 */
import { Checksum, StorageError } from "@ccat/core"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as HashOffload from "./HashOffload.js"
import * as PackageManifest from "../PackageManifest.js"
import * as TarFormat from "./TarFormat.js"

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
export const isMissing = (e: unknown): boolean => StorageError.isStorageError(e) && e.reason === "NotFound"

/**
 * The member's bytes, hashed and counted as they pass. More bytes than recorded fail at once
 * (the tar header already promised the recorded size); fewer, or another checksum, fail when the
 * source ends, before the archive can be completed.
 */
export const verifiedBody = <E>(
  index: number,
  member: PackageManifest.Member,
  body: Stream.Stream<Uint8Array, E>,
  hasher?: HashOffload.MemberHasher
): Stream.Stream<Uint8Array, E | MemberFault> =>
  Stream.suspend(() => {
    const { algorithm } = Checksum.parse(member.checksum)
    const h = hasher ?? HashOffload.local()
    let bytes = 0
    const fault = (kind: FaultKind, detail: string, actualChecksum?: Checksum.Checksum) =>
      new MemberFault({ index, kind, detail, actualSize: bytes, actualChecksum })
    return Stream.fromEffect(h.begin(Checksum.nodeHashName[algorithm])).pipe(
      Stream.drain,
      Stream.concat(body),
      Stream.catchAll((e): Stream.Stream<Uint8Array, E | MemberFault> =>
        isMissing(e) ? Stream.fail(fault("Missing", "not found at the source")) : Stream.fail(e)
      ),
      Stream.mapChunksEffect((chunk) =>
        Effect.suspend(() => {
          for (const part of chunk) bytes += part.length
          if (bytes > member.sizeBytes) return Effect.fail(fault("Corrupt", `more than the recorded ${member.sizeBytes} bytes`))
          return Effect.as(Effect.forEach(chunk, h.update, { discard: true }), chunk)
        })
      ),
      Stream.concat(Stream.unwrap(Effect.suspend(() => {
        if (bytes !== member.sizeBytes) {
          return Effect.succeed(Stream.fail(fault("Corrupt", `${bytes} bytes, recorded ${member.sizeBytes}`)))
        }
        return Effect.map(h.digest, (hex) => {
          const actual = Checksum.make(algorithm, hex)
          return actual === member.checksum
            ? Stream.empty
            : Stream.fail(fault("Corrupt", `checksum ${actual}, recorded ${member.checksum}`, actual))
        })
      })))
    )
  })

/** Reads a member without writing it anywhere: how the faults after the first one are found. */
export const checkMember = <E>(index: number, member: PackageManifest.Member, body: Stream.Stream<Uint8Array, E>): Effect.Effect<Option.Option<MemberFault>, E> =>
  verifiedBody(index, member, body).pipe(
    Stream.runDrain,
    Effect.as(Option.none<MemberFault>()),
    Effect.catchIf((e): e is MemberFault => e instanceof MemberFault, (f) => Effect.succeed(Option.some(f)))
  )

const smallPart = 256 * 1024
const batchBytes = 1024 * 1024

/**
 * Gathers small pieces (headers, padding, small files) into 1 MiB buffers so the destination
 * writes large blocks; large pieces pass through without a copy.
 */
export const coalesce = <E>(self: Stream.Stream<Uint8Array, E>): Stream.Stream<Uint8Array, E> =>
  Stream.suspend(() => {
    let acc: Uint8Array | undefined
    let used = 0
    const flush = (out: Array<Uint8Array>) => {
      if (acc !== undefined && used > 0) out.push(acc.subarray(0, used))
      acc = undefined
      used = 0
    }
    return self.pipe(
      Stream.mapChunks((chunk) => {
        const out: Array<Uint8Array> = []
        for (const part of chunk) {
          if (part.length >= smallPart) {
            flush(out)
            out.push(part)
            continue
          }
          if (acc !== undefined && used + part.length > acc.length) flush(out)
          if (acc === undefined) acc = new Uint8Array(batchBytes)
          acc.set(part, used)
          used += part.length
        }
        return Chunk.unsafeFromArray(out)
      }),
      Stream.concat(Stream.suspend(() => {
        const out: Array<Uint8Array> = []
        flush(out)
        return Stream.fromIterable(out)
      }))
    )
  })

/**
 * Members at least this large are hashed by `hasher`; smaller ones on this thread, since a
 * worker's digest costs a message round trip per member, more than hashing a few MiB here.
 */
const offloadMemberBytes = 8 * 1024 * 1024

/** Whether an archive has enough large-member bytes (64 MiB) to be worth a hashing worker. */
export const worthOffloading = (manifest: PackageManifest.Manifest): boolean =>
  PackageManifest.members(manifest).reduce((n, m) => m.sizeBytes >= offloadMemberBytes ? n + m.sizeBytes : n, 0) >= 64 * 1024 * 1024

/** Files up to this size are read ahead, whole, while earlier members are written. */
const readAheadBytes = 1024 * 1024
/** How many members ahead are read: bounds read-ahead memory at 16 MiB whatever the archive's size. */
const readAheadFiles = 16

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
  /** Where the checksums of large members are computed; default this thread. */
  readonly hasher?: HashOffload.MemberHasher | undefined
}

const parentDirectories = (path: string): Array<string> => {
  const parts = path.split("/")
  const out: Array<string> = []
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join("/"))
  return out
}

const memberHeaders = (member: PackageManifest.Member, seen: Set<string>, mtime: number): Array<Uint8Array> => {
  const headers: Array<Uint8Array> = []
  for (const dir of parentDirectories(member.relativePath)) {
    if (seen.has(dir)) continue
    seen.add(dir)
    headers.push(TarFormat.encodeHeader({ name: dir, type: "directory", size: 0, mode: 0o755, mtime }))
  }
  headers.push(TarFormat.encodeHeader({ name: member.relativePath, type: "file", size: member.sizeBytes, mode: 0o644, mtime }))
  return headers
}

const manifestEntry = (manifest: PackageManifest.Manifest, mtime: number): Array<Uint8Array> => {
  const bytes = PackageManifest.encode(manifest)
  return [
    TarFormat.encodeHeader({ name: PackageManifest.manifestName, type: "file", size: bytes.length, mode: 0o444, mtime }),
    bytes,
    TarFormat.padding(bytes.length)
  ]
}

/** The exact size of the archive `archive` writes, known before a byte is read (a size hint). */
export const archiveSize = (manifest: PackageManifest.Manifest): number => {
  const seen = new Set<string>()
  let size = TarFormat.blockSize * 2
  for (const part of manifestEntry(manifest, 0)) size += part.length
  for (const member of PackageManifest.members(manifest)) {
    for (const h of memberHeaders(member, seen, 0)) size += h.length
    size += member.sizeBytes + TarFormat.padding(member.sizeBytes).length
  }
  return size
}

/**
 * The archive's bytes: the manifest entry, then for each member its parent directories (once
 * each, so extraction keeps the structure and modes), header, verified bytes and padding; then
 * the end-of-archive blocks. A pure function of the manifest, the member bytes and `mtime`.
 *
 * One pull loop rather than a stream combinator per member: per-member combinators cost about
 * half a millisecond of CPU each, which dominated packages of many small files.
 */
export const archive = <E>(input: ArchiveInput<E>): Stream.Stream<Uint8Array, E | MemberFault> =>
  coalesce(Stream.unwrapScoped(Effect.map(Effect.scope, (scope) => {
    const list = PackageManifest.members(input.manifest)
    const mtime = input.mtime
    const seen = new Set<string>()
    type Pull = Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<E>>
    let next = 0
    let started = false
    let finished = false
    let current: {
      readonly index: number
      readonly member: PackageManifest.Member
      readonly pull: Pull
      readonly scope: Scope.CloseableScope
      readonly hasher: HashOffload.MemberHasher
      bytes: number
    } | undefined
    const end = Effect.fail(Option.none())
    const fail = (e: E | MemberFault) => Effect.fail(Option.some(e))

    // Small members are read ahead, a few at a time: with many small files, each file's
    // open/read/close latency, not bandwidth or CPU, is what limits the pass.
    const ahead = new Map<number, Fiber.RuntimeFiber<Either.Either<Array<Uint8Array>, E>>>()
    const readAhead = Effect.gen(function*() {
      for (let i = next; i < list.length && i < next + readAheadFiles; i++) {
        if (ahead.has(i) || list[i].sizeBytes > readAheadBytes) continue
        const whole = input.whole
        const read = whole !== undefined
          ? Effect.map(Effect.suspend(() => whole(i, list[i], list[i].sizeBytes)), (bytes) => bytes.length === 0 ? [] : [bytes])
          : collectAtMost(Stream.suspend(() => input.body(i, list[i])), list[i].sizeBytes)
        ahead.set(i, yield* Effect.forkIn(Effect.either(read), scope))
      }
    })

    const open = (index: number) =>
      Effect.gen(function*() {
        const member = list[index]
        const memberScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
        const early = ahead.get(index)
        ahead.delete(index)
        yield* readAhead
        let pull: Pull
        if (early !== undefined) {
          const read = yield* Fiber.join(early)
          let done = false
          pull = Effect.suspend(() => {
            if (done) return Effect.fail(Option.none())
            done = true
            return Either.isLeft(read) ? Effect.fail(Option.some(read.left)) : Effect.succeed(Chunk.unsafeFromArray(read.right))
          })
        } else {
          pull = yield* Scope.extend(Stream.toPull(Stream.suspend(() => input.body(index, member))), memberScope)
        }
        const hasher = member.sizeBytes >= offloadMemberBytes && input.hasher !== undefined ? input.hasher : HashOffload.local()
        yield* hasher.begin(Checksum.nodeHashName[Checksum.parse(member.checksum).algorithm])
        current = { index, member, pull, scope: memberScope, hasher, bytes: 0 }
        return Chunk.unsafeFromArray(memberHeaders(member, seen, mtime))
      })

    // The member's source ended: check what it gave against the record, then pad.
    const close = (m: NonNullable<typeof current>) =>
      Effect.gen(function*() {
        current = undefined
        yield* Scope.close(m.scope, Exit.void)
        const fault = (detail: string, actualChecksum?: Checksum.Checksum) =>
          new MemberFault({ index: m.index, kind: "Corrupt", detail, actualSize: m.bytes, actualChecksum })
        if (m.bytes !== m.member.sizeBytes) return yield* fail(fault(`${m.bytes} bytes, recorded ${m.member.sizeBytes}`))
        const { algorithm } = Checksum.parse(m.member.checksum)
        const actual = Checksum.make(algorithm, yield* m.hasher.digest)
        if (actual !== m.member.checksum) return yield* fail(fault(`checksum ${actual}, recorded ${m.member.checksum}`, actual))
        return Chunk.of(TarFormat.padding(m.member.sizeBytes))
      })

    const read = (m: NonNullable<typeof current>): Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<E | MemberFault>> =>
      m.pull.pipe(
        Effect.matchEffect({
          onFailure: (e) => {
            if (Option.isNone(e)) return close(m)
            current = undefined
            return Effect.zipRight(
              Scope.close(m.scope, Exit.void),
              isMissing(e.value)
                ? fail(new MemberFault({ index: m.index, kind: "Missing", detail: "not found at the source" }))
                : fail(e.value)
            )
          },
          onSuccess: (chunk) => {
            for (const part of chunk) m.bytes += part.length
            if (m.bytes > m.member.sizeBytes) {
              return fail(new MemberFault({ index: m.index, kind: "Corrupt", detail: `more than the recorded ${m.member.sizeBytes} bytes`, actualSize: m.bytes }))
            }
            return Effect.as(Effect.forEach(chunk, m.hasher.update, { discard: true }), chunk)
          }
        })
      )

    const step = Effect.suspend((): Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<E | MemberFault>> => {
      if (!started) {
        started = true
        return Effect.succeed(Chunk.unsafeFromArray(manifestEntry(input.manifest, mtime)))
      }
      if (current !== undefined) return read(current)
      if (next < list.length) return open(next++)
      if (finished) return end
      finished = true
      return Effect.succeed(Chunk.of(TarFormat.trailer()))
    })
    return Stream.repeatEffectChunkOption(step)
  })))
