/**
 * One raw file of an archived package, read straight from a copy of the package: a ranged read
 * of the tar at the file's recorded offsets (an S3 range GET, a disk seek), checked against the
 * file's filed size and checksum as it streams, without staging anything. Copies on nearline
 * media (tape) are not read here: a recall takes minutes to hours and belongs to staging.
 *
 * The read starts at the file's own tar header, so a wrong offset is caught before a byte is
 * sent. The file's last bytes are held back until its checksum is known: a mismatch fails the
 * stream instead of completing it, so a caller never receives a complete wrong file; the copy
 * is then read once more whole through its own storage (the rule for readers that are not an
 * audit, docs/integrity.md) and recorded CORRUPT or MISSING if it fails that too.
 */
import { type Checksum, type Ids, type StorageError, TarFormat } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Chunk from "effect/Chunk"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as MemberOffsets from "../lifecycle/MemberOffsets.js"
import * as Sites from "../lifecycle/Sites.js"
import { Storages } from "../lifecycle/Storages.js"
import * as CopyRecheck from "./internal/CopyRecheck.js"
import * as OnlineCopy from "./internal/OnlineCopy.js"
import * as VerifiedStream from "./internal/VerifiedStream.js"
import * as ScienceAccess from "./ScienceAccess.js"

/** Why a file's bytes cannot be served; each reason has its HTTP status. */
export type Reason = "NotFound" | "NotPackaged" | "NeedsStaging" | "Unavailable"

/** A file that cannot be served, and why. */
export class ContentError extends Data.TaggedError("ContentError")<{ readonly reason: Reason; readonly message: string }> {}

/** The read of a file's bytes failed part-way (its checksum, its size, or the storage). */
export class ContentFailure extends Data.TaggedError("ContentFailure")<{ readonly message: string }> {}

/** The HTTP status of each reason. */
export const statusOf: Record<Reason, number> = { NotFound: 404, NotPackaged: 409, NeedsStaging: 409, Unavailable: 503 }

/** A readable file as recorded at filing. */
export interface FileRecord {
  readonly id: Ids.RawDataFileId
  readonly relativePath: string
  readonly sizeBytes: number
  readonly checksum: Checksum.Checksum
  readonly packageId: Ids.RawDataPackageId | null
  readonly observationId: Ids.ExecutedObsUnitId
}

/** A file ready to stream: its record, where it is read from, and its verified bytes. */
export interface Opened {
  readonly file: FileRecord
  readonly location: string
  readonly body: Stream.Stream<Uint8Array, ContentFailure>
}

/** The file if the caller may read it. */
export const find = (who: ScienceAccess.Caller, fileId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<
      {
        id: Ids.RawDataFileId
        relativePath: string
        sizeBytes: string
        checksum: Checksum.Checksum
        packageId: Ids.RawDataPackageId | null
        observationId: Ids.ExecutedObsUnitId
      }
    >`
      select f.id, f.relative_path, f.size_bytes, f.checksum, f.raw_data_package_id as package_id, f.executed_obs_unit_id as observation_id
      from raw_data_file f
      where f.id = ${fileId} and ${ScienceAccess.observationReadable(sql, who, sql`f.executed_obs_unit_id`)}`.pipe(Effect.orDie)
    const row = rows[0]
    return row === undefined ? undefined : ({ ...row, sizeBytes: Number(row.sizeBytes) } satisfies FileRecord)
  })

/**
 * Re-reads a copy whole after one of its files failed its check. A copy that reads good means the
 * offsets were wrong: they are dropped, to be read again from the manifest next time.
 */
const recheck = CopyRecheck.make({ by: "single-file read", span: "FileContent.recheck" })

/** What the file's offsets being dropped takes, once its copy read whole. */
const dropOffsets = (file: FileRecord, copy: OnlineCopy.CopyRow, detail: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`delete from raw_data_package_member where raw_data_package_id = ${file.packageId} and raw_data_file_id = ${file.id}`
    return yield* Effect.logError(
      `file ${file.id} failed its check in copy ${copy.id}, which verifies whole: its offsets are dropped (${detail})`
    )
  })

/** Why the block before a member's data is not that member's header, or undefined. */
const headerProblem = (block: Uint8Array, file: FileRecord): string | undefined => {
  const header = TarFormat.decodeHeader(block)
  if (typeof header === "string") return `no tar header before the file's data: ${header}`
  if (TarFormat.entryType(header.typeflag) !== "file") return "the tar header before the file's data is not a file's"
  // a size beyond ustar's octal field is carried in a pax record, the header holding 0
  if (header.size !== file.sizeBytes && !(header.size === 0 && file.sizeBytes > 0o77777777777)) {
    return `the tar header says ${header.size} bytes, the file has ${file.sizeBytes}`
  }
  return undefined
}

/**
 * The member's bytes from `range` (its header block, then its data): the header checked and
 * taken off, the data then hashed and counted, the last part held back until the checksum is known.
 */
