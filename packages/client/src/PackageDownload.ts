/**
 * A whole RawDataPackage's tar, straight from an online copy of it
 * (`GET /api/v1/packages/{id}/content`, what DataLink's `#package` links to), streamed to a local
 * path and checked on the way: its size against the response's length, its checksum against the
 * one the server states (the package's). The tar appears at the path only whole and verified; a
 * failure leaves nothing there. No staging request is made. A token is optional: without one
 * only public data can be read.
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { DownloadErrorReason } from "./FileDownload.js"
import * as VerifiedDownload from "./internal/VerifiedDownload.js"

/**
 * A package download ended without the tar; `reason` as for a file (`NotPackaged`: its tar is not
 * written yet; `NeedsStaging`: its only copies are on tape, stage its observation).
 */
export class PackageDownloadError extends Schema.TaggedError<PackageDownloadError>()("PackageDownloadError", {
  reason: DownloadErrorReason,
  packageId: Schema.String,
  ...VerifiedDownload.failureFields
}) {}

/** The tar as written. */
export type Downloaded = VerifiedDownload.Written

/**
 * Streams the package's tar to `destination` (replacing what is there only once the new bytes
 * are whole and verified). Needs an `HttpClient` (e.g. `FetchHttpClient.layer`).
 */
export const downloadPackage: (
  options: VerifiedDownload.Options,
  packageId: string,
  destination: string
) => Effect.Effect<Downloaded, PackageDownloadError, HttpClient.HttpClient> = VerifiedDownload.downloader({
  collection: "packages",
  span: "PackageDownload.downloadPackage",
  idAttribute: "packageId",
  toError: (failure, packageId) => new PackageDownloadError({ ...failure, packageId })
})
