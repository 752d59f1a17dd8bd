/**
 * One raw file's bytes, straight from the archive (`GET /api/v1/files/{id}/content`), streamed
 * to a local path and checked on the way: its size against the response's length, its checksum
 * against the one the server states (the filed one). The file appears at the path only whole
 * and verified (it is written beside it under a temporary name and renamed); a failure leaves
 * nothing there. No staging request is made: the server reads the file by range from an online
 * copy of its package. A token is optional: without one only public data can be read.
 *
 * A byte stream is not a JSON answer, so this one call is made with the `HttpClient` directly
 * instead of through the contract-derived client.
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as VerifiedDownload from "./internal/VerifiedDownload.js"

/** Why a download ended without the file. */
export const DownloadErrorReason = Schema.Literal(
  "NotFound",
  "Unauthorized",
  "NotPackaged",
  "NeedsStaging",
  "Unavailable",
  "Corrupt",
  "Failed"
)
/** Why a download ended without the file. */
export type DownloadErrorReason = typeof DownloadErrorReason.Type

/**
 * A download ended without the file: `NotFound` (no such file, or not visible to the caller),
 * `Unauthorized` (a token was refused, or none was given for data that is not public), `NotPackaged` (not archived yet), `NeedsStaging` (its
 * package is on tape only: stage it), `Unavailable` (no copy can be read now), `Corrupt` (the
 * bytes did not match the filed size or checksum, or the server cut the response because they
 * did not), `Failed` (the connection or the local disk failed).
 */
export class DownloadError extends Schema.TaggedError<DownloadError>()("DownloadError", {
  reason: DownloadErrorReason,
  fileId: Schema.String,
  ...VerifiedDownload.failureFields
}) {}

/** The file as written. */
export type Downloaded = VerifiedDownload.Written

/**
 * Streams the file's bytes to `destination` (replacing what is there only once the new bytes are
 * whole and verified). Needs an `HttpClient` (e.g. `FetchHttpClient.layer`).
 */
export const downloadFile: (
  options: VerifiedDownload.Options,
  fileId: string,
  destination: string
) => Effect.Effect<Downloaded, DownloadError, HttpClient.HttpClient> = VerifiedDownload.downloader({
  collection: "files",
  span: "FileDownload.downloadFile",
  idAttribute: "fileId",
  toError: (failure, fileId) => new DownloadError({ ...failure, fileId })
})