const verifiedBytes = (
  raw: Stream.Stream<Uint8Array, StorageError.StorageError>,
  file: FileRecord,
  onMismatch: (detail: string) => Effect.Effect<void>
) =>
  Stream.suspend(() => {
    const head = new Uint8Array(TarFormat.blockSize)
    let headAt = 0
    const failed = (detail: string): Effect.Effect<never, ContentFailure> =>
      Effect.zipRight(onMismatch(detail), Effect.fail(new ContentFailure({ message: `file ${file.id}: ${detail}` })))
    const data = raw.pipe(
      Stream.mapError((e) => new ContentFailure({ message: `reading file ${file.id}: ${e.message}` })),
      Stream.mapChunksEffect((chunk): Effect.Effect<Chunk.Chunk<Uint8Array>, ContentFailure> => {
        if (headAt === head.length) return Effect.succeed(chunk)
        const out: Array<Uint8Array> = []
        for (let part of chunk) {
          if (headAt < head.length) {
            const n = Math.min(head.length - headAt, part.length)
            head.set(part.subarray(0, n), headAt)
            headAt += n
            part = part.subarray(n)
            if (headAt === head.length) {
              const problem = headerProblem(head, file)
              if (problem !== undefined) return failed(problem)
            }
            if (part.length === 0) continue
          }
          out.push(part)
        }
        return Effect.succeed(Chunk.unsafeFromArray(out))
      }),
      Stream.concat(
        Stream.suspend(() => headAt < head.length ? Stream.fromEffect(failed("the copy ends before the file's tar header")) : Stream.empty)
      )
    )
    return VerifiedStream.verified(data, { sizeBytes: file.sizeBytes, checksum: file.checksum, source: "filed" }, failed)
  })

/**
 * Opens a file for reading from the first online copy of its package that reads ranges (archive
 * copies first, by priority). The offsets are the recorded ones, or read once from the copy's
 * manifest. Fails NotFound when the caller may not read the file, NotPackaged before it is in a
 * package, NeedsStaging when the only copies are on nearline media, Unavailable when no copy
 * can be read now.
 */
export const open = Effect.fn("FileContent.open")(function* (who: ScienceAccess.Caller, fileId: string) {
  const file = yield* find(who, fileId)
  if (file === undefined) {
    return yield* new ContentError({ reason: "NotFound", message: `RawDataFile ${fileId} does not exist or is not visible to this caller` })
  }
  const packageId = file.packageId
  if (packageId === null) {
    return yield* new ContentError({
      reason: "NotPackaged",
      message: `RawDataFile ${fileId} is not in a package yet; it can be read once it is archived`
    })
  }
  const sql = yield* SqlClient.SqlClient
  const storages = yield* Storages
  const copies = yield* OnlineCopy.copiesOf(packageId)
  let nearline = 0
  const problems: Array<string> = []
  for (const copy of copies) {
    const location = yield* Sites.location(copy.locationId).pipe(Effect.orDie)
    const ready = yield* OnlineCopy.readiness(storages, location, copy.path, { rangeRead: true })
    if (ready._tag === "Nearline") nearline++
    if (ready._tag === "Problem") problems.push(ready.problem)
    if (ready._tag !== "Ready") continue
    const s = ready.storage
    const recorded = yield* MemberOffsets.of(packageId, file.id).pipe(Effect.orDie)
    const offsets = recorded ?? (yield* MemberOffsets.fillFromArchive(packageId, s, copy.path).pipe(
      Effect.zipRight(MemberOffsets.of(packageId, file.id)),
      Effect.catchAll((e) => Effect.as(Effect.sync(() => problems.push(`${location.name}: ${e.message}`)), undefined))
    ))
    if (offsets === undefined) {
      if (recorded === undefined && problems.length === 0) problems.push(`${location.name}: the package's manifest does not list the file`)
      continue
    }
    if (offsets.sizeBytes !== file.sizeBytes) {
      problems.push(`${location.name}: the recorded member has ${offsets.sizeBytes} bytes, the file ${file.sizeBytes}`)
      continue
    }
    const raw = s.get(copy.path, { range: { start: offsets.dataOffset - TarFormat.blockSize, end: offsets.dataOffset + file.sizeBytes } })
    const onMismatch = (detail: string) =>
      recheck(copy, s, sql, { what: `file ${file.id}`, attributes: { fileId: file.id }, onWhole: dropOffsets(file, copy, detail) }, detail)
    const body = verifiedBytes(
      raw,
      file,
      (detail) =>
        Effect.zipRight(Effect.logError(`file ${file.id} read from copy ${copy.id} at ${location.name}: ${detail}`), onMismatch(detail))
    )
    return { file, location: location.name, body } satisfies Opened
  }
  if (nearline > 0 && problems.length === 0) {
    return yield* new ContentError({
      reason: "NeedsStaging",
      message:
        `RawDataFile ${fileId}: its package's only readable copies are on nearline media (tape); stage the observation (POST /api/v1/staging) to read it`
    })
  }
  return yield* new ContentError({
    reason: "Unavailable",
    message: `RawDataFile ${fileId}: no copy of its package can be read now${problems.length > 0 ? ` (${problems.join("; ")})` : ""}`
  })
})
