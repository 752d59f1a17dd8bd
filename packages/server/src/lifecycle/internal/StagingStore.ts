/**
 * The PROCESSING location's store as a request fills it: staged copies claimed back from cleanup,
 * and packages unpacked into it from the first archive copy that works, checked against the
 * filed files.
 */
import { type Checksum, type Ids, StorageError, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as CopyCheck from "../CopyCheck.js"
import type * as Sites from "../Sites.js"
import * as StagingLayout from "../StagingLayout.js"
import { Storages } from "../Storages.js"
import * as Unpacker from "../Unpacker.js"
import { type ArchiveCopy, archiveCopiesOf, type FileRow, NoGoodCopy, noGoodCopyReason, type PackageRow } from "./StagingSources.js"

/**
 * Takes back staged copies of the request's files that cleanup was about to delete, with the
 * copies locked; returns the keys staged already. A copy being deleted right now makes the
 * request wait for it (the job fails and is retried); one found CORRUPT or MISSING is staged
 * again, and its row replaced when the request completes.
 */
export const claimStaged = (site: string, locationId: string, files: ReadonlyArray<FileRow>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    if (files.length === 0) return new Map<string, string>()
    return yield* sql.withTransaction(
      Effect.gen(function* () {
        const rows = yield* sql<{ id: Ids.PhysicalCopyId; status: string; rawDataFileId: string; path: string }>`
          select id, status::text as status, raw_data_file_id, path from physical_copy
          where data_location_id = ${locationId} and raw_data_file_id in ${sql.in(files.map((f) => f.id))} and status <> 'DELETED'
          for update`
        const staged = new Map<string, string>()
        for (const row of rows) {
          if (row.status === "DELETION_POSSIBLE" || row.status === "DELETION_SCHEDULED") {
            yield* Transitions.transition({
              entity: "PhysicalCopy",
              id: row.id,
              from: row.status,
              to: "STAGED",
              actor: `worker:${site}`,
              details: { reason: "needed by a staging request" }
            })
          } else if (row.status === "CORRUPT" || row.status === "MISSING") {
            // Found bad or gone here: staged again from the archive, and the row replaced below.
            continue
          } else if (row.status !== "STAGED") {
            return yield* Effect.fail(
              new Error(`staged copy ${row.path} is ${row.status}; the request waits for cleanup to finish with it`)
            )
          }
          staged.set(row.rawDataFileId, row.path)
        }
        return staged
      })
    )
  })

/** A package whose manifest disagrees with the filed files: staging it cannot give the scientist the filed bytes. */
export class FiledMismatch extends Data.TaggedError("FiledMismatch")<{ readonly message: string }> {}

/**
 * Unpacks one package from the first archive copy that works into the PROCESSING location. A
 * copy that fails for good (not a transient storage failure) is re-read and, when its bytes are
 * shown wrong or gone, marked; when every copy was marked and no good one appeared meanwhile the
 * package fails with NoGoodCopy, else with the last error (the job is retried).
 */
export const unpackPackage = (
  site: string,
  pkg: PackageRow,
  files: ReadonlyArray<FileRow>,
  copies: ReadonlyArray<ArchiveCopy>,
  processing: Sites.Location,
  stagedKeys: ReadonlySet<string>
) =>
  Effect.gen(function* () {
    const destination = yield* Effect.flatMap(Storages, (s) => s.of(processing))
    // A failed unpack removes what it wrote, but never a file another request staged before.
    const guarded = { ...destination, delete: (key: string) => (stagedKeys.has(key) ? Effect.void : destination.delete(key)) }
    let lastError: unknown
    let marked = 0
    for (const copy of copies) {
      const result = yield* Unpacker.unpackFrom(copy.storage, copy.path, {
        destination: guarded,
        prefix: `${StagingLayout.storeFolder}/${pkg.executedObsUnitId}/`,
        checksum: pkg.checksum as never,
        sizeBytes: Number(pkg.sizeBytes),
        overwrite: true
      }).pipe(Effect.either)
      if (result._tag === "Left") {
        lastError = result.left
        yield* Effect.logWarning(`package ${pkg.id}: unpacking from ${copy.location.name} failed, trying the next copy`, result.left)
        if (StorageError.isRetryable(result.left)) continue
        const found = yield* CopyCheck.confirmAndMark(copy.id, copy.storage, copy.path, pkg.checksum as Checksum.Checksum, {
          actor: `worker:${site}`,
          by: "staging"
        })
        if (found !== undefined) marked++
        continue
      }
      const filed = new Map(files.map((f) => [f.id, f]))
      for (const m of result.right.members) {
        if (filed.get(m.id)?.checksum !== m.checksum) {
          return yield* new FiledMismatch({
            message: `package ${pkg.id}: member ${m.relativePath} has ${m.checksum}, filed ${filed.get(m.id)?.checksum ?? "nothing"}`
          })
        }
      }
      return result.right.members
    }
    if (marked === copies.length && (yield* archiveCopiesOf(pkg.id)).length === 0) {
      const reason = yield* noGoodCopyReason(pkg.id)
      if (reason !== undefined) return yield* new NoGoodCopy({ packageId: pkg.id, message: reason })
    }
    return yield* Effect.fail(lastError)
  })
