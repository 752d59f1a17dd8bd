/**
 * Recording what a reader found at rest (DESIGN §4 invariant 8): whoever reads a copy and finds
 * its bytes wrong (CORRUPT) or gone (MISSING), be it staging, unpacking, a transfer reading its
 * source, an audit or a reconciliation, records it here at once, with the copy locked, so from
 * then on the copy counts nowhere as a good copy (retention, staging, archiving and repair all
 * count PRESENT, verified copies only). A copy that was found good again goes back with `restore`.
 */
import { type Ids, Transitions } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** What was found. */
export type Finding = "CORRUPT" | "MISSING"

/** Who found it and what it saw, for the event log. */
export interface Found {
  /** A worker or planner name, e.g. `worker:cologne`. */
  readonly actor: string
  /** Which activity found it: staging, unpack, transfer, audit, inventory, cleanup. */
  readonly by: string
  /** What was wrong, readable by an operator. */
  readonly detail: string
  readonly expectedChecksum?: string | undefined
  readonly actualChecksum?: string | undefined
}

/** States from which a finding is recorded: every state in which the copy still counted, or may come to. */
const counted = new Set(["PRESENT", "STAGED", "DELETION_POSSIBLE", "DELETION_SCHEDULED", "DELETION_FAILED"])

/**
 * Marks a copy CORRUPT or MISSING (a savepoint in the caller's transaction, or a transaction of
 * its own). Returns whether it moved: a copy already marked, being deleted, or deleted is left as
 * it is (a MISSING copy found CORRUPT stays MISSING only if it is gone; a CORRUPT copy found gone
 * becomes MISSING).
 */
export const mark = (copyId: string, finding: Finding, found: Found) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    return yield* sql.withTransaction(
      Effect.gen(function* () {
        const [row] = yield* sql<{ status: string }>`select status::text as status from physical_copy where id = ${copyId} for update`
        if (row === undefined) return false
        const from = row.status
        if (from === finding) return false
        if (!counted.has(from) && !(finding === "MISSING" && from === "CORRUPT")) return false
        yield* Transitions.transition({
          entity: "PhysicalCopy",
          id: copyId as Ids.PhysicalCopyId,
          from: from as never,
          to: finding,
          actor: found.actor,
          details: {
            by: found.by,
            detail: found.detail,
            ...(found.expectedChecksum !== undefined ? { expectedChecksum: found.expectedChecksum } : {}),
            ...(found.actualChecksum !== undefined ? { actualChecksum: found.actualChecksum } : {})
          }
        })
        yield* Effect.logError(`copy ${copyId} ${finding} (found by ${found.by}): ${found.detail}`)
        return true
      })
    )
  }).pipe(Effect.withSpan("CopyFindings.mark", { attributes: { copyId, finding } }))

/**
 * Moves a CORRUPT or MISSING copy back to a counted state, with the copy locked; `verifiedAt` is
 * what the move records (now, when its bytes were just read and matched; null, when its next
 * reader is to check them). Returns whether it moved.
 */
const giveBack = (
  copyId: string,
  to: "PRESENT" | "STAGED",
  verifiedAt: Date | null,
  found: Omit<Found, "expectedChecksum" | "actualChecksum">
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    return yield* sql.withTransaction(
      Effect.gen(function* () {
        const [row] = yield* sql<{ status: string }>`select status::text as status from physical_copy where id = ${copyId} for update`
        if (row === undefined || (row.status !== "CORRUPT" && row.status !== "MISSING")) return false
        yield* Transitions.transition({
          entity: "PhysicalCopy",
          id: copyId as Ids.PhysicalCopyId,
          from: row.status,
          to,
          actor: found.actor,
          details: { by: found.by, detail: found.detail },
          set: { verifiedAt }
        })
        return true
      })
    )
  })

/**
 * Puts a CORRUPT or MISSING copy back to PRESENT (or STAGED at a PROCESSING location) once its
 * bytes were read again and matched its checksum; records `verifiedAt`. Returns whether it moved.
 */
export const restore = (copyId: string, to: "PRESENT" | "STAGED", found: Omit<Found, "expectedChecksum" | "actualChecksum">) =>
  Effect.suspend(() => giveBack(copyId, to, new Date(), found))

/**
 * Gives a CORRUPT or MISSING copy back to PRESENT without a verification (`verifiedAt` null) on
 * an operator's retry, so its next reader checks it again: bundling verifies every member it
 * reads, and one still bad is marked again with what was found. Nothing that counts verified
 * copies (retention, archiving, staging) counts it until then. Returns whether it moved.
 */
export const recheck = (copyId: string, found: Omit<Found, "expectedChecksum" | "actualChecksum">) =>
  giveBack(copyId, "PRESENT", null, found)
