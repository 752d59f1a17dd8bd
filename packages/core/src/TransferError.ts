/**
 * The one error every transfer adapter fails with. A transfer crosses sites, job queues and the
 * ops-db (a DataTransfer row records it), so the error is data: a small `reason`, and whether a
 * retry can help (DESIGN §4.5: classified errors, bounded retries, no retry storms).
 */
import * as Schema from "effect/Schema"

/** Why a transfer failed, in words an operator can act on. */
export const Reason = Schema.Literal(
  "SourceNotFound",
  "SourceVanished",
  "SourceCorrupt",
  "PermissionDenied",
  "AuthenticationFailed",
  "DestinationFull",
  "ChecksumMismatch",
  "Timeout",
  "Connection",
  "Protocol",
  "Partial",
  "Interrupted",
  "InvalidRequest",
  "ToolMissing",
  "Unsupported",
  "Unknown"
)
/** Why a transfer failed. */
export type Reason = typeof Reason.Type

/**
 * Whether a retry of the same transfer can succeed, per reason, when the adapter knows no
 * better. Conditions of the link or of the destination's free space can clear; a missing or
 * changed source, a refused credential or a bad option will not clear by itself.
 */
export const retryableByDefault: Record<Reason, boolean> = {
  SourceNotFound: false,
  SourceVanished: false,
  SourceCorrupt: false,
  PermissionDenied: false,
  AuthenticationFailed: false,
  DestinationFull: true,
  ChecksumMismatch: true,
  Timeout: true,
  Connection: true,
  Protocol: true,
  Partial: true,
  Interrupted: true,
  InvalidRequest: false,
  ToolMissing: false,
  Unsupported: false,
  Unknown: false
}

/** A failed transfer: reason, retry classification, and what the tool said. */
export class TransferError extends Schema.TaggedError<TransferError>()("TransferError", {
  reason: Reason,
  retryable: Schema.Boolean,
  adapter: Schema.String,
  detail: Schema.String,
  exitCode: Schema.optional(Schema.Number),
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    const code = this.exitCode === undefined ? "" : ` (exit ${this.exitCode})`
    return `${this.adapter} transfer failed, ${this.reason}${this.retryable ? ", retryable" : ""}${code}: ${this.detail}`
  }
}

/** Builds a TransferError whose retry classification is the reason's default unless given. */
export const make = (
  adapter: string,
  reason: Reason,
  detail: string,
  extra: { readonly retryable?: boolean; readonly exitCode?: number; readonly cause?: unknown } = {}
): TransferError =>
  new TransferError({
    adapter,
    reason,
    detail,
    retryable: extra.retryable ?? retryableByDefault[reason],
    ...(extra.exitCode === undefined ? {} : { exitCode: extra.exitCode }),
    ...(extra.cause === undefined ? {} : { cause: extra.cause })
  })
