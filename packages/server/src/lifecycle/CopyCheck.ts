/**
 * Telling a bad copy from a bad read (DESIGN §4 invariant 8). A reader whose read of a copy
 * failed (an unpack that found wrong bytes, a transfer whose adapter blamed its source, a recall
 * that did not match the catalog) does not mark the copy on that evidence alone: the failure may
 * have been the destination's, the way's, or a passing fault. It re-reads the copy through the
 * copy's own storage against the recorded checksum, and only a definite answer about the copy's
 * bytes (gone: MISSING; read whole and different: CORRUPT) is recorded, through CopyFindings.
 * Anything else (an unreachable location, a refused read) is no finding: the caller keeps its
 * retry behaviour.
 */
import { type Checksum, type StorageDriver, StorageError } from "@ccat/core"
import * as Effect from "effect/Effect"
import * as CopyFindings from "./CopyFindings.js"

/** What a re-read showed about a copy's bytes. */
export interface Confirmed {
  readonly finding: CopyFindings.Finding
  /** What was wrong, for the event log and the reasons people read. */
  readonly detail: string
  readonly expectedChecksum?: string | undefined
  readonly actualChecksum?: string | undefined
}

/** What a re-read of a copy showed: its bytes match, are shown bad, or could not be told. */
export type Reread =
  | { readonly _tag: "Good" }
  | ({ readonly _tag: "Bad" } & Confirmed)
  | { readonly _tag: "Unknown"; readonly detail: string; readonly reason: string; readonly retryable: boolean }

/**
 * Re-reads the object under `key` whole against `checksum` and says which of the three it found:
 * only a definite answer about the copy's own bytes is Bad; a storage that failed otherwise is
 * Unknown, retryable when the storage was only unavailable (refused or unsupported reads are not).
 */
export const reread = (storage: StorageDriver.Service, key: string, checksum: Checksum.Checksum) =>
  storage.verify(key, checksum).pipe(
    Effect.as<Reread>({ _tag: "Good" }),
    Effect.catchAll((e): Effect.Effect<Reread> => {
      if (!StorageError.isStorageError(e)) {
        return Effect.succeed({ _tag: "Unknown", detail: String(e), reason: "Unknown", retryable: false })
      }
      const detail = e.description ?? e.message
      if (e.reason === "NotFound") return Effect.succeed({ _tag: "Bad", finding: "MISSING", detail: `${key} is gone: ${detail}` })
      if (e.reason !== "Corrupt") {
        return Effect.succeed({ _tag: "Unknown", detail, reason: e.reason, retryable: StorageError.isRetryable(e) })
      }
      const actual = /got (\S+)/.exec(detail)?.[1]
      return Effect.succeed({ _tag: "Bad", finding: "CORRUPT", detail, expectedChecksum: checksum, actualChecksum: actual })
    }),
    Effect.withSpan("CopyCheck.reread", { attributes: { storage: storage.name, key } })
  )

/**
 * Re-reads the object under `key` whole against `checksum`. Undefined when it matches, or when
 * the re-read could not tell (the storage failed otherwise): only the copy's own bytes count.
 */
export const confirm = (storage: StorageDriver.Service, key: string, checksum: Checksum.Checksum) =>
  Effect.map(reread(storage, key, checksum), (r): Confirmed | undefined => {
    if (r._tag !== "Bad") return undefined
    const { _tag, ...found } = r
    return found
  }).pipe(Effect.withSpan("CopyCheck.confirm", { attributes: { storage: storage.name, key } }))

/** Who re-reads, for the event log: `actor` a worker, `by` the activity (staging, unpack, transfer). */
export interface Reader {
  readonly actor: string
  readonly by: string
}

/**
 * Confirms a failed read of the copy `copyId` and records what it shows; returns the finding
 * (undefined when the copy was not shown bad). Marking twice is harmless: CopyFindings leaves a
 * copy marked already as it is.
 */
export const confirmAndMark = (
  copyId: string,
  storage: StorageDriver.Service,
  key: string,
  checksum: Checksum.Checksum,
  reader: Reader
) =>
  Effect.gen(function* () {
    const found = yield* confirm(storage, key, checksum)
    if (found === undefined) return undefined
    yield* CopyFindings.mark(copyId, found.finding, { ...reader, ...found })
    return found
  })
