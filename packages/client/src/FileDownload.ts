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
import type { Checksum } from "@ccat/core"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as CcatClient from "./CcatClient.js"
import * as VerifiedDownload from "./internal/VerifiedDownload.js"

/** Why a download ended without the file. */
export const DownloadErrorReason = Schema.Literal("NotFound", "Unauthorized", "NotPackaged", "NeedsStaging", "Unavailable", "Corrupt", "Failed")
/** Why a download ended without the file. */
export type DownloadErrorReason = typeof DownloadErrorReason.Type

/**
 * A download ended without the file: `NotFound` (no such file, or not visible to the caller),
 * `Unauthorized` (a token was refused), `NotPackaged` (not archived yet), `NeedsStaging` (its
 * package is on tape only: stage it), `Unavailable` (no copy can be read now), `Corrupt` (the
 * bytes did not match the filed size or checksum, or the server cut the response because they
 * did not), `Failed` (the connection or the local disk failed).
 */
export class DownloadError extends Schema.TaggedError<DownloadError>()("DownloadError", {
  reason: DownloadErrorReason,
  fileId: Schema.String,
  status: Schema.optional(Schema.Number),
  message: Schema.String
}) {}

/** The file as written. */
export interface Downloaded {
  readonly path: string
  readonly sizeBytes: number
  readonly checksum: Checksum.Checksum
}

/**
 * Streams the file's bytes to `destination` (replacing what is there only once the new bytes are
 * whole and verified). Needs an `HttpClient` (e.g. `FetchHttpClient.layer`).
 */
export const downloadFile = (
  options: Pick<CcatClient.Options, "baseUrl" | "token" | "transformClient">,
  fileId: string,
  destination: string
): Effect.Effect<Downloaded, DownloadError, HttpClient.HttpClient> =>
  VerifiedDownload.download(options, `/api/v1/files/${encodeURIComponent(fileId)}/content`, destination, (reason, message, status) =>
    new DownloadError({ reason, fileId, message, ...(status === undefined ? {} : { status }) })).pipe(
    Effect.withSpan("FileDownload.downloadFile", { attributes: { fileId } })
  )
