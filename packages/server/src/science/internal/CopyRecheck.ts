/**
 * After bytes read from a copy failed their check on the way to a reader, the whole copy is read
 * once more through its own storage (the rule for readers that are not an audit,
 * docs/integrity.md): CORRUPT or MISSING is recorded only if the copy fails too, since one bad
 * read may be the way's fault. The re-read runs in the background, one per copy at a time.
 */
import type { Checksum, StorageDriver } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as CopyFindings from "../../lifecycle/CopyFindings.js"

/** The copy read again. */
export interface Copy {
  readonly id: string
  readonly path: string
  readonly checksum: Checksum.Checksum
}

/** One kind of reader's re-reads: how its findings and logs name it, and what a good copy means to it. */
export interface Kind {
  /** Who found the fault, in the finding and the logs ("package download", "single-file read"). */
  readonly by: string
  /** The span of each re-read. */
  readonly span: string
}

/** One failed read to re-check: what failed, and what to do when the copy reads whole. */
export interface Failed {
  /** What failed, for the log when the copy cannot be read again ("file …", "a download of package …"). */
  readonly what: string
  /** The span's attributes besides the copy's id. */
  readonly attributes: Record<string, unknown>
  /** The copy verified whole: the fault was not the copy's. */
  readonly onWhole: Effect.Effect<void, unknown, SqlClient.SqlClient>
}

/**
 * A re-reader for one kind of reader: each call starts the re-read of `copy` in the background
 * unless one of this kind is already running for it, and returns at once.
 */
export const make = (kind: Kind) => {
  // copies already being re-read: one re-read per copy at a time
  const rereading = new Set<string>()
  const recheck = (copy: Copy, storage: StorageDriver.Service, failed: Failed, detail: string) =>
    Effect.gen(function* () {
      const found = { actor: "server", by: kind.by, detail: `${detail}; the whole copy read again` }
      const outcome = yield* storage.verify(copy.path, copy.checksum).pipe(Effect.either)
      if (outcome._tag === "Right") return yield* failed.onWhole
      const e = outcome.left
      if (e.reason === "Corrupt") yield* CopyFindings.mark(copy.id, "CORRUPT", { ...found, expectedChecksum: copy.checksum })
      else if (e.reason === "NotFound") yield* CopyFindings.mark(copy.id, "MISSING", found)
      else yield* Effect.logWarning(`copy ${copy.id} could not be read again after ${failed.what} failed: ${e.message}`)
    }).pipe(
      Effect.catchAllCause((cause) => Effect.logError(`re-reading a copy after a failed ${kind.by}`, cause)),
      Effect.ensuring(Effect.sync(() => rereading.delete(copy.id))),
      Effect.withSpan(kind.span, { attributes: { copyId: copy.id, ...failed.attributes } })
    )
  return (copy: Copy, storage: StorageDriver.Service, sql: SqlClient.SqlClient, failed: Failed, detail: string): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (rereading.has(copy.id)) return Effect.void
      rereading.add(copy.id)
      return Effect.asVoid(Effect.forkDaemon(Effect.provideService(recheck(copy, storage, failed, detail), SqlClient.SqlClient, sql)))
    })
}
