/**
 * The one error every storage driver fails with. It crosses boundaries (job queue, HTTP, logs),
 * so it is a Schema.TaggedError whose `reason` tells callers what to do: retry (Unavailable),
 * give up (NotFound, PermissionDenied, Unsupported), pick another name (AlreadyExists), or
 * delete and re-transfer (Corrupt).
 */
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

/** Why a storage operation failed; the only part of the error callers should branch on. */
export const StorageErrorReason = Schema.Literal(
  "NotFound",
  "AlreadyExists",
  "PermissionDenied",
  "Unavailable",
  "Unsupported",
  "Corrupt"
)
/** Why a storage operation failed. */
export type StorageErrorReason = typeof StorageErrorReason.Type

/** A failed storage operation, with the driver, the method and (where known) the key. */
export class StorageError extends Schema.TaggedError<StorageError>("@ccat/core/StorageError")("StorageError", {
  reason: StorageErrorReason,
  /** The driver's name (`disk`, `s3`, `tape`, or an integrator's). */
  driver: Schema.String,
  /** The contract method that failed (`put`, `get`, ...). */
  method: Schema.String,
  /** The object key, when the failure is about one object. */
  key: Schema.optional(Schema.String),
  /** A human explanation beyond the reason. */
  description: Schema.optional(Schema.String),
  /** The underlying failure (a Node error, an SDK exception). */
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    const what = `${this.driver}.${this.method}${this.key === undefined ? "" : ` ${JSON.stringify(this.key)}`}`
    const why = this.description ??
      (this.cause instanceof Error ? this.cause.message : this.cause === undefined ? undefined : String(this.cause))
    return `${what}: ${this.reason}${why === undefined ? "" : `: ${why}`}`
  }

  /** Transient failures are worth retrying with backoff; every other reason is permanent. */
  get retryable(): boolean {
    return this.reason === "Unavailable"
  }
}

/** True for a StorageError (from any copy of this module). */
export const isStorageError = (u: unknown): u is StorageError => Predicate.isTagged(u, "StorageError") && Predicate.hasProperty(u, "reason")

/** True when the failure is transient and the operation may be retried. */
export const isRetryable = (u: unknown): boolean => isStorageError(u) && u.reason === "Unavailable"
