/**
 * A whole RawDataPackage's tar, read from an online copy of it (an S3 GET, a disk read) and
 * checked against the package's size and checksum as it streams, without staging anything: what
 * DataLink's `#package` link downloads. Copies on nearline media (tape) are not read here: a
 * recall takes minutes to hours and belongs to staging.
 *
 * The tar's last bytes are held back until its checksum is known: a mismatch fails the stream
 * instead of completing it, so a caller never receives a complete wrong tar; the copy is then
 * read once more whole through its own storage (the rule for readers that are not an audit,
 * docs/integrity.md) and recorded CORRUPT or MISSING if it fails that too.
 */
import type { Checksum, Ids, StorageError } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Sites from "../lifecycle/Sites.js"
import { Storages } from "../lifecycle/Storages.js"
import { ContentError, ContentFailure } from "./FileContent.js"
import * as CopyRecheck from "./internal/CopyRecheck.js"
import * as OnlineCopy from "./internal/OnlineCopy.js"
import * as VerifiedStream from "./internal/VerifiedStream.js"
import * as ScienceAccess from "./ScienceAccess.js"

/** A package as the ops-db records it, once its tar is written. */
export interface PackageRecord {
  readonly id: Ids.RawDataPackageId
  readonly relativePath: string
  /** Null while the tar is not written yet. */
  readonly sizeBytes: number | null
  readonly checksum: Checksum.Checksum | null
}

/** A package's tar ready to stream: its record, where it is read from, and its verified bytes. */
export interface Opened {
  readonly pkg: PackageRecord & { readonly sizeBytes: number; readonly checksum: Checksum.Checksum }
  readonly location: string
  readonly body: Stream.Stream<Uint8Array, ContentFailure>
}

/** The package if the caller may read it: the rule of its files, by the observation it holds. */
export const find = (who: ScienceAccess.Caller, packageId: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<
      { id: Ids.RawDataPackageId; relativePath: string; sizeBytes: string | null; checksum: Checksum.Checksum | null }
    >`
      select p.id, p.relative_path, p.size_bytes, p.checksum
      from raw_data_package p
      where p.id = ${packageId} and ${ScienceAccess.observationReadable(sql, who, sql`p.executed_obs_unit_id`)}`.pipe(Effect.orDie)
    const row = rows[0]
    return row === undefined
      ? undefined
      : ({ ...row, sizeBytes: row.sizeBytes === null ? null : Number(row.sizeBytes) } satisfies PackageRecord)
  })

/** Re-reads a copy whole after a download from it failed its check; a copy that reads whole is left as it is. */
const recheck = CopyRecheck.make({ by: "package download", span: "PackageContent.recheck" })

/** The tar's bytes hashed and counted as they pass, the last part held back until the checksum is known. */
const verifiedBytes = (
  raw: Stream.Stream<Uint8Array, StorageError.StorageError>,
  pkg: Opened["pkg"],
  onMismatch: (detail: string) => Effect.Effect<void>
) =>
  VerifiedStream.verified(
    raw.pipe(Stream.mapError((e) => new ContentFailure({ message: `reading package ${pkg.id}: ${e.message}` }))),
    { sizeBytes: pkg.sizeBytes, checksum: pkg.checksum, source: "recorded" },
    (detail) => Effect.zipRight(onMismatch(detail), Effect.fail(new ContentFailure({ message: `package ${pkg.id}: ${detail}` })))
  )

/**
 * Opens a package's tar from its first online copy (archive copies first, by priority). Fails
 * NotFound when the caller may not read it, NotPackaged before its tar is written, NeedsStaging
 * when the only copies are on nearline media, Unavailable when no copy can be read now.
 */
export const open = Effect.fn("PackageContent.open")(function* (who: ScienceAccess.Caller, packageId: string) {
  const found = yield* find(who, packageId)
  if (found === undefined) {
    return yield* new ContentError({
      reason: "NotFound",
      message: `RawDataPackage ${packageId} does not exist or is not visible to this caller`
    })
  }
  const { sizeBytes, checksum } = found
  if (sizeBytes === null || checksum === null) {
    return yield* new ContentError({
      reason: "NotPackaged",
      message: `RawDataPackage ${packageId}: its tar is not written yet; it can be read once it is`
    })
  }
  const pkg = { ...found, sizeBytes, checksum }
  const sql = yield* SqlClient.SqlClient
  const storages = yield* Storages
  const copies = yield* OnlineCopy.copiesOf(packageId)
  let nearline = 0
  const problems: Array<string> = []
  for (const copy of copies) {
    const location = yield* Sites.location(copy.locationId).pipe(Effect.orDie)
    if (copy.checksum !== checksum || Number(copy.sizeBytes) !== sizeBytes) {
      problems.push(
        `${location.name}: its copy records ${copy.sizeBytes} bytes ${copy.checksum}, the package ${sizeBytes} bytes ${checksum}`
      )
      continue
    }
    const ready = yield* OnlineCopy.readiness(storages, location, copy.path, { rangeRead: false })
    if (ready._tag === "Nearline") nearline++
    if (ready._tag === "Problem") problems.push(ready.problem)
    if (ready._tag !== "Ready") continue
    const s = ready.storage
    const onMismatch = (detail: string) =>
      Effect.zipRight(
        Effect.logError(`package ${packageId} read from copy ${copy.id} at ${location.name}: ${detail}`),
        recheck(copy, s, sql, {
          what: `a download of package ${packageId}`,
          attributes: { packageId },
          onWhole: Effect.logWarning(
            `package ${packageId} failed its check read from copy ${copy.id}, which verifies whole when read again: left as it is (${detail})`
          )
        }, detail)
      )
    return { pkg, location: location.name, body: verifiedBytes(s.get(copy.path), pkg, onMismatch) } satisfies Opened
  }
  if (nearline > 0 && problems.length === 0) {
    return yield* new ContentError({
      reason: "NeedsStaging",
      message:
        `RawDataPackage ${packageId}: its only readable copies are on nearline media (tape); stage its observation (POST /api/v1/staging-requests) to read it`
    })
  }
  return yield* new ContentError({
    reason: "Unavailable",
    message: `RawDataPackage ${packageId}: no copy of it can be read now${problems.length > 0 ? ` (${problems.join("; ")})` : ""}`
  })
})
