/**
 * A whole RawDataPackage's tar, straight from an online copy of it
 * (`GET /api/v1/packages/{id}/content`, what DataLink's `#package` links to), streamed to a local
 * path and checked on the way: its size against the response's length, its checksum against the
 * one the server states (the package's). The tar appears at the path only whole and verified; a
 * failure leaves nothing there. No staging request is made. A token is optional: without one
 * only public data can be read.
 */
import type { Checksum } from "@ccat/core"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as CcatClient from "./CcatClient.js"
import { DownloadErrorReason } from "./FileDownload.js"
import * as VerifiedDownload from "./internal/VerifiedDownload.js"

/**
 * A package download ended without the tar; `reason` as for a file (`NotPackaged`: its tar is not
 * written yet; `NeedsStaging`: its only copies are on tape, stage its observation).
 */
export class PackageDownloadError extends Schema.TaggedError<PackageDownloadError>()("PackageDownloadError", {
  reason: DownloadErrorReason,
  packageId: Schema.String,
  status: Schema.optional(Schema.Number),
  message: Schema.String
}) {}

/** The tar as written. */
export interface Downloaded {
  readonly path: string
  readonly sizeBytes: number
  readonly checksum: Checksum.Checksum
}

/**
 * Streams the package's tar to `destination` (replacing what is there only once the new bytes
 * are whole and verified). Needs an `HttpClient` (e.g. `FetchHttpClient.layer`).
 */
export const downloadPackage = (
  options: Pick<CcatClient.Options, "baseUrl" | "token" | "transformClient">,
  packageId: string,
  destination: string
): Effect.Effect<Downloaded, PackageDownloadError, HttpClient.HttpClient> =>
  VerifiedDownload.download(options, `/api/v1/packages/${encodeURIComponent(packageId)}/content`, destination, (reason, message, status) =>
    new PackageDownloadError({ reason, packageId, message, ...(status === undefined ? {} : { status }) })).pipe(
    Effect.withSpan("PackageDownload.downloadPackage", { attributes: { packageId } })
  )
