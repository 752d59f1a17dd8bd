/**
 * What an S3 server's refusal means for the storage port: the SDK's error names and HTTP
 * statuses of AWS, radosgw and MinIO mapped to the port's reasons, so only transient failures
 * (Unavailable) are retried.
 */
import type { StorageError } from "@ccat/core"

/** The storage reason for an S3 SDK failure. */
export const reasonOf = (cause: unknown): StorageError.StorageErrorReason => {
  const e = cause as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } } | null
  const code = e?.name ?? e?.Code ?? ""
  const status = e?.$metadata?.httpStatusCode ?? 0
  if (["NoSuchKey", "NotFound", "NoSuchBucket", "NoSuchUpload"].includes(code) || status === 404) return "NotFound"
  if (["PreconditionFailed", "ConditionalRequestConflict"].includes(code) || status === 412) return "AlreadyExists"
  if (["BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidPart"].includes(code)) return "Corrupt"
  if (["NotImplemented", "EntityTooLarge"].includes(code) || status === 501) return "Unsupported"
  if (["AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"].includes(code) || status === 403) {
    return "PermissionDenied"
  }
  if (status >= 400 && status < 500 && !["RequestTimeout", "SlowDown", "TooManyRequests"].includes(code) && status !== 429) {
    return "PermissionDenied"
  }
  return "Unavailable"
}
